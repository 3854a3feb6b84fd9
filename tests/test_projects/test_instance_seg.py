"""The instance segmentation plugin (projects/instance_seg): converter, dataset, metric, and one
training iteration plus an evaluation through tools/train.py and tools/test.py."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils

ROOT = Path(__file__).resolve().parents[2]
CONFIG = 'projects/instance_seg/configs/ullava_tiny_instance_seg.py'


@pytest.fixture(scope='module')
def shapes(tmp_path_factory) -> Path:
    """A small world of its own (train 6 / val 4 images) with instances JSON for both splits."""
    from projects.instance_seg.instance_seg.convert_world import main as convert
    from ullava.demo import generate_world
    out = tmp_path_factory.mktemp('instance_world')
    generate_world(out, split='train', num_images=6, num_videos=0, seed=1)
    generate_world(out, split='val', num_images=4, num_videos=0, seed=1)
    convert([str(out)])
    return out


def build_dataset(root: Path, split: str = 'val', **kwargs):
    import projects.instance_seg.instance_seg  # noqa: F401  (registers the plugin)
    from ullava.registry import DATASETS
    kwargs.setdefault('ann_file', f'{split}/instances_{split}.json')
    return DATASETS.build(dict(type='InstanceSegDataset', data_root=str(root), **kwargs))


def test_converter_matches_label_maps(shapes):
    """Every instance mask lies on pixels of its class in the world's label map, and together
    they cover every labelled pixel."""
    coco = json.loads((shapes / 'val/instances_val.json').read_text())
    assert [c['name'] for c in coco['categories']] == ['circle', 'square', 'triangle', 'star']
    for img in coco['images']:
        label = np.asarray(Image.open(shapes / f'val/ade_labels/{img["id"]:06d}.png'))
        covered = np.zeros_like(label, bool)
        for ann in (a for a in coco['annotations'] if a['image_id'] == img['id']):
            mask = mask_utils.decode(dict(ann['segmentation'],
                                          counts=ann['segmentation']['counts'].encode())) > 0
            assert (label[mask] == ann['category_id']).all()
            covered |= mask
        assert (covered == (label > 0)).all()


def test_dataset_one_seg_per_instance(shapes):
    dataset = build_dataset(shapes, test_mode=True)
    coco = json.loads((shapes / 'val/instances_val.json').read_text())
    assert dataset.metainfo['cat_ids'] == (1, 2, 3, 4)
    assert len(dataset) == sum(any(a['image_id'] == i['id'] for a in coco['annotations'])
                               for i in coco['images'])
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        answer = info['conversations'][1]['value']
        n = sum(a['image_id'] == info['img_id'] for a in coco['annotations'])
        assert answer.count('[SEG]') == len(info['mask_anns']) == len(info['prompt_class_ids']) == n
        names = [dataset.metainfo['classes'][c] for c in info['prompt_class_ids']]
        assert answer == 'Sure. ' + '; '.join(f'{c}: [SEG]' for c in names) + '.'
        assert info['prompt_class_ids'] == sorted(info['prompt_class_ids'])


def test_dataset_errors_name_the_record(shapes, tmp_path):
    from ullava.utils import UserError
    coco = json.loads((shapes / 'val/instances_val.json').read_text())
    coco['annotations'][0]['category_id'] = 99
    path = tmp_path / 'bad.json'
    path.write_text(json.dumps(coco))
    record = coco['annotations'][0]['image_id']
    with pytest.raises(UserError, match=rf'{path} record {record} .*"category_id" 99'):
        build_dataset(shapes, ann_file=str(path))
    assert build_dataset(shapes, ann_file=str(path), on_error='skip').num_skipped == 1


def _samples(dataset, perfect: bool) -> list[dict]:
    """Predicted samples as the evaluator hands them over: GT masks as predictions, or noise."""
    from mmengine.registry import init_default_scope
    init_default_scope('ullava')
    out = []
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        h, w = np.asarray(Image.open(info['img_path'])).shape[:2]
        masks = torch.stack([torch.from_numpy(mask_utils.decode(
            dict(a['segmentation'], counts=a['segmentation']['counts'].encode())) > 0)
            for a in info['mask_anns']])
        if not perfect:
            masks = torch.roll(masks, shifts=(h // 2, w // 2), dims=(1, 2))
        out.append(dict(img_id=info['img_id'], ori_shape=(h, w), pred_masks=masks,
                        pred_mask_scores=masks.float() * 0.9,
                        prompt_class_ids=info['prompt_class_ids']))
    return out


@pytest.mark.parametrize('perfect', [True, False])
def test_metric_wraps_coco_metric(shapes, perfect):
    from ullava.registry import METRICS
    dataset = build_dataset(shapes, test_mode=True)
    metric = METRICS.build(dict(type='InstanceSegMetric',
                                ann_file=str(shapes / 'val/instances_val.json')))
    metric.dataset_meta = dataset.metainfo
    metric.process({}, _samples(dataset, perfect))
    result = metric.evaluate(len(dataset))
    if perfect:
        assert result['instance_seg/segm_mAP'] == pytest.approx(1.0)
    else:
        assert result['instance_seg/segm_mAP'] < 0.5


def run_tool(*args, env):
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)


def test_train_one_iteration_then_test(shapes, tmp_path):
    env = dict(os.environ, ULLAVA_DEMO_DATA=str(shapes))
    work = tmp_path / 'work'
    proc = run_tool('tools/train.py', CONFIG, '--work-dir', str(work), '--cfg-options',
                    'train_cfg.max_iters=1', 'train_dataloader.batch_size=2',
                    'default_hooks.checkpoint.interval=1', env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (work / 'iter_1.pth').is_file()
    proc = run_tool('tools/test.py', CONFIG, str(work / 'iter_1.pth'), '--work-dir',
                    str(tmp_path / 'test'), '--cfg-options', 'test_dataloader.batch_size=2',
                    env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / 'test/metrics.json').read_text())
    for key in ('instance_seg/segm_mAP', 'instance_seg/segm_mAP_50', 'instance_seg/segm_mAP_75'):
        assert isinstance(metrics[key], float) and 0 <= metrics[key] <= 1, key
