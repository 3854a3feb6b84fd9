"""bench/profile_demo_iteration.py runs on a config's real loader, model and optimizer and
reports every part of the iteration (a few iterations of the tiny demo, so it cannot rot)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_profile_reports_each_part(demo_env, tmp_path):
    proc = subprocess.run(
        [sys.executable, 'bench/profile_demo_iteration.py', '--config',
         'configs/demo/ullava_tiny_demo.py', '--iters', '2', '--warmup', '1',
         '--work-dir', str(tmp_path), '--cfg-options', 'train_dataloader.batch_size=2'],
        cwd=ROOT, env=demo_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {line.split('|')[1].strip(): float(line.split('|')[2])
            for line in proc.stdout.splitlines()
            if line.startswith('| ') and line.split('|')[2].strip().replace('.', '').isdigit()}
    for part in ('iteration', 'backward', 'optimizer step', 'data (all)', 'forward: llm',
                 'forward: mask_head', 'data: TokenizeConversation'):
        assert part in rows, proc.stdout
    assert rows['iteration'] >= rows['backward'] > 0
