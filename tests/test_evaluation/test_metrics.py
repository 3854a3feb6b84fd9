"""Metrics checked against values computed by hand on tiny inputs (hand work in comments)."""
import math
import shutil

import numpy as np
import pytest
import torch

from ullava.evaluation.metrics import (CaptionMetric, RECMetric, RESMetric, SalientMetric,
                                       SemSegMetric, VQAMetric)
from ullava.evaluation.metrics.vqa_metric import normalize_answer


def _mmseg_ready() -> bool:
    try:
        import mmcv  # noqa: F401
        import mmseg  # noqa: F401
    except Exception:
        return False
    return True


def _masks(*grids):
    return torch.tensor(np.array(grids, dtype=bool))


def _run(metric, *batches):
    """Feed each batch through process() (as several dataloader steps), then compute."""
    for batch in batches:
        metric.process({}, batch)
    return metric.compute_metrics(metric.results)


# ----------------------------------------------------------------------------- RES
def test_res_metric_by_hand():
    z = [[0, 0, 0]] * 3
    # mask 1: perfect, I=3 U=3 -> 1.   mask 2: empty pred & empty GT, I=0 U=0 -> 1 (gIoU).
    a = dict(pred_masks=_masks([[1, 1, 1], [0, 0, 0], [0, 0, 0]], z),
             gt_masks=_masks([[1, 1, 1], [0, 0, 0], [0, 0, 0]], z))
    # mask 3: wholly wrong, pred 2 px, GT 2 other px: I=0 U=4 -> 0.
    b = dict(pred_masks=_masks([[1, 1, 0], [0, 0, 0], [0, 0, 0]]),
             gt_masks=_masks([[0, 0, 0], [0, 0, 0], [0, 1, 1]]))
    # mask 4 (numpy input, no k axis): GT 4 px, pred 3 of them: I=3 U=4 -> 0.75.
    c = dict(pred_masks=np.array([[1, 1, 0], [1, 0, 0], [0, 0, 0]], bool),
             gt_masks=np.array([[1, 1, 0], [1, 1, 0], [0, 0, 0]], bool))
    out = _run(RESMetric(), [a], [b, c])
    # IoUs [1, 1, 0, .75]; cIoU = (3+0+0+3)/(3+0+4+4) = 6/11; gIoU = 2.75/4.
    assert out['cIoU'] == pytest.approx(6 / 11)
    assert out['gIoU'] == pytest.approx(0.6875)
    # IoU >= t: t=.5,.6,.7 -> 3 of 4; t=.8,.9 -> 2 of 4.
    assert [out[f'prec@{t}'] for t in (0.5, 0.6, 0.7, 0.8, 0.9)] == [.75, .75, .75, .5, .5]


def test_res_metric_all_empty_is_perfect():
    empty = _masks([[0, 0], [0, 0]])
    out = _run(RESMetric(), [dict(pred_masks=empty, gt_masks=empty)])
    assert out['cIoU'] == 1.0 and out['gIoU'] == 1.0 and out['prec@0.9'] == 1.0


def test_res_metric_shape_mismatch():
    with pytest.raises(ValueError, match='RESMetric'):
        RESMetric().process({}, [dict(pred_masks=torch.zeros(1, 3, 2, dtype=torch.bool),
                                      gt_masks=torch.zeros(1, 2, 2, dtype=torch.bool))])


def test_res_metric_matches_masks_in_order_missing_is_a_miss_extra_is_reported():
    """The k-th predicted mask answers the k-th target; none is padded or cut by the model."""
    full, empty = _masks([[1, 1], [1, 1]]), _masks([[0, 0], [0, 0]])
    two_targets = torch.cat([full, full])
    missing = dict(pred_masks=full, gt_masks=two_targets)           # IoUs 1, 0 (missed)
    extra = dict(pred_masks=torch.cat([full, full, empty]), gt_masks=full)  # IoU 1, 2 extra
    none = dict(gt_masks=full)                                        # no mask head: a miss
    out = _run(RESMetric(), [missing, extra, none])
    assert out['gIoU'] == pytest.approx(2 / 4) and out['cIoU'] == pytest.approx(8 / 16)
    assert out['num_extra_masks'] == 2


