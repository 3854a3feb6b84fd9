"""A mixture of datasets with sampling ratios (u-LLaVA's dataset mixing as an MMEngine dataset)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from torch.utils.data import Dataset

from ullava.registry import DATASETS
from ullava.utils import UserError


@DATASETS.register_module()
class MixtureDataset(Dataset):
    """Concatenate datasets, optionally drawing them in given proportions.

    Args:
        datasets: dataset configs (or datasets). Each may have its own ``portion`` (the fraction
            of that dataset used) and its own pipeline (image/video token length per dataset).
        ratios: relative sampling weights, one per dataset; None concatenates as is.
        length: samples per epoch when ``ratios`` is given (default: the summed lengths).
            A dataset asked for more samples than it has is repeated; the draw is seeded.
    """

    def __init__(self, datasets: Sequence, ratios: Sequence[float] | None = None,
                 length: int | None = None, seed: int = 0) -> None:
        self.datasets = [DATASETS.build(d) if isinstance(d, dict) else d for d in datasets]
        sizes = [len(d) for d in self.datasets]
        if ratios is None:
            self.index = [(k, j) for k, n in enumerate(sizes) for j in range(n)]
        else:
            if len(ratios) != len(self.datasets) or min(ratios) < 0 or sum(ratios) <= 0:
                raise UserError(f'MixtureDataset: need one non-negative ratio per dataset, got {ratios}')
            total = length or sum(sizes)
            counts = np.floor(np.asarray(ratios) / sum(ratios) * total).astype(int)
            rng = np.random.default_rng(seed)
            self.index = []
            for k, (n, want) in enumerate(zip(sizes, counts)):
                if want and not n:
                    raise UserError(f'MixtureDataset: dataset {k} is empty but has ratio {ratios[k]}')
                picks = np.concatenate([rng.permutation(n) for _ in range(-(-want // n))])[:want] \
                    if want else []
                self.index += [(k, int(j)) for j in picks]

    @property
    def metainfo(self) -> dict:
        """Well defined for a mixture of different datasets (not the last one's ``classes``):

        * ``datasets``: one dict per dataset: its own metainfo plus ``task`` and ``ann_file``;
        * ``tasks``: the sorted task names;
        * ``classes_by_task``: a task's class list, for each task whose datasets have one and
          agree on it (:class:`~ullava.tasks.TaskMetric` hands it to that task's metric);
        * ``classes``: only when every dataset that has a class list has the same one.
        """
        per_dataset = [dict(getattr(d, 'metainfo', None) or {}, task=getattr(d, 'task', ''),
                            ann_file=getattr(d, 'ann_file', '')) for d in self.datasets]
        lists_by_task: dict[str, set] = {}
        for meta in per_dataset:
            if meta.get('classes') is not None:
                lists_by_task.setdefault(meta['task'], set()).add(tuple(meta['classes']))
        out = dict(datasets=per_dataset, tasks=sorted({m['task'] for m in per_dataset}),
                   classes_by_task={task: list(next(iter(lists)))
                                    for task, lists in lists_by_task.items() if len(lists) == 1})
        every_list = set().union(*lists_by_task.values()) if lists_by_task else set()
        if len(every_list) == 1:
            out['classes'] = list(next(iter(every_list)))
        return out

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, idx: int):
        k, j = self.index[idx]
        return self.datasets[k][j]
