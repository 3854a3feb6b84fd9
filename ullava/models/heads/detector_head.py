"""u-LLaVA v1's detector path as a head (mmdet's GroundingDINO: ``grounding.py``)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ullava.registry import HEADS

from .base import BaseHead, HeadBatch


@HEADS.register_module()
class GroundingHead(BaseHead):
    """u-LLaVA v1's boxes: the frozen detector's best box for the answer's grounded phrase.

    Placed after the mask and box heads, it replaces their ``pred_boxes`` with one box per
    answer (``pred_box_scores``: the detector's confidence); a sample without an image gets
    none. It trains nothing and has no loss.

    Args:
        llm_hidden: unused (every head is built with it).
        model: an mmdet GroundingDINO config dict; checkpoint: its local ``.pth``.
    """

    pred_fields = ('pred_boxes', 'pred_box_scores')

    def __init__(self, llm_hidden: int, model: dict, checkpoint: str | None = None) -> None:
        super().__init__(tokens=())
        from .grounding import GroundingDetector  # imports mmdet only when asked for
        self.detector = GroundingDetector(model, checkpoint)

    def unused_parameters(self) -> list[nn.Parameter]:
        return list(self.parameters())  # frozen: u-LLaVA uses GroundingDINO as it comes

    def predict(self, batch: HeadBatch, data_samples: Sequence) -> None:
        """The image is the sample's SAM input, de-normalised and cropped to its resized part."""
        inputs, pre = batch.inputs, batch.data_preprocessor
        device = batch.input_ids.device
        for i, ds in enumerate(data_samples):
            ds.pred_boxes = torch.zeros(0, 4, device=device)
            ds.pred_box_scores = torch.zeros(0, device=device)
            where = (inputs['sam_index'] == i).nonzero() \
                if inputs.get('sam_index') is not None else []
            if not len(where):
                continue
            image = inputs['sam_images'][int(where[0])] * pre.sam_std + pre.sam_mean
            rh, rw = ds.metainfo['sam_resized_shape']
            image = (image[:, :rh, :rw] * 255).round().clamp(0, 255).to(torch.uint8)
            from .grounding import grounded_phrase
            phrase = grounded_phrase(ds.get('pred_text', ''), ds.metainfo.get('prompt', ''))
            found = self.detector([image], [phrase])[0]
            if not len(found['boxes']):
                continue
            h, w = ds.metainfo['ori_shape']
            scale = torch.tensor([w / rw, h / rh, w / rw, h / rh], device=device)
            ds.pred_boxes = found['boxes'][:1].to(device).float() * scale
            ds.pred_box_scores = found['scores'][:1].to(device).float()
