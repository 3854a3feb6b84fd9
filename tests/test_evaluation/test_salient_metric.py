"""SalientMetric on PySODMetrics: checked against the library's own accumulating evaluators and
against values computed by hand on tiny maps (hand work in comments)."""
import warnings

import numpy as np
import pytest
import torch

from ullava.evaluation.metrics import SalientMetric
from ullava.evaluation.metrics.salient_metric import salient_scores

KEYS = {'MAE', 'S-measure', 'maxF', 'meanF', 'adpF', 'maxE', 'meanE', 'adpE'}


def _run(metric, *batches):
    """Feed each batch through process() (as several dataloader steps), then compute."""
    for batch in batches:
        metric.process({}, batch)
    return metric.compute_metrics(metric.results)


def _library(pairs):
    """The same maps through PySODMetrics' evaluators, accumulated the library's way."""
    import py_sod_metrics as sod
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # Fmeasure (v1) warns that FmeasureV2 replaces it
        fm = sod.Fmeasure(beta=0.3)  # v1: another code path than the metric's FmeasureV2
    em, sm, mae = sod.Emeasure(), sod.Smeasure(alpha=0.5), sod.MAE()
    for pred, gt in pairs:
        for evaluator in (fm, em, sm, mae):
            evaluator.step(pred, gt, normalize=False)
    f, e = fm.get_results()['fm'], em.get_results()['em']
    return {'MAE': mae.get_results()['mae'], 'S-measure': sm.get_results()['sm'],
            'maxF': f['curve'].max(), 'meanF': f['curve'].mean(), 'adpF': f['adp'],
            'maxE': e['curve'].max(), 'meanE': e['curve'].mean(), 'adpE': e['adp']}


