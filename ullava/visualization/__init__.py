from .visualizer import (ULLaVAVisualizer, atomic_write, encode_png, overlay,
                         register_field_drawer, save_png)

__all__ = ['ULLaVAVisualizer', 'atomic_write', 'encode_png', 'overlay', 'register_field_drawer',
           'save_png']
