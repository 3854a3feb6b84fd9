"""Salient object detection: MAE, F-measure, S-measure and E-measure, computed by PySODMetrics.

PySODMetrics (``py_sod_metrics``) is the Python port of the SOD toolboxes' MATLAB code that
recent SOD papers report with. We only feed it one map at a time and average its per-image
scores ourselves, so that MMEngine can gather the small per-image results across ranks (the
library's evaluators accumulate in-process state, which would not survive ``collect_results``).
"""
from typing import Dict, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric

from ullava.registry import METRICS
from ._utils import check_same_shape, get_field, match_to_targets, to_numpy


def salient_scores(pred: np.ndarray, gt: np.ndarray, beta2: float = 0.3,
                   alpha: float = 0.5) -> dict:
    """PySODMetrics' scores of one [H, W] saliency map in [0, 1] against its binary GT.

    Returns ``mae``, ``s`` (S-measure), the adaptive-threshold ``f_adp`` / ``e_adp`` (threshold
    ``min(2 * mean(pred), 1)``) and ``f_curve`` / ``e_curve``: F-measure (beta^2 = ``beta2``) and
    E-measure of ``pred >= k / 255`` for the 256 levels k (highest first, the library's order).

    The map is used as it is (``normalize=False``): the toolboxes' min-max stretch is meant for
    8-bit PNGs of arbitrary range, while our scores are already probabilities.
    """
    # imported here: scikit-image / scipy are only needed when a salient split is evaluated
    import py_sod_metrics as sod

    pred = np.clip(pred.astype(np.float64), 0.0, 1.0)  # guard against logit-ish overshoot
    gt = gt.astype(bool)
    fm = sod.FmeasureV2({'f': sod.FmeasureHandler(with_dynamic=True, with_adaptive=True,
                                                  beta=beta2)})
    em, sm, mae = sod.Emeasure(), sod.Smeasure(alpha=alpha), sod.MAE()
    for evaluator in (fm, em, sm, mae):
        evaluator.step(pred, gt, normalize=False)
    f, e = fm.get_results()['f'], em.get_results()['em']
    return dict(mae=float(mae.get_results()['mae']), s=float(sm.get_results()['sm']),
                f_adp=float(f['adaptive']), e_adp=float(e['adp']),
                f_curve=f['dynamic'].astype(np.float32), e_curve=e['curve'].astype(np.float32))


@METRICS.register_module()
class SalientMetric(BaseMetric):
    """Salient object detection scores of PySODMetrics, averaged over images.

    One "image" = one [H, W] saliency map in [0, 1] (``pred_mask_scores``) with its binary GT
    (``gt_masks``; a sample may hold k of them). Keys, all averaged over images as the SOD
    toolboxes do: ``MAE``, ``S-measure`` (alpha = 0.5), ``adpF`` / ``adpE`` (adaptive
    threshold); ``maxF`` / ``meanF`` and ``maxE`` / ``meanE``: average the per-threshold curve
    over images, then take its max / mean over the 256 thresholds. F uses beta^2 = 0.3.

    PySODMetrics differs from the MATLAB S-measure in one corner: it rounds the GT centroid
    half-to-even (0-based), MATLAB half away from zero (1-based), so tiny synthetic masks whose
    centroid falls exactly on .5 split their quadrants one pixel apart.
    """

    default_prefix: Optional[str] = ''  # keys unprefixed ('' also silences MMEngine's warning)

    def __init__(self, beta2: float = 0.3, alpha: float = 0.5, collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.beta2, self.alpha = beta2, alpha

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            pred = to_numpy(get_field(sample, 'pred_mask_scores', 'SalientMetric'), np.float64)
            gt = to_numpy(get_field(sample, 'gt_masks', 'SalientMetric')).astype(bool)
            pred = pred[None] if pred.ndim == 2 else pred
            gt = gt[None] if gt.ndim == 2 else gt
            if len(pred) and len(gt):
                check_same_shape(pred[:1], gt[:1], 'SalientMetric', 'pred_mask_scores', 'gt_masks')
            pred = match_to_targets(torch.from_numpy(pred), len(gt)).numpy()  # no map: all 0
            self.results.extend(salient_scores(p, g, self.beta2, self.alpha)
                                for p, g in zip(pred, gt))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        if not results:
            raise ValueError('SalientMetric: no saliency maps were processed')

        def mean(key: str) -> np.ndarray:
            return np.mean([r[key] for r in results], axis=0, dtype=np.float64)

        f_curve, e_curve = mean('f_curve'), mean('e_curve')
        return {'MAE': float(mean('mae')), 'S-measure': float(mean('s')),
                'maxF': float(f_curve.max()), 'meanF': float(f_curve.mean()),
                'adpF': float(mean('f_adp')),
                'maxE': float(e_curve.max()), 'meanE': float(e_curve.mean()),
                'adpE': float(mean('e_adp'))}
