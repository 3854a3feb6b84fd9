"""Question/answer templates, one JSON file per task (the reference's ``SEG.json`` style)."""
from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

from ullava.utils import UserError


@functools.lru_cache(maxsize=None)
def _read(path: str) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f'templates file not found: {path}') from None
    except json.JSONDecodeError as err:
        raise UserError(f'templates file {path} is not valid JSON: {err}') from None


def load_templates(spec: str | dict, default: str | None = None) -> dict:
    """A task's templates, ``{"train": [...], "test": "...", "answer": "..."}``.

    ``spec`` is a templates.json path, or a dict that replaces some keys of the ``default``
    file, e.g. ``dict(test='<image>\\nOutput the segmentation mask of the {} in the image.')``
    to ask the reference's evaluation question without copying the whole file.
    """
    if not isinstance(spec, dict):
        return _read(str(spec))
    base = _read(str(default))
    unknown = sorted(set(spec) - set(base))
    if unknown:
        raise UserError(f'templates: unknown keys {unknown}; {default} has {sorted(base)}')
    return {**base, **spec}


def pick(templates: list[str], test_mode: bool, test_template: str,
         rng: np.random.Generator) -> str:
    """The fixed test template, or a random training one drawn from the sample's own RNG."""
    return test_template if test_mode else templates[rng.integers(len(templates))]
