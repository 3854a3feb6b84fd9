"""The pointing plugin (projects/pointing): a new token ([PT]) and head added through the
registries only -- world converter, dataset, head loss and prediction, metric, drawing, and a
training run plus an evaluation through tools/train.py and tools/test.py."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
CONFIG = 'projects/pointing/configs/ullava_tiny_pointing.py'


@pytest.fixture(scope='module')
def world(tmp_path_factory) -> Path:
    from projects.pointing.pointing.convert_world import main as convert
    from ullava.demo import generate_world
    out = tmp_path_factory.mktemp('pointing_world')
    generate_world(out, split='train', num_images=6, num_videos=0, seed=2)
    generate_world(out, split='val', num_images=3, num_videos=0, seed=2)
    convert([str(out)])
    return out


@pytest.fixture(scope='module')
def cfg():
    from mmengine.config import Config
    return Config.fromfile(str(ROOT / CONFIG))


def build(cfg, world, split='val'):
    import projects.pointing.pointing  # noqa: F401  (registers the plugin, as custom_imports)
    from mmengine.registry import init_default_scope
    from ullava.registry import DATASETS
    init_default_scope('ullava')
    ds_cfg = dict(cfg.test_dataloader.dataset, data_root=str(world) + '/',
                  ann_file=f'{split}/pointing_{split}.json')
    return DATASETS.build(ds_cfg)


def test_converter_points_lie_on_their_masks(world):
    from pycocotools import mask as mask_utils
    records = json.loads((world / 'val/pointing_val.json').read_text())
    assert records and all(len(r['points']) == len(r['segmentations']) >= 1 for r in records)
    for r in records:
        for (x, y), rle in zip(r['points'], r['segmentations']):
            mask = mask_utils.decode(dict(rle, counts=rle['counts'].encode()))
            assert mask[int(y), int(x)]


def test_pipeline_packs_the_heads_targets(cfg, world):
    dataset = build(cfg, world)
    sample = dataset[0]['data_samples']
    k = len(sample.gt_points)
    assert sample.gt_points.shape == (k, 2) and sample.gt_points_norm.shape == (k, 2)
    assert sample.gt_point_masks.shape[0] == k and 'gt_masks' not in sample
    assert (sample.gt_points_norm >= 0).all() and (sample.gt_points_norm <= 1).all()
    assert sample.get('gt_answer').count('[PT]') == k


def test_head_trains_and_predicts_one_point_per_token(cfg, world):
    from ullava.datasets import ullava_collate
    from ullava.registry import MODELS
    dataset = build(cfg, world, 'train')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    assert list(model.heads) == ['mask_head', 'box_head', 'point_head']
    assert model.token_ids['[PT]'] == len(model.tokenizer) - 1  # after the reference's tokens
    data = model.data_preprocessor(ullava_collate([dataset[i] for i in range(2)]), True)
    losses = model(**data, mode='loss')
    assert torch.isfinite(losses['loss_point']) and losses['loss_point'] > 0
    losses['loss_point'].backward()
    assert model.point_head.point_decoder[0].weight.grad.abs().sum() > 0
    model.eval().predict_protocol = 'teacher_forced'
    data = model.data_preprocessor(ullava_collate([dataset[i] for i in range(2)]), False)
    for out in model(**data, mode='predict'):
        assert out.pred_points.shape == (out.pred_text.count('[PT]'), 2)


def test_metric_by_hand():
    from projects.pointing.pointing import PointingMetric
    masks = torch.zeros(2, 10, 10, dtype=torch.bool)
    masks[0, :5, :5] = True
    masks[1, 5:, 5:] = True
    # 3 points: on object 0, on object 0 again, on nothing -> acc 2/3, recall 1/2, count off by 1
    a = dict(gt_point_masks=masks, pred_points=torch.tensor([[1., 1], [3, 2], [8, 1]]))
    b = dict(gt_point_masks=masks, pred_points=torch.tensor([[1., 1], [7, 7]]))  # perfect
    metric = PointingMetric()
    metric.process({}, [a, b])
    out = metric.compute_metrics(metric.results)
    assert out['point_acc'] == pytest.approx(4 / 5)
    assert out['object_recall'] == pytest.approx(3 / 4)
    assert out['count_acc'] == 0.5 and out['count_mae'] == 0.5


def test_points_are_drawn_as_dots():
    import projects.pointing.pointing  # noqa: F401
    from ullava.visualization.visualizer import overlay
    image = np.zeros((40, 40, 3), np.uint8)
    drawn = overlay(image, fields=dict(pred_points=np.array([[20., 20.]])))
    assert drawn[20, 20].any() and not drawn[2, 2].any()


def test_no_core_file_names_the_plugin():
    proc = subprocess.run(['git', 'grep', '-n', '-e', r'\[PT\]', '-e', 'PointHead', '-e',
                           'pred_points', '-e', 'projects.pointing', '--', 'ullava', 'configs',
                           'tools'], cwd=ROOT, capture_output=True, text=True)
    assert proc.stdout == '', proc.stdout


def run_tool(*args, env):
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)


def test_train_then_test_through_the_tools(world, tmp_path):
    env = dict(os.environ, ULLAVA_DEMO_DATA=str(world))
    work = tmp_path / 'work'
    proc = run_tool('tools/train.py', CONFIG, '--work-dir', str(work), '--cfg-options',
                    'train_cfg.max_iters=2', 'train_dataloader.batch_size=2',
                    'default_hooks.checkpoint.interval=2', env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = run_tool('tools/test.py', CONFIG, str(work / 'iter_2.pth'), '--work-dir',
                    str(tmp_path / 'test'), '--cfg-options', 'test_dataloader.batch_size=2',
                    'model.generation.max_new_tokens=8', env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / 'test/metrics.json').read_text())
    for key in ('pointing/point_acc', 'pointing/object_recall', 'pointing/count_acc',
                'pointing/count_mae'):
        assert isinstance(metrics[key], float), key
