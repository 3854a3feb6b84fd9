"""Question/answer templates, one JSON file per task (the reference's ``SEG.json`` style)."""
from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np


@functools.lru_cache(maxsize=None)
def load_templates(path: str) -> dict:
    """``{"train": [...], "test": "...", "answer": "..."}`` from a task's templates.json."""
    return json.loads(Path(path).read_text())


def pick(templates: list[str], test_mode: bool, test_template: str,
         rng: np.random.Generator) -> str:
    """The fixed test template, or a random training one drawn from the sample's own RNG."""
    return test_template if test_mode else templates[rng.integers(len(templates))]
