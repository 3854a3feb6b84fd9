"""The rejection head: GSVA answers an expression that matches nothing with ``[REJ]``.

It has no weights: the LM learns to write ``[REJ]`` (cross-entropy, as GSVA), and the head turns
it into the prediction the metric reads (``pred_rejected``). Its one job is to make ``[REJ]`` a
token of the model (the tokenizer adds the heads' tokens) and to say what it means.
"""
from __future__ import annotations

from typing import Sequence

import torch

from ullava.models.heads import BaseHead, HeadBatch
from ullava.registry import HEADS


@HEADS.register_module()
class RejectHead(BaseHead):
    """Writes ``pred_rejected`` (bool): the answer holds ``token``."""

    pred_fields = ('pred_rejected',)

    def __init__(self, llm_hidden: int, token: str = '[REJ]') -> None:
        super().__init__(tokens=(token,), prompt_state='token')

    def predict(self, batch: HeadBatch, data_samples: Sequence) -> None:
        found = (batch.input_ids == batch.token_ids[self.token]) & self._answer(batch)
        for ds, row in zip(data_samples, found):
            ds.pred_rejected = bool(row.any())

    @staticmethod
    def _answer(batch: HeadBatch) -> torch.Tensor:
        """Bool [B,L]: the positions after the prompt (a question may quote the token)."""
        lens = batch.inputs['prompt_lens']
        positions = torch.arange(batch.input_ids.shape[1], device=lens.device)
        return positions[None] >= lens[:, None]