def test_matches_pysodmetrics_on_random_maps():
    rng = np.random.default_rng(0)
    pairs = []
    for shape in [(17, 23), (17, 23), (32, 9), (5, 5)]:
        gt = np.zeros(shape, bool)
        y, x = rng.integers(0, 4, 2)
        gt[y:y + shape[0] // 2, x:x + shape[1] // 2] = True  # a blob; each map has fg and bg
        noise = rng.random(shape)
        pairs.append((np.clip(0.6 * gt + 0.5 * noise, 0, 1), gt))
    # one sample with k = 2 maps (tensors), one [H, W] map per numpy sample
    first = dict(pred_mask_scores=torch.tensor(np.stack([p for p, _ in pairs[:2]])),
                 gt_masks=torch.tensor(np.stack([g for _, g in pairs[:2]])))
    rest = [dict(pred_mask_scores=p, gt_masks=g) for p, g in pairs[2:]]
    out = _run(SalientMetric(), [first], rest)
    assert set(out) == KEYS
    assert out == pytest.approx(_library(pairs), rel=1e-6)


def test_by_hand():
    # Image 1: pred [[.8, .4], [.6, 0]], GT top row. MAE = (.2 + .6 + .6 + 0) / 4 = .35.
    # F (beta^2 = .3) of pred >= k/255: k = 0: all (P = .5, R = 1) -> 13/23;
    #   k in 1..102: {.8, .4, .6} P = 2/3 R = 1 -> 13/18; 103..153: {.8, .6} P = R = .5 -> .5;
    #   154..204: {.8} P = 1 R = .5 -> 13/16; 205..255: nothing -> 0.
    #   Adaptive threshold min(2 * .45, 1) = .9: nothing predicted -> 0.
    a = dict(pred_mask_scores=torch.tensor([[[.8, .4], [.6, .0]]]),
             gt_masks=torch.tensor([[[True, True], [False, False]]]))
    # Image 2 (numpy, no k axis): perfect -> MAE 0, F = 1 for k >= 1 (k = 0: 13/23), S = 1;
    #   adaptive threshold min(2 * .5, 1) = 1 -> the GT itself -> 1.
    b = dict(pred_mask_scores=np.array([[1., 1], [0, 0]]), gt_masks=np.array([[1, 1], [0, 0]]))
    out = _run(SalientMetric(), [a], [b])
    assert out['MAE'] == pytest.approx(0.175)
    # mean F per threshold, max at k in 154..204: (13/16 + 1) / 2.
    assert out['maxF'] == pytest.approx(0.90625)
    f1 = [13 / 23] + [13 / 18] * 102 + [.5] * 51 + [13 / 16] * 51 + [0] * 51
    f2 = [13 / 23] + [1] * 255
    assert out['meanF'] == pytest.approx(np.mean([(x + y) / 2 for x, y in zip(f1, f2)]))
    assert out['adpF'] == pytest.approx(0.5)
    s1 = salient_scores(np.array([[.8, .4], [.6, .0]]), np.array([[1, 1], [0, 0]], bool))['s']
    assert out['S-measure'] == pytest.approx((s1 + 1) / 2)


def test_e_measure_by_hand():
    # Perfect 2x2 map, GT = top row. For k >= 1 the binarised map is the GT: both demeaned maps
    # are +-.5 alike, every alignment is 1 -> E = sum / (N - 1 + eps) = 4/3 (the MATLAB
    # normalisation). k = 0 marks every pixel: demeaned pred is 0 -> each enhanced value
    # (0 + 1)^2 / 4 -> E = 1/3. Adaptive threshold min(2 * .5, 1) = 1 -> the GT -> 4/3.
    out = _run(SalientMetric(), [dict(pred_mask_scores=np.array([[1., 1], [0, 0]]),
                                      gt_masks=np.array([[1, 1], [0, 0]]))])
    assert out['maxE'] == pytest.approx(4 / 3)
    assert out['meanE'] == pytest.approx((255 * 4 / 3 + 1 / 3) / 256)
    assert out['adpE'] == pytest.approx(4 / 3)


def test_empty_gt_and_empty_pred():
    zero = torch.zeros(1, 3, 3)
    out = _run(SalientMetric(), [dict(pred_mask_scores=zero, gt_masks=zero.bool())])
    # S = 1 - mean(pred) = 1; F = 0 (recall of an empty GT is 0). E of an empty GT counts the
    # pixels left unmarked: 9 / 8 for k >= 1, 0 at k = 0 and at the adaptive threshold 0.
    assert out == pytest.approx({'MAE': 0.0, 'S-measure': 1.0, 'maxF': 0.0, 'meanF': 0.0,
                                 'adpF': 0.0, 'maxE': 9 / 8, 'meanE': 255 * 9 / 8 / 256,
                                 'adpE': 0.0})


def test_s_measure_special_and_hand_cases():
    def s(pred, gt):
        return salient_scores(np.asarray(pred, float), np.asarray(gt, bool))['s']

    gt = np.zeros((4, 4), bool)
    gt[:2, :2] = True
    assert s(gt, gt) == pytest.approx(1.0)                          # perfect
    assert s(np.zeros((4, 4)), np.zeros((4, 4))) == 1.0             # GT all bg: 1 - mean
    assert s(np.full((4, 4), .25), np.zeros((4, 4))) == .75
    assert s(np.full((4, 4), .25), np.ones((4, 4))) == .25          # GT all fg: mean
    # GT = top-left 2x2 block of a 4x4 map; pred = GT with pixel (1, 1) missed.
    # S_object: FG values [1,1,1,0]: mean .75, std (N-1) .5 -> 1.5/(.5625+1+.5) = 8/11;
    #   BG values 1-pred = 1 everywhere -> 2/(1+1) = 1; u = 4/16: S_o = 2/11 + 3/4.
    # S_region: the 0-based centroid (.5, .5) rounds half-to-even to 0, so the split is after
    #   row / column 1 (MATLAB rounds the 1-based 1.5 up to 2 and gets S_r = 3/4 here).
    #   TL 1x1 [1] vs [1]: 1 (w 1/16); TR 1x3 and BL 3x1 [1,0,0] vs [1,0,0]: 1 (w 3/16 each);
    #   BR 3x3: pred all 0 vs one GT pixel -> alpha = 0, beta > 0 -> 0 (w 9/16). S_r = 7/16.
    # S = .5 (2/11 + 3/4) + .5 (7/16) = 1/11 + 19/32.
    pred = gt.astype(float)
    pred[1, 1] = 0
    assert s(pred, gt) == pytest.approx(1 / 11 + 19 / 32)
    # Inverted, GT = centre 2x2 block: FG mean 0 and BG (1-pred) mean 0 -> S_o = 0.
    # Centroid 1.5 -> 2 (+1): TL quadrant 3x3 has 4 GT px, pred = 1-GT, x=5/9, y=4/9,
    # var = 20/72 both, cov = -20/72 -> SSIM = -40/41; the other quadrants (weight 7/16) are
    # constant -> 1. S_r = 9/16(-40/41) + 7/16 = -73/656 < 0; S = -73/1312 -> clipped to 0.
    gt = np.zeros((4, 4), bool)
    gt[1:3, 1:3] = True
    assert s(1.0 - gt, gt) == 0.0


def test_scores_are_clipped_and_shapes_checked():
    gt = np.array([[1, 0], [1, 0]], bool)
    over = _run(SalientMetric(), [dict(pred_mask_scores=np.array([[1.5, -0.5], [2, -1]]),
                                       gt_masks=gt)])
    assert over['MAE'] == 0.0 and over['maxF'] == pytest.approx(1.0)
    assert over['S-measure'] == pytest.approx(1.0)
    with pytest.raises(ValueError, match='SalientMetric: pred_mask_scores has shape'):
        SalientMetric().process({}, [dict(pred_mask_scores=np.zeros((3, 2)), gt_masks=gt)])
    with pytest.raises(ValueError, match='no saliency maps'):
        SalientMetric().compute_metrics([])


def test_keys_under_task_metric():
    """The demo's evaluator wraps it in TaskMetric: keys become ``salient/<key>``."""
    from ullava.tasks.task_metric import TaskMetric
    metric = TaskMetric(task='salient', metric=dict(type='SalientMetric'))
    sample = dict(task='salient', pred_mask_scores=np.array([[1., 0], [1, 0]]),
                  gt_masks=np.array([[1, 0], [1, 0]], bool))
    metric.process({}, [sample, dict(task='vqa')])
    out = metric.evaluate(1)
    assert set(out) == {f'salient/{k}' for k in KEYS}
