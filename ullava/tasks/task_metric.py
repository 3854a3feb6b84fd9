"""Route each task's samples to that task's metric when one test set mixes several tasks."""
from __future__ import annotations

from typing import Sequence

from mmengine.evaluator import BaseMetric

from ullava.registry import METRICS


@METRICS.register_module()
class TaskMetric(BaseMetric):
    """Wrap ``metric`` so it sees only samples whose ``task`` is ``task``; keys become ``task/key``."""

    def __init__(self, task: str, metric: dict, **kwargs) -> None:
        super().__init__(prefix=task, **kwargs)
        self.task = task
        self.metric = METRICS.build(metric)

    @property
    def dataset_meta(self):
        return self._dataset_meta

    @dataset_meta.setter
    def dataset_meta(self, meta) -> None:
        self._dataset_meta = meta
        self.metric.dataset_meta = self._task_meta(meta)

    def _task_meta(self, meta: dict | None) -> dict | None:
        """A mixture's metainfo seen from this task: ``classes`` is this task's class list
        (``classes_by_task``), absent when the task has none or its datasets disagree."""
        if not meta or 'classes_by_task' not in meta:
            return meta
        meta = dict(meta)
        meta.pop('classes', None)
        if self.task in meta['classes_by_task']:
            meta['classes'] = meta['classes_by_task'][self.task]
        return meta

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        mine = [s for s in data_samples if s.get('task') == self.task]
        if mine:
            self.metric.results = self.results
            self.metric.process(data_batch, mine)

    def compute_metrics(self, results: list) -> dict:
        return self.metric.compute_metrics(results) if results else {}
