"""tools/train.py and tools/test.py end to end on the tiny config, and their user-error paths."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO_CFG = 'configs/demo/ullava_tiny_demo.py'


def run_tool(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def console_of(*args, env=None, timeout=600):
    """(exit code, stdout and stderr interleaved as a terminal shows them)."""
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)
    return proc.returncode, proc.stdout


@pytest.fixture(scope='module')
def trained(tmp_path_factory, world):
    """Train 4 iterations (with TensorBoard); the work dir holds the checkpoint for the tests
    below."""
    import os
    env = dict(os.environ, ULLAVA_DEMO_DATA=str(world))
    work = tmp_path_factory.mktemp('work')
    code, console = console_of('tools/train.py', DEMO_CFG, '--work-dir', str(work),
                               '--tensorboard', '--cfg-options', 'train_cfg.max_iters=4',
                               'train_dataloader.batch_size=4',
                               'default_hooks.checkpoint.interval=2', env=env)
    assert code == 0, console[-3000:]
    return work, env, console


def test_train_writes_checkpoints(trained):
    work, _, _ = trained
    assert (work / 'iter_4.pth').is_file()
    assert (work / 'iter_2.pth').is_file()
    assert (work / '.ullava_work_dir').is_file()  # marks these checkpoints as ullava's own


def test_train_console_points_at_the_log_file_for_the_config(trained):
    work, _, console = trained
    (log,) = work.glob('*/*.log')
    text = log.read_text()
    assert 'System environment:' in text and 'Config:' in text and 'max_iters=4' in text
    assert 'Using env variable `ULLAVA_DEMO_DATA`' in text  # logged before the runner existed
    assert 'System environment:' not in console and 'Config:' not in console
    assert f'environment and config: {log}' in console
    assert 'trainable parameters' in console  # held during start-up, shown once it ran
    assert console.index('trainable parameters') < console.index('Saving checkpoint at 2')


def test_tensorboard_flag_writes_event_files(trained):
    work, _, _ = trained
    events = list(work.glob('*/vis_data/events.out.tfevents.*'))
    assert len(events) == 1 and events[0].stat().st_size > 0


def test_test_writes_metrics_json_and_predictions(trained, tmp_path):
    import numpy as np
    from pycocotools import mask as mask_utils

    from ullava.datasets.transforms.loading import read_image
    work, env, _ = trained
    out = tmp_path / 'preds.jsonl'
    proc = run_tool('tools/test.py', DEMO_CFG, str(work / 'iter_4.pth'), '--work-dir',
                    str(tmp_path), '--out', str(out), '--cfg-options',
                    'model.generation.max_new_tokens=4', env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / 'metrics.json').read_text())
    for key in ('res/cIoU', 'res/gIoU', 'rec/Acc@0.5', 'vqa/accuracy', 'caption/CIDEr',
                'salient/MAE', 'semseg/mIoU', 'video_caption/BLEU_4'):
        assert key in metrics and isinstance(metrics[key], float), key

    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r['index'] for r in records] == list(range(len(records)))
    assert {r['task'] for r in records} == {'res', 'rec', 'caption', 'vqa', 'salient', 'semseg',
                                            'video_caption'}
    for r in records:
        assert set(r) == {'index', 'task', 'img_path', 'video_path', 'prompt', 'text', 'masks',
                          'mask_scores', 'boxes', 'scores'}
        assert isinstance(r['text'], str) and isinstance(r['prompt'], str)
        assert len(r['masks']) == len(r['mask_scores'])
        assert len(r['boxes']) == len(r['scores']) and all(len(b) == 4 for b in r['boxes'])
    res = [r for r in records if r['task'] == 'res']
    # one mask per [SEG] the model generated (never padded to the targets)
    assert res and all(len(r['masks']) == r['text'].count('[SEG]') for r in res)
    for r in res:
        height, width = read_image(r['img_path'], {}, 'img_path').shape[:2]
        for mask in r['masks']:
            rle = dict(mask, counts=mask['counts'].encode())
            assert mask_utils.decode(rle).shape == (height, width)
            assert mask['size'] == [height, width]
        if '[LOC]' not in r['text']:  # boxes read off the masks
            assert all(np.all(np.asarray(b) >= 0) for b in r['boxes'])


def test_resume_continues_from_checkpoint(trained):
    work, env, _ = trained
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
     'NoSuchModel is not in the'),  # found while the runner builds, after MMEngine logged a lot
    (['tools/train.py', DEMO_CFG, '--cfg-options', 'data_root=/elsewhere/'],
     "'data_root' is a variable of the config file, already substituted"),
    (['tools/train.py', DEMO_CFG, '--amp'], '--amp needs a CUDA GPU'),
    (['tools/test.py', DEMO_CFG, 'missing.pth'], 'checkpoint not found: missing.pth'),
    (['tools/test.py', DEMO_CFG, 'missing.pth', '--out', 'preds.json'],
     '--out must name a .jsonl file'),
    (['tools/train.py', DEMO_CFG, '--resume', 'missing.pth'], 'checkpoint not found: missing.pth'),
])
def test_user_errors_are_one_line_and_the_first_one(args, expected, demo_env, tmp_path):
    code, console = console_of(*args, '--work-dir', str(tmp_path), env=demo_env)
    assert code == 2 and 'Traceback' not in console
    lines = console.strip().splitlines()
    assert lines[0].startswith('error: ') and expected in lines[0], console[-2000:]
    assert len(lines) == 1, console[-2000:]


@pytest.mark.parametrize('tool', ['tools/train.py', 'tools/test.py'])
def test_a_bad_record_is_the_first_line(tool, world, tmp_path):
    """The record is read after the runner is built (and MMEngine has logged its start-up)."""
    import os
    data = tmp_path / 'world'
    shutil.copytree(world, data)
    split = 'train' if tool.endswith('train.py') else 'val'
    ann = data / split / f'refcoco_{split}.json'
    records = json.loads(ann.read_text())
    records[0]['bbox'] = 'oops'
    ann.write_text(json.dumps(records))
    args = [tool, DEMO_CFG] + ([] if split == 'train' else [str(tmp_path / 'fake.pth')])
    (tmp_path / 'fake.pth').write_bytes(b'')
    code, console = console_of(*args, '--work-dir', str(tmp_path / 'work'),
                               env=dict(os.environ, ULLAVA_DEMO_DATA=str(data)))
    assert code == 2, console[-2000:]
    assert console.splitlines()[0] == (f'error: {ann} record 0: field "bbox" should be list, '
                                       f"got str 'oops'"), console[-2000:]
    assert 'Config:' in next((tmp_path / 'work').glob('*/*.log')).read_text()
