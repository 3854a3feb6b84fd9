"""Load images, video frames and masks, with errors that name the file and the field."""
from __future__ import annotations

from pathlib import Path

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from PIL import Image, ImageSequence
from pycocotools import mask as mask_utils

from ullava.registry import TRANSFORMS
from ullava.utils import UserError


def _source(results: dict) -> str:
    return f"{results.get('ann_file', '?')} record {results.get('record_idx', '?')}"


def read_image(path: str | Path, results: dict, field: str, flag: str = 'color') -> np.ndarray:
    """Read an image file; a missing or undecodable file is a UserError naming both."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f'{_source(results)}: {field} {path} does not exist')
    try:
        img = mmcv.imfrombytes(path.read_bytes(), flag=flag, channel_order='rgb')
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


@TRANSFORMS.register_module()
class LoadMasks(BaseTransform):
    """``mask_anns`` -> ``gt_masks`` bool [k,H,W] and ``gt_boxes`` xyxy pixels [k,4].

    Each annotation is one of: ``{'segmentation': RLE or polygons}`` (COCO),
    ``{'label_path': PNG, 'class_id': c}`` (pixels equal to c), ``{'mask_path': PNG}`` (> 127).
    A ``bbox`` (COCO xywh) in the annotation is the GT box; otherwise the mask's tight box.
    ``sem_seg_path`` (a label map) becomes ``gt_sem_seg``.
    """

    def transform(self, results: dict) -> dict:
        if results.get('sem_seg_path') is not None:
            results['gt_sem_seg'] = self._label_map(results)
        anns = results.get('mask_anns')
        if anns is None:
            return results
        h, w = results['ori_shape']
        masks, boxes = [], []
        for i, ann in enumerate(anns):
            mask = self._decode(ann, h, w, results, i)
            if mask.shape != (h, w):
                raise UserError(f'{_source(results)}: mask_anns[{i}] has size {mask.shape} but the '
                                f'image is {(h, w)}')
            masks.append(mask)
            if ann.get('bbox') is not None:
                x, y, bw, bh = ann['bbox']
                boxes.append([x, y, x + bw, y + bh])
            else:
                ys, xs = np.nonzero(mask)
                boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] if len(xs) else [0] * 4)
        results['gt_masks'] = np.stack(masks) if masks else np.zeros((0, h, w), bool)
        results['gt_boxes'] = np.asarray(boxes, np.float32).reshape(-1, 4)
        return results

    @staticmethod
    def _label_map(results: dict) -> np.ndarray:
        """The full label map (semantic segmentation GT); ``sem_seg_ignore_ids`` -> 255."""
        label = read_image(results['sem_seg_path'], results, 'sem_seg_path', 'unchanged')
        label = (label if label.ndim == 2 else label[..., 0]).astype(np.int64)
        if label.shape != tuple(results['ori_shape']):
            raise UserError(f'{_source(results)}: sem_seg_path {results["sem_seg_path"]} has size '
                            f'{label.shape} but the image is {tuple(results["ori_shape"])}')
        for i in results.get('sem_seg_ignore_ids', ()):
            label[label == i] = 255
        return label

    def _decode(self, ann: dict, h: int, w: int, results: dict, i: int) -> np.ndarray:
        if 'segmentation' in ann:
            seg = ann['segmentation']
            try:
                if isinstance(seg, list):  # polygons
                    rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
                elif isinstance(seg, dict) and isinstance(seg.get('counts'), list):  # uncompressed
                    rle = mask_utils.frPyObjects(seg, h, w)
                else:
                    rle = dict(seg, counts=seg['counts'].encode() if isinstance(seg['counts'], str)
                               else seg['counts'])
                return mask_utils.decode(rle).astype(bool)
            except Exception as err:
                raise UserError(f'{_source(results)}: mask_anns[{i}].segmentation is malformed '
                                f'({err})') from None
        if 'label_path' in ann:
            label = read_image(ann['label_path'], results, f'mask_anns[{i}].label_path', 'unchanged')
            return (label if label.ndim == 2 else label[..., 0]) == ann['class_id']
        if 'mask_path' in ann:
            mask = read_image(ann['mask_path'], results, f'mask_anns[{i}].mask_path', 'unchanged')
            return (mask if mask.ndim == 2 else mask[..., 0]) > 127
        raise UserError(f'{_source(results)}: mask_anns[{i}] needs segmentation, label_path or '
                        f'mask_path')
