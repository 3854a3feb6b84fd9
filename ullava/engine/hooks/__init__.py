"""ullava's runner hooks (importing this package registers them in ``ullava.registry.HOOKS``)."""
from .visualization_hook import ULLaVAVisualizationHook

__all__ = ['ULLaVAVisualizationHook']
