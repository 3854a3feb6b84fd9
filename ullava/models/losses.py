"""The mask and box losses of u-LLaVA, each averaged over the masks/boxes of the batch."""
import torch
import torch.nn.functional as F
from torchvision.ops import generalized_box_iou_loss


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
