"""The two views of an image: a square CLIP input and SAM's longest-side-resized, padded input."""
from __future__ import annotations

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform

from ullava.registry import TRANSFORMS

CLIP_PAD_VALUE = (122, 116, 104)  # CLIP's mean colour: padding that looks like "nothing"


def _to_chw(img: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(img.transpose(2, 0, 1))


@TRANSFORMS.register_module()
class ResizeForCLIP(BaseTransform):
    """Pad to a square with CLIP's mean colour, then resize to ``size`` (LLaVA's 'pad' mode):
    the whole image stays visible. ``img`` -> ``clip_img`` [3,s,s]; ``frames`` -> ``clip_frames``."""

    def __init__(self, size: int = 224) -> None:
        self.size = size

    def _one(self, img: np.ndarray) -> np.ndarray:
        h, w = img.shape[:2]
        side = max(h, w)
        top, left = (side - h) // 2, (side - w) // 2
        square = np.empty((side, side, 3), np.uint8)
        square[:] = CLIP_PAD_VALUE
        square[top:top + h, left:left + w] = img
        return _to_chw(mmcv.imresize(square, (self.size, self.size), interpolation='bicubic'))

    def transform(self, results: dict) -> dict:
        if 'img' in results:
            results['clip_img'] = self._one(results['img'])
        if 'frames' in results:
            results['clip_frames'] = np.stack([self._one(f) for f in results['frames']])
        return results


@TRANSFORMS.register_module()
class ResizeForSAM(BaseTransform):
    """Resize the longest side to ``size`` and pad bottom/right to ``size x size`` (SAM's input).

    Also brings ``gt_masks`` into that frame (``gt_masks_sam``, for the loss) and normalises
    ``gt_boxes`` by the longest side (``gt_boxes_norm``: u-LLaVA's padded-square frame).
    """

    def __init__(self, size: int = 1024) -> None:
        self.size = size

    def transform(self, results: dict) -> dict:
        if 'img' not in results:
            return results
        h, w = results['img'].shape[:2]
        scale = self.size / max(h, w)
        new_hw = (int(h * scale + 0.5), int(w * scale + 0.5))
        img = mmcv.imresize(results['img'], (new_hw[1], new_hw[0]), interpolation='bilinear')
        results['sam_img'] = _to_chw(mmcv.impad(img, shape=(self.size, self.size), pad_val=0))
        results['sam_resized_shape'] = new_hw
        if 'gt_masks' in results:
            masks = results['gt_masks']
            out = np.zeros((len(masks), self.size, self.size), bool)
            for i, m in enumerate(masks):
                out[i, :new_hw[0], :new_hw[1]] = mmcv.imresize(
                    m.astype(np.uint8), (new_hw[1], new_hw[0]), interpolation='nearest') > 0
            results['gt_masks_sam'] = out
        if 'gt_boxes' in results:
            results['gt_boxes_norm'] = np.clip(results['gt_boxes'] / max(h, w), 0, 1)
        return results
