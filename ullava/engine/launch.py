"""What the tools share: config loading with clear errors, ``--cfg-options`` rules, runner choice
and a console that stays quiet until the run starts.

``--cfg-options KEY=VALUE`` (see :data:`CFG_OPTIONS_HELP`) merges as MMEngine's
``Config.merge_from_dict`` does, with three checks MMEngine does not make:

* the top-level key must be one something acts on (a Runner argument, a key the Runner reads
  from the config, or one the tool reads). The other top-level names of a config file are its
  variables (``llm_path``, ``data_root``...): MMEngine substituted them where the file uses them
  when it read the file, so overriding them changes nothing -- refused, naming what to set;
* a NEW key (absent from its parent) whose name is close to an existing sibling is taken for a
  typo: ``difflib`` similarity >= :data:`TYPO_CUTOFF` (``max_iter`` next to ``max_iters``);
  ``+KEY=VALUE`` adds it anyway (Hydra's spelling for "add a new key");
* a section that is ``None`` (``model.lora`` with LoRA off) takes keys as an empty dict would.
"""
from __future__ import annotations

import difflib
import functools
import inspect
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from mmengine.config import Config, ConfigDict, DictAction

from ullava.utils import UserError, install_compat

__all__ = ['CFG_OPTIONS_HELP', 'DictAction', 'StartupLog', 'add_cfg_options', 'apply_amp',
           'build_runner', 'cli_main', 'load_config']

TYPO_CUTOFF = 0.8
# Top-level keys MMEngine 0.10.7's Runner / FlexibleRunner read from ``cfg`` rather than as
# ``__init__`` arguments (runner.py, _flexible_runner.py), and the one build_runner reads.
CFG_READ_KEYS = frozenset({'model_wrapper_cfg', 'sync_bn', 'find_unused_parameters', 'compile',
                           'activation_checkpointing', 'efficient_conv_bn_eval',
                           'init_weights_for_test_or_val', 'runner_type'})
# MMEngine's own pattern for ``{{$VAR:default}}`` (Config._substitute_env_variables)
_ENV_VAR = re.compile(r'\{\{[\'\"]?\s*\$(\w+)\s*\:\s*(\S*?)\s*[\'\"]?\}\}')

CFG_OPTIONS_HELP = (
    'override config keys: KEY=VALUE, KEY a dotted path (train_cfg.max_iters=10, '
    'model.generation.top_p=0.9, test_evaluator.0.metric.type=...). New keys are merged as '
    'MMEngine merges them, and a None section takes keys (model.lora.r=8 turns LoRA on); a new '
    f'key whose name is close to an existing sibling (difflib similarity >= {TYPO_CUTOFF}, e.g. '
    'train_cfg.max_iter next to max_iters) is refused as a typo with "did you mean" -- write '
    '+KEY=VALUE to add it anyway. Top-level variables of the config file (llm_path, data_root, '
    '...) were substituted when the file was read: overriding them is refused, set the key '
    'that uses them or the environment variable the config reads (ULLAVA_CKPT_DIR, '
    'ULLAVA_DATA_ROOT)')


def add_cfg_options(parser) -> None:
    """The ``--cfg-options`` argument every tool takes, with the rules above as its help."""
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help=CFG_OPTIONS_HELP)


# ---------------------------------------------------------------------------- --cfg-options
def quiet_deepspeed() -> None:
    """Name DeepSpeed's accelerator when there is no GPU.

    ``mmengine.runner`` (and everything that imports it) imports DeepSpeed, which on a machine
    without a GPU prints a warning on stdout at every import ("Setting accelerator to CPU"):
    ahead of everything a tool prints, an error line included. ``DS_ACCELERATOR=cpu`` is
    DeepSpeed's own switch for what it would pick anyway.
    """
    import torch
    if 'DS_ACCELERATOR' not in os.environ and not torch.cuda.is_available():
        os.environ['DS_ACCELERATOR'] = 'cpu'


def _runner_classes() -> tuple[type, type]:
    """MMEngine's Runner and FlexibleRunner."""
    quiet_deepspeed()
    from mmengine.runner import FlexibleRunner, Runner
    return Runner, FlexibleRunner


@functools.lru_cache(maxsize=1)
def runner_keys() -> frozenset[str]:
    """Every top-level key a Runner or FlexibleRunner acts on."""
    params = set()
    for cls in _runner_classes():
        params |= set(inspect.signature(cls.__init__).parameters) - {'self', 'cfg'}
    return frozenset(params) | CFG_READ_KEYS


def _dotted(parts: Sequence[str]) -> str:
    return '.'.join(parts) or '<top level>'


