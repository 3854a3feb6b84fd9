"""Draw masks, boxes, prompt and answer over an image (an MMEngine Visualizer)."""
from __future__ import annotations

import os
import threading
from pathlib import Path

import cv2
import numpy as np
import torch
from mmengine.dist import master_only
from mmengine.visualization import Visualizer

from ullava.registry import VISUALIZERS

PRED_COLOURS = [(255, 64, 64), (64, 160, 255), (255, 200, 0), (200, 64, 255), (0, 220, 160)]
GT_COLOUR = (0, 255, 0)
# Box lines 3 px wide: matplotlib snaps a straight odd-width line to the pixel centres, so
# the line is exactly the pixel columns (rows) x-1, x, x+1 in full colour, with no blurred fringe.
LINE_PX = 3

# Drawing of the fields core drawing does not know (a plugin head's): field -> fn(visualizer,
# value, colour). Masks and boxes, which several heads write, are drawn by ``draw_targets``.
FIELD_DRAWERS: dict = {}


def register_field_drawer(*fields: str):
    """Decorator: ``fn(visualizer, value, colour)`` draws these data-sample fields (a plugin
    head's own predictions and targets) wherever predictions are drawn (the show-dir hook,
    tools/infer.py, the web demo).
    ``colour`` is ``GT_COLOUR`` for a ``gt_*`` field, else None (the drawer picks its own)."""
    def register(fn):
        for field in fields:
            FIELD_DRAWERS[field] = fn
        return fn
    return register


def draw_fields(vis: ULLaVAVisualizer, fields: dict) -> None:
    """Draw every field with a registered drawer (GT first: predictions on top)."""
    for name in sorted(fields, key=lambda k: not k.startswith('gt_')):
        if name in FIELD_DRAWERS and fields[name] is not None:
            FIELD_DRAWERS[name](vis, fields[name], GT_COLOUR if name.startswith('gt_') else None)


_OVERLAY_LOCK = threading.Lock()
_OVERLAY_VISUALIZER: ULLaVAVisualizer | None = None


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _stack(masks, shape: tuple) -> np.ndarray:
    """Masks (None, [H, W], [k, H, W]) as a bool [k, H, W] array; another size is an error."""
    masks = np.zeros(0) if masks is None else _np(masks)
    if masks.size == 0:
        return np.zeros((0, *shape), bool)
    masks = masks.astype(bool).reshape(-1, *masks.shape[-2:])
    if masks.shape[1:] != tuple(shape):
        raise ValueError(f'masks of shape {masks.shape[1:]} cannot be drawn on an image of '
                         f'shape {tuple(shape)}')
    return masks


def _boxes(boxes) -> np.ndarray:
    """Boxes (None, [4], [k, 4]) as a float [k, 4] array."""
    return np.zeros((0, 4)) if boxes is None else _np(boxes).astype(np.float64).reshape(-1, 4)


def mask_outline(mask: np.ndarray) -> np.ndarray:
    """The mask's own border pixels (those with a background 8-neighbour; the image's edge counts
    as background), by OpenCV's erosion."""
    mask = mask.astype(np.uint8)
    inner = cv2.erode(mask, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT,
                      borderValue=0)
    return mask > inner


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
            gt_boxes=None, fields: dict | None = None) -> np.ndarray:
    """RGB uint8 image with predicted masks filled, their boxes drawn, GT masks and boxes
    outlined in green (:meth:`ULLaVAVisualizer.draw_targets` on a private visualizer), and any
    other ``fields`` a registered drawer draws (``register_field_drawer``).

    MMEngine's drawing runs on the main process only: in a distributed job the other ranks get
    None.
    """
    global _OVERLAY_VISUALIZER
    with _OVERLAY_LOCK:  # one matplotlib figure, shared by the web demo's worker threads
        if _OVERLAY_VISUALIZER is None:
            # constructed directly, not by get_instance: kept out of MMEngine's instance registry
            _OVERLAY_VISUALIZER = ULLaVAVisualizer(name='ullava_overlay')
        vis = _OVERLAY_VISUALIZER
        vis.set_image(image)
        vis.draw_targets(masks, boxes, gt_masks, gt_boxes, alpha=alpha)
        draw_fields(vis, fields or {})
        return vis.get_image()


