"""[LOC] hidden state -> box, as u-LLaVA's region-aware version; and boxes read off masks.

Boxes are normalised xyxy in the padded-square frame (pixel / longest image side). Unlike the
reference, whose box decoder is unconstrained, the decoder predicts a sigmoid (cx, cy, w, h), so
the corners are always ordered and inside the frame.
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import box_convert, masks_to_boxes

from .mask_head import mlp


class BoxHead(nn.Module):
    """det_projector (h -> h -> 256) then det_decoder (256 -> 256 -> 128 -> 4)."""

    def __init__(self, llm_hidden: int, prompt_dim: int = 256) -> None:
        super().__init__()
        self.det_projector = mlp(llm_hidden, llm_hidden, prompt_dim)
        self.det_decoder = mlp(prompt_dim, prompt_dim, prompt_dim // 2, 4)

    def forward(self, loc_states: torch.Tensor) -> torch.Tensor:
        """[P,H] -> [P,4] normalised xyxy."""
        cxcywh = self.det_decoder(self.det_projector(loc_states)).sigmoid()
        return box_convert(cxcywh, 'cxcywh', 'xyxy').clamp(0, 1)


def boxes_from_masks(masks: torch.Tensor) -> torch.Tensor:
    """Tight xyxy boxes [k,4] (pixels, exclusive right/bottom edge) of bool masks [k,H,W].

    An empty mask gives the all-zero box.
    """
    boxes = torch.zeros(masks.shape[0], 4, device=masks.device)
    nonempty = masks.flatten(1).any(dim=1)
    if nonempty.any():
        boxes[nonempty] = masks_to_boxes(masks[nonempty]).float()
        boxes[nonempty, 2:] += 1  # masks_to_boxes gives the last pixel; we want its far edge
    return boxes
