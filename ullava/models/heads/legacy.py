"""The model's pre-#13 head keys, mapped onto ``heads`` (deprecated, kept because every config
and checkpoint of earlier releases uses them)."""
from __future__ import annotations

from ullava.utils import UserError

# Attributes earlier code reads on the model (``model.mask_head is not None``): None when the
# model has no head of that name.
LEGACY_HEAD_NAMES = ('mask_head', 'box_head', 'detector')


def legacy_heads(mask_head: dict | None, box_head: dict | None, detector: dict | None,
                 box_source: str | None, loss_weights: dict | None) -> dict:
    """The ``heads`` dict of the pre-#13 keys (``mask_head=``, ``box_head=``, ``detector=``,
    ``box_source=``, ``loss_weights=``), which every config still may use. Deprecated: write
    ``heads=dict(mask_head=dict(type='SAMMaskHead', ...), ...)``. The head names stay
    ``mask_head`` / ``box_head``: they are the state-dict prefixes of converted checkpoints."""
    w = loss_weights or {}
    heads: dict = {}
    if mask_head is not None:
        heads['mask_head'] = dict(type='SAMMaskHead', **mask_head)
        for key, term, loss in (('bce', 'loss_mask_bce', 'MaskBCELoss'),
                                ('dice', 'loss_mask_dice', 'MaskDiceLoss')):
            if key in w:
                heads['mask_head'][term] = dict(type=loss, loss_weight=w[key])
    if box_head is not None:
        heads['box_head'] = dict(type='BoxHead', **box_head)
        if box_source not in (None, 'detector'):
            heads['box_head']['box_source'] = box_source
        for key, term, loss in (('l1', 'loss_box_l1', 'BoxL1Loss'),
                                ('giou', 'loss_box_giou', 'BoxGIoULoss')):
            if key in w:
                heads['box_head'][term] = dict(type=loss, loss_weight=w[key])
    if box_source == 'detector' and detector is None:
        raise UserError("box_source='detector' needs a `detector` (GroundingDINO) config")
    if box_source is not None and box_source not in ('head', 'mask', 'fuse', 'detector'):
        raise UserError(f"box_source must be 'head', 'mask', 'fuse' or 'detector', "
                        f"got {box_source!r}")
    if detector is not None and box_source == 'detector':
        heads['detector'] = dict(type='GroundingHead', **detector)
    return heads