# ----------------------------------------------------------------------------- REC
def _rec_cases():
    # Image 10x10. (1) perfect, IoU 1, score .9. (2) pred [6,6,14,14] spills out of the
    # image: unclipped, I=16 U=64, IoU .25; clipped to [6,6,10,10] it equals GT: IoU 1.
    a = dict(pred_boxes=torch.tensor([[0., 0, 4, 4], [6, 6, 14, 14]]),
             pred_box_scores=torch.tensor([.9, .8]),
             gt_boxes=torch.tensor([[0., 0, 4, 4], [6, 6, 10, 10]]), ori_shape=(10, 10))
    # (3) wholly wrong, IoU 0, score .7.  (4) [0,0,4,2] vs [0,0,4,4]: I=8 U=16, IoU .5, score .6.
    b = dict(pred_boxes=np.array([[0., 0, 2, 2]]), pred_box_scores=np.array([.7]),
             gt_boxes=np.array([[5., 5, 9, 9]]), ori_shape=(10, 10))
    c = dict(pred_boxes=[[0., 0, 4, 2]], pred_box_scores=[.6], gt_boxes=[[0., 0, 4, 4]],
             ori_shape=(10, 10, 3))
    return [a], [b, c]


def test_rec_metric_reference_definition_by_hand():
    """The default is the reference's: IoU > 0.5 (strict) on the boxes as predicted."""
    out = _run(RECMetric(), *_rec_cases())
    assert out['definition'] == 'reference'
    assert out['Acc@0.5'] == pytest.approx(1 / 4)  # only (1): (4) is exactly .5, (2) is .25
    assert out['mIoU'] == pytest.approx((1 + .25 + 0 + .5) / 4)


def test_rec_metric_inclusive_clipped_by_hand():
    out = _run(RECMetric(definition='inclusive_clipped'), *_rec_cases())
    assert out['definition'] == 'inclusive_clipped'
    assert out['Acc@0.5'] == pytest.approx(3 / 4)  # IoU >= .5 for (1), (2) clipped, (4)
    assert out['mIoU'] == pytest.approx(2.5 / 4)
    # COCO AP, 4 GTs, detections by score: TP TP FP and (4) TP only at IoU thr .5.
    # AP50: recall .25,.5,.5,.75 / precision 1,1,2/3,3/4 -> interpolated 1,1,3/4,3/4.
    #   101 recall points: r<=.5 -> 1 (51 pts), .5<r<=.75 -> .75 (25 pts): 69.75/101.
    # thr .55..95 (9 of them): (4) is FP: precision 1 up to r=.5 (51 pts): 51/101.
    ap50 = 69.75 / 101
    assert out['bbox_AP50'] == pytest.approx(ap50)
    assert out['bbox_AP'] == pytest.approx((ap50 + 9 * 51 / 101) / 10)


def test_rec_metric_iou_is_frame_free():
    """The reference scores boxes normalised in the centre-padded square; IoU is the same on
    pixel boxes (a shift and one scale), so a pixel-box metric gives the reference's number."""
    pred, gt = torch.tensor([[3., 1, 20, 9]]), torch.tensor([[5., 2, 18, 10]])
    height, width = 12, 24  # pad (24 - 12) / 2 rows on top, divide by 24
    norm = torch.tensor([0., 6, 0, 6])
    pixel = _run(RECMetric(), [dict(pred_boxes=pred, gt_boxes=gt, ori_shape=(height, width))])
    normed = _run(RECMetric(), [dict(pred_boxes=(pred + norm) / 24, gt_boxes=(gt + norm) / 24,
                                     ori_shape=(1, 1))])
    assert pixel['mIoU'] == pytest.approx(normed['mIoU'])


def test_rec_metric_perfect_without_scores():
    s = dict(pred_boxes=torch.tensor([[1., 1, 5, 5]]), gt_boxes=torch.tensor([[1., 1, 5, 5]]),
             ori_shape=(8, 8))
    out = _run(RECMetric(), [s, s])
    assert out == {'Acc@0.5': 1.0, 'mIoU': 1.0, 'bbox_AP': 1.0, 'bbox_AP50': 1.0,
                   'num_extra_boxes': 0, 'definition': 'reference'}


def test_rec_metric_missing_box_is_a_miss_extra_boxes_are_false_positives():
    box = torch.tensor([[1., 1, 5, 5]])
    two = dict(pred_boxes=box, gt_boxes=torch.cat([box, box + 2]), ori_shape=(8, 8))  # 1 missing
    out = _run(RECMetric(), [two])
    assert out['Acc@0.5'] == 0.5 and out['mIoU'] == 0.5 and out['num_extra_boxes'] == 0
    extra = dict(pred_boxes=torch.cat([box, box]), pred_box_scores=torch.tensor([.9, .95]),
                 gt_boxes=box, ori_shape=(8, 8))
    out = _run(RECMetric(), [extra])
    assert out['Acc@0.5'] == 1.0 and out['num_extra_boxes'] == 1
    assert out['bbox_AP50'] < 1.0  # the extra box ranks first and is a false positive
    with pytest.raises(ValueError, match='definition must be one of'):
        RECMetric(definition='clipped')


