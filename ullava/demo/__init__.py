"""A deterministic procedural shapes world written in real dataset formats.

``generate_world`` writes one split; ``python -m ullava.demo.world OUT_DIR``
writes both. Exports are resolved lazily so that ``-m ullava.demo.world``
does not find its own module already imported by this package.
"""
from __future__ import annotations

from typing import Any

__all__ = ['generate_world', 'Scene', 'render_scene']


def __getattr__(name: str) -> Any:
    if name == 'generate_world':
        from ullava.demo.writers import generate_world
        return generate_world
    if name in ('Scene', 'render_scene'):
        from ullava.demo import world
        return getattr(world, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
