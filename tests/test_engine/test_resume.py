"""`--resume` after a `kill -9` mid-training continues with exactly the run an uninterrupted
training gives (same seed): the same losses at every iteration and bitwise the same weights at
the end, from the last atomically written checkpoint.

Exact by construction (``randomness.deterministic=True``, see ullava/utils/reproducibility.py):
deterministic kernels (the CPU backward of an integer index otherwise adds with atomics in
thread order), MKL's reproducible mode switched on before the model is built, a fixed thread
count, and the random generators' state saved in the checkpoint. Measured: 20 passes in a row
while the rest of the suite ran on the same two cores (docs/benchmarks.md, "Exact resume").
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
CONFIG = 'configs/demo/ullava_tiny_demo.py'
OPTIONS = ['--cfg-options', 'train_cfg.max_iters=6', 'train_dataloader.batch_size=2',
           'default_hooks.checkpoint.interval=3', 'default_hooks.checkpoint.max_keep_ckpts=3',
           'default_hooks.logger.interval=1', 'randomness.deterministic=True',
           'env_cfg.num_threads=2']


def losses(work: Path) -> dict:
    """{iteration: loss} from the newest run's MMEngine scalar log in ``work``."""
    log = sorted(work.glob('*/vis_data/scalars.json'))[-1]
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    return {r['step']: r['loss'] for r in rows if 'loss' in r}


def weights(checkpoint: Path) -> dict:
    return torch.load(checkpoint, map_location='cpu', weights_only=False)['state_dict']


def command(work: Path, *extra: str) -> list:
    return [sys.executable, 'tools/train.py', CONFIG, '--work-dir', str(work), *extra, *OPTIONS]


def test_resume_after_kill_reproduces_the_run(world, tmp_path):
    # MKL_CBWR is deliberately NOT in the environment (conftest sets it for the suite): the
    # deterministic setting must switch MKL's reproducible mode on by itself.
    env = {k: v for k, v in os.environ.items() if k != 'MKL_CBWR'}
    env['ULLAVA_DEMO_DATA'] = str(world)
    straight = tmp_path / 'straight'
    proc = subprocess.run(command(straight), cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reference = losses(straight)
    assert sorted(reference) == [1, 2, 3, 4, 5, 6]

    killed = tmp_path / 'killed'
    run = subprocess.Popen(command(killed), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 900
    while not (killed / 'iter_3.pth').exists() and run.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(run.pid, signal.SIGKILL)  # kill -9, wherever it is (maybe writing iter_6)
    run.wait()
    assert (killed / 'iter_3.pth').exists()

    proc = subprocess.run(command(killed, '--resume', str(killed / 'iter_3.pth')), cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    resumed = losses(killed)
    assert sorted(resumed) == [4, 5, 6]
    assert all(resumed[i] == reference[i] for i in (4, 5, 6)), (resumed, reference)
    # the losses can agree while the weights already differ in the last bits: compare the weights
    ours, theirs = weights(killed / 'iter_6.pth'), weights(straight / 'iter_6.pth')
    assert ours.keys() == theirs.keys()
    different = [k for k in ours if not torch.equal(ours[k], theirs[k])]
    assert not different, f'{len(different)} tensors differ after resuming, e.g. {different[:3]}'