# ----------------------------------------------------------------------------- Salient
# on PySODMetrics: tests/test_evaluation/test_salient_metric.py


# ----------------------------------------------------------------------------- VQA
@pytest.mark.parametrize('raw,norm', [
    ('Two dogs.', '2 dogs'), ('The cat', 'cat'), ('dont know', "don't know"),
    ('black/white', 'black white'), ('1,000', '1000'), ('Yes!', 'yes'), ('3.5', '3.5'),
    ('hello, world', 'hello world'), ('an apple\n', 'apple')])
def test_vqa_normalize(raw, norm):
    assert normalize_answer(raw) == norm


def test_vqa_metric_by_hand():
    # 10 GT answers, 2 match "two": leave-one-out over the 10 annotators:
    #   2 subsets drop a match -> 1/3; 8 keep both -> 2/3: (2/3 + 16/3)/10 = .6.
    #   Most common GT is "3" -> exact_match 0.
    a = dict(pred_text='two', gt_answers=['2', 'two'] + ['3'] * 8)
    # 3 matches: 3 subsets keep 2 -> 2/3, 7 keep 3 -> 1: (2 + 7)/10 = .9 (not 1: the
    # official leave-one-out); most common GT is "blue" -> exact_match 0.
    b = dict(pred_text='Red.', gt_answers=['red'] * 3 + ['blue'] * 7)
    # 4 matches -> every subset has >= 3 -> 1.0; most common "yes" -> exact 1.
    c = dict(pred_text='Yes', gt_answers=['yes'] * 4 + ['no'] * 3 + ['maybe'] * 3)
    # One GT answer: exact match after normalisation.
    d = dict(pred_text='A dog', gt_answers=['dog'])
    e = dict(pred_text='cat', gt_answers=['dog'])
    out = _run(VQAMetric(), [a, b], [c], [d, e])
    assert out['accuracy'] == pytest.approx((.6 + .9 + 1 + 1 + 0) / 5)
    assert out['exact_match'] == pytest.approx((0 + 0 + 1 + 1 + 0) / 5)


# ----------------------------------------------------------------------------- Caption
def test_caption_metric_by_hand():
    a = dict(img_id=1, pred_text='a cat sat', gt_captions=['A cat sat down.'])
    b = dict(img_id='x', pred_text='The dog ran away!', gt_captions=['the dog ran away'])
    out = _run(CaptionMetric(meteor=False), [a], [b])
    assert 'METEOR' not in out
    # BLEU-4 (corpus): every pred n-gram is in its reference -> precisions 1 (n=1..4:
    # 7/7, 5/5, 3/3, 1/1); test length 7, closest ref length 8 -> BP = exp(1 - 8/7).
    assert out['BLEU_4'] == pytest.approx(math.exp(-1 / 7), abs=1e-6)
    # CIDEr-D: 2 images, no n-gram shared by both -> every idf = log(2/1), so the
    # tf-idf cosine reduces to counts. Image 2 is perfect: 10.
    # Image 1, pred {a,cat,sat} vs ref {a,cat,sat,down}: 1-gram 3/(sqrt3*2) = sqrt3/2;
    # 2-grams 2/(sqrt2*sqrt3); 3-grams 1/(1*sqrt2); 4-grams: pred has none -> 0.
    # Length penalty exp(-(3-4)^2 / (2*6^2)); mean over n, x10.
    s1 = 10 * math.exp(-1 / 72) * (math.sqrt(3) / 2 + math.sqrt(2 / 3) + math.sqrt(.5)) / 4
    assert out['CIDEr'] == pytest.approx((s1 + 10) / 2)


def test_caption_metric_perfect():
    a = dict(img_id=0, pred_text='a red bus on the road', gt_captions=['a red bus on the road'])
    b = dict(img_id=1, pred_text='two men play chess', gt_captions=['two men play chess'])
    out = _run(CaptionMetric(meteor=False), [a, b])
    assert out['BLEU_4'] == pytest.approx(1.0, abs=1e-6)
    assert out['CIDEr'] == pytest.approx(10.0)


@pytest.mark.skipif(shutil.which('java') is None, reason='METEOR runs a Java jar; no java here')
def test_caption_meteor_runs_when_java_is_present():
    good = [dict(img_id=i, pred_text=t, gt_captions=[t]) for i, t in
            enumerate(['a red bus on the road', 'two men play chess'])]
    bad = [dict(img_id=i, pred_text='blue sky', gt_captions=[t]) for i, t in
           enumerate(['a red bus on the road', 'two men play chess'])]
    perfect = _run(CaptionMetric(meteor='auto'), good)['METEOR']
    wrong = _run(CaptionMetric(meteor='auto'), bad)['METEOR']
    assert perfect > 0.9 and wrong < 0.1


