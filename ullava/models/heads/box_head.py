"""[LOC] hidden state -> box, as u-LLaVA's region-aware version.

Boxes are normalised xyxy in the centre-padded square (``ullava.structures.normalize_boxes``).
By default the decoder's output IS that box, unconstrained, as the reference's (released weights
need it); ``output='sigmoid_cxcywh'`` is ullava's variant for training from scratch: a sigmoid
(cx, cy, w, h), so the corners are always ordered and inside the frame (not for converted
weights).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torchvision.ops import box_convert

from ullava.registry import HEADS, MODELS
from ullava.structures import boxes_from_masks, denormalize_boxes
from ullava.utils import UserError

from ..tokens import IMAGE_PATCH
from .base import BaseHead, HeadBatch, dtype_of, targets_per_token
from .mask_head import mlp

BOX_OUTPUTS = ('xyxy', 'sigmoid_cxcywh')
BOX_SOURCES = ('head', 'mask', 'fuse')

__all__ = ['BoxHead', 'boxes_from_masks']  # boxes_from_masks: re-exported from its old home


@HEADS.register_module()
class BoxHead(BaseHead):
    """det_projector (h -> h -> 256) then det_decoder (256 -> 256 -> 128 -> 4).

    Consumes ``gt_boxes`` (supervised in the padded frame, ``gt_boxes_norm``); writes
    ``pred_boxes`` [k,4] pixels and ``pred_box_scores`` [k], one per token in the answer.

    Args:
        llm_hidden: hidden size of the LLM.
        prompt_dim: width of the projected prompt (256 in the reference).
        output: ``'xyxy'`` (the reference: the decoder's output, unconstrained) or
            ``'sigmoid_cxcywh'`` (ullava's: ordered corners inside the frame).
        token: the token whose states are decoded into boxes.
        prompt_state: ``'before'`` (the reference: the state before each [LOC]) or ``'token'``.
        box_source: ``'head'`` (the decoder), ``'mask'`` (the tight boxes a mask head before
            this one wrote) or ``'fuse'`` (their mean where the mask is not empty).
        loss_box_l1 / loss_box_giou: loss configs (MODELS); the reference's weights 1.0 / 1.0.
        image_attention: 0 (the reference: the MLPs alone) or a number of heads: ullava's
            variant, in which the projected [LOC] state also attends, once, over the LLM's
            last-layer states of its sample's image tokens before the box decoder (a one-query
            DETR decoder layer), so the box can be read off the image cells the state points
            at instead of being regressed from one vector (not for converted weights).
    """

    target_fields = {'gt_boxes': 'box'}
    pred_fields = ('pred_boxes', 'pred_box_scores')

    def __init__(self, llm_hidden: int, prompt_dim: int = 256, output: str = 'xyxy',
                 token: str = '[LOC]', prompt_state: str = 'before', box_source: str = 'fuse',
                 loss_box_l1: dict | None = None, loss_box_giou: dict | None = None,
                 image_attention: int = 0) -> None:
        super().__init__(tokens=(token,), prompt_state=prompt_state)
        if output not in BOX_OUTPUTS:
            raise UserError(f"box_head.output must be 'xyxy' (the reference's) or "
                            f"'sigmoid_cxcywh', got {output!r}")
        if box_source not in BOX_SOURCES:
            raise UserError(f"box_source must be 'head', 'mask', 'fuse' or 'detector', "
                            f"got {box_source!r}")
        self.output = output
        self.box_source = box_source
        self.det_projector = mlp(llm_hidden, llm_hidden, prompt_dim)
        self.det_decoder = mlp(prompt_dim, prompt_dim, prompt_dim // 2, 4)
        self.image_attention = image_attention
        if image_attention:
            self.image_proj = nn.Linear(llm_hidden, prompt_dim)
            self.image_attn = nn.MultiheadAttention(prompt_dim, image_attention, batch_first=True)
            self.image_norm = nn.LayerNorm(prompt_dim)
        self.loss_box_l1 = MODELS.build(loss_box_l1 or dict(type='BoxL1Loss', loss_weight=1.0))
        self.loss_box_giou = MODELS.build(loss_box_giou or dict(type='BoxGIoULoss',
                                                                loss_weight=1.0))

    def forward(self, loc_states: torch.Tensor, image_states: torch.Tensor | None = None,
                image_mask: torch.Tensor | None = None) -> torch.Tensor:
        """[P,H] -> [P,4] normalised xyxy in the centre-padded square. With ``image_attention``:
        ``image_states`` [P,N,H] (each prompt's image-token states) and ``image_mask`` [P,N]
        (True where a state is real)."""
        query = self.det_projector(loc_states)
        if self.image_attention and image_states is not None and image_states.shape[1]:
            context = self.image_proj(image_states)
            has = image_mask.any(1)
            mask = ~image_mask | ~has[:, None]  # a prompt without image tokens: one dummy key
            mask[:, 0] &= has
            attended, _ = self.image_attn(query[:, None], context, context, key_padding_mask=mask,
                                          need_weights=False)
            query = torch.where(has[:, None], self.image_norm(query + attended[:, 0]), query)
        raw = self.det_decoder(query)
        if self.output == 'xyxy':
            return raw
        return box_convert(raw.sigmoid(), 'cxcywh', 'xyxy').clamp(0, 1)

    def _boxes(self, batch: HeadBatch, states: torch.Tensor,
               sample_idx: torch.Tensor) -> torch.Tensor:
        """The decoder's boxes for the prompt states of ``batch`` (their samples' image tokens
        gathered where ``image_attention`` asks for them)."""
        dtype = dtype_of(self)
        if not self.image_attention:
            return self(states.to(dtype)).float()
        where = batch.input_ids == batch.token_ids[IMAGE_PATCH]  # [B,L]
        width = int(where.sum(1).max()) if len(where) else 0
        image_states = batch.hidden.new_zeros(len(states), width, batch.hidden.shape[-1])
        image_mask = torch.zeros(len(states), width, dtype=torch.bool, device=states.device)
        for p, i in enumerate(sample_idx.tolist()):
            found = batch.hidden[i][where[i]]
            image_states[p, :len(found)] = found
            image_mask[p, :len(found)] = True
        return self(states.to(dtype), image_states.to(dtype), image_mask).float()

    def loss(self, batch: HeadBatch, data_samples: Sequence) -> dict:
        states, sample_idx, counts = batch.prompts(self.token, self.prompt_state)
        targets = targets_per_token(data_samples, 'gt_boxes_norm', counts, self.token,
                                    optional=True)
        if not targets:
            return dict(loss_box_l1=batch.zero(self))
        gt = torch.cat(targets)
        boxes = self._boxes(batch, states, sample_idx)
        return dict(loss_box_l1=self.loss_box_l1(boxes, gt),
                    loss_box_giou=self.loss_box_giou(boxes, gt))

    def predict(self, batch: HeadBatch, data_samples: Sequence) -> None:
        """One box per token (pixels of the original image); an answer without the token keeps
        the mask boxes a mask head wrote (or gets none)."""
        states, sample_idx, counts = batch.prompts(self.token, self.prompt_state)
        device = counts.device
        head_boxes = self._boxes(batch, states, sample_idx).split(counts.tolist()) \
            if len(states) else [states.new_zeros(0, 4)] * len(counts)
        for i, ds in enumerate(data_samples):
            masks = ds.get('pred_masks')
            from_masks = ds.get('pred_boxes')  # the mask head's boxes (its ``mask_box``)
            if masks is None or from_masks is None or len(from_masks) != len(masks):
                from_masks = boxes_from_masks(masks) if masks is not None \
                    else torch.zeros(0, 4, device=device)
            if self.box_source == 'mask' or not len(head_boxes[i]):
                boxes = from_masks
            else:
                boxes = denormalize_boxes(head_boxes[i], ds.metainfo.get('ori_shape', (0, 0)))
                if self.box_source == 'fuse':  # the mean of both where the mask found something
                    n = min(len(boxes), len(from_masks))
                    has_mask = masks[:n].flatten(1).any(1, keepdim=True)
                    boxes = boxes.clone()
                    boxes[:n] = torch.where(has_mask, (from_masks[:n] + boxes[:n]) / 2, boxes[:n])
            ds.pred_boxes = boxes
            ds.pred_box_scores = torch.ones(len(boxes), device=device)
