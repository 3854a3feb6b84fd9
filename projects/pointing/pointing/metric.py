"""Pointing metrics: is each predicted point on a wanted object, and are they as many as the
objects?

* ``point_acc``: predicted points that lie inside one of the sample's target masks (the objects
  the question asks for) / all predicted points (two points on one object both count here;
  ``object_recall`` and the counting metrics see that);
* ``object_recall``: target objects with at least one predicted point inside / all targets;
* ``count_acc``: samples whose number of points equals the number of targets;
* ``count_mae``: mean absolute difference of those numbers.

Nothing is matched by order: a point is correct wherever it is on a target.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric

from ullava.evaluation.metrics._utils import get_field, to_tensor
from ullava.registry import METRICS


@METRICS.register_module()
class PointingMetric(BaseMetric):
    default_prefix = 'pointing'

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            masks = to_tensor(get_field(sample, 'gt_point_masks', 'PointingMetric')).bool()
            pred = get_field(sample, 'pred_points', 'PointingMetric', None)
            pred = torch.zeros(0, 2) if pred is None else to_tensor(pred).float().reshape(-1, 2)
            h, w = masks.shape[-2:]
            xy = pred.floor().long()
            inside = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
            hits = torch.zeros(len(pred), len(masks), dtype=torch.bool)  # point k on object j
            if inside.any() and len(masks):
                hits[inside] = masks[:, xy[inside, 1], xy[inside, 0]].T
            self.results.append(dict(points=len(pred), on_target=int(hits.any(1).sum()),
                                     targets=len(masks), found=int(hits.any(0).sum())))

    def compute_metrics(self, results: list) -> dict[str, float]:
        if not results:
            raise ValueError('PointingMetric: no samples were processed')
        total = {k: sum(r[k] for r in results) for k in ('points', 'on_target', 'targets', 'found')}
        diff = np.array([r['points'] - r['targets'] for r in results])
        return dict(point_acc=total['on_target'] / max(total['points'], 1),
                    object_recall=total['found'] / max(total['targets'], 1),
                    count_acc=float((diff == 0).mean()), count_mae=float(np.abs(diff).mean()))
