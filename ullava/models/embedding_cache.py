"""Embeddings of a frozen image encoder, computed once per input and reused.

A frozen encoder's output is a function of its weights and of its input tensor, so those two are
the key: a fingerprint of the weights (sha1 of every parameter and buffer) and a sha1 of the
input's bytes, shape and dtype. A changed image, a changed transform (another size, resize,
normalisation or padding) or another weight file gives another key, so an entry is never served
stale. The fingerprint is recomputed whenever a parameter changed in place (``load_state_dict``,
an optimiser step: tensor version counters) or moved (``.to``), and an encoder that trains, or that
has a module whose output is random in training mode, is never cached.

Entries live in memory (shared by every cache of one process with the same ``cache_dir``, so the
LLM's vision tower and SAM's encoder with the same weights and inputs share them) and, with a
``cache_dir``, on disk: one file per entry under ``cache_dir/<fingerprint>/``, written atomically,
so a second run (another process: training, then ``tools/test.py``, then the next ``make demo``)
starts warm. Written here because no library we use caches module outputs by content.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from torch import nn

# cache_dir (or None) -> key -> embedding (CPU): one store per folder and process
_STORES: dict[str | None, dict[str, torch.Tensor]] = {}


def _tensor_digest(tensor: torch.Tensor, hasher) -> None:
    tensor = tensor.detach().cpu().contiguous()
    hasher.update(f'{tuple(tensor.shape)}{tensor.dtype}'.encode())
    hasher.update(tensor.view(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b'')


def _stochastic_in_training(module: nn.Module) -> bool:
    """A submodule whose output is random or batch-dependent in training mode."""
    for m in module.modules():
        if not m.training:
            continue
        if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0:
            return True
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            return True
        if type(m).__name__ == 'DropPath' and getattr(m, 'drop_prob', 0) > 0:
            return True
    return False


class EmbeddingCache:
    """Call ``cache(encoder, images)`` instead of ``encoder(images)``.

    Args:
        cache_dir: a folder for the entries (kept between runs); None: memory only.
        max_memory_items: entries kept in memory per folder (the oldest leave first; a disk
            entry is read back when needed again).
    """

    def __init__(self, cache_dir: str | os.PathLike | None = None,
                 max_memory_items: int = 50_000) -> None:
        self.cache_dir = None if cache_dir is None else str(cache_dir)
        self.max_memory_items = max_memory_items
        self.store = _STORES.setdefault(self.cache_dir, {})
        self._fingerprints: dict[int, tuple[tuple, str]] = {}
        self.hits = self.misses = 0

    def fingerprint(self, encoder: nn.Module) -> str:
        """sha1 of the encoder's parameters and buffers, recomputed only after they changed."""
        tensors = [*encoder.parameters(), *encoder.buffers()]
        state = tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in tensors)
        known = self._fingerprints.get(id(encoder))
        if known is not None and known[0] == state:
            return known[1]
        hasher = hashlib.sha1(type(encoder).__qualname__.encode())
        for name, tensor in encoder.state_dict().items():
            hasher.update(name.encode())
            _tensor_digest(tensor, hasher)
        digest = hasher.hexdigest()
        self._fingerprints[id(encoder)] = (state, digest)
        return digest

    @staticmethod
    def cacheable(encoder: nn.Module) -> bool:
        """Frozen (no parameter requires grad) and deterministic in its current mode."""
        return not any(p.requires_grad for p in encoder.parameters()) \
            and not _stochastic_in_training(encoder)

    def _path(self, fingerprint: str, key: str) -> Path:
        return Path(self.cache_dir) / fingerprint[:16] / f'{key}.pt'

    def _lookup(self, fingerprint: str, key: str) -> torch.Tensor | None:
        found = self.store.get(key)
        if found is None and self.cache_dir is not None:
            path = self._path(fingerprint, key)
            if path.is_file():
                try:
                    found = torch.load(path, map_location='cpu', weights_only=True)
                except Exception:  # a truncated file from a killed run: recompute it
                    found = None
                if found is not None:
                    self._remember(key, found)
        return found

    def _remember(self, key: str, value: torch.Tensor) -> None:
        if len(self.store) >= self.max_memory_items:
            self.store.pop(next(iter(self.store)))
        self.store[key] = value

    def _save(self, fingerprint: str, key: str, value: torch.Tensor) -> None:
        path = self._path(fingerprint, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
        torch.save(value, tmp)
        os.replace(tmp, path)  # atomic: a reader sees the whole entry or none

    def __call__(self, encoder: nn.Module, images: torch.Tensor, fn=None,
                 tag: str = '') -> torch.Tensor:
        """``encoder(images)`` [B,...] -> [B,...], the rows found in the cache not recomputed.

        ``fn(images)`` replaces ``encoder(images)`` where the output is not the module's own
        (CLIP: one hidden layer); ``tag`` then names what ``fn`` computes (it joins the key).
        """
        fn = fn or encoder
        if not self.cacheable(encoder) or not len(images):
            return fn(images)
        fingerprint = self.fingerprint(encoder)
        keys = []
        for image in images:
            hasher = hashlib.sha1((fingerprint + tag).encode())
            _tensor_digest(image, hasher)
            keys.append(hasher.hexdigest())
        found = [self._lookup(fingerprint, k) for k in keys]
        todo = [i for i, f in enumerate(found) if f is None]
        self.hits += len(keys) - len(todo)
        self.misses += len(todo)
        if todo:
            with torch.no_grad():
                fresh = fn(images[todo])
            for i, value in zip(todo, fresh):
                value = value.detach().cpu().clone()
                found[i] = value
                self._remember(keys[i], value)
                if self.cache_dir is not None:
                    self._save(fingerprint, keys[i], value)
        device = images.device
        return torch.stack([f.to(device) for f in found])


def build_embedding_cache(cfg: dict | EmbeddingCache | None) -> EmbeddingCache | None:
    """None, an :class:`EmbeddingCache`, or its kwargs (``dict(cache_dir=...)``)."""
    if cfg is None or isinstance(cfg, EmbeddingCache):
        return cfg
    return EmbeddingCache(**cfg)
