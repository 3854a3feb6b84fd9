"""Generalized RES metrics as GSVA / ReLA evaluate gRefCOCO: cIoU, gIoU, N-acc, T-acc.

Each expression is one sample. Its predicted mask is the union of the predicted masks (one per
``[SEG]`` the model wrote), its target the union of the GT masks (gRefCOCO scores the union).
The model says "no target" (``pred_nt``) when its answer holds ``[REJ]`` and no ``[SEG]``.

* no-target expression: ``pred_nt`` -> a true positive, IoU 1, adds nothing to cIoU's sums;
  otherwise a false negative, IoU 0, its predicted area added to the cumulative union;
* targeted expression: ``pred_nt`` -> a false positive, intersection 0 (the union still counts);
  otherwise a true negative; IoU = I / U, both added to cIoU's sums;
* ``gIoU`` = mean IoU over all expressions, ``cIoU`` = sum I / sum U;
  ``N-acc`` = TP / (TP + FN) (no-target expressions rejected), ``T-acc`` = TN / (TN + FP)
  (targeted expressions not rejected); both 0 when the split has no no-target expression, as
  GSVA reports them.

Written here because no kept library evaluates gRefCOCO (mmdet's RefSegMetric has no
rejection and scores an empty union 0).
"""
from __future__ import annotations

from typing import Sequence

import torch
from mmengine.evaluator import BaseMetric

from ullava.evaluation.metrics._utils import get_field, to_tensor
from ullava.registry import METRICS


@METRICS.register_module()
class GRESMetric(BaseMetric):
    default_prefix = 'grefcoco'

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            gt = to_tensor(get_field(sample, 'gt_masks', 'GRESMetric')).bool()
            h, w = gt.shape[-2:]
            pred = get_field(sample, 'pred_masks', 'GRESMetric', None)
            pred = torch.zeros(0, h, w, dtype=torch.bool) if pred is None \
                else to_tensor(pred).bool().reshape(-1, h, w)
            rejected = bool(get_field(sample, 'pred_rejected', 'GRESMetric', False))
            pred_nt = rejected and not len(pred)
            pred_union, gt_union = pred.any(0), gt.any(0)
            self.results.append(dict(
                gt_nt=not len(gt), pred_nt=pred_nt, I=int((pred_union & gt_union).sum()),
                U=int((pred_union | gt_union).sum())))

    def compute_metrics(self, results: list) -> dict[str, float]:
        if not results:
            raise ValueError('GRESMetric: no expressions were processed')
        nt = dict(TP=0, FN=0, FP=0, TN=0)
        acc_i = acc_u = 0
        acc_iou = 0.0
        for r in results:
            i, u = r['I'], r['U']
            if r['gt_nt']:
                nt['TP' if r['pred_nt'] else 'FN'] += 1
                acc_iou += 1.0 if r['pred_nt'] else 0.0
                acc_u += 0 if r['pred_nt'] else u
                continue
            if r['pred_nt']:
                nt['FP'] += 1
                i = 0
            else:
                nt['TN'] += 1
            acc_iou += i / u if u else 0.0
            acc_i, acc_u = acc_i + i, acc_u + u
        has_nt = nt['TP'] + nt['FN'] > 0
        return {'cIoU': acc_i / acc_u if acc_u else 0.0, 'gIoU': acc_iou / len(results),
                'N-acc': nt['TP'] / (nt['TP'] + nt['FN']) if has_nt else 0.0,
                'T-acc': nt['TN'] / max(nt['TN'] + nt['FP'], 1) if has_nt else 0.0}
