"""Which last-layer hidden state prompts a head for each [SEG] / [LOC] token."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ullava.utils import UserError

# 'before': the state of the token BEFORE each [SEG]/[LOC], the one whose LM output predicts it.
#   The reference (u-LLaVA models/ullava.py) shifts its token mask left by one and appends a
#   False column; released weights were trained on these states.
# 'token': the [SEG]/[LOC] token's own state (it has also seen the token's embedding).
PROMPT_STATES = ('before', 'token')


def check_prompt_state(state: str) -> str:
    if state not in PROMPT_STATES:
        raise UserError(f"prompt_state must be 'before' (the reference's) or 'token', got {state!r}")
    return state


def prompt_positions(input_ids: torch.Tensor, token_id: int, state: str = 'before') -> torch.Tensor:
    """Bool [B,L]: the positions whose state prompts a head, one per ``token_id`` occurrence."""
    where = input_ids == token_id
    if state == 'token':
        return where
    return F.pad(where[:, 1:], (0, 1), value=False)
