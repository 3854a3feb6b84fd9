"""The mask and box losses of u-LLaVA, each averaged over the masks/boxes of the batch."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import generalized_box_iou_loss

from ullava.registry import MODELS


def _reduce(per_item: torch.Tensor, reduction: str) -> torch.Tensor:
    return per_item if reduction == 'none' else per_item.mean()


def mask_bce_loss(logits: torch.Tensor, targets: torch.Tensor,
                  reduction: str = 'mean') -> torch.Tensor:
    """Per-pixel BCE, averaged per mask, then over masks. logits/targets: [P,H,W]."""
    per_mask = F.binary_cross_entropy_with_logits(logits, targets.float(), reduction='none') \
        .flatten(1).mean(1)
    return _reduce(per_mask, reduction)


def mask_dice_loss(logits: torch.Tensor, targets: torch.Tensor, eps: float = 1.0,
                   reduction: str = 'mean') -> torch.Tensor:
    """1 - soft Dice per mask, averaged over masks."""
    probs = logits.sigmoid().flatten(1)
    targets = targets.float().flatten(1)
    dice = (2 * (probs * targets).sum(1) + eps) / (probs.sum(1) + targets.sum(1) + eps)
    return _reduce(1 - dice, reduction)


def box_l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(pred, target, reduction='none').sum(1).mean()


def box_giou_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """GIoU loss averaged over all boxes; a predicted box with unordered corners (possible with
    the reference's unconstrained decoder) adds no GIoU term but still counts, as the
    reference's ``bbox_giou_loss`` (its L1 term still pulls such a box into shape)."""
    ordered = (pred[:, 2:] >= pred[:, :2]).all(1)
    if not ordered.any():
        return pred.sum() * 0
    per_box = generalized_box_iou_loss(pred[ordered], target[ordered], reduction='none')
    return per_box.sum() / len(pred)


# ---------------------------------------------------------------- registered loss modules
# The heads build their loss terms from MODELS. mmdet's DiceLoss with ``use_sigmoid=True,
# naive_dice=True, eps=1.0`` is exactly ``mask_dice_loss`` (tested), and a config may name it
# (``loss_mask_dice=dict(type='mmdet.DiceLoss', ...)``); the default is our MaskDiceLoss only
# because importing mmdet.models costs every process ~8 s. The others are ours because mmdet's
# differ from the reference's definitions: its CrossEntropyLoss averages BCE over every pixel of
# the batch (the reference averages per mask, then over masks: masks of different sizes weigh
# the same), its L1Loss averages over coordinates (the reference sums the 4 and averages over
# boxes), and its GIoULoss scores boxes with unordered corners (the reference skips them).
class _WeightedLoss(nn.Module):
    """``loss_weight * fn(pred, target, reduction)``."""

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = float(loss_weight)


@MODELS.register_module()
class MaskBCELoss(_WeightedLoss):
    """Per-pixel BCE averaged per mask (``reduction_override='none'``: [P]), then over masks."""

    def forward(self, logits: torch.Tensor, targets: torch.Tensor,
                reduction_override: str | None = None) -> torch.Tensor:
        return self.loss_weight * mask_bce_loss(logits, targets, reduction_override or 'mean')


@MODELS.register_module()
class MaskDiceLoss(_WeightedLoss):
    """1 - soft Dice per mask (``reduction_override='none'``: [P]), averaged over masks."""

    def forward(self, logits: torch.Tensor, targets: torch.Tensor,
                reduction_override: str | None = None) -> torch.Tensor:
        return self.loss_weight * mask_dice_loss(logits, targets,
                                                 reduction=reduction_override or 'mean')


@MODELS.register_module()
class BoxL1Loss(_WeightedLoss):
    """L1 summed over the 4 coordinates, averaged over boxes."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.loss_weight * box_l1_loss(pred, target)


@MODELS.register_module()
class BoxGIoULoss(_WeightedLoss):
    """GIoU loss averaged over all boxes; unordered predicted boxes add no term (see above)."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.loss_weight * box_giou_loss(pred, target)
