"""tools/train.py and tools/test.py end to end on the tiny config, and their user-error paths."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO_CFG = 'configs/demo/ullava_tiny_demo.py'


def run_tool(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope='module')
def trained(tmp_path_factory, world):
    """Train 4 iterations; the work dir holds the checkpoint for the tests below."""
    import os
    env = dict(os.environ, ULLAVA_DEMO_DATA=str(world))
    work = tmp_path_factory.mktemp('work')
    proc = run_tool('tools/train.py', DEMO_CFG, '--work-dir', str(work), '--cfg-options',
                    'train_cfg.max_iters=4', 'train_dataloader.batch_size=4',
                    'default_hooks.checkpoint.interval=2', env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return work, env


def test_train_writes_checkpoints(trained):
    work, _ = trained
    assert (work / 'iter_4.pth').is_file()
    assert (work / 'iter_2.pth').is_file()
    assert (work / '.ullava_work_dir').is_file()  # marks these checkpoints as ullava's own


def test_test_writes_metrics_json(trained, tmp_path):
    work, env = trained
    proc = run_tool('tools/test.py', DEMO_CFG, str(work / 'iter_4.pth'), '--work-dir',
                    str(tmp_path), '--cfg-options', 'model.generation.max_new_tokens=4', env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / 'metrics.json').read_text())
    for key in ('res/cIoU', 'res/gIoU', 'rec/Acc@0.5', 'vqa/accuracy', 'caption/CIDEr',
                'salient/MAE', 'semseg/mIoU', 'video_caption/BLEU_4'):
        assert key in metrics and isinstance(metrics[key], float), key


def test_resume_continues_from_checkpoint(trained):
    work, env = trained
    proc = run_tool('tools/train.py', DEMO_CFG, '--work-dir', str(work), '--resume',
                    '--cfg-options', 'train_cfg.max_iters=6', 'train_dataloader.batch_size=4',
                    'default_hooks.checkpoint.interval=2', env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'resumed' in (proc.stdout + proc.stderr).lower()
    assert (work / 'iter_6.pth').is_file()


@pytest.mark.parametrize('args, expected', [
    (['tools/train.py', 'configs/nope.py'], 'config file not found: configs/nope.py'),
    (['tools/train.py', DEMO_CFG, '--cfg-options', 'train_cfg.max_iter=3'],
     "key 'max_iter' does not exist under train_cfg; did you mean 'train_cfg.max_iters'?"),
    (['tools/train.py', DEMO_CFG, '--cfg-options', 'model.type=NoSuchModel'],
     'NoSuchModel is not in the'),
    (['tools/test.py', DEMO_CFG, 'missing.pth'], 'checkpoint not found: missing.pth'),
    (['tools/train.py', DEMO_CFG, '--resume', 'missing.pth'], 'checkpoint not found: missing.pth'),
])
def test_user_errors_are_one_line(args, expected, demo_env, tmp_path):
    proc = run_tool(*args, '--work-dir', str(tmp_path), env=demo_env)
    assert proc.returncode == 2
    assert 'Traceback' not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('error: ') and expected in last, proc.stderr[-2000:]
