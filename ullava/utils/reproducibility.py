"""Bitwise-reproducible training on the CPU, and the random state a checkpoint must carry.

What makes two runs of one config differ in the last bits (measured, see docs/benchmarks.md,
"Exact resume"), and what removes it:

* ops that accumulate with atomics in thread order. The one that bit us: the backward of an
  integer-tensor index (``embeddings[prompt_to_image]``) is ``index_put_(accumulate=True)``, which
  PyTorch's CPU kernel runs in parallel with atomic float adds unless deterministic algorithms
  are on. Fix: ``torch.use_deterministic_algorithms(True)``.
* MKL choosing kernels by memory alignment. Fix: MKL's conditional numerical reproducibility
  mode (``MKL_CBWR=COMPATIBLE``), which MKL reads once, at its first call: we set it through
  MKL's own ``mkl_cbwr_set`` before the model is built, or tell the user to export it.
* the thread count: reductions are split per thread, so a run resumed with another number of
  threads is a different computation. Fix: a fixed ``env_cfg.num_threads``, stored in the
  checkpoint and compared on resume.
* random state: MMEngine reseeds but does not save the generators' state, so anything random
  after a resume (LoRA dropout, sampled generation) would replay another stream. Fix:
  :class:`~ullava.engine.hooks.RandomStateHook` saves and restores them.
"""
from __future__ import annotations

import ctypes
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmengine.logging import print_log

_MKL_CBWR_BRANCH = 1       # mkl_cbwr_get(MKL_CBWR_BRANCH): the code-branch setting
_MKL_CBWR_COMPATIBLE = 3   # MKL_CBWR_COMPATIBLE in mkl_service.h


def _mkl_service():
    """MKL's service functions inside libtorch_cpu (PyTorch links MKL statically), or None."""
    lib = Path(torch.__file__).parent / 'lib' / 'libtorch_cpu.so'
    try:
        handle = ctypes.CDLL(str(lib))
        get, set_ = handle.mkl_serv_cbwr_get, handle.mkl_serv_cbwr_set
    except (OSError, AttributeError):  # another platform, or a torch built without MKL
        return None
    get.restype = set_.restype = ctypes.c_int
    return get, set_


def mkl_reproducible() -> bool | None:
    """Whether MKL runs in its reproducible (COMPATIBLE) mode; None if this torch has no MKL."""
    service = _mkl_service()
    return None if service is None else service[0](_MKL_CBWR_BRANCH) == _MKL_CBWR_COMPATIBLE


def enable_mkl_reproducible() -> bool | None:
    """Switch MKL to COMPATIBLE mode; MKL accepts it only before its first call (False then)."""
    service = _mkl_service()
    if service is None:
        return None
    os.environ.setdefault('MKL_CBWR', 'COMPATIBLE')  # for the processes this one starts
    return service[1](_MKL_CBWR_COMPATIBLE) == 0 or mkl_reproducible()


def deterministic_requested(cfg: Any) -> bool:
    return bool((cfg.get('randomness') or {}).get('deterministic', False))


def prepare_deterministic(cfg: Any) -> None:
    """Before the Runner is built (MKL must not have run yet): thread count and MKL mode.

    Does nothing unless ``randomness.deterministic`` is on.
    """
    if not deterministic_requested(cfg):
        return
    threads = (cfg.get('env_cfg') or {}).get('num_threads')
    if threads:
        torch.set_num_threads(int(threads))
    if enable_mkl_reproducible() is False:
        print_log('randomness.deterministic: MKL had already run, so its reproducible mode could '
                  'not be switched on; export MKL_CBWR=COMPATIBLE before starting for bitwise '
                  'identical runs', logger='current', level='WARNING')


def use_deterministic_kernels() -> None:
    """``torch.use_deterministic_algorithms(True)``; on CUDA warn-only.

    On CUDA some ops (bilinear upsampling's backward: SAM's post-processing) have no deterministic
    kernel and would raise, so there they only warn. Torch's other side effect is kept on purpose:
    every new empty tensor is filled with NaN, so a read of uninitialised memory shows up as NaN
    every time instead of as garbage now and then (it found GroundingDINO's ``level_embed`` left
    uninitialised without a checkpoint: ``GroundingDetector._init_without_checkpoint``).
    """
    if torch.cuda.is_available():
        os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')
    torch.use_deterministic_algorithms(True, warn_only=torch.cuda.is_available())


def finish_deterministic(cfg: Any) -> None:
    """After the Runner is built (MMEngine turned on deterministic algorithms with their side
    effects): :func:`use_deterministic_kernels`."""
    if deterministic_requested(cfg):
        use_deterministic_kernels()


def random_states() -> dict:
    """The state of every generator training may draw from (Python, NumPy, torch CPU/CUDA)."""
    numpy_state = np.random.get_state(legacy=False)  # plain types: loads with weights_only
    numpy_state['state']['key'] = numpy_state['state']['key'].tolist()
    states = dict(python=random.getstate(), numpy=numpy_state, torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states['cuda'] = torch.cuda.get_rng_state_all()
    return states


def restore_random_states(states: dict) -> None:
    random.setstate(states['python'])
    numpy_state = dict(states['numpy'])
    numpy_state['state'] = dict(numpy_state['state'],
                                key=np.asarray(numpy_state['state']['key'], dtype=np.uint32))
    np.random.set_state(numpy_state)
    torch.set_rng_state(states['torch'])
    if 'cuda' in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states['cuda'])
