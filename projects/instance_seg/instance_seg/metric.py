"""COCO mask AP for the per-instance [SEG] masks, through mmdet's ``CocoMetric``.

Our model answers with one mask per [SEG] it generated (``pred_masks`` bool [k,H,W] and
``pred_mask_scores`` sigmoid [k,H,W] at the original size), as many as it chose, each after its
category's name ("circle: [SEG]; square: [SEG]"). Every mask is a detection: its label is the
category named before its [SEG] in ``pred_text``; where the answer names no known category (or
there is no text), the k-th prompted category (``prompt_class_ids``). Only a mask with neither
cannot be labelled. ``CocoMetric.process`` wants mmdet's ``pred_instances`` (masks, scores,
labels, bboxes), which we build here before handing each sample on.
"""

from __future__ import annotations

import re

from typing import Sequence

import torch
from mmdet.evaluation.metrics import CocoMetric

from ullava.evaluation.metrics._utils import get_field, to_tensor
from ullava.structures import boxes_from_masks
from ullava.registry import METRICS


NAMED_SEG = re.compile(r'([^;:.,\n]*?)\s*:\s*\[SEG\]')


def seg_labels(sample: dict, classes: Sequence[str] | None, count: int) -> list[int | None]:
    """The category of each of the ``count`` masks (None: cannot be labelled)."""
    named = [m.strip().lower() for m in NAMED_SEG.findall(sample.get('pred_text') or '')]
    index = {c.lower(): i for i, c in enumerate(classes or ())}
    prompted = list(sample.get('prompt_class_ids') or [])
    labels: list[int | None] = []
    for k in range(count):
        name = named[k] if k < len(named) else None
        labels.append(index[name] if name in index else prompted[k] if k < len(prompted)
                      else None)
    return labels


def instances_from_sample(sample: dict, classes: Sequence[str] | None = None) -> dict:
    """mmdet ``pred_instances`` from one of our predicted data samples.

    A detection's score is the mean mask probability over its own pixels, so confident, crisp
    masks rank first in the AP's precision-recall sweep; an empty mask is no detection at all.
    """
    masks = to_tensor(get_field(sample, 'pred_masks', 'InstanceSegMetric')).bool()
    probs = to_tensor(get_field(sample, 'pred_mask_scores', 'InstanceSegMetric')).float()
    get_field(sample, 'prompt_class_ids', 'InstanceSegMetric')  # a clear error when absent
    found = seg_labels(sample, classes, len(masks))
    known = torch.tensor([label is not None for label in found], dtype=torch.bool)
    labels = torch.tensor([label for label in found if label is not None], dtype=torch.long)
    masks, probs = masks[known], probs[known]
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
            sample['pred_instances'] = instances_from_sample(
                sample, (self.dataset_meta or {}).get('classes'))
        super().process(data_batch, data_samples)

    def compute_metrics(self, results: list) -> dict[str, float]:
        self.img_ids = sorted({gt['img_id'] for gt, _ in results})
        cat_ids = (self.dataset_meta or {}).get('cat_ids')
        if cat_ids is not None:
            self.cat_ids = list(cat_ids)
        return super().compute_metrics(results)
