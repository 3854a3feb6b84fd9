"""Draw masks, boxes, prompt and answer over an image (an MMEngine Visualizer)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from mmengine.visualization import Visualizer

from ullava.registry import VISUALIZERS

PRED_COLOURS = [(255, 64, 64), (64, 160, 255), (255, 200, 0), (200, 64, 255), (0, 220, 160)]
GT_COLOUR = (0, 255, 0)


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a temp file beside ``path``, then rename it over ``path``: a reader (or a
    crash) never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.tmp-{os.getpid()}')
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an RGB uint8 image or a 2-D mask (bool masks become 0/255)."""
    import cv2
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    if image.ndim == 3:
        image = np.ascontiguousarray(image[..., ::-1])  # OpenCV writes BGR
    ok, buf = cv2.imencode('.png', image)
    if not ok:
        raise RuntimeError(f'PNG encoding failed for an array of shape {image.shape}')
    return buf.tobytes()


def save_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """``encode_png`` + ``atomic_write``."""
    atomic_write(path, encode_png(image))


def overlay(image: np.ndarray, masks=None, boxes=None, gt_masks=None, alpha: float = 0.45,
            gt_boxes=None) -> np.ndarray:
    """RGB uint8 image with predicted masks filled, their boxes drawn, GT masks and boxes
    outlined in green."""
    out = image.astype(np.float32).copy()
    for k, mask in enumerate(_np(masks) if masks is not None else []):
        colour = np.array(PRED_COLOURS[k % len(PRED_COLOURS)], np.float32)
        out[mask.astype(bool)] = (1 - alpha) * out[mask.astype(bool)] + alpha * colour
    out = out.astype(np.uint8)
    for mask in (_np(gt_masks) if gt_masks is not None else []):
        mask = mask.astype(bool)
        edge = mask & ~(np.roll(mask, 1, 0) & np.roll(mask, -1, 0) & np.roll(mask, 1, 1)
                        & np.roll(mask, -1, 1))
        out[edge] = GT_COLOUR
    h, w = out.shape[:2]
    drawn = [(box, GT_COLOUR) for box in (_np(gt_boxes) if gt_boxes is not None else [])]
    drawn += [(box, PRED_COLOURS[k % len(PRED_COLOURS)])
              for k, box in enumerate(_np(boxes) if boxes is not None else [])]
    for box, colour in drawn:
        x1, y1, x2, y2 = np.clip(np.round(box).astype(int), 0, [w, h, w, h])
        if x2 <= x1 or y2 <= y1:
            continue
        out[y1, x1:x2] = out[y2 - 1, x1:x2] = colour
        out[y1:y2, x1] = out[y1:y2, x2 - 1] = colour
    return out


@VISUALIZERS.register_module()
class ULLaVAVisualizer(Visualizer):
    """``add_datasample`` draws a prediction (and its ground truth) with the prompt and answer.

    Images smaller than ``min_size`` on their longest side are enlarged by a whole factor
    (nearest neighbour) after the masks and boxes are drawn, so the text stays readable.
    """

    min_size = 256

    def add_datasample(self, name: str, image: np.ndarray, data_sample=None, draw_gt: bool = True,
                       draw_pred: bool = True, show: bool = False, wait_time: float = 0,
                       out_file: str | None = None, step: int = 0, **kwargs) -> np.ndarray:
        drawn = overlay(image,
                        data_sample.get('pred_masks') if draw_pred else None,
                        data_sample.get('pred_boxes') if draw_pred else None,
                        data_sample.get('gt_masks') if draw_gt else None,
                        gt_boxes=data_sample.get('gt_boxes') if draw_gt else None)
        factor = -(-self.min_size // max(drawn.shape[:2]))  # ceil division
        if factor > 1:
            drawn = drawn.repeat(factor, 0).repeat(factor, 1)
        self.set_image(drawn)
        prompt = (data_sample.metainfo.get('prompt') or '')
        prompt = prompt.replace('<image>', '').replace('<video>', '').strip()
        answer = data_sample.get('pred_text', '')
        text = f'Q: {prompt[:60]}\nA: {answer[:60]}'
        if draw_gt and data_sample.get('gt_answer'):
            text += f'\nGT: {data_sample.get("gt_answer")[:60]}'
        scale = max(drawn.shape[:2]) / 256
        self.draw_texts(text, np.array([2, 2]), colors='white', font_sizes=max(6, int(8 * scale)),
                        bboxes=dict(facecolor='black', alpha=0.6, pad=1))
        drawn = self.get_image()
        if out_file is not None:
            save_png(out_file, drawn)  # atomic: a killed run leaves no truncated PNG
        else:
            self.add_image(name, drawn, step)
        return drawn
