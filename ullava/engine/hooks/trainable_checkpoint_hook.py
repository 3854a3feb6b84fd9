"""Save only the trainable parameters in checkpoints, as the reference saves them.

With a 7B LLM under LoRA the frozen weights are >99 % of the model and already on disk (the
pretrained folders named in the config); writing them at every checkpoint wastes minutes and
tens of GB. Loading such a checkpoint (``load_from`` / ``--resume``) fills the trainable part
and leaves the frozen part as built from the config (MMEngine loads with ``strict=False``).
"""
from mmengine.hooks import Hook

from ullava.registry import HOOKS


@HOOKS.register_module()
class TrainableCheckpointHook(Hook):
    """Add to ``custom_hooks`` to drop frozen parameters from every saved checkpoint."""

    priority = 'LOW'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        trainable = {name for name, p in model.named_parameters() if p.requires_grad}
        state = checkpoint['state_dict']
        kept = {k: v for k, v in state.items() if k in trainable}
        checkpoint['meta']['trainable_only'] = True
        checkpoint['meta']['dropped_frozen_keys'] = len(state) - len(kept)
        checkpoint['state_dict'] = kept
