"""Referring expression comprehension (box grounding): Acc@0.5, mean IoU, COCO bbox AP."""
import contextlib
import io
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from torchvision.ops import box_iou

from ullava.registry import METRICS
from ._utils import get_field, has_field, to_tensor


DEFINITIONS = {
    # name: (strict ">" threshold, clip boxes to the image first)
    'reference': (True, False),
    'inclusive_clipped': (False, True),
}


@METRICS.register_module()
class RECMetric(BaseMetric):
    """Box grounding accuracy; one GT box = one target.

    The model gives one box per [LOC] (or per [SEG], boxes read off masks) it generated; the
    k-th box answers the k-th target. A target with no box counts as a miss (IoU 0, and no
    detection in the AP); boxes beyond the targets are counted in ``num_extra_boxes`` and, for
    the AP, are false positives.

    * ``Acc@0.5``: fraction of predicted boxes whose IoU with their GT box passes
      ``iou_thr`` (``iou_thr`` changes the threshold and the key).
    * ``mIoU``: mean IoU of predicted vs GT box.
    * ``bbox_AP`` / ``bbox_AP50``: COCO AP@[.5:.95] / AP@.5 from pycocotools, each
      expression being its own "image" with one GT box and one detection of a single
      category, scored by ``pred_box_scores`` (1.0 when the model gives none).
    * ``definition``: the name of the definition used (a string, so ``metrics.json`` says it).

    ``definition``:

    * ``'reference'`` (default, u-LLaVA's and the paper's numbers): IoU > ``iou_thr``
      (strict) on the boxes as predicted, unclipped. The reference scores normalised boxes
      in the centre-padded square; IoU does not change under that shift and uniform scale,
      so pixel boxes give the same IoU.
    * ``'inclusive_clipped'`` (ullava's earlier definition): IoU >= ``iou_thr`` after
      clipping both boxes to the image (``ori_shape``), so area outside the image, which
      cannot hold the object, does not lower the IoU. Scores more boxes as correct: report
      it only under its name.
    """

    default_prefix: Optional[str] = ''  # keys unprefixed ('' also silences MMEngine's warning)

    def __init__(self, iou_thr: float = 0.5, definition: str = 'reference',
                 collect_device: str = 'cpu', prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if definition not in DEFINITIONS:
            raise ValueError(f'RECMetric: definition must be one of {sorted(DEFINITIONS)}, '
                             f'got {definition!r}')
        self.iou_thr = float(iou_thr)
        self.definition = definition
        self.strict, self.clip = DEFINITIONS[definition]

    @staticmethod
    def _clip(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
        boxes = boxes.clone()
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
        return boxes

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            gt = to_tensor(get_field(sample, 'gt_boxes', 'RECMetric'), torch.float64).reshape(-1, 4)
            pred = get_field(sample, 'pred_boxes', 'RECMetric', None)
            pred = gt[:0] if pred is None else to_tensor(pred, torch.float64).reshape(-1, 4)
            scores = (to_tensor(get_field(sample, 'pred_box_scores', 'RECMetric'),
                                torch.float64).reshape(-1)
                      if has_field(sample, 'pred_box_scores') else torch.ones(len(pred)))
            if self.clip:
                height, width = (int(v) for v in get_field(sample, 'ori_shape', 'RECMetric')[:2])
                pred, gt = self._clip(pred, height, width), self._clip(gt, height, width)
            n = min(len(pred), len(gt))
            iou = box_iou(pred[:n], gt[:n]).diagonal() if n else torch.zeros(0)
            for k in range(len(gt)):
                found = k < n
                self.results.append(dict(iou=float(iou[k]) if found else 0.0,
                                         score=float(scores[k]) if found else None,
                                         pred=pred[k].tolist() if found else None,
                                         gt=gt[k].tolist()))
            for k in range(n, len(pred)):  # extra boxes: no target, false positives in the AP
                self.results.append(dict(extra=True, score=float(scores[k]), pred=pred[k].tolist()))

    def compute_metrics(self, results: list) -> Dict[str, Union[float, str]]:
        targets = [r for r in results if not r.get('extra')]
        if not targets:
            raise ValueError('RECMetric: no boxes were processed')
        iou = np.array([r['iou'] for r in targets])
        hit = iou > self.iou_thr if self.strict else iou >= self.iou_thr
        metrics = {f'Acc@{self.iou_thr:g}': float(hit.mean()), 'mIoU': float(iou.mean())}
        ap, ap50 = self._coco_ap(results)
        metrics.update(bbox_AP=ap, bbox_AP50=ap50, num_extra_boxes=len(results) - len(targets),
                       definition=self.definition)
        return metrics

    @staticmethod
    def _coco_ap(results: List[dict]):
        """COCO bbox AP / AP50 over in-memory GT and detections (pycocotools)."""
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        def xywh(b):
            return [b[0], b[1], b[2] - b[0], b[3] - b[1]]

        images, anns, dets = [dict(id=0)], [], []  # image 0 holds the extra boxes: no GT there
        for i, r in enumerate(results, start=1):
            images.append(dict(id=i))
            if r.get('extra'):
                dets.append(dict(image_id=0, category_id=1, bbox=xywh(r['pred']), score=r['score']))
                continue
            box = xywh(r['gt'])
            anns.append(dict(id=i, image_id=i, category_id=1, bbox=box,
                             area=box[2] * box[3], iscrowd=0))
            if r['pred'] is not None:
                dets.append(dict(image_id=i, category_id=1, bbox=xywh(r['pred']),
                                 score=r['score']))
        if not dets:  # pycocotools refuses an empty result list; no detection scores 0
            return 0.0, 0.0
        # pycocotools prints progress on stdout; keep the evaluation log clean.
        with contextlib.redirect_stdout(io.StringIO()):
            gt = COCO()
            gt.dataset = dict(images=images, annotations=anns,
                              categories=[dict(id=1, name='object')])
            gt.createIndex()
            ev = COCOeval(gt, gt.loadRes(dets), iouType='bbox')
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        return float(ev.stats[0]), float(ev.stats[1])
