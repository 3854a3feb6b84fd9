"""Two CPU processes (gloo) through MMEngine's Runner: same parameters after training on both
ranks, and evaluation gathers each sample exactly once."""
import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def test_two_process_training_and_evaluation(world, tmp_path):
    env = dict(os.environ, ULLAVA_DEMO_DATA=str(world), OMP_NUM_THREADS='1')
    proc = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2', '--master_port=29633',
         'tests/test_engine/dist_worker.py', str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    p0 = torch.load(tmp_path / 'params_rank0.pt')
    p1 = torch.load(tmp_path / 'params_rank1.pt')
    assert p0.keys() == p1.keys()
    assert all(torch.equal(p0[k], p1[k]) for k in p0)
    result = torch.load(tmp_path / 'metrics.pt')
    assert result['metrics']['count/samples'] == result['size']
    assert result['metrics']['count/unique'] == result['size']
