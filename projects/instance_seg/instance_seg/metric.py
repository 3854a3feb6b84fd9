"""COCO mask AP for the per-instance [SEG] masks, through mmdet's ``CocoMetric``.

Our model answers with one mask per [SEG] (``pred_masks`` bool [k,H,W] and ``pred_mask_scores``
sigmoid [k,H,W] at the original size); the k-th [SEG] was asked for the k-th prompted category
(``prompt_class_ids``). ``CocoMetric.process`` wants mmdet's ``pred_instances`` (masks, scores,
labels, bboxes), which we build here before handing each sample on.
"""
from __future__ import annotations

from typing import Sequence

import torch
from mmdet.evaluation.metrics import CocoMetric

from ullava.evaluation.metrics._utils import get_field, to_tensor
from ullava.models.heads.box_head import boxes_from_masks
from ullava.registry import METRICS


def instances_from_sample(sample: dict) -> dict:
    """mmdet ``pred_instances`` from one of our predicted data samples.

    A detection's score is the mean mask probability over its own pixels, so confident, crisp
    masks rank first in the AP's precision-recall sweep; an empty mask is no detection at all.
    """
    masks = to_tensor(get_field(sample, 'pred_masks', 'InstanceSegMetric')).bool()
    probs = to_tensor(get_field(sample, 'pred_mask_scores', 'InstanceSegMetric')).float()
    labels = torch.as_tensor(get_field(sample, 'prompt_class_ids', 'InstanceSegMetric'),
                             dtype=torch.long)
    k = min(len(masks), len(labels))  # a [SEG] without a prompted category cannot be labelled
    masks, probs, labels = masks[:k], probs[:k], labels[:k]
    area = masks.flatten(1).sum(1)
    scores = (probs * masks).flatten(1).sum(1) / area.clamp(min=1)
    boxes = boxes_from_masks(masks)
    keep = area > 0
    return dict(masks=masks[keep], scores=scores[keep], labels=labels[keep], bboxes=boxes[keep])


@METRICS.register_module()
class InstanceSegMetric(CocoMetric):
    """mmdet's :class:`CocoMetric` (``metric='segm'`` by default) on ullava's predictions.

    Two departures from plain ``CocoMetric``, both so the numbers mean what they say:

    * only the images that were evaluated count (``img_ids``): a test set drawn with
      ``portion`` < 1 must not be charged for the images it left out;
    * labels map to category ids through the dataset's ``cat_ids`` (its ``categories`` order),
      not by looking the class names up again (names need not be unique across datasets).
    """

    default_prefix = 'instance_seg'

    def __init__(self, ann_file: str, metric: str | list[str] = 'segm', **kwargs) -> None:
        super().__init__(ann_file=ann_file, metric=metric, **kwargs)

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            sample['pred_instances'] = instances_from_sample(sample)
        super().process(data_batch, data_samples)

    def compute_metrics(self, results: list) -> dict[str, float]:
        self.img_ids = sorted({gt['img_id'] for gt, _ in results})
        cat_ids = (self.dataset_meta or {}).get('cat_ids')
        if cat_ids is not None:
            self.cat_ids = list(cat_ids)
        return super().compute_metrics(results)
