from .visualizer import ULLaVAVisualizer, atomic_write, encode_png, overlay, save_png

__all__ = ['ULLaVAVisualizer', 'atomic_write', 'encode_png', 'overlay', 'save_png']
