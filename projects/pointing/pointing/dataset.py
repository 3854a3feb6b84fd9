"""The pointing dataset (records of ``convert_world.py``) and the transform that turns the
loaded masks into the point head's targets."""
from __future__ import annotations

from typing import Any

import numpy as np
from mmcv.transforms import BaseTransform

from ullava.datasets.base import ULLaVADataset
from ullava.registry import DATASETS, TRANSFORMS
from ullava.tasks.templates import pick
from ullava.utils import UserError

QUESTIONS = ['<image>\nPoint to the {}s.', '<image>\nWhere are the {}s? Point to each one.',
             '<image>\nPut a point on every {} in this image.']
ANSWER_ITEM = '[PT]'


@DATASETS.register_module()
class PointingDataset(ULLaVADataset):
    """Records ``{image, height, width, image_id, target, points [[x, y], ...],
    segmentations [RLE, ...]}``; the answer holds one ``[PT]`` per point, in record order.
    Other arguments as :class:`ullava.datasets.ULLaVADataset`."""

    def __init__(self, *args, task: str = 'pointing', **kwargs: Any) -> None:
        super().__init__(*args, task=task, **kwargs)

    def parse_record(self, record: dict, index: int) -> list[dict]:
        img_path = self.media_path(record, 'image', index)
        target = self.require(record, 'target', index, str)
        points = self.require(record, 'points', index, list)
        segs = self.require(record, 'segmentations', index, list)
        if len(points) != len(segs) or not all(
                isinstance(p, list) and len(p) == 2 for p in points):
            raise UserError(f'{self.ann_file} record {index}: field "points" must be [x, y] '
                            f'pairs, one per entry of "segmentations"')
        return [dict(img_path=img_path, img_id=record.get('image_id', index), target=target,
                     points=points, mask_anns=[dict(segmentation=s, height=record.get('height'),
                                                    width=record.get('width')) for s in segs])]

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        question = pick(QUESTIONS, self.test_mode, QUESTIONS[0], self.sample_rng(idx))
        items = ' '.join([ANSWER_ITEM] * len(info['points']))
        info['conversations'] = [{'from': 'human', 'value': question.format(info['target'])},
                                 {'from': 'gpt', 'value': f'Sure. {items}.'}]
        return info


@TRANSFORMS.register_module()
class PointTargets(BaseTransform):
    """After ``LoadMasks``: its ``gt_masks`` become ``gt_point_masks`` (what the metric checks
    points against; not the mask head's targets: the answer has no [SEG]) and ``points``
    become ``gt_points`` xy pixels [k,2]."""

    def transform(self, results: dict) -> dict:
        results['gt_point_masks'] = results.pop('gt_masks')
        results.pop('gt_boxes', None)
        results['gt_points'] = np.asarray(results['points'], np.float32).reshape(-1, 2)
        return results
