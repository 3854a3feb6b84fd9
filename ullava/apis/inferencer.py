"""Load a model once, ask it many questions: ``ULLaVAInferencer(cfg, ckpt)(image, prompt)``."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmengine.dataset import Compose

from ullava.datasets.collate import ullava_collate
from ullava.engine.launch import load_config
from ullava.registry import MODELS, TRANSFORMS
from ullava.utils import UserError, install_compat


def _test_pipeline(cfg) -> list:
    """The pipeline of the config's first test dataset (a mixture's first member)."""
    if 'pipeline' in cfg:
        return copy.deepcopy(cfg.pipeline)
    dataset = cfg.test_dataloader.dataset
    dataset = dataset.datasets[0] if 'datasets' in dataset else dataset
    return copy.deepcopy(dataset.pipeline)


class ULLaVAInferencer:
    """Args:
        config: a config path (or a loaded Config).
        checkpoint: a checkpoint written by ``tools/train.py`` (or None for random weights).
        device: ``'cpu'``, ``'cuda'``...; default: CUDA when available.
    """

    def __init__(self, config: Any, checkpoint: str | None = None, device: str | None = None,
                 cfg_options: dict | None = None) -> None:
        install_compat()
        self.cfg = load_config(config, cfg_options) if isinstance(config, (str, Path)) else config
        self.device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
        if self.device.startswith('cuda') and not torch.cuda.is_available():
            raise UserError(f'device {self.device!r} asked for, but CUDA is not available here')
        if checkpoint is not None and not Path(checkpoint).is_file():  # before the slow build
            raise UserError(f'checkpoint not found: {checkpoint}')
        self.model = MODELS.build(copy.deepcopy(self.cfg.model))
        if checkpoint is not None:
            from mmengine.runner.checkpoint import _load_checkpoint
            state = _load_checkpoint(str(checkpoint), map_location='cpu')
            try:
                self.model.load_state_dict(state.get('state_dict', state))
            except RuntimeError as err:  # missing / unexpected keys, shape mismatches
                raise UserError(f'checkpoint {checkpoint} does not fit the model of the config: '
                                f'{" ".join(str(err).split())[:300]}') from None
        self.model.to(self.device).eval()
        # built from our registry: outside a Runner no default scope points MMEngine at it
        self.pipeline = Compose([TRANSFORMS.build(t) for t in _test_pipeline(self.cfg)
                                 if t['type'] not in ('LoadMasks',)])

    def prepare(self, prompt: str, image: str | np.ndarray | None = None,
                video: str | None = None) -> dict:
        if not prompt or not prompt.strip():
            raise UserError('the prompt is empty')
        results: dict = dict(task='infer', record_idx=0, ann_file='<request>')
        if isinstance(image, np.ndarray):
            if image.ndim != 3 or image.shape[2] != 3:
                raise UserError(f'image must be an RGB array of shape HxWx3, got {image.shape}')
            results.update(img=image.astype(np.uint8), ori_shape=image.shape[:2])
        elif image is not None:
            results['img_path'] = str(image)
        if video is not None:
            results['video_path'] = str(video)
        tag = '<video>\n' if video is not None else '<image>\n' if image is not None else ''
        if '<image>' in prompt or '<video>' in prompt:
            tag = ''
        results['conversations'] = [{'from': 'human', 'value': tag + prompt.strip()},
                                    {'from': 'gpt', 'value': ''}]
        return self.pipeline(results)

    @torch.no_grad()
    def __call__(self, prompt: str, image: str | np.ndarray | None = None,
                 video: str | None = None) -> dict:
        """Returns ``dict(text, masks [k,H,W] bool, scores, boxes [k,4] xyxy pixels, fields)``:
        one mask per [SEG] and one box per [LOC] of the answer (boxes read off masks where it
        has no [LOC]); ``fields``: plugin heads' other ``pred_*`` predictions."""
        return self.batch([dict(prompt=prompt, image=image, video=video)])[0]

    @torch.no_grad()
    def batch(self, requests: list[dict]) -> list[dict]:
        packed = [self.prepare(**r) for r in requests]
        data = self.model.data_preprocessor(ullava_collate(packed), False)
        protocol, self.model.predict_protocol = self.model.predict_protocol, 'generate'
        try:
            out = self.model(**data, mode='predict')
        finally:
            self.model.predict_protocol = protocol
        return [self._result(s) for s in out]

    @staticmethod
    def _result(sample) -> dict:
        """One output per generated token, as the heads wrote them (none: empty); a plugin
        head's other ``pred_*`` fields under ``fields``."""
        h, w = sample.metainfo.get('ori_shape', (0, 0))
        empty = dict(pred_masks=torch.zeros(0, h, w, dtype=torch.bool),
                     pred_mask_scores=torch.zeros(0, h, w), pred_boxes=torch.zeros(0, 4))
        get = {k: sample.get(k, v) for k, v in empty.items()}
        core = set(empty) | {'pred_text', 'pred_box_scores'}
        fields = {k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in sample.items()
                  if k.startswith('pred_') and k not in core}
        return dict(text=sample.pred_text, masks=get['pred_masks'].cpu(),
                    scores=get['pred_mask_scores'].cpu(), boxes=get['pred_boxes'].cpu(),
                    fields=fields)
