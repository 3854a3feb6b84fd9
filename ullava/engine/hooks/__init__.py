"""ullava's runner hooks (importing this package registers them in ``ullava.registry.HOOKS``)."""
from .trainable_checkpoint_hook import TrainableCheckpointHook
from .visualization_hook import ULLaVAVisualizationHook

__all__ = ['TrainableCheckpointHook', 'ULLaVAVisualizationHook']
