"""bench/probe_vqa.py trains its probe on a config's own tower tokens and scores every kind of
question (a few steps on the tiny demo, so it cannot rot)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_probe_scores_each_question_kind(demo_env):
    proc = subprocess.run(
        [sys.executable, 'bench/probe_vqa.py', '--config', 'configs/demo/ullava_tiny_demo.py',
         '--steps', '3', '--batch', '2', '--questions-per-sample', '4'],
        cwd=ROOT, env=demo_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {line.split('|')[1].strip(): line.split('|')[2:4] for line in proc.stdout.splitlines()
            if line.startswith('| ') and line.split('|')[2].strip().isdigit()}
    assert 'all' in rows and 'What colour' in rows, proc.stdout
    n_all, accuracy = int(rows['all'][0]), float(rows['all'][1])
    assert n_all == sum(int(n) for kind, (n, _) in rows.items() if kind != 'all')
    assert 0.0 <= accuracy <= 1.0
