"""tools/misc/print_config.py, tools/misc/browse_dataset.py and the --out record format."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
DEMO_CFG = 'configs/demo/ullava_tiny_demo.py'


def run_tool(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


# ---------------------------------------------------------------------------- --out records
def test_prediction_record_is_coco_rle_and_pixel_boxes():
    from pycocotools import mask as mask_utils

    from ullava.engine.hooks.dump_predictions_hook import prediction_record
    from ullava.structures import ULLaVADataSample
    g = torch.Generator().manual_seed(0)
    probs = torch.rand(2, 7, 9, generator=g)
    probs[1] = 0.1  # the second [SEG] found nothing
    sample = ULLaVADataSample(metainfo=dict(task='res', img_path='a/b.png', prompt='Segment it.'))
    sample.pred_text = 'Sure, [SEG] and [SEG].'
    sample.pred_mask_scores, sample.pred_masks = probs, probs > 0.5
    sample.pred_boxes = torch.tensor([[1.004, 2.0, 8.5, 6.25], [0.0, 0.0, 0.0, 0.0]])
    sample.pred_box_scores = torch.tensor([1.0, 1.0])
    record = json.loads(json.dumps(prediction_record(sample)))  # JSON-ready as it is
    assert record['task'] == 'res' and record['img_path'] == 'a/b.png'
    assert record['video_path'] is None and record['prompt'] == 'Segment it.'
    assert record['text'] == 'Sure, [SEG] and [SEG].'
    assert [m['size'] for m in record['masks']] == [[7, 9], [7, 9]]
    for rle, mask in zip(record['masks'], sample.pred_masks):
        assert isinstance(rle['counts'], str)
        decoded = mask_utils.decode(dict(rle, counts=rle['counts'].encode()))
        assert np.array_equal(decoded.astype(bool), mask.numpy())
    inside = probs[0][probs[0] > 0.5].mean().item()
    assert record['mask_scores'] == [round(inside, 4), 0.0]
    assert record['boxes'] == [[1.0, 2.0, 8.5, 6.25], [0.0, 0.0, 0.0, 0.0]]
    assert record['scores'] == [1.0, 1.0]


def test_prediction_record_of_a_text_answer():
    from ullava.engine.hooks.dump_predictions_hook import prediction_record
    from ullava.structures import ULLaVADataSample
    sample = ULLaVADataSample(metainfo=dict(task='vqa', img_path='x.png', prompt='Q?'))
    sample.pred_text = 'two'
    sample.pred_masks = torch.zeros(0, 4, 4, dtype=torch.bool)
    sample.pred_mask_scores = torch.zeros(0, 4, 4)
    sample.pred_boxes, sample.pred_box_scores = torch.zeros(0, 4), torch.zeros(0)
    record = prediction_record(sample)
    assert record['masks'] == record['mask_scores'] == record['boxes'] == record['scores'] == []


# ---------------------------------------------------------------------------- print_config
def test_print_config_applies_cfg_options_and_saves(tmp_path, demo_env):
    from mmengine.config import Config
    saved = tmp_path / 'full.py'
    proc = run_tool('tools/misc/print_config.py', DEMO_CFG, '--save-path', saved,
                    '--cfg-options', 'model.generation.top_p=0.9', 'model.lora.r=8',
                    env=demo_env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'top_p=0.9' in proc.stdout and "type='ULLaVA'" in proc.stdout
    assert 'Using env variable' not in proc.stdout  # stdout is the config alone
    assert f"environment variable ULLAVA_DEMO_DATA={demo_env['ULLAVA_DEMO_DATA']}" in proc.stderr
    cfg = Config.fromfile(str(saved))
    assert cfg.model.generation.top_p == 0.9 and cfg.model.lora == dict(r=8)
    assert cfg.train_dataloader.dataset.type == 'MixtureDataset'


def test_print_config_typo_is_one_error_line(demo_env):
    proc = run_tool('tools/misc/print_config.py', DEMO_CFG, '--cfg-options',
                    'model.generaton.top_p=0.9', env=demo_env)
    assert proc.returncode == 2 and proc.stdout == ''
    assert proc.stderr.strip() == (
        f"error: --cfg-options model.generaton.top_p: key 'generaton' does not exist under "
        f"model; did you mean 'model.generation'? (to add 'generaton' as a new key, write "
        f"+model.generaton.top_p=...) ({DEMO_CFG})")


# ---------------------------------------------------------------------------- browse_dataset
@pytest.fixture(scope='module')
def browsed(tmp_path_factory, world):
    import os
    out = tmp_path_factory.mktemp('browse')
    proc = run_tool('tools/misc/browse_dataset.py', DEMO_CFG, '--output-dir', out,
                    '--phase', 'test', '--max', 9,
                    env=dict(os.environ, ULLAVA_DEMO_DATA=str(world)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc.stdout


def test_browse_dataset_draws_every_task_round_robin(browsed):
    out, stdout = browsed
    assert '9 test samples drawn to' in stdout
    names = sorted(p.stem for p in out.glob('*.png'))
    assert names == sorted(p.stem for p in out.glob('*.txt')) and len(names) == 9
    tasks = [n.split('_', 2)[1] for n in names]
    # the test mixture's seven datasets, one sample each, then the first two again
    assert tasks[:7] == ['res', 'rec', 'caption', 'vqa', 'salient', 'semseg', 'video']
    assert tasks[7:] == ['res', 'rec']


def test_browse_dataset_marks_the_supervised_span(browsed):
    out, _ = browsed
    from ullava.datasets.conversation import VICUNA_SYSTEM
    text = next(out.glob('00000_res_*.txt')).read_text()
    assert VICUNA_SYSTEM in text.splitlines()[0]
    assert '<image_patch>×64' in text  # the placeholder run, collapsed
    prompt, answer = text.rsplit('ASSISTANT:', 1)
    assert '«' not in prompt  # nothing before the answer is supervised
    assert answer.startswith('« ') and answer.rstrip().endswith('</s>»')
    assert '[SEG]' in answer


def test_browse_dataset_draws_the_targets(browsed):
    import cv2
    out, _ = browsed
    res = cv2.imread(str(next(out.glob('00000_res_*.png'))))[..., ::-1]
    green = np.all(res == (0, 255, 0), axis=-1)
    assert green.sum() > 20  # the target mask's outline and box, in the GT colour
    white = np.all(res == 255, axis=-1)
    assert white[-10:].mean() > 0.5  # the conversation panel under the image
    assert res.shape[0] > res.shape[1]
