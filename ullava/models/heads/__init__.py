from .box_head import BoxHead, boxes_from_masks
from .mask_head import SAMMaskHead

__all__ = ['BoxHead', 'SAMMaskHead', 'boxes_from_masks']