# ----------------------------------------------------------------------------- SemSeg
@pytest.mark.skipif(not _mmseg_ready(), reason='mmcv/mmseg not importable yet (mmcv build)')
def test_semseg_metric_by_hand():
    # Batch 1 (255 ignored): valid GT [0,0,1,1,2], pred [0,1,1,1,2].
    a = dict(gt_sem_seg=torch.tensor([[0, 0, 1], [1, 2, 255]]),
             pred_sem_seg=torch.tensor([[0, 1, 1], [1, 2, 2]]),
             # prompt masks: class a perfect (IoU 1); class b I=1 U=2 -> .5
             pred_masks=_masks([[1, 0], [0, 0]], [[1, 1], [0, 0]]),
             gt_masks=_masks([[1, 0], [0, 0]], [[1, 0], [0, 0]]))
    # Batch 2: one pixel of class 0, right (numpy, [1, H, W]).
    b = dict(gt_sem_seg=np.zeros((1, 1, 1), np.int64), pred_sem_seg=np.zeros((1, 1, 1)))
    metric = SemSegMetric()
    metric.dataset_meta = dict(classes=('a', 'b', 'c'))
    out = _run(metric, [a], [b])
    # class 0: I=2 U=3 (pred 2, GT 3), Acc 2/3; class 1: I=2 U=3, Acc 1; class 2: I=U=1.
    assert out['mIoU'] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert out['aAcc'] == pytest.approx(5 / 6)
    assert out['mAcc'] == pytest.approx((2 / 3 + 1 + 1) / 3)
    assert out['prompt_mIoU'] == pytest.approx(0.75)
    # A 4th class never seen in GT nor prediction is left out of the means.
    out4 = _run(SemSegMetric(num_classes=4), [a], [b])
    assert out4['mIoU'] == pytest.approx(out['mIoU']) and 'prompt_mIoU' in out4


@pytest.mark.skipif(not _mmseg_ready(), reason='mmcv/mmseg not importable yet (mmcv build)')
def test_semseg_metric_needs_classes():
    with pytest.raises(ValueError, match='num_classes'):
        SemSegMetric().process({}, [dict(gt_sem_seg=torch.zeros(2, 2),
                                         pred_sem_seg=torch.zeros(2, 2))])


# ----------------------------------------------------------------------------- common
@pytest.mark.parametrize('metric,sample,missing', [
    (RESMetric, dict(pred_masks=torch.zeros(1, 2, 2, dtype=torch.bool)), 'gt_masks'),
    (RECMetric, dict(pred_boxes=torch.zeros(1, 4)), 'gt_boxes'),
    (SalientMetric, dict(gt_masks=torch.zeros(1, 2, 2)), 'pred_mask_scores'),
    (VQAMetric, dict(pred_text='yes'), 'gt_answers'),
    (CaptionMetric, dict(pred_text='a', gt_captions=['a']), 'img_id'),
])
def test_missing_key_names_metric_and_key(metric, sample, missing):
    with pytest.raises(KeyError, match=f'{metric.__name__}.*{missing}'):
        metric().process({}, [sample])


def test_registry_and_evaluator_pipeline():
    """Built by name from the registry and driven by MMEngine's Evaluator, which turns
    data samples into plain dicts before process()."""
    from mmengine.evaluator import Evaluator
    from mmengine.structures import BaseDataElement

    from ullava.registry import METRICS
    for name in ('RESMetric', 'RECMetric', 'SalientMetric', 'VQAMetric', 'CaptionMetric',
                 'SemSegMetric'):
        assert METRICS.get(name) is not None
    evaluator = Evaluator([METRICS.build(dict(type='RESMetric')),
                           METRICS.build(dict(type='VQAMetric'))])
    sample = BaseDataElement(pred_masks=_masks([[1, 0]]), gt_masks=_masks([[1, 1]]),
                             pred_text='yes', gt_answers=['yes'])
    evaluator.process([sample], {})
    out = evaluator.evaluate(1)
    assert out == pytest.approx({'cIoU': .5, 'gIoU': .5, 'prec@0.5': 1.0, 'prec@0.6': 0.0,
                                 'prec@0.7': 0.0, 'prec@0.8': 0.0, 'prec@0.9': 0.0,
                                 'num_extra_masks': 0, 'accuracy': 1.0, 'exact_match': 1.0})
