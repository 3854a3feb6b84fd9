"""Assemble a full label map from the per-class masks of one sample, then score it with mmseg."""
from __future__ import annotations

from typing import Sequence

import torch

from ullava.evaluation.metrics import SemSegMetric
from ullava.evaluation.metrics._utils import match_to_targets
from ullava.registry import METRICS


@METRICS.register_module()
class PromptSemSegMetric(SemSegMetric):
    """Each pixel takes the prompted class with the highest mask score; pixels where no class
    scores above ``score_thr`` become the sample's ``background_id`` (255 = ignored if None)."""

    def __init__(self, score_thr: float = 0.5, **kwargs) -> None:
        super().__init__(**kwargs)
        self.score_thr = score_thr

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            ids = torch.as_tensor(sample['prompt_class_ids'], dtype=torch.long)
            # one score map per prompted class; a class the answer gave no [SEG] for scores 0
            scores = match_to_targets(torch.as_tensor(sample['pred_mask_scores']).float(), len(ids))
            background = sample.get('background_id')
            pred = torch.full(scores.shape[-2:], 255 if background is None else background,
                              dtype=torch.long)
            if len(ids):
                best, arg = scores.max(0)
                pred = torch.where(best > self.score_thr, ids[arg], pred)
            sample['pred_sem_seg'] = pred
        super().process(data_batch, data_samples)
