"""u-LLaVA's box frame: xyxy normalised in the centre-padded square of the image.

The reference (``DetToolBox.pad_normalize_xyxy``) pads the short side by (long - short) / 2 on
BOTH sides, then divides by the long side; its [LOC] decoder predicts boxes in that frame.
Written here because no kept library has this frame (mmdet's pads bottom/right only).
"""
from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

Boxes = TypeVar('Boxes', np.ndarray, torch.Tensor)


def _offsets(boxes: Boxes, hw: tuple[int, int]) -> tuple[Boxes, float]:
    h, w = hw
    long_side = max(h, w)
    pad = ((long_side - w) / 2, (long_side - h) / 2) * 2  # x0, y0, x1, y1
    offsets = boxes.new_tensor(pad) if isinstance(boxes, torch.Tensor) else np.asarray(pad)
    return offsets, float(long_side)


def normalize_boxes(boxes: Boxes, hw: tuple[int, int]) -> Boxes:
    """xyxy pixels [k,4] of an image of size ``hw`` -> the centre-padded square's [0,1] frame."""
    offsets, long_side = _offsets(boxes, hw)
    return (boxes + offsets) / long_side


def denormalize_boxes(boxes: Boxes, hw: tuple[int, int]) -> Boxes:
    """The inverse of :func:`normalize_boxes`: normalised xyxy -> pixels of the original image."""
    offsets, long_side = _offsets(boxes, hw)
    return boxes * long_side - offsets


def normalize_points(points: Boxes, hw: tuple[int, int]) -> Boxes:
    """xy pixels [k,2] -> the centre-padded square's [0,1] frame (as :func:`normalize_boxes`)."""
    offsets, long_side = _offsets(points, hw)
    return (points + offsets[:2]) / long_side


def denormalize_points(points: Boxes, hw: tuple[int, int]) -> Boxes:
    """The inverse of :func:`normalize_points`."""
    offsets, long_side = _offsets(points, hw)
    return points * long_side - offsets[:2]


def boxes_from_masks(masks: torch.Tensor) -> torch.Tensor:
    """Tight xyxy boxes [k,4] (pixels, exclusive right/bottom edge) of bool masks [k,H,W].

    An empty mask gives the all-zero box.
    """
    from torchvision.ops import masks_to_boxes
    boxes = torch.zeros(masks.shape[0], 4, device=masks.device)
    nonempty = masks.flatten(1).any(dim=1)
    if nonempty.any():
        boxes[nonempty] = masks_to_boxes(masks[nonempty]).float()
        boxes[nonempty, 2:] += 1  # masks_to_boxes gives the last pixel; we want its far edge
    return boxes
