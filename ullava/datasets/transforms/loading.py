"""Load images, video frames and masks, with errors that name the file and the field."""
from __future__ import annotations

from pathlib import Path

import mmcv
import numpy as np
import torch
from mmcv.transforms import BaseTransform
from PIL import Image, ImageSequence
from pycocotools import mask as mask_utils

from ullava.datasets.base import quote
from ullava.structures import boxes_from_masks
from ullava.registry import TRANSFORMS
from ullava.utils import UserError


def _source(results: dict) -> str:
    return f"{results.get('ann_file', '?')} record {results.get('record_idx', '?')}"


def read_image(path: str | Path, results: dict, field: str, flag: str = 'color',
               backend: str | None = None) -> np.ndarray:
    """Read an image file; a missing or undecodable file is a UserError naming both."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f'{_source(results)}: {field} {path} does not exist')
    try:
        img = mmcv.imfrombytes(path.read_bytes(), flag=flag, channel_order='rgb', backend=backend)
    except Exception as err:  # cv2 raises assorted errors on corrupt data
        raise UserError(f'{_source(results)}: {field} {path} is not a readable image ({err})') from None
    if img is None:
        raise UserError(f'{_source(results)}: {field} {path} is not a readable image')
    return img


@TRANSFORMS.register_module()
class LoadImage(BaseTransform):
    """``img_path`` -> ``img`` (RGB uint8 HxWx3), ``ori_shape``. Records without an image pass."""

    def transform(self, results: dict) -> dict:
        if results.get('img_path') is None:
            return results
        img = read_image(results['img_path'], results, 'img_path')
        results['img'] = img
        results['ori_shape'] = img.shape[:2]
        return results


@TRANSFORMS.register_module()
class LoadVideo(BaseTransform):
    """``video_path`` (a GIF, a video file or a folder of frames) -> ``frames`` [T,H,W,3].

    ``num_frames`` frames are sampled uniformly over the clip; a shorter clip repeats frames.
    """

    def __init__(self, num_frames: int = 8) -> None:
        self.num_frames = num_frames

    def _read(self, path: Path, results: dict) -> list[np.ndarray]:
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in {'.png', '.jpg', '.jpeg'})
            return [read_image(p, results, 'video_path') for p in files]
        if path.suffix.lower() == '.gif':
            with Image.open(path) as gif:
                return [np.asarray(f.convert('RGB')) for f in ImageSequence.Iterator(gif)]
        import cv2
        cap, frames = cv2.VideoCapture(str(path)), []
        ok, frame = cap.read()
        while ok:
            frames.append(frame[..., ::-1].copy())
            ok, frame = cap.read()
        cap.release()
        return frames

    def transform(self, results: dict) -> dict:
        if results.get('video_path') is None:
            return results
        path = Path(results['video_path'])
        if not path.exists():
            raise UserError(f'{_source(results)}: video_path {path} does not exist')
        try:
            frames = self._read(path, results)
        except UserError:
            raise
        except Exception as err:
            raise UserError(f'{_source(results)}: video_path {path} could not be decoded ({err})') from None
        if not frames:
            raise UserError(f'{_source(results)}: video_path {path} has no frames')
        index = np.linspace(0, len(frames) - 1, self.num_frames).round().astype(int)
        results['frames'] = np.stack([frames[i] for i in index])
        results['ori_shape'] = frames[0].shape[:2]
        return results


def decode_segmentation(seg: list | dict, height: int, width: int) -> np.ndarray:
    """A COCO / u-LLaVA ``segmentation`` -> bool [height, width] mask; pycocotools decodes.

    * ``[]``: no mask (all False; the reference's branch for it crashes).
    * ``[[x1, y1, x2, y2, ...], ...]``: polygons, merged (``frPyObjects(seg, h, w)``).
    * ``[{"size": [h, w], "counts": ...}, ...]``: the re-packed RefCOCO files' list of RLE
      parts; the parts' binary maps are summed into one mask, > 0 (the reference's
      ``np.sum(decode(rles), axis=2)``).
    * ``{"size": [h, w], "counts": ...}``: one RLE (COCO's own files, PACO-LVIS).
    RLE counts may be compressed (``str`` or ``bytes``) or uncompressed (a list of ints).
    Raises ``ValueError``/``TypeError`` (pycocotools' own) on malformed input; an RLE
    whose size is not (height, width) gives a mask of its own size for the caller to refuse.
    """
    if isinstance(seg, dict):
        seg = [seg]
    if not isinstance(seg, list):
        raise TypeError(f'expected a list or a dict, got {type(seg).__name__}')
    if not seg:
        return np.zeros((height, width), bool)
    if all(isinstance(p, list) for p in seg):
        return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(seg, height, width))) > 0
    if not all(isinstance(p, dict) for p in seg):
        raise TypeError('expected polygons (lists of numbers) or RLE dicts, not a mix')
    total = None
    for part in seg:  # decoded one by one: decode() of a list assumes one common size
        counts = part.get('counts')
        if isinstance(counts, list):  # uncompressed RLE
            rle = mask_utils.frPyObjects(part, height, width)
        elif isinstance(counts, (str, bytes)):  # a new dict: never mutate the record
            rle = dict(size=list(part['size']),
                       counts=counts.encode() if isinstance(counts, str) else counts)
            _check_rle_string(rle)
        else:
            raise TypeError(f'RLE "counts" should be a string or a list, got '
                            f'{type(counts).__name__}')
        m = mask_utils.decode(rle).astype(np.int64)
        if total is not None and m.shape != total.shape:
            raise ValueError(f'RLE parts have different sizes {total.shape} and {m.shape}')
        total = m if total is None else total + m
    return total > 0


def _check_rle_string(rle: dict) -> None:
    """Refuse a compressed RLE whose runs do not cover exactly h*w pixels.

    pycocotools rejects some corrupt strings but decodes a short or empty one without a
    word, filling the rest of the mask from uninitialised memory; it has no check to call,
    so the runs are summed here by the inverse of its ``rleToString`` (5 bits per
    character, offset 48, bit 5 = more follows, bit 4 = sign, runs after the second stored
    as deltas of the one two back).
    """
    runs, data, p = [], rle['counts'], 0
    while p < len(data):
        x, k, more = 0, 0, True
        while more:
            if p >= len(data):
                raise ValueError('RLE counts string ends inside a number')
            c = data[p] - 48
            x |= (c & 0x1f) << 5 * k
            more, p, k = bool(c & 0x20), p + 1, k + 1
            if not more and c & 0x10:
                x |= -1 << 5 * k
        runs.append(x + runs[-2] if len(runs) > 2 else x)
    h, w = rle['size']
    if min(runs, default=0) < 0 or sum(runs) != h * w:
        raise ValueError(f'RLE counts cover {sum(runs)} pixels, its size {h}x{w} needs {h * w}')


def reduce_zero_label(label: np.ndarray) -> np.ndarray:
    """mmseg's ``reduce_zero_label`` (its ``LoadAnnotations``), written out because mmseg
    offers it only inside the transform: 0 ("other" in ADE20K) -> 255 (ignored), k -> k-1."""
    label = label.copy()
    label[label == 0] = 255
    label = label - 1
    label[label == 254] = 255
    return label


def read_label_map(path: str | Path, results: dict, field: str) -> np.ndarray:
    """A label-map PNG -> int64 [H, W], then the sample's label rules, in this order:
    ``reduce_zero_label`` (ADE20K), then ``sem_seg_ignore_ids`` -> 255 (e.g. COCO-Stuff's
    "-" classes), so that class ids compare with the REDUCED values, as in the reference."""
    # Pillow keeps a palette PNG's indices (OpenCV would expand them to colours).
    label = read_image(path, results, field, 'unchanged', backend='pillow')
    label = (label if label.ndim == 2 else label[..., 0]).astype(np.int64)
    if results.get('reduce_zero_label'):
        label = reduce_zero_label(label)
    ignore = list(results.get('sem_seg_ignore_ids', ()))
    if ignore:
        label[np.isin(label, ignore)] = 255
    return label


@TRANSFORMS.register_module()
class LoadMasks(BaseTransform):
    """``mask_anns`` -> ``gt_masks`` bool [k,H,W] and ``gt_boxes`` xyxy pixels [k,4].

    Each annotation is one of:

    * ``{'segmentation': ...}``: COCO polygons / RLE, or the re-packed RefCOCO list of RLE
      parts (see :func:`decode_segmentation`);
    * ``{'label_path': PNG, 'class_id': c}``: the pixels equal to ``c`` after the sample's
      label rules (``reduce_zero_label``, ``sem_seg_ignore_ids``; :func:`read_label_map`);
    * ``{'mask_path': PNG}``: the pixels equal to 255 (the reference's salient rule: soft
      edges below 255 are background), or above ``threshold`` when the annotation has one.

    A ``bbox`` (COCO xywh) in the annotation is the GT box; otherwise the mask's tight box.
    ``height``/``width`` in the annotation (the record's declared size) must match the
    image. ``field`` names the annotation in errors (default ``mask_anns[i]``).
    ``sem_seg_path`` (a label map) becomes ``gt_sem_seg``, under the same label rules.
    """

    def transform(self, results: dict) -> dict:
        labels: dict = {}  # label maps read once per sample, however many classes prompt them
        if results.get('sem_seg_path') is not None:
            results['gt_sem_seg'] = self._label_map(results, labels)
        anns = results.get('mask_anns')
        if anns is None:
            return results
        h, w = results['ori_shape']
        masks = []
        for i, ann in enumerate(anns):
            field = ann.get('field', f'mask_anns[{i}]')
            self._check_declared_size(ann, h, w, results, field)
            mask = self._decode(ann, h, w, results, field, labels)
            if mask.shape != (h, w):
                raise UserError(f'{_source(results)}: {field} has size {mask.shape} but the '
                                f'image is {(h, w)}')
            masks.append(mask)
        masks = np.stack(masks) if masks else np.zeros((0, h, w), bool)
        boxes = boxes_from_masks(torch.from_numpy(masks)).numpy()
        for k, ann in enumerate(anns):
            if ann.get('bbox') is not None:
                x, y, bw, bh = ann['bbox']
                boxes[k] = [x, y, x + bw, y + bh]
        results['gt_masks'] = masks
        results['gt_boxes'] = boxes.astype(np.float32).reshape(-1, 4)
        return results

    @staticmethod
    def _check_declared_size(ann: dict, h: int, w: int, results: dict, field: str) -> None:
        declared = (ann.get('height'), ann.get('width'))
        if declared != (None, None) and declared != (h, w):
            raise UserError(f'{_source(results)}: {field} declares height/width '
                            f'{declared[0]}/{declared[1]} but the image '
                            f'{results.get("img_path")} is {h}/{w}')

    @staticmethod
    def _label_map(results: dict, labels: dict) -> np.ndarray:
        """The full label map (semantic segmentation GT), under the sample's label rules."""
        path = results['sem_seg_path']
        label = labels[path] = read_label_map(path, results, 'sem_seg_path')
        if label.shape != tuple(results['ori_shape']):
            raise UserError(f'{_source(results)}: sem_seg_path {path} has size '
                            f'{label.shape} but the image is {tuple(results["ori_shape"])}')
        return label

    @staticmethod
    def _decode(ann: dict, h: int, w: int, results: dict, field: str,
                labels: dict) -> np.ndarray:
        if 'segmentation' in ann:
            try:
                return decode_segmentation(ann['segmentation'], h, w)
            except Exception as err:  # pycocotools raises assorted errors on bad input
                raise UserError(f'{_source(results)}: {field}.segmentation is malformed '
                                f'({quote(str(err))})') from None
        if 'label_path' in ann:
            path = ann['label_path']
            if path not in labels:
                labels[path] = read_label_map(path, results, f'{field}.label_path')
            return labels[path] == ann['class_id']
        if 'mask_path' in ann:
            mask = read_image(ann['mask_path'], results, f'{field}.mask_path', 'unchanged',
                              backend='pillow')
            mask = mask if mask.ndim == 2 else mask[..., 0]
            threshold = ann.get('threshold')
            return mask == 255 if threshold is None else mask > threshold
        raise UserError(f'{_source(results)}: {field} needs segmentation, label_path or '
                        f'mask_path')
