from .visualizer import ULLaVAVisualizer, overlay

__all__ = ['ULLaVAVisualizer', 'overlay']
