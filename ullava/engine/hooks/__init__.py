"""ullava's runner hooks (importing this package registers them in ``ullava.registry.HOOKS``)."""
from .dump_predictions_hook import DumpPredictionsHook
from .embedding_cache_hook import EmbeddingCacheHook
from .random_state_hook import RandomStateHook
from .trainable_checkpoint_hook import TrainableCheckpointHook
from .visualization_hook import ULLaVAVisualizationHook

__all__ = ['DumpPredictionsHook', 'EmbeddingCacheHook', 'RandomStateHook', 'TrainableCheckpointHook',
           'ULLaVAVisualizationHook']