def _check_path(cfg: dict, parts: list[str], force_new: bool) -> str | None:
    """Walk ``parts`` below the top level; a complaint, or None if MMEngine may merge it."""
    node, walked = cfg[parts[0]], parts[:1]
    for part in parts[1:]:
        here = _dotted(walked)
        if node is None:
            return None  # a section that is off (lora=None): giving it keys turns it on
        if isinstance(node, (list, tuple)):
            if not (part.isdigit() and int(part) < len(node)):
                return f"{here} is a list of {len(node)} items; '{part}' is not an index of it"
            node = node[int(part)]
        elif isinstance(node, dict):
            if part not in node:
                hint = difflib.get_close_matches(part, [str(k) for k in node], 1, TYPO_CUTOFF)
                if hint and not force_new:
                    return (f"key '{part}' does not exist under {here}; did you mean "
                            f"'{_dotted(walked + hint)}'? (to add '{part}' as a new key, "
                            f"write +{'.'.join(parts)}=...)")
                return None  # a new key, and everything below it: merged as MMEngine does
            node = node[part]
        else:
            return f"{here} is {type(node).__name__} {str(node)[:40]!r}, it has no key '{part}'"
        walked.append(part)
    return None


def _uses(cfg: dict, value: Any, skip: set[str]) -> list[str]:
    """Dotted keys (outside ``skip``) whose value is ``value`` or a string containing it."""
    found = []

    def visit(node: Any, path: list[str]) -> None:
        if path and (node == value or isinstance(node, str) and isinstance(value, str)
                     and len(value) >= 3 and value in node):
            found.append('.'.join(path))
        elif isinstance(node, dict):
            for k, v in node.items():
                if path or k not in skip:
                    visit(v, path + [str(k)])
        elif isinstance(node, (list, tuple)):
            for i, v in enumerate(node):
                visit(v, path + [str(i)])
    if value not in (None, True, False, '', [], {}):
        visit(cfg, [])
    return found


def _env_vars_behind(text: str, name: str) -> list[str]:
    """Environment variables (``{{$VAR:...}}``) the assignment of ``name`` reads, following
    the other top-level names it is computed from. ``text`` is ``Config.text``: every file of
    the config, unsubstituted."""
    assigned: dict[str, list[str]] = {}
    for line in text.splitlines():
        m = re.match(r'(\w+)\s*=(?!=)(.*)', line)
        if m:
            assigned.setdefault(m.group(1), []).append(m.group(2))
    found, todo, seen = [], [name], set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for rhs in assigned.get(current, []):
            found += [v for v, _ in _ENV_VAR.findall(rhs) if v not in found]
            todo += [w for w in re.findall(r'[A-Za-z_]\w*', _ENV_VAR.sub('', rhs))
                     if w in assigned]
    return found


def _check_top_level(cfg: Config, key: str, read: set[str]) -> str | None:
    """Refuse a top-level key nothing acts on (see the module docstring)."""
    top = key.split('.')[0]
    if top in read:
        return None
    if top not in cfg:
        hint = difflib.get_close_matches(top, sorted(read), 1, TYPO_CUTOFF)
        return (f"'{top}' is not a key the Runner or this tool reads"
                + (f"; did you mean '{hint[0]}'?" if hint else ''))
    rest = key.split('.')[1:]
    value = cfg._cfg_dict[top]
    for part in rest:  # the overridden part of the variable, to find where it went
        value = value.get(part) if isinstance(value, dict) else None
    unread = {k for k in cfg if k not in read}
    uses = _uses(cfg._cfg_dict, value, unread)
    env = _env_vars_behind(cfg.text, top)
    instead = []
    if uses:
        more = f' and {len(uses) - 4} more' if len(uses) > 4 else ''
        instead.append(f"what uses it ({', '.join(uses[:4])}{more})")
    if env:
        instead.append(f"the environment variable it comes from ({', '.join(env)})")
    return (f"'{top}' is a variable of the config file, already substituted where the file uses "
            f"it when the file was read: overriding it changes nothing. Set "
            + (' or '.join(instead) if instead else 'the keys that use it') + ' instead')


