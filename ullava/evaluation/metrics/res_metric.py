"""Referring expression segmentation (RefCOCO/+/g, ReasonSeg): cIoU, gIoU, prec@t."""
from typing import Dict, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric

from ullava.registry import METRICS
from ._utils import check_same_shape, get_field, to_tensor


@METRICS.register_module()
class RESMetric(BaseMetric):
    """cIoU, gIoU and precision@IoU for referring segmentation (one GT mask = one target).

    The model gives one mask per [SEG] it generated, however many targets there are; the k-th
    mask answers the k-th target (the order of the answer's [SEG]s). A target with no mask
    counts as a miss (an empty prediction); masks beyond the targets are counted in
    ``num_extra_masks`` (their number over the split) and score nothing.

    * ``cIoU``: cumulative IoU, sum of intersections / sum of unions over the split
      (large objects weigh more).
    * ``gIoU``: mean over masks of the per-mask IoU; a mask whose union is empty
      (empty prediction for an empty target, e.g. a no-target expression) counts as 1.0.
    * ``prec@t`` for t in ``thresholds``: fraction of masks with IoU >= t.

    All values are fractions in [0, 1]. We do not use mmdet's ``RefSegMetric``: it
    scores an empty union as IoU 0 (punishing a correct "nothing here") and reports a
    per-mask mIoU with a different name, so its numbers are not the gIoU of LISA/u-LLaVA.
    """

    default_prefix: Optional[str] = ''  # keys unprefixed ('' also silences MMEngine's warning)

    def __init__(self, thresholds: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.9),
                 collect_device: str = 'cpu', prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.thresholds = tuple(float(t) for t in thresholds)

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        # Keep only two integers per mask so gathering across ranks stays cheap.
        for sample in data_samples:
            gt = to_tensor(get_field(sample, 'gt_masks', 'RESMetric')).bool()
            gt = gt[None] if gt.dim() == 2 else gt  # a single [H, W] mask without its k axis
            pred = get_field(sample, 'pred_masks', 'RESMetric', None)
            pred = gt[:0] if pred is None else to_tensor(pred).bool()  # no mask head: none
            pred = pred[None] if pred.dim() == 2 else pred
            if len(pred) and len(gt):
                check_same_shape(pred[:1], gt[:1], 'RESMetric', 'pred_masks', 'gt_masks')
            matched = torch.zeros_like(gt)
            matched[:len(pred)] = pred[:len(gt)]  # a missing mask: empty
            inter = (matched & gt).flatten(1).sum(1)
            union = (matched | gt).flatten(1).sum(1)
            for i, u in zip(inter.tolist(), union.tolist()):
                self.results.append(('mask', int(i), int(u)))
            self.results.append(('extra', max(len(pred) - len(gt), 0), 0))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        masks = [(i, u) for kind, i, u in results if kind == 'mask']
        if not masks:
            raise ValueError('RESMetric: no masks were processed')
        inter, union = np.asarray(masks, dtype=np.float64).T
        # Empty union: nothing to find and nothing predicted -> a perfect answer.
        iou = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
        metrics = {
            'cIoU': float(inter.sum() / union.sum()) if union.sum() > 0 else 1.0,
            'gIoU': float(iou.mean()),
            'num_extra_masks': int(sum(n for kind, n, _ in results if kind == 'extra')),
        }
        for t in self.thresholds:
            metrics[f'prec@{t:g}'] = float((iou >= t).mean())
        return metrics
