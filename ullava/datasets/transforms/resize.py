"""The two views of an image: a square CLIP input and SAM's longest-side-resized, padded input.

Both follow the reference (u-LLaVA ``dataset/processors/clip_processor.py`` with
``aspect_ratio: 'pad'``, and ``dataset/tools/mask_toolbox.py``), whose released weights were
trained on exactly these inputs; see docs/conventions.md.
"""
from __future__ import annotations

from typing import Sequence

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform

from ullava.registry import TRANSFORMS
from ullava.structures import normalize_boxes, normalize_points, target_fields
from ullava.utils import UserError

CLIP_PAD_WHITE = (255, 255, 255)  # the reference's pad colour
CLIP_PAD_MEAN = (122, 116, 104)   # CLIP's mean colour: ullava's earlier pad, kept as an option


def _to_chw(img: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(img.transpose(2, 0, 1))


def pad_to_square(img: np.ndarray, pad_value: Sequence[int]) -> np.ndarray:
    """The image centred on a square of ``pad_value`` (offset (long - short) // 2, as the
    reference's ``pad_cv2``)."""
    h, w = img.shape[:2]
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    square = np.empty((side, side, 3), np.uint8)
    square[:] = pad_value
    square[top:top + h, left:left + w] = img
    return square


@TRANSFORMS.register_module()
class ResizeForCLIP(BaseTransform):
    """Pad to a square (image centred), then CLIP's own image processor: shortest side to
    ``size`` (bicubic, PIL), centre crop ``size``. ``img`` -> ``clip_img`` uint8 [3,s,s];
    ``frames`` -> ``clip_frames``. Normalising is left to the data preprocessor.

    Args:
        size: the CLIP input side, used when no ``processor`` folder is given.
        processor: a CLIP folder whose ``preprocessor_config.json`` gives the processing (as the
            reference's ``CLIPImageProcessor.from_pretrained``); None: the same processing with
            ``size`` (the tiny / demo configs).
        pad_value: the pad colour; white as the reference, ``CLIP_PAD_MEAN`` for ullava's earlier
            mean-colour pad.
        pad: pad to a square first (the reference's ``aspect_ratio: 'pad'``, every stage-II and
            evaluation config); False: the processor alone, as the reference's stage I.
        keys: which inputs get a CLIP view: ``'img'`` (images) and / or ``'frames'`` (video
            frames). A tower that reads the images' SAM view (``SAMEncoderTower``: the demo)
            needs the frames' view only, and a CLIP resize of every image would cost about
            half of its data loading for nothing (``bench/profile_demo_iteration.py``).
    """

    KEYS = ('img', 'frames')

    def __init__(self, size: int = 224, processor: str | None = None,
                 pad_value: Sequence[int] = CLIP_PAD_WHITE, pad: bool = True,
                 keys: Sequence[str] = KEYS) -> None:
        unknown = sorted(set(keys) - set(self.KEYS))
        if unknown or not keys:
            raise UserError(f'ResizeForCLIP.keys: {list(keys)!r} must name one or both of '
                            f'{list(self.KEYS)} (got unknown {unknown})')
        self.keys = tuple(keys)
        from transformers import CLIPImageProcessor  # the kept implementation of this resize
        if processor is not None:
            from ullava.models.language import _check_folder
            folder = _check_folder(processor, 'ResizeForCLIP.processor')
            if not (folder / 'preprocessor_config.json').is_file():
                raise UserError(f'ResizeForCLIP.processor: {folder} has no '
                                f'preprocessor_config.json (a CLIP folder as the hub ships it)')
            self.processor = CLIPImageProcessor.from_pretrained(str(folder), local_files_only=True)
        else:
            self.processor = CLIPImageProcessor(size={'shortest_edge': size},
                                                crop_size={'height': size, 'width': size})
        self.pad_value = tuple(pad_value)
        self.pad = pad

    def _one(self, img: np.ndarray) -> np.ndarray:
        square = pad_to_square(img, self.pad_value) if self.pad else img
        out = self.processor.preprocess(square, do_rescale=False, do_normalize=False,
                                        return_tensors='np')
        pixels = np.asarray(out['pixel_values'][0])  # [3,s,s], uint8 values (PIL resized)
        return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)

    def transform(self, results: dict) -> dict:
        if 'img' in self.keys and 'img' in results:
            results['clip_img'] = self._one(results['img'])
        if 'frames' in self.keys and 'frames' in results:
            results['clip_frames'] = np.stack([self._one(f) for f in results['frames']])
        return results


@TRANSFORMS.register_module()
class ResizeForSAM(BaseTransform):
    """Resize the longest side to ``size`` (segment-anything's ``ResizeLongestSide``, as the
    reference) and pad bottom/right to ``size x size`` (SAM's input). The data preprocessor
    normalises and sets the pad to zero afterwards (``sam_pad``).

    Also brings the heads' target fields along (``ullava.structures.targets``): each mask field
    into that frame (``gt_masks`` -> ``gt_masks_sam``, for the SAM-frame loss), each box and point
    field into the centre-padded square (``gt_boxes`` -> ``gt_boxes_norm``: u-LLaVA's box frame).
    """

    def __init__(self, size: int = 1024) -> None:
        from segment_anything.utils.transforms import ResizeLongestSide
        self.size = size
        self.resizer = ResizeLongestSide(size)

    def transform(self, results: dict) -> dict:
        if 'img' not in results:
            return results
        h, w = results['img'].shape[:2]
        new_hw = self.resizer.get_preprocess_shape(h, w, self.size)
        img = self.resizer.apply_image(np.ascontiguousarray(results['img']))
        results['sam_img'] = _to_chw(mmcv.impad(img, shape=(self.size, self.size), pad_val=0))
        results['sam_resized_shape'] = new_hw
        for field in target_fields('mask'):
            if field in results:
                results[field + '_sam'] = self._masks(results[field], new_hw)
        for field in target_fields('box'):
            if field in results:
                boxes = np.asarray(results[field], np.float32).reshape(-1, 4)
                results[field + '_norm'] = normalize_boxes(boxes, (h, w)).astype(np.float32)
        for field in target_fields('point'):
            if field in results:
                points = np.asarray(results[field], np.float32).reshape(-1, 2)
                results[field + '_norm'] = normalize_points(points, (h, w)).astype(np.float32)
        return results

    def _masks(self, masks: np.ndarray, new_hw: tuple[int, int]) -> np.ndarray:
        """bool [k,H,W] -> [k,S,S]: nearest-resized to ``new_hw``, padded bottom/right."""
        out = np.zeros((len(masks), self.size, self.size), bool)
        for i, m in enumerate(masks):
            out[i, :new_hw[0], :new_hw[1]] = mmcv.imresize(
                m.astype(np.uint8), (new_hw[1], new_hw[0]), interpolation='nearest') > 0
        return out
