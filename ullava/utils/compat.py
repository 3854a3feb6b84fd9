"""Compatibility fixes for ullava's stack, in one place (see docs/install.md).

1. torch >= 2.6 loads checkpoints with ``weights_only=True``. MMEngine's own
   resume files pickle a ``HistoryBuffer`` whose bound methods need
   ``builtins.getattr`` -- a global we must never allow for files of unknown
   origin. Trust boundary: a checkpoint inside a ullava work dir (a folder that
   holds the ``.ullava_work_dir`` marker written by ``tools/train.py``) was
   written by ullava and may be unpickled; anything else loads with
   ``weights_only=True`` (or comes as safetensors), and we say so when it fails.
2. MMEngine's local file backend writes checkpoints in place: a kill during
   ``torch.save`` leaves a truncated ``iter_N.pth`` that a later ``--resume``
   picks up. Our local backend writes to a temporary file in the same folder,
   fsyncs it and renames it over the target (atomic on POSIX).
3. On a machine without CUDA, MMEngine's ``launcher='pytorch'`` calls
   ``torch.cuda.set_device``. Starting the gloo process group before the
   runner is built makes the runner skip its own set-up.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .errors import UserError

WORK_DIR_MARKER = '.ullava_work_dir'
_INSTALLED = False


def mark_work_dir(work_dir: str | os.PathLike) -> None:
    """Declare ``work_dir`` a ullava work dir: checkpoints written there are trusted."""
    path = Path(work_dir)
    path.mkdir(parents=True, exist_ok=True)
    (path / WORK_DIR_MARKER).write_text('checkpoints in this folder were written by ullava\n')


def is_trusted_checkpoint(filename: str | os.PathLike) -> bool:
    if os.environ.get('ULLAVA_TRUST_CHECKPOINTS') == '1':
        return True
    return (Path(filename).resolve().parent / WORK_DIR_MARKER).is_file()


def load_external_checkpoint(filename: str | os.PathLike, map_location: Any = 'cpu') -> Any:
    """Load a weight file from outside ullava: safetensors, or torch with weights_only=True."""
    path = Path(filename)
    if not path.is_file():
        raise UserError(f'checkpoint not found: {path}')
    if path.suffix == '.safetensors':
        from safetensors.torch import load_file
        return load_file(str(path), device=str(map_location))
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # pickle.UnpicklingError and friends
        raise UserError(
            f'{path} holds Python objects beyond tensors and is not in a ullava work dir, so it '
            f'was not unpickled (weights_only=True). Convert it to a plain state dict or '
            f'safetensors; if you trust its source, set ULLAVA_TRUST_CHECKPOINTS=1. '
            f'({type(err).__name__}: {str(err).splitlines()[0][:200]})') from None


def load_from_local_trusted(filename: str, map_location: Any = None) -> Any:
    """MMEngine's local-file checkpoint loader, with ullava's trust boundary."""
    if not os.path.isfile(filename):
        raise UserError(f'checkpoint not found: {filename}')
    if is_trusted_checkpoint(filename):
        return torch.load(filename, map_location=map_location, weights_only=False)
    return load_external_checkpoint(filename, map_location)


def _atomic_local_backend():
    from mmengine.fileio.backends import LocalBackend

    class AtomicLocalBackend(LocalBackend):
        """LocalBackend whose ``put`` is atomic: write a temp file, fsync, rename."""

        def put(self, obj: bytes, filepath) -> None:
            path = Path(filepath)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f'.{path.name}.tmp-{os.getpid()}')
            try:
                with open(tmp, 'wb') as f:
                    f.write(obj)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)

    return AtomicLocalBackend


def install_compat() -> None:
    """Install the fixes above into MMEngine. Idempotent."""
    global _INSTALLED
    if _INSTALLED:
        return
    from mmengine.fileio import register_backend
    from mmengine.fileio.io import backend_instances
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes='', force=True)(load_from_local_trusted)
    register_backend('local', _atomic_local_backend(), force=True, prefixes='')
    backend_instances.clear()  # drop LocalBackend instances cached before us
    _INSTALLED = True


def maybe_init_cpu_distributed(launcher: str) -> None:
    """Start a gloo process group for ``launcher='pytorch'`` when CUDA is absent."""
    if launcher == 'none' or torch.cuda.is_available():
        return
    import torch.distributed as dist
    if dist.is_available() and not dist.is_initialized():
        if launcher != 'pytorch':
            raise UserError(f'launcher {launcher!r} needs CUDA here; use --launcher pytorch (torchrun)')
        dist.init_process_group(backend='gloo')
