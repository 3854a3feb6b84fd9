"""Draw masks, boxes, prompt and answer over an image (an MMEngine Visualizer)."""
from __future__ import annotations

import numpy as np
import torch
from mmengine.visualization import Visualizer

from ullava.registry import VISUALIZERS

PRED_COLOURS = [(255, 64, 64), (64, 160, 255), (255, 200, 0), (200, 64, 255), (0, 220, 160)]
GT_COLOUR = (0, 255, 0)


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def overlay(image: np.ndarray, masks=None, boxes=None, gt_masks=None, alpha: float = 0.45) -> np.ndarray:
    """RGB uint8 image with predicted masks filled, their boxes drawn, GT mask outlines in green."""
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
    for k, box in enumerate(_np(boxes) if boxes is not None else []):
        x1, y1, x2, y2 = np.clip(np.round(box).astype(int), 0, [w, h, w, h])
        if x2 <= x1 or y2 <= y1:
            continue
        colour = PRED_COLOURS[k % len(PRED_COLOURS)]
        out[y1, x1:x2] = out[y2 - 1, x1:x2] = colour
        out[y1:y2, x1] = out[y1:y2, x2 - 1] = colour
    return out


@VISUALIZERS.register_module()
class ULLaVAVisualizer(Visualizer):
    """``add_datasample`` draws a prediction (and its ground truth) with the prompt and answer."""

    def add_datasample(self, name: str, image: np.ndarray, data_sample=None, draw_gt: bool = True,
                       draw_pred: bool = True, show: bool = False, wait_time: float = 0,
                       out_file: str | None = None, step: int = 0, **kwargs) -> np.ndarray:
        drawn = overlay(image,
                        data_sample.get('pred_masks') if draw_pred else None,
                        data_sample.get('pred_boxes') if draw_pred else None,
                        data_sample.get('gt_masks') if draw_gt else None)
        self.set_image(drawn)
        prompt = (data_sample.metainfo.get('prompt') or '').replace('<image>', '').strip()
        answer = data_sample.get('pred_text', '')
        text = f'Q: {prompt[:60]}\nA: {answer[:60]}'
        scale = max(drawn.shape[:2]) / 256
        self.draw_texts(text, np.array([2, 2]), colors='white', font_sizes=max(6, int(8 * scale)),
                        bboxes=dict(facecolor='black', alpha=0.6, pad=1))
        drawn = self.get_image()
        if out_file is not None:
            import mmcv
            mmcv.imwrite(drawn[..., ::-1], out_file)
        else:
            self.add_image(name, drawn, step)
        return drawn
