"""[LOC] hidden state -> box, as u-LLaVA's region-aware version; and boxes read off masks.

Boxes are normalised xyxy in the centre-padded square (``ullava.structures.normalize_boxes``).
By default the decoder's output IS that box, unconstrained, as the reference's (released weights
need it); ``output='sigmoid_cxcywh'`` is ullava's variant for training from scratch: a sigmoid
(cx, cy, w, h), so the corners are always ordered and inside the frame (not for converted
weights).
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import box_convert, masks_to_boxes

from ullava.utils import UserError

from .mask_head import mlp
from .prompts import check_prompt_state

BOX_OUTPUTS = ('xyxy', 'sigmoid_cxcywh')


class BoxHead(nn.Module):
    """det_projector (h -> h -> 256) then det_decoder (256 -> 256 -> 128 -> 4).

    Args:
        llm_hidden: hidden size of the LLM.
        prompt_dim: width of the projected prompt (256 in the reference).
        output: ``'xyxy'`` (the reference: the decoder's output, unconstrained) or
            ``'sigmoid_cxcywh'`` (ullava's: ordered corners inside the frame).
        prompt_state: ``'before'`` (the reference: the state before each [LOC]) or ``'token'``.
    """

    def __init__(self, llm_hidden: int, prompt_dim: int = 256, output: str = 'xyxy',
                 prompt_state: str = 'before') -> None:
        super().__init__()
        if output not in BOX_OUTPUTS:
            raise UserError(f"box_head.output must be 'xyxy' (the reference's) or "
                            f"'sigmoid_cxcywh', got {output!r}")
        self.output = output
        self.prompt_state = check_prompt_state(prompt_state)
        self.det_projector = mlp(llm_hidden, llm_hidden, prompt_dim)
        self.det_decoder = mlp(prompt_dim, prompt_dim, prompt_dim // 2, 4)

    def forward(self, loc_states: torch.Tensor) -> torch.Tensor:
        """[P,H] -> [P,4] normalised xyxy in the centre-padded square."""
        raw = self.det_decoder(self.det_projector(loc_states))
        if self.output == 'xyxy':
            return raw
        return box_convert(raw.sigmoid(), 'cxcywh', 'xyxy').clamp(0, 1)


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
