"""Collate: keep per-sample dicts; the data preprocessor pads and stacks (it knows the pad id)."""
from typing import Sequence

from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS

from ullava.registry import FUNCTIONS


def ullava_collate(batch: Sequence[dict]) -> dict:
    return dict(inputs=[b['inputs'] for b in batch], data_samples=[b['data_samples'] for b in batch])


# MMEngine's Runner looks collate functions up in the *root* FUNCTIONS registry without the
# default scope, so `collate_fn=dict(type='ullava_collate')` must be found there too.
FUNCTIONS.register_module(module=ullava_collate)
MMENGINE_FUNCTIONS.register_module(module=ullava_collate, force=True)
