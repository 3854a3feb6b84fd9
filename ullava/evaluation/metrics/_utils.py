"""Helpers shared by the metrics: read a field from a data sample, convert arrays."""
from typing import Any

import numpy as np
import torch

_MISSING = object()


def get_field(sample: Any, key: str, metric: str, default: Any = _MISSING) -> Any:
    """Return ``sample[key]``; a missing key raises a KeyError naming the metric.

    MMEngine hands metrics plain dicts, but a raw ``DataSample`` (attribute access)
    is accepted too, so the metrics can be called directly in scripts.
    """
    if isinstance(sample, dict):
        if key in sample:
            return sample[key]
    elif hasattr(sample, key):
        return getattr(sample, key)
    if default is not _MISSING:
        return default
    raise KeyError(f'{metric}: data sample has no {key!r} (keys: {_keys(sample)})')


def has_field(sample: Any, key: str) -> bool:
    return key in sample if isinstance(sample, dict) else hasattr(sample, key)


def _keys(sample: Any) -> list:
    if isinstance(sample, dict):
        return sorted(sample)
    keys = getattr(sample, 'keys', None)
    return sorted(keys()) if callable(keys) else []


def to_numpy(x: Any, dtype: Any = None) -> np.ndarray:
    """Tensor / ndarray / sequence -> ndarray on CPU (optionally cast)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    return x.astype(dtype, copy=False) if dtype is not None else x


def to_tensor(x: Any, dtype: torch.dtype = None) -> torch.Tensor:
    """Tensor / ndarray / sequence -> CPU tensor (optionally cast)."""
    t = x.detach().cpu() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    return t.to(dtype) if dtype is not None else t


def check_same_shape(pred: Any, gt: Any, metric: str, pred_key: str, gt_key: str) -> None:
    if tuple(pred.shape) != tuple(gt.shape):
        raise ValueError(f'{metric}: {pred_key} has shape {tuple(pred.shape)} but '
                         f'{gt_key} has shape {tuple(gt.shape)}')


def match_to_targets(pred: torch.Tensor, num_targets: int) -> torch.Tensor:
    """The k-th prediction for the k-th target: ``pred`` [k,...] cut or zero-padded to
    ``num_targets``. The model gives one output per token it generated, never padded to the
    targets; here a missing output becomes an empty (zero) one, a miss, and outputs beyond the
    targets are dropped (metrics that report them count ``len(pred) - num_targets``)."""
    out = pred.new_zeros((num_targets, *pred.shape[1:]))
    n = min(len(pred), num_targets)
    out[:n] = pred[:n]
    return out
