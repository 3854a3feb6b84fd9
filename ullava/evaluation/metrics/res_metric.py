"""Referring expression segmentation (RefCOCO/+/g, ReasonSeg): cIoU, gIoU, prec@t."""
from typing import Dict, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric

from ullava.registry import METRICS
from ._utils import check_same_shape, get_field, to_tensor


@METRICS.register_module()
class RESMetric(BaseMetric):
    """cIoU, gIoU and precision@IoU for referring segmentation (one sample = one mask).

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
            pred = to_tensor(get_field(sample, 'pred_masks', 'RESMetric')).bool()
            gt = to_tensor(get_field(sample, 'gt_masks', 'RESMetric')).bool()
            # Accept a single [H, W] mask given without its k axis.
            pred = pred[None] if pred.dim() == 2 else pred
            gt = gt[None] if gt.dim() == 2 else gt
            check_same_shape(pred, gt, 'RESMetric', 'pred_masks', 'gt_masks')
            inter = (pred & gt).flatten(1).sum(1)
            union = (pred | gt).flatten(1).sum(1)
            for i, u in zip(inter.tolist(), union.tolist()):
                self.results.append((int(i), int(u)))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        if not results:
            raise ValueError('RESMetric: no masks were processed')
        inter, union = np.asarray(results, dtype=np.float64).T
        # Empty union: nothing to find and nothing predicted -> a perfect answer.
        iou = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
        metrics = {
            'cIoU': float(inter.sum() / union.sum()) if union.sum() > 0 else 1.0,
            'gIoU': float(iou.mean()),
        }
        for t in self.thresholds:
            metrics[f'prec@{t:g}'] = float((iou >= t).mean())
        return metrics
