"""Write every test prediction as one JSON line (``tools/test.py --out FILE.jsonl``)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from mmengine.hooks import Hook

from ullava.registry import HOOKS


def _rles(masks: torch.Tensor) -> list[dict]:
    """COCO RLEs (pycocotools; ``counts`` as str) of bool masks [k,H,W]."""
    from pycocotools import mask as mask_utils
    if masks is None or len(masks) == 0:
        return []
    stack = np.asfortranarray(masks.cpu().numpy().astype(np.uint8).transpose(1, 2, 0))
    return [{'size': [int(s) for s in rle['size']], 'counts': rle['counts'].decode('ascii')}
            for rle in mask_utils.encode(stack)]


def _floats(values, digits: int) -> list:
    return np.round(values.float().cpu().numpy().astype(float), digits).tolist() \
        if values is not None else []


def prediction_record(sample) -> dict:
    """One prediction as a JSON-ready dict.

    ``masks`` are COCO RLEs at the original image size, one per ``[SEG]``; ``mask_scores`` the
    mean predicted probability inside each mask (0 for an empty one); ``boxes`` xyxy in original
    pixels, one per object, with ``scores`` (1 for boxes from the [LOC] head or the mask, the
    detector's confidence with ``box_source='detector'``).
    """
    meta = sample.metainfo
    masks, probs = sample.get('pred_masks'), sample.get('pred_mask_scores')
    mask_scores = None
    if masks is not None and probs is not None and len(masks):
        area = masks.flatten(1).sum(1)
        mask_scores = (probs * masks).flatten(1).sum(1) / area.clamp(min=1)
    return dict(task=meta.get('task'), img_path=meta.get('img_path'),
                video_path=meta.get('video_path'), prompt=meta.get('prompt'),
                text=sample.get('pred_text'), masks=_rles(masks),
                mask_scores=_floats(mask_scores, 4),
                boxes=_floats(sample.get('pred_boxes'), 2),
                scores=_floats(sample.get('pred_box_scores'), 4))


@HOOKS.register_module()
class DumpPredictionsHook(Hook):
    """Collect :func:`prediction_record` of every test sample; rank 0 writes them, in dataset
    order, to ``out_file`` (one JSON object per line, ``index`` its position in the test
    dataset) when the test ends.

    Records of all ranks are gathered with MMEngine's ``collect_results`` (which also drops the
    samples a distributed sampler repeats to pad the last batch).
    """

    priority = 'LOW'

    def __init__(self, out_file: str) -> None:
        self.out_file = Path(out_file)
        self._records: list[dict] = []

    def before_test(self, runner) -> None:
        self._records = []

    def after_test_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._records += [prediction_record(sample) for sample in outputs or []]

    def after_test_epoch(self, runner, metrics=None) -> None:
        from mmengine.dist import collect_results

        from ullava.visualization.visualizer import atomic_write
        records = collect_results(self._records, len(runner.test_dataloader.dataset), 'cpu')
        if runner.rank == 0:
            text = ''.join(json.dumps(dict(index=i, **r)) + '\n' for i, r in enumerate(records))
            atomic_write(self.out_file, text.encode())  # a killed run leaves no half file
            runner.logger.info(f'{len(records)} predictions written to {self.out_file}')
        self._records = []
