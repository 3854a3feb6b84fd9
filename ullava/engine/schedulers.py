"""Warm-up and cosine schedulers whose bounds are fractions of epochs, safe on short epochs.

u-LLaVA trains with transformers' Trainer: ``warmup_ratio=0.03`` of all steps, then cosine decay.
In MMEngine that is ``LinearLR`` then ``CosineAnnealingLR`` with ``by_epoch=True`` and
``convert_to_iter_based=True``, bounds ``0 .. 0.03 * max_epochs .. max_epochs``. MMEngine
converts a bound with ``int(bound * epoch_length)``: on a short epoch (a small dataset, a
smoke test) 3 % of it is 0 iterations and building the warm-up fails with "end should be larger
than begin, but got begin=0, end=0". These two classes convert instead as transformers does
(``ceil(warmup_ratio * steps)``, so the warm-up has the reference's length) and keep every
span usable; everything else is MMEngine's own scheduler. Written here because MMEngine has no
option for the rounding.
"""
from __future__ import annotations

import math

from mmengine.optim.scheduler import CosineAnnealingLR, LinearLR
from mmengine.optim.scheduler.param_scheduler import INF

from ullava.registry import PARAM_SCHEDULERS

__all__ = ['WarmupRatioLinearLR', 'WarmupRatioCosineAnnealingLR', 'epoch_bounds_to_iters']


def _to_iters(epochs: float, epoch_length: int) -> int:
    # round() first: 0.03 * 5 * 100 is 15.000000000000002 in floating point, which is 15 steps
    return math.ceil(round(epochs * epoch_length, 6))


def epoch_bounds_to_iters(begin: float, end: float, epoch_length: int) -> tuple[int, float]:
    """``[begin, end)`` in (fractional) epochs -> iterations.

    A bound becomes ``ceil(bound * epoch_length)``, as transformers rounds its warm-up, and a
    bound above 0 is at least 2 iterations: MMEngine's LinearLR reaches its end factor on its
    last iteration, so a warm-up needs two (start low, end at the peak). Consecutive schedulers
    share their bound (same epochs -> same iteration) whatever the rounding. ``end`` is at least
    ``begin + 1``: when the whole run is shorter than that, the scheduler just never starts.
    """
    if epoch_length is None or epoch_length <= 0:
        raise ValueError(f'epoch_length must be a positive integer, got {epoch_length}')
    first = 0 if begin <= 0 else max(2, _to_iters(begin, epoch_length))
    if end == INF:
        return first, INF
    return first, max(first + 1, 2, _to_iters(end, epoch_length))


class _EpochRatioBounds:
    """Overrides MMEngine's ``build_iter_from_epoch`` (what ``convert_to_iter_based`` calls)."""

    @classmethod
    def build_iter_from_epoch(cls, *args, begin: float = 0, end: float = INF,
                              by_epoch: bool = True, epoch_length: int | None = None, **kwargs):
        if not by_epoch:
            raise ValueError(f'{cls.__name__}: convert_to_iter_based needs by_epoch=True bounds')
        begin, end = epoch_bounds_to_iters(begin, end, epoch_length)
        return cls(*args, begin=begin, end=end, by_epoch=False, **kwargs)


@PARAM_SCHEDULERS.register_module()
class WarmupRatioLinearLR(_EpochRatioBounds, LinearLR):
    """MMEngine's ``LinearLR`` with short-epoch-safe bounds (see :func:`epoch_bounds_to_iters`)."""


@PARAM_SCHEDULERS.register_module()
class WarmupRatioCosineAnnealingLR(_EpochRatioBounds, CosineAnnealingLR):
    """MMEngine's ``CosineAnnealingLR`` with the same bounds as :class:`WarmupRatioLinearLR`."""
