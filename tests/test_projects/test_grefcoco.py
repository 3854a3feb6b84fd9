"""The gRefCOCO plugin (projects/grefcoco): a [REJ] token and head added through the registries
only -- the released format's reader, several and no targets, GSVA's metrics by hand, and a
training run plus an evaluation through tools/train.py and tools/test.py."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
CONFIG = 'projects/grefcoco/configs/ullava_tiny_grefcoco.py'


@pytest.fixture(scope='module')
def world(tmp_path_factory) -> Path:
    from projects.grefcoco.grefcoco.convert_world import main as convert
    from ullava.demo import generate_world
    out = tmp_path_factory.mktemp('gref_world')
    generate_world(out, split='train', num_images=4, num_videos=0, seed=3)
    generate_world(out, split='val', num_images=2, num_videos=0, seed=3)
    convert([str(out)])
    return out


def build(world, split='val'):
    import projects.grefcoco.grefcoco  # noqa: F401  (registers the plugin, as custom_imports)
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from ullava.registry import DATASETS
    init_default_scope('ullava')
    cfg = Config.fromfile(str(ROOT / CONFIG))
    return DATASETS.build(dict(cfg.test_dataloader.dataset, data_root=str(world) + '/',
                               split=split)), cfg


def test_reader_gives_several_and_no_targets(world):
    refs = json.loads((world / 'grefcoco/grefs(unc).json').read_text())
    assert any(r['no_target'] and r['ann_id'] == [-1] for r in refs)
    assert any(len(r['ann_id']) > 1 for r in refs)
    dataset, _ = build(world)
    counts = []
    for i in range(len(dataset)):
        sample = dataset[i]['data_samples']
        k = len(sample.gt_masks)
        counts.append(k)
        answer = sample.get('gt_answer')
        assert answer.count('[SEG]') == k and ('[REJ]' in answer) == (k == 0)
    assert 0 in counts and max(counts) > 1


def test_metric_by_hand():
    from projects.grefcoco.grefcoco import GRESMetric
    full = torch.ones(1, 2, 2, dtype=torch.bool)
    half = torch.zeros(1, 2, 2, dtype=torch.bool)
    half[0, 0] = True
    none = torch.zeros(0, 2, 2, dtype=torch.bool)
    samples = [
        dict(gt_masks=full, pred_masks=half, pred_rejected=False),   # TN, I 2 U 4
        dict(gt_masks=full, pred_masks=none, pred_rejected=True),    # FP, I 0 U 4
        dict(gt_masks=none, pred_masks=none, pred_rejected=True),    # TP, IoU 1
        dict(gt_masks=none, pred_masks=half, pred_rejected=False),   # FN, IoU 0, U += 2
    ]
    metric = GRESMetric()
    metric.process({}, samples)
    out = metric.compute_metrics(metric.results)
    assert out['gIoU'] == pytest.approx((0.5 + 0 + 1 + 0) / 4)
    assert out['cIoU'] == pytest.approx(2 / (4 + 4 + 2))
    assert out['N-acc'] == 0.5 and out['T-acc'] == 0.5


def test_reject_head_reads_rej_in_the_answer_only(world):
    from ullava.datasets import ullava_collate
    from ullava.registry import MODELS
    dataset, cfg = build(world)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()
    model.predict_protocol = 'teacher_forced'
    data = model.data_preprocessor(ullava_collate([dataset[i] for i in range(len(dataset))]),
                                   False)
    for out in model(**data, mode='predict'):
        assert out.pred_rejected == ('[REJ]' in out.gt_answer)
        assert len(out.pred_masks) == out.gt_answer.count('[SEG]')


def test_no_core_file_names_the_plugin():
    proc = subprocess.run(['git', 'grep', '-n', '-e', r'\[REJ\]', '-e', 'RejectHead', '-e',
                           'pred_rejected', '--', 'ullava', 'configs', 'tools'], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.stdout == '', proc.stdout


def test_train_then_test_through_the_tools(world, tmp_path):
    env = dict(os.environ, ULLAVA_DEMO_DATA=str(world))
    run = dict(cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    work = tmp_path / 'work'
    proc = subprocess.run([sys.executable, 'tools/train.py', CONFIG, '--work-dir', str(work),
                           '--cfg-options', 'train_cfg.max_iters=2',
                           'train_dataloader.batch_size=2',
                           'default_hooks.checkpoint.interval=2'], **run)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = subprocess.run([sys.executable, 'tools/test.py', CONFIG, str(work / 'iter_2.pth'),
                           '--work-dir', str(tmp_path / 'test'), '--cfg-options',
                           'test_dataloader.batch_size=2', 'model.generation.max_new_tokens=8'],
                          **run)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / 'test/metrics.json').read_text())
    for key in ('grefcoco/cIoU', 'grefcoco/gIoU', 'grefcoco/N-acc', 'grefcoco/T-acc'):
        assert isinstance(metrics[key], float), key
