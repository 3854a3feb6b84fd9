"""Semantic segmentation: mIoU / aAcc / mAcc via mmseg's IoUMetric, plus per-prompt IoU."""
from typing import Dict, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from ullava.registry import METRICS
from ._utils import check_same_shape, get_field, has_field, match_to_targets, to_tensor


def _iou_metric():
    # Imported lazily: importing mmseg needs mmcv, and the other metrics must not.
    from mmseg.evaluation.metrics import IoUMetric
    return IoUMetric


def _label_map(x) -> torch.Tensor:
    t = to_tensor(x).long()
    return t[0] if t.dim() == 3 and t.shape[0] == 1 else t  # accept [1, H, W]


@METRICS.register_module()
class SemSegMetric(BaseMetric):
    """Full-label-map semantic segmentation metrics (fractions in [0, 1]).

    * ``mIoU``: mean over classes of IoU accumulated over the split; a class absent from
      every GT and every prediction is left out (NaN), as in mmseg.
    * ``aAcc``: pixel accuracy; ``mAcc``: mean per-class pixel accuracy.
    * ``prompt_mIoU`` (only when samples carry ``pred_masks``/``gt_masks``, one binary
      mask per class prompt): mean over prompt masks of their IoU, an empty union
      counting as 1.0 like RESMetric's gIoU.

    Pixels whose GT equals ``ignore_index`` are not counted. ``num_classes`` and
    ``class_names`` come from the constructor, else from ``dataset_meta['classes']``.
    """

    default_prefix: Optional[str] = ''  # keys unprefixed ('' also silences MMEngine's warning)

    def __init__(self, num_classes: Optional[int] = None,
                 class_names: Optional[Sequence[str]] = None, ignore_index: int = 255,
                 collect_device: str = 'cpu', prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.class_names = list(class_names) if class_names is not None else None
        self._num_classes = num_classes
        self.ignore_index = ignore_index

    @property
    def classes(self) -> Optional[list]:
        if self.class_names is not None:
            return self.class_names
        meta = self.dataset_meta or {}
        return list(meta['classes']) if meta.get('classes') is not None else None

    @property
    def num_classes(self) -> int:
        if self._num_classes is not None:
            return int(self._num_classes)
        if self.classes is None:
            raise ValueError('SemSegMetric: give num_classes or class_names, or use a '
                             "dataset whose metainfo has 'classes'")
        return len(self.classes)

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        iou_metric = _iou_metric()
        for sample in data_samples:
            pred = _label_map(get_field(sample, 'pred_sem_seg', 'SemSegMetric'))
            gt = _label_map(get_field(sample, 'gt_sem_seg', 'SemSegMetric'))
            check_same_shape(pred, gt, 'SemSegMetric', 'pred_sem_seg', 'gt_sem_seg')
            areas = iou_metric.intersect_and_union(pred, gt, self.num_classes,
                                                   self.ignore_index)
            result = dict(areas=torch.stack(areas).numpy(), prompt=[])
            if has_field(sample, 'pred_masks') and has_field(sample, 'gt_masks'):
                pm = to_tensor(get_field(sample, 'pred_masks', 'SemSegMetric')).bool()
                gm = to_tensor(get_field(sample, 'gt_masks', 'SemSegMetric')).bool()
                if len(pm) and len(gm):
                    check_same_shape(pm[:1], gm[:1], 'SemSegMetric', 'pred_masks', 'gt_masks')
                pm = match_to_targets(pm, len(gm))
                inter = (pm & gm).flatten(1).sum(1).tolist()
                union = (pm | gm).flatten(1).sum(1).tolist()
                result['prompt'] = [i / u if u > 0 else 1.0 for i, u in zip(inter, union)]
            self.results.append(result)

    def compute_metrics(self, results: list) -> Dict[str, float]:
        if not results:
            raise ValueError('SemSegMetric: no label maps were processed')
        inter, union, pred_area, label_area = torch.from_numpy(
            np.sum([r['areas'] for r in results], axis=0))
        per_class = _iou_metric().total_area_to_metrics(
            inter, union, pred_area, label_area, metrics=['mIoU'])
        metrics = {'mIoU': float(np.nanmean(per_class['IoU'])),
                   'aAcc': float(per_class['aAcc']),
                   'mAcc': float(np.nanmean(per_class['Acc']))}
        prompt = [v for r in results for v in r['prompt']]
        if prompt:
            metrics['prompt_mIoU'] = float(np.mean(prompt))
        names = self.classes or [str(i) for i in range(len(per_class['IoU']))]
        print_log('per-class IoU: ' + ', '.join(
            f'{n}={v:.4f}' for n, v in zip(names, per_class['IoU'])), logger='current')
        return metrics
