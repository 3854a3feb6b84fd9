"""tools/install/build_mmcv.sh picks CPU or CUDA ops from the host and keys its wheel cache by
mmcv, torch and CUDA versions (``--wheel-dir`` prints the folder; nothing is built here). The
host is faked: a stand-in PYTHON answers the script's torch query, a stand-in nvcc is the toolkit.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / 'tools/install/build_mmcv.sh'


@pytest.fixture()
def host(tmp_path):
    """A fake python printing $FAKE_FACTS ("torch_version torch_cuda gpu_arch") and a fake
    CUDA toolkit; returns a runner of the script."""
    python = tmp_path / 'python'
    python.write_text('#!/bin/sh\ncat >/dev/null\necho "$FAKE_FACTS"\n')
    python.chmod(0o755)
    toolkit = tmp_path / 'cuda'
    (toolkit / 'bin').mkdir(parents=True)
    (toolkit / 'bin/nvcc').write_text('#!/bin/sh\n')
    (toolkit / 'bin/nvcc').chmod(0o755)

    def run(facts, *args, python=python, cuda_home=toolkit, **env):
        full = {k: v for k, v in os.environ.items()
                if k not in ('ULLAVA_MMCV_CUDA', 'TORCH_CUDA_ARCH_LIST')}
        full.update(FAKE_FACTS=facts, CUDA_HOME=str(cuda_home), **env)
        return subprocess.run(['bash', str(SCRIPT), *args, str(python), str(tmp_path / 'wheels')],
                              env=full, capture_output=True, text=True, timeout=120)
    return run


@pytest.mark.parametrize('facts,cuda_home,env,key', [
    ('2.14.1 13.0 9.0', None, {}, 'mmcv2.1.0-torch2.14.1-cu130-sm90'),      # toolkit + H100/H200
    ('2.14.1 13.0 none', None, {}, 'mmcv2.1.0-torch2.14.1-cpu'),            # toolkit, no GPU
    ('2.14.1 13.0 9.0', '/nonexistent', {}, 'mmcv2.1.0-torch2.14.1-cpu'),   # GPU, no toolkit
    ('2.14.1 13.0 9.0', None, {'ULLAVA_MMCV_CUDA': '0'}, 'mmcv2.1.0-torch2.14.1-cpu'),
    ('2.15.0 12.8 8.0', None, {}, 'mmcv2.1.0-torch2.15.0-cu128-sm80'),      # another torch / CUDA
    ('2.14.1 13.0 none', None, {'ULLAVA_MMCV_CUDA': '1', 'TORCH_CUDA_ARCH_LIST': '9.0;8.0+PTX'},
     'mmcv2.1.0-torch2.14.1-cu130-sm80-90'),                               # a build host
])
def test_cache_folder_is_keyed_by_flavour(host, tmp_path, facts, cuda_home, env, key):
    extra = {} if cuda_home is None else dict(cuda_home=cuda_home)
    proc = host(facts, '--wheel-dir', **extra, **env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(tmp_path / 'wheels' / key)


@pytest.mark.parametrize('facts,env,message', [
    ('2.14.1 13.0 none', {'ULLAVA_MMCV_CUDA': '1'}, 'need TORCH_CUDA_ARCH_LIST'),
    ('2.14.1 none none', {'ULLAVA_MMCV_CUDA': '1', 'TORCH_CUDA_ARCH_LIST': '9.0'},
     'CPU-only torch'),
    ('2.14.1 13.0 9.0', {'ULLAVA_MMCV_CUDA': 'yes'}, 'must be 0, 1 or auto'),
])
def test_impossible_requests_fail_in_one_line(host, facts, env, message):
    proc = host(facts, '--wheel-dir', **env)
    assert proc.returncode == 1 and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_unkeyed_cpu_wheel_is_adopted_not_rebuilt(host, tmp_path):
    """A wheel the earlier, unkeyed script left in the cache root (always CPU ops, torch 2.14.1)
    moves into the CPU folder, and the script stops there instead of building."""
    old = tmp_path / 'wheels' / 'mmcv-2.1.0-cp311-cp311-linux_x86_64.whl'
    old.parent.mkdir()
    old.write_bytes(b'wheel')
    proc = host('2.14.1 13.0 none')
    assert proc.returncode == 0, proc.stderr
    assert 'cached wheel found' in proc.stdout
    assert (tmp_path / 'wheels/mmcv2.1.0-torch2.14.1-cpu' / old.name).read_bytes() == b'wheel'
    assert not old.exists()
    # a GPU host does not adopt it: it would build (not run here), so only ask for its folder
    gpu = host('2.14.1 13.0 9.0', '--wheel-dir')
    assert gpu.stdout.strip().endswith('-cu130-sm90')


def test_this_hosts_real_torch():
    """The venv's own torch answers the query (CPU ops on this machine, which has no GPU)."""
    proc = subprocess.run(['bash', str(SCRIPT), '--wheel-dir', sys.executable, '/tmp/unused'],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    import torch
    version = torch.__version__.split('+')[0]
    assert re.fullmatch(rf'/tmp/unused/mmcv2\.1\.0-torch{re.escape(version)}-(cpu|cu\d+-sm[\d-]+)',
                        proc.stdout.strip()), proc.stdout
