"""Fill the frozen encoders' embedding caches before training (and testing) starts.

The cache fills itself on first use anyway; this hook does it up front, in batches, once per
distinct image or clip of the datasets, with progress lines (``embedding cache: n/N``), so the
first epoch is not several times slower than the rest and a run's time per iteration is steady.
"""
from __future__ import annotations

import time

import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log

from ullava.registry import HOOKS


def _leaf_datasets(dataset) -> list:
    inner = getattr(dataset, 'datasets', None)
    if inner is not None:
        return [leaf for d in inner for leaf in _leaf_datasets(d)]
    inner = getattr(dataset, 'dataset', None)  # wrappers (ConcatDataset, RepeatDataset, ...)
    return _leaf_datasets(inner) if inner is not None else [dataset]


def cached_modules(model: torch.nn.Module) -> list:
    """Submodules with an embedding cache and a ``warm_cache(inputs)`` method."""
    return [m for m in model.modules()
            if getattr(m, 'embedding_cache', None) is not None and hasattr(m, 'warm_cache')]


def warm_embedding_caches(model: torch.nn.Module, dataset, batch_size: int = 16,
                          log_every: int = 20) -> int:
    """Run every distinct image / clip of ``dataset`` (a MixtureDataset or any dataset) through
    the pipeline and the cached encoders once; returns the number of media warmed."""
    from ullava.datasets import ullava_collate
    modules = cached_modules(model)
    if not modules:
        return 0
    todo, seen = [], set()
    for leaf in _leaf_datasets(dataset):
        for i in range(len(leaf)):
            info = leaf.get_data_info(i)
            media = info.get('img_path') or info.get('video_path')
            # once per file: the datasets of one world share their images (RES, REC, VQA,
            # captions); a dataset whose pipeline differs fills its own entries when first used
            if media is not None and media not in seen:
                seen.add(media)
                todo.append((leaf, i))
    start, total = time.time(), len(todo)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for b, first in enumerate(range(0, total, batch_size)):
            batch = ullava_collate([leaf[i] for leaf, i in todo[first:first + batch_size]])
            inputs = model.data_preprocessor(batch, False)['inputs']
            for module in modules:
                module.warm_cache(inputs)
            done = min(first + batch_size, total)
            if b % log_every == 0 or done == total:
                print_log(f'embedding cache: {done}/{total} images and clips '
                          f'({time.time() - start:.0f} s)', logger='current')
    model.train(was_training)
    return total


@HOOKS.register_module()
class EmbeddingCacheHook(Hook):
    """Warm the embedding caches on the training (``before_train``) and test (``before_test``)
    data. A no-op for models without a cached encoder."""

    priority = 'LOW'

    def __init__(self, batch_size: int = 16, on_train: bool = True, on_test: bool = True) -> None:
        self.batch_size, self.on_train, self.on_test = batch_size, on_train, on_test

    @staticmethod
    def _model(runner):
        model = runner.model
        return getattr(model, 'module', model)

    def before_train(self, runner) -> None:
        if self.on_train:
            warm_embedding_caches(self._model(runner), runner.train_dataloader.dataset,
                                  self.batch_size)

    def before_test(self, runner) -> None:
        if self.on_test:
            warm_embedding_caches(self._model(runner), runner.test_dataloader.dataset,
                                  self.batch_size)
