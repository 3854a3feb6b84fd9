"""Every config under configs/ builds its Runner and runs, through tools/train.py or
tools/test.py as a user runs them: a training config one iteration, an evaluation config a few
samples. The 7B configs run against tiny stand-in weights and a miniature data root laid out as
the real ones (stand_ins.py, mini_data_root.py), found through ULLAVA_CKPT_DIR and
ULLAVA_DATA_ROOT only; the demo configs against the demo world. ``_base_`` files are fragments.

The only --cfg-options are the ones that make a run small (one epoch, no worker processes, a
few prompts or tokens); each is given only where it changes the config's value.
"""
from __future__ import annotations

import gc
import json
import os
import runpy
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / 'configs').rglob('*.py')
                 if '_base_' not in p.parts)


def load(path: str):
    from mmengine.config import Config
    return Config.fromfile(str(ROOT / path))


def is_training(cfg) -> bool:
    return cfg.get('train_dataloader') is not None


def small_run_options(cfg) -> dict:
    """Key -> value that shrinks the run of ``cfg``, for the keys whose value it changes."""
    want: dict = {}
    if is_training(cfg):
        loop = cfg.train_cfg
        want['train_cfg.max_iters' if 'max_iters' in loop else 'train_cfg.max_epochs'] = 1
        want.update({'train_dataloader.num_workers': 0,
                     'train_dataloader.persistent_workers': False, 'load_from': None})
        if cfg.train_dataloader.dataset.type == 'MixtureDataset' and \
                cfg.train_dataloader.dataset.get('ratios'):
            want['train_dataloader.batch_size'] = 2  # a drawn mixture: any batch is one step
    else:
        want.update({'test_dataloader.batch_size': 2, 'test_dataloader.num_workers': 0})
        from ullava.registry import DATASETS
        from ullava.tasks.semseg import SemanticSegDataset
        dataset = DATASETS.get(cfg.test_dataloader.dataset.type)
        if issubclass(dataset, SemanticSegDataset):  # every class of the dataset: a few will do
            want['test_dataloader.dataset.max_test_prompts'] = 3
    if cfg.model.get('predict_protocol') == 'generate' and not is_training(cfg):
        want['model.generation.max_new_tokens'] = 4
    return {k: v for k, v in want.items() if _get(cfg, k, object()) != v}


def _get(cfg, dotted: str, default):
    node = cfg
    for part in dotted.split('.'):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def as_args(options: dict) -> list[str]:
    return ['--cfg-options', *(f'{k}={v}' for k, v in options.items())] if options else []


def run_in_process(tool: str, args: list[str], capsys) -> str | None:
    """``python tools/<tool> ARGS`` in this process (no interpreter start-up per config).
    None if it succeeded, else the ``error:`` line it printed (a user error exits 2)."""
    argv = sys.argv
    sys.argv = [tool, *args]
    # MMEngine's BaseDataset calls gc.collect() after serialising each dataset; in this
    # long-lived process that walks every object the earlier tests left (about 1 s a dataset,
    # 11 in stage II). Frozen survivors cost nothing, as in the tool's own fresh process.
    gc.collect()
    gc.freeze()
    try:
        runpy.run_path(str(ROOT / 'tools' / tool), run_name='__main__')
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            lines = capsys.readouterr().err.strip().splitlines() or ['(no message)']
            return next((line for line in lines if line.startswith('error:')), lines[-1])
    finally:
        gc.unfreeze()
        sys.argv = argv
    return None


def run_distributed(args: list[str], env: dict) -> None:
    """A DeepSpeed (FlexibleRunner) config needs a process group: one process under torchrun."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    proc = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=1',
         f'--master_port={port}', 'tools/train.py', *args, '--launcher', 'pytorch'],
        cwd=ROOT, env=dict(os.environ, **env, OMP_NUM_THREADS='1'), capture_output=True,
        text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]


def assert_one_iteration(work_dir: Path) -> None:
    """The run saved its last checkpoint after exactly one training iteration."""
    last = Path((work_dir / 'last_checkpoint').read_text().strip())
    assert last.name in ('iter_1.pth', 'epoch_1.pth'), sorted(p.name for p in work_dir.iterdir())
    if last.is_file():  # (DeepSpeed writes a folder)
        assert torch.load(last, map_location='cpu', weights_only=False)['meta']['iter'] == 1


@pytest.fixture(scope='session')
def eval_checkpoint(ckpt_dir, data_root, tmp_path_factory) -> Path:
    """A checkpoint of the 7B evaluation model, built from the stand-in weights."""
    from mmengine.registry import init_default_scope

    from ullava.registry import MODELS
    from ullava.utils import install_compat
    with pytest.MonkeyPatch.context() as env:
        env.setenv('ULLAVA_CKPT_DIR', str(ckpt_dir))
        env.setenv('ULLAVA_DATA_ROOT', str(data_root))
        cfg = load('configs/_base_/evaluation/ullava_7b_res.py')
    install_compat()
    init_default_scope('ullava')
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp('eval_ckpt') / 'ullava_7b.pth'
    torch.save(dict(meta={}, state_dict=MODELS.build(cfg.model).state_dict()), path)
    return path


@pytest.mark.parametrize('path', CONFIGS)
def test_config_builds_its_runner_and_runs(path, ullava_env, tmp_path, capsys, request,
                                           monkeypatch):
    if 'ULLAVA_MINI_DIR' in (ROOT / path).read_text():  # the demo's MobileSAM and its cache
        monkeypatch.setenv('ULLAVA_MINI_DIR', str(request.getfixturevalue('mobile_sam_dir')))
        monkeypatch.setenv('ULLAVA_EMBEDDING_CACHE', str(tmp_path / 'embedding_cache'))
    cfg = load(path)
    work_dir = tmp_path / 'work'
    args = [path, '--work-dir', str(work_dir), *as_args(small_run_options(cfg))]
    if cfg.model.get('llm', {}).get('load_in_4bit') and not torch.cuda.is_available():
        # QLoRA quantises with bitsandbytes on a CUDA GPU: without one, one clear line
        error = run_in_process('train.py', args, capsys)
        assert error is not None and 'needs a CUDA GPU' in error, error
    elif not is_training(cfg):
        checkpoint = str(request.getfixturevalue('eval_checkpoint'))
        error = run_in_process('test.py', [path, checkpoint, *args[1:]], capsys)
        assert error is None, error
        metrics = json.loads((work_dir / 'metrics.json').read_text())
        assert any(isinstance(v, (int, float)) for v in metrics.values()), metrics
    else:
        if cfg.get('strategy') is not None:
            run_distributed(args, ullava_env)
        else:
            error = run_in_process('train.py', args, capsys)
            assert error is None, error
        assert_one_iteration(work_dir)