@VISUALIZERS.register_module()
class ULLaVAVisualizer(Visualizer):
    """``add_datasample`` draws a prediction (and its ground truth) with the prompt and answer;
    :meth:`draw_targets` draws masks, GT outlines and boxes through MMEngine's
    ``draw_binary_masks`` / ``draw_bboxes``, the text goes through ``draw_texts``.

    Images smaller than ``min_size`` on their longest side are enlarged by a whole factor
    (nearest neighbour) after the masks and boxes are drawn, so the text stays readable.
    """

    min_size = 256

    def draw_targets(self, masks=None, boxes=None, gt_masks=None, gt_boxes=None,
                     alpha: float = 0.45) -> ULLaVAVisualizer:
        """On the image given to :meth:`set_image`: fill each predicted mask (colour blend
        ``(1 - alpha) * image + alpha * colour``, one colour per mask), outline GT masks and draw
        GT boxes in green, then the predicted boxes in their mask's colour.

        Boxes are (x1, y1, x2, y2) in pixels, drawn as 3 px lines centred on those pixel
        columns / rows; they are clipped to the image, and an empty or reversed box (a bad [LOC]
        decode) is skipped.
        """
        shape = (self.height, self.width)
        masks, gt_masks = _stack(masks, shape), _stack(gt_masks, shape)
        colours = [PRED_COLOURS[k % len(PRED_COLOURS)] for k in range(len(masks))]
        alphas = [alpha] * len(masks)
        if len(gt_masks):  # a mask, not polygons: the outline is exactly the border pixels
            outline = np.any([mask_outline(m) for m in gt_masks], axis=0)
            masks = np.concatenate([masks, outline[None]])
            colours, alphas = colours + [GT_COLOUR], alphas + [1.0]
        if len(masks):
            # One call, masks first: MMEngine renders the canvas, blends, and stacks the result
            # as a new full-size image; lines drawn before it would be blended too. The images
            # under it are hidden for good, and rendering them again is most of the time spent
            # on a large image, so they go.
            self.draw_binary_masks(masks, colors=colours, alphas=alphas)
            for hidden in self.ax_save.images[:-1]:
                hidden.remove()
        gt_boxes, boxes = _boxes(gt_boxes), _boxes(boxes)  # GT first: predictions on top
        colours = [GT_COLOUR] * len(gt_boxes) + [PRED_COLOURS[k % len(PRED_COLOURS)]
                                                 for k in range(len(boxes))]
        # the last pixel row / column is the edge a full-image box is drawn on
        boxes = np.clip(np.concatenate([gt_boxes, boxes]), 0, [self.width - 1, self.height - 1] * 2)
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        if keep.any():
            self.draw_bboxes(boxes[keep], edge_colors=[c for c, k in zip(colours, keep) if k],
                             line_widths=LINE_PX * 72 / self.dpi, alpha=1.0)  # widths in points
            self.ax_save.collections[-1].set_joinstyle('miter')  # square corners, not round
        return self

    @master_only  # MMEngine draws on the main process only (a no-op elsewhere, as MMDetection)
    def add_datasample(self, name: str, image: np.ndarray, data_sample=None, draw_gt: bool = True,
                       draw_pred: bool = True, show: bool = False, wait_time: float = 0,
                       out_file: str | None = None, step: int = 0, **kwargs) -> np.ndarray:
        self.set_image(image)
        self.draw_targets(data_sample.get('pred_masks') if draw_pred else None,
                          data_sample.get('pred_boxes') if draw_pred else None,
                          data_sample.get('gt_masks') if draw_gt else None,
                          data_sample.get('gt_boxes') if draw_gt else None)
        draw_fields(self, {k: data_sample.get(k) for k in FIELD_DRAWERS
                           if (draw_gt if k.startswith('gt_') else draw_pred)})
        drawn = self.get_image()
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
