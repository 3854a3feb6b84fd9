"""Salient object detection: MAE, max F-measure and S-measure.

Written here because no installed package provides them (mmseg/mmdet have no SOD
metrics, and PySODMetrics is not a dependency). Definitions follow the papers and the
original MATLAB evaluation code, as noted on each function.
"""
from typing import Dict, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric

from ullava.registry import METRICS
from ._utils import check_same_shape, get_field, to_numpy

_EPS = np.finfo(np.float64).eps  # MATLAB's eps, used by the reference code


def mae(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean absolute error between a [0,1] score map and a binary mask."""
    return float(np.abs(pred - gt).mean())


def f_measure_curve(pred: np.ndarray, gt: np.ndarray, thresholds: np.ndarray,
                    beta2: float = 0.3) -> np.ndarray:
    """F_beta of ``pred >= t`` for every threshold t (beta^2 = 0.3, Achanta et al. 2009).

    Precision is 0 when nothing is predicted and recall is 0 when GT is empty, as in
    the common SOD toolboxes.
    """
    binar = pred.reshape(-1)[None, :] >= thresholds[:, None]  # [T, N]
    gt = gt.reshape(-1).astype(bool)
    tp = (binar & gt[None]).sum(1).astype(np.float64)
    n_pred = binar.sum(1)
    precision = np.where(n_pred > 0, tp / np.maximum(n_pred, 1), 0.0)
    recall = tp / gt.sum() if gt.sum() > 0 else np.zeros_like(tp)
    denom = beta2 * precision + recall
    return np.where(denom > 0, (1 + beta2) * precision * recall / np.where(denom > 0, denom, 1),
                    0.0)


def _object_score(x: np.ndarray) -> float:
    # O = 2 mean / (mean^2 + 1 + std) (paper: lambda = 0.5 on 2*sigma). The std is the
    # sample std (N-1) as MATLAB's std(); a single pixel has std 0 as in MATLAB.
    if x.size == 0:
        return 0.0
    mean = x.mean()
    std = x.std(ddof=1) if x.size > 1 else 0.0
    return float(2.0 * mean / (mean ** 2 + 1.0 + std + _EPS))


def s_object(pred: np.ndarray, gt: np.ndarray) -> float:
    """Object-aware structural similarity: foreground and background object scores,
    weighted by the foreground ratio."""
    fg = _object_score(pred[gt])
    bg = _object_score(1.0 - pred[~gt])
    u = gt.mean()
    return u * fg + (1.0 - u) * bg


def _ssim(pred: np.ndarray, gt: np.ndarray) -> float:
    # Single-window SSIM of one quadrant, exactly as the reference code (no C1/C2;
    # two constant regions count as 1, an undefined ratio otherwise as 0).
    n = pred.size
    x, y = pred.mean(), gt.mean()
    sx = ((pred - x) ** 2).sum() / (n - 1 + _EPS)
    sy = ((gt - y) ** 2).sum() / (n - 1 + _EPS)
    sxy = ((pred - x) * (gt - y)).sum() / (n - 1 + _EPS)
    alpha = 4 * x * y * sxy
    beta = (x ** 2 + y ** 2) * (sx + sy)
    if alpha != 0:
        return float(alpha / (beta + _EPS))
    return 1.0 if beta == 0 else 0.0


def s_region(pred: np.ndarray, gt: np.ndarray) -> float:
    """Region-aware structural similarity: split at the GT centroid into 4 quadrants and
    average their SSIM weighted by quadrant area."""
    h, w = gt.shape
    rows, cols = np.nonzero(gt)
    # MATLAB centroid: 1-based mean, rounded half away from zero; the centroid pixel
    # belongs to the top-left quadrant (GT(1:Y, 1:X)). (PySODMetrics rounds the 0-based
    # mean half-to-even, so it differs from the MATLAB code when that mean is 2k + .5.)
    x = int(np.floor(cols.mean() + 1 + 0.5))
    y = int(np.floor(rows.mean() + 1 + 0.5))
    gt = gt.astype(np.float64)
    score = 0.0
    for rs, cs in ((slice(0, y), slice(0, x)), (slice(0, y), slice(x, w)),
                   (slice(y, h), slice(0, x)), (slice(y, h), slice(x, w))):
        p, g = pred[rs, cs], gt[rs, cs]
        if g.size:  # an empty quadrant has weight 0
            score += g.size / (h * w) * _ssim(p, g)
    return score


def s_measure(pred: np.ndarray, gt: np.ndarray, alpha: float = 0.5) -> float:
    """Structure measure (Fan et al., ICCV 2017): alpha * S_object + (1-alpha) * S_region.

    Special cases from the paper's code: an all-background GT scores 1 - mean(pred),
    an all-foreground GT scores mean(pred); a negative score is clipped to 0.
    """
    pred = pred.astype(np.float64)
    gt = gt.astype(bool)
    y = gt.mean()
    if y == 0:
        return float(1.0 - pred.mean())
    if y == 1:
        return float(pred.mean())
    score = alpha * s_object(pred, gt) + (1 - alpha) * s_region(pred, gt)
    return float(max(score, 0.0))


@METRICS.register_module()
class SalientMetric(BaseMetric):
    """MAE, max F-measure (beta^2 = 0.3) and S-measure for salient object detection.

    One "image" = one [H, W] saliency map in [0, 1] with its binary GT (a sample may
    hold k of them). ``MAE`` and ``S-measure`` are averaged over images; ``maxF`` is the
    standard protocol: per threshold (``num_thresholds`` evenly spaced in [0, 1], a pixel
    is salient when score >= t) average F over images, then take the max over thresholds.
    """

    default_prefix: Optional[str] = ''  # keys unprefixed ('' also silences MMEngine's warning)

    def __init__(self, num_thresholds: int = 256, beta2: float = 0.3, alpha: float = 0.5,
                 collect_device: str = 'cpu', prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.thresholds = np.linspace(0.0, 1.0, num_thresholds)
        self.beta2, self.alpha = beta2, alpha

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            pred = to_numpy(get_field(sample, 'pred_mask_scores', 'SalientMetric'), np.float64)
            gt = to_numpy(get_field(sample, 'gt_masks', 'SalientMetric')).astype(bool)
            pred = pred[None] if pred.ndim == 2 else pred
            gt = gt[None] if gt.ndim == 2 else gt
            check_same_shape(pred, gt, 'SalientMetric', 'pred_mask_scores', 'gt_masks')
            for p, g in zip(pred, gt):
                p = np.clip(p, 0.0, 1.0)  # guard against logits-ish overshoot
                self.results.append(dict(
                    mae=mae(p, g), s=s_measure(p, g, self.alpha),
                    f=f_measure_curve(p, g, self.thresholds, self.beta2).astype(np.float32)))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        if not results:
            raise ValueError('SalientMetric: no saliency maps were processed')
        f_curve = np.stack([r['f'] for r in results]).astype(np.float64).mean(0)
        return {'MAE': float(np.mean([r['mae'] for r in results])),
                'maxF': float(f_curve.max()),
                'S-measure': float(np.mean([r['s'] for r in results]))}
