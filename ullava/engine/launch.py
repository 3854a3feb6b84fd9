"""What tools/train.py and tools/test.py share: config loading with clear errors, runner choice."""
from __future__ import annotations

import difflib
import functools
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from mmengine.config import Config, DictAction

from ullava.utils import UserError, install_compat

__all__ = ['DictAction', 'load_config', 'build_runner', 'cli_main']


def _missing_key(cfg: Any, dotted: str) -> str | None:
    """Return a one-line complaint if ``dotted`` names no existing config key."""
    node, walked = cfg, []
    for part in dotted.split('.'):
        if isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            where = '.'.join(walked) or '<top level>'
            options = list(node.keys()) if isinstance(node, dict) else []
            hint = difflib.get_close_matches(part, options, n=1)
            suggest = f"; did you mean '{'.'.join(walked + hint)}'?" if hint else ''
            return f"key '{part}' does not exist under {where}{suggest}"
        walked.append(part)
    return None


def _runner_keys() -> set[str]:
    """Top-level keys the Runner understands (``custom_hooks``...): these may be added."""
    import inspect

    from mmengine.runner import Runner
    return set(inspect.signature(Runner.__init__).parameters) - {'self'}


def load_config(path: str | os.PathLike, cfg_options: dict | None = None,
                allow_new_keys: Sequence[str] = ()) -> Config:
    """Read a config file, apply ``--cfg-options`` and refuse keys that do not exist.

    A new top-level key is accepted only if the Runner knows it (``custom_hooks``, ``strategy``...).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f'config file not found: {path}')
    cfg = Config.fromfile(str(path))
    allowed = set(allow_new_keys) | _runner_keys()
    for key in (cfg_options or {}):
        if key.split('.')[0] in allowed and key.split('.')[0] not in cfg:
            continue
        problem = _missing_key(cfg._cfg_dict, key)
        if problem:
            raise UserError(f'--cfg-options {key}: {problem} in {path}')
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def build_runner(cfg: Config):
    """Runner for plain training, FlexibleRunner when the config names a strategy (DeepSpeed)."""
    install_compat()
    import ullava.datasets  # noqa: F401  (the Runner finds collate functions only once imported)
    import torch
    if cfg.get('launcher', 'none') != 'none' and not torch.cuda.is_available() \
            and cfg.get('strategy') is None:
        # DDP on CPU: no device ids (MMEngine's default passes the local rank as a CUDA id)
        cfg.setdefault('model_wrapper_cfg', dict(type='MMDistributedDataParallel', device_ids=None,
                                                 broadcast_buffers=False))
    if cfg.get('strategy') is not None:
        from mmengine.runner import FlexibleRunner
        return FlexibleRunner.from_cfg(cfg)
    if 'runner_type' in cfg:
        from mmengine.registry import RUNNERS
        return RUNNERS.build(cfg)
    from mmengine.runner import Runner
    return Runner.from_cfg(cfg)


def _as_user_error(err: BaseException) -> str | None:
    """Map the errors a user's mistake raises deep in MMEngine to one line; None = a bug."""
    if isinstance(err, UserError):
        return str(err)
    text = str(err).strip("'\" ")
    if isinstance(err, KeyError) and 'registry' in text:
        # MMEngine: "Foo is not in the ullava::model registry. Please check ..."
        return text.split(' Please check')[0] + ' (check the spelling of `type`, or add the ' \
            'module that registers it to custom_imports)'
    if isinstance(err, FileNotFoundError):
        return f'file not found: {err.filename or text}'
    return None


def cli_main(main: Callable[[], Any]) -> Callable[[], None]:
    """Run a tool's main(); user mistakes end as one 'error:' line and exit code 2.

    Set ULLAVA_DEBUG=1 to see the full traceback instead.
    """
    @functools.wraps(main)
    def wrapper() -> None:
        try:
            main()
        except Exception as err:  # noqa: BLE001 - we re-raise whatever is not a user mistake
            message = _as_user_error(err)
            if message is None or os.environ.get('ULLAVA_DEBUG') == '1':
                raise
            print(f'error: {message}', file=sys.stderr)
            sys.exit(2)
    return wrapper
