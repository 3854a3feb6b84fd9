"""Checkpoints carry the random generators' state and the thread count; ``--resume`` restores them.

MMEngine saves the seed, not the generators' state: a resumed run reseeds and replays another
random stream from the first iteration after the checkpoint (LoRA dropout, sampled answers),
so it is not the run the user would have had. ``tools/train.py`` registers this hook on every
runner (see ``ullava.engine.launch.build_runner``); it needs no config.
"""
from __future__ import annotations

import torch
from mmengine.hooks import Hook

from ullava.registry import HOOKS
from ullava.utils.reproducibility import random_states, restore_random_states


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Save the generators' state with every checkpoint; restore it when resuming."""

    priority = 'VERY_LOW'  # after every hook that might draw while saving

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['random_states'] = random_states()
        checkpoint.setdefault('meta', {})['num_threads'] = torch.get_num_threads()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not getattr(runner, '_resume', False):  # load_from starts a new run: fresh streams
            return
        states = checkpoint.get('random_states')
        if states is not None:
            restore_random_states(states)
        saved = checkpoint.get('meta', {}).get('num_threads')
        if saved is not None and saved != torch.get_num_threads():
            runner.logger.warning(
                f'this checkpoint was written by a run with {saved} threads and this one uses '
                f'{torch.get_num_threads()}: reductions split per thread, so the resumed losses '
                f'will differ in the last bits. Set env_cfg.num_threads={saved} to resume exactly.')
