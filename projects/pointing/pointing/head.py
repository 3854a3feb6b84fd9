"""The point head: the LLM's state before each ``[PT]`` -> one (x, y) point.

Points live in the same centre-padded [0,1] square as u-LLaVA's boxes
(``ullava.structures.normalize_points``), decoded through a sigmoid so they are always inside
it; supervised by L1 on ``gt_points_norm`` (which ``ResizeForSAM`` writes because this head
declares ``gt_points`` a ``'point'`` target).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ullava.models.heads import BaseHead, HeadBatch, targets_per_token
from ullava.models.heads.mask_head import mlp
from ullava.registry import HEADS, MODELS
from ullava.structures import denormalize_points


@MODELS.register_module()
class PointL1Loss(nn.Module):
    """L1 summed over x and y, averaged over points (as u-LLaVA's box L1 over its 4 numbers)."""

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = float(loss_weight)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.loss_weight * F.l1_loss(pred, target, reduction='none').sum(1).mean()


@HEADS.register_module()
class PointHead(BaseHead):
    """``Linear(h, h) -> ReLU -> Linear(h, 2)``, sigmoid: one point per ``token``.

    Consumes ``gt_points`` (xy pixels [k,2], one per token of the answer, in order; also
    ``gt_point_masks``, the pointed-at objects, read by the metric only); writes
    ``pred_points`` [k,2] xy pixels and ``pred_point_scores`` [k].
    """

    target_fields = {'gt_points': 'point', 'gt_point_masks': 'map'}
    pred_fields = ('pred_points', 'pred_point_scores')

    def __init__(self, llm_hidden: int, token: str = '[PT]', prompt_state: str = 'before',
                 loss_point: dict | None = None) -> None:
        super().__init__(tokens=(token,), prompt_state=prompt_state)
        self.point_decoder = mlp(llm_hidden, llm_hidden, 2)
        self.loss_point = MODELS.build(loss_point or dict(type='PointL1Loss', loss_weight=1.0))

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        """[P,H] -> [P,2] xy in the centre-padded [0,1] square."""
        return self.point_decoder(states).sigmoid()

    def loss(self, batch: HeadBatch, data_samples: Sequence) -> dict:
        states, _, counts = batch.prompts(self.token, self.prompt_state)
        targets = targets_per_token(data_samples, 'gt_points_norm', counts, self.token)
        if not targets:
            return dict(loss_point=batch.zero(self))
        points = self(states.to(next(self.parameters()).dtype)).float()
        return dict(loss_point=self.loss_point(points, torch.cat(targets).float()))

    def predict(self, batch: HeadBatch, data_samples: Sequence) -> None:
        states, _, counts = batch.prompts(self.token, self.prompt_state)
        points = self(states.to(next(self.parameters()).dtype)).float().split(counts.tolist())
        for ds, pts in zip(data_samples, points):
            ds.pred_points = denormalize_points(pts, ds.metainfo.get('ori_shape', (1, 1)))
            ds.pred_point_scores = torch.ones(len(pts), device=pts.device)
