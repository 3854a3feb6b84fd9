"""The mask and box losses of u-LLaVA, each averaged over the masks/boxes of the batch."""
import torch
import torch.nn.functional as F
from torchvision.ops import generalized_box_iou_loss


def mask_bce_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-pixel BCE, averaged per mask, then over masks. logits/targets: [P,H,W]."""
    return F.binary_cross_entropy_with_logits(logits, targets.float(), reduction='none') \
        .flatten(1).mean(1).mean()


def mask_dice_loss(logits: torch.Tensor, targets: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice per mask, averaged over masks."""
    probs = logits.sigmoid().flatten(1)
    targets = targets.float().flatten(1)
    dice = (2 * (probs * targets).sum(1) + eps) / (probs.sum(1) + targets.sum(1) + eps)
    return (1 - dice).mean()


def box_l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(pred, target, reduction='none').sum(1).mean()


def box_giou_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return generalized_box_iou_loss(pred, target, reduction='mean')
