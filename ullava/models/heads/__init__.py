"""The model's heads, registered in ``ullava.registry.HEADS``.

The GroundingDINO head imports mmdet's detector (``grounding.py``) only when built.
"""
from ullava.structures import boxes_from_masks  # its old home; kept importable here

from .base import BaseHead, HeadBatch, targets_per_token
from .box_head import BoxHead
from .detector_head import GroundingHead
from .mask_head import SAMMaskHead

__all__ = ['BaseHead', 'BoxHead', 'GroundingHead', 'HeadBatch', 'SAMMaskHead', 'boxes_from_masks',
           'targets_per_token']