def load_config(path: str | os.PathLike, cfg_options: dict | None = None,
                read_keys: Sequence[str] = ()) -> Config:
    """Read a config file and apply ``--cfg-options`` by the rules of the module docstring.

    Args:
        path: the config file.
        cfg_options: ``{dotted key: value}`` as :class:`DictAction` parses them.
        read_keys: top-level keys the calling tool reads itself (besides the Runner's).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f'config file not found: {path}')
    cfg = Config.fromfile(str(path))
    read = set(runner_keys()) | set(read_keys)
    merged = {}
    for key, value in (cfg_options or {}).items():
        force_new, key = key.startswith('+'), key.lstrip('+')
        problem = _check_top_level(cfg, key, read)
        parts = key.split('.')
        if problem is None and parts[0] in cfg:
            problem = _check_path(cfg._cfg_dict, parts, force_new)
        if problem:
            raise UserError(f'--cfg-options {key}: {problem} ({path})')
        _open_none_sections(cfg._cfg_dict, parts)
        merged[key] = value
    if merged:
        cfg.merge_from_dict(merged)
    return cfg


def _open_none_sections(cfg: dict, parts: list[str]) -> None:
    """Replace ``None`` sections on the path by empty dicts (MMEngine refuses to merge a dict
    into None)."""
    node = cfg
    for part in parts[:-1]:
        if not isinstance(node, dict) or part not in node:
            return
        if node[part] is None:
            node[part] = ConfigDict()
        node = node[part]


# ---------------------------------------------------------------------------- --amp
def apply_amp(cfg: Config, bf16_supported: bool) -> str:
    """Turn on mixed precision the way the config's runner does it; a line saying what was done.

    Plain runners get MMEngine's ``AmpOptimWrapper``. Under DeepSpeed the precision belongs to
    the strategy (its ``bf16`` / ``fp16`` sections); the ``DeepSpeedOptimWrapper`` is kept --
    replacing it would break the run. Other strategies (FSDP, ColossalAI) are refused.
    """
    strategy = cfg.get('strategy')
    if strategy is None:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
        return 'mixed precision: AmpOptimWrapper (dynamic loss scale)'
    if strategy.get('type') != 'DeepSpeedStrategy':
        raise UserError(f"--amp: the config's strategy is {strategy.get('type')}; set its "
                        f"mixed-precision options in the config instead (--amp knows only "
                        f"plain runners and DeepSpeedStrategy)")
    for name in ('bf16', 'fp16'):
        if (strategy.get(name) or {}).get('enabled'):
            return f'mixed precision: the DeepSpeed strategy already has {name} on (kept)'
    if bf16_supported:
        strategy.bf16 = dict(enabled=True)
        return 'mixed precision: DeepSpeed bf16'
    # loss_scale=0: DeepSpeed's dynamic loss scaling
    strategy.fp16 = dict(enabled=True, loss_scale=0, initial_scale_power=16)
    return 'mixed precision: DeepSpeed fp16 with dynamic loss scale (this GPU has no bf16)'


# ---------------------------------------------------------------------------- quiet start
class StartupLog:
    """Holds the console output of a tool's start-up (config read, runner and datasets built)
    until its work starts, so that a mistake found there is the FIRST thing a user reads.

    A tool starts one first thing (:meth:`start`, then :meth:`current`); :func:`build_runner`
    releases it when the run starts, :func:`cli_main` when the tool ends (dropping what was held
    on a user error).

    MMEngine prints the environment, the whole config (hundreds of lines), the parameter table
    and the hooks while it builds a runner; a bad config or record is found after that. Held
    records (warnings too: MMEngine warns about registry scopes while it builds) are replayed on
    the console at ``before_run``; on an error they are dropped (the runner's log file has them).
    The environment / config dump goes to the log file only. Errors are never held.
    """

    _current: 'StartupLog | None' = None

    def __init__(self) -> None:
        self.held: list[tuple[logging.Handler, logging.LogRecord]] = []
        self._filters: list[tuple[logging.Handler, logging.Filter]] = []
        self.dropping = False

    @classmethod
    def start(cls) -> 'StartupLog':
        """Hold from now on, beginning with MMEngine's default logger (config reading logs the
        environment variables it substitutes there); this becomes :meth:`current`."""
        from mmengine.logging import MMLogger
        cls._current = cls()
        cls._current.hold(MMLogger.get_current_instance())
        return cls._current

    @classmethod
    def current(cls) -> 'StartupLog | None':
        """The start-up log of this process's tool (None outside :func:`cli_main`)."""
        return cls._current

    def hold(self, logger: logging.Logger) -> None:
        """Hold ``logger``'s console records; what was held so far also goes to its log files."""
        for handler in logger.handlers:
            if isinstance(handler, logging.FileHandler):
                for _, record in self.held:
                    handler.handle(record)
            elif type(handler) is logging.StreamHandler and \
                    all(h is not handler for h, _ in self._filters):
                hold = logging.Filter()
                hold.filter = functools.partial(self._take, handler)  # type: ignore[method-assign]
                handler.addFilter(hold)
                self._filters.append((handler, hold))

    def _take(self, handler: logging.Handler, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        if not self.dropping:
            self.held.append((handler, record))
        return False

    def release(self, replay: bool = True) -> None:
        """Stop holding; replay what was held on the console unless ``replay`` is False
        (idempotent)."""
        for handler, hold in self._filters:
            handler.removeFilter(hold)
        held, self.held, self._filters = self.held, [], []
        for handler, record in held if replay else []:
            handler.handle(record)


def _quiet_start(runner_cls: type, startup: StartupLog) -> type:
    """``runner_cls`` whose console is held by ``startup`` from its logger's creation until
    ``before_run``; its environment and config dump go to the log file only."""

    class QuietStart(runner_cls):
        def _log_env(self, *args, **kwargs) -> None:
            startup.hold(self.logger)  # both runners log the environment right after the logger
            startup.dropping = True
            try:
                super()._log_env(*args, **kwargs)
            finally:
                startup.dropping = False
            files = [h.baseFilename for h in self.logger.handlers
                     if isinstance(h, logging.FileHandler)]
            if files:
                self.logger.info(f'environment and config: {files[0]}')

        def call_hook(self, fn_name: str, **kwargs) -> None:
            if fn_name == 'before_run':
                startup.release()
            super().call_hook(fn_name, **kwargs)

    QuietStart.__name__ = QuietStart.__qualname__ = runner_cls.__name__
    return QuietStart


# ---------------------------------------------------------------------------- runner
def build_runner(cfg: Config, startup: StartupLog | None = None):
    """Runner for plain training, FlexibleRunner when the config names a strategy (DeepSpeed).

    ``startup``: hold the console until the run starts (see :class:`StartupLog`); a tool's
    :meth:`StartupLog.current` by default.
    """
    startup = startup or StartupLog.current()
    install_compat()
    import ullava.datasets  # noqa: F401  (the Runner finds collate functions only once imported)
    import torch
    from mmengine.registry import RUNNERS
    Runner, FlexibleRunner = _runner_classes()
    if cfg.get('launcher', 'none') != 'none' and not torch.cuda.is_available() \
            and cfg.get('strategy') is None:
        # DDP on CPU: no device ids (MMEngine's default passes the local rank as a CUDA id)
        cfg.setdefault('model_wrapper_cfg', dict(type='MMDistributedDataParallel', device_ids=None,
                                                 broadcast_buffers=False))
    if cfg.get('strategy') is not None:
        runner_cls = FlexibleRunner
    elif 'runner_type' in cfg:
        runner_cls = RUNNERS.get(cfg.runner_type) if isinstance(cfg.runner_type, str) \
            else cfg.runner_type
        if runner_cls is None:
            raise UserError(f'runner_type {cfg.runner_type!r} is not a registered runner')
    else:
        runner_cls = Runner
    if startup is not None:
        runner_cls = _quiet_start(runner_cls, startup)
    from ullava.engine.hooks import RandomStateHook
    from ullava.utils.reproducibility import finish_deterministic, prepare_deterministic
    prepare_deterministic(cfg)  # before the model is built: MKL's mode is fixed at its first call
    if issubclass(runner_cls, FlexibleRunner) and isinstance(cfg.get('env_cfg'), dict):
        # ullava's own key, read just above; a strategy's _setup_env takes only its own keys
        cfg.env_cfg.pop('num_threads', None)
    runner = runner_cls.from_cfg(cfg)
    finish_deterministic(cfg)
    runner.register_hook(RandomStateHook())  # exact resume needs no config
    return runner


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


def _end_startup(replay: bool) -> None:
    """Release the tool's :class:`StartupLog`, if it started one."""
    startup = StartupLog.current()
    if startup is not None:
        startup.release(replay)
        StartupLog._current = None


def cli_main(main: Callable[[], Any]) -> Callable[[], None]:
    """Run a tool's main(); user mistakes end as one 'error:' line and exit code 2. A tool
    that calls :meth:`StartupLog.start` first has that line as the first thing it prints: its
    log is held until the run starts, and dropped from the console on an error.

    Set ULLAVA_DEBUG=1 to see the full traceback instead.
    """
    @functools.wraps(main)
    def wrapper() -> None:
        quiet_deepspeed()
        try:
            main()
        except Exception as err:  # noqa: BLE001 - we re-raise whatever is not a user mistake
            message = _as_user_error(err)
            if message is None or os.environ.get('ULLAVA_DEBUG') == '1':
                _end_startup(replay=True)  # a bug: what led to it, then the traceback
                raise
            _end_startup(replay=False)  # the runner's log file has it all
            sys.stdout.flush()
            print(f'error: {message}', file=sys.stderr)
            sys.exit(2)
        finally:
            _end_startup(replay=True)  # after a normal end, or argparse's exit
    return wrapper
