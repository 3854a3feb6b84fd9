"""Batch the packed samples: pad token ids, normalise the CLIP and SAM images, move to device."""
from __future__ import annotations

from typing import Sequence

import torch
from mmengine.model import BaseDataPreprocessor

from ullava.registry import MODELS
from ullava.utils import UserError

from .tokens import IGNORE_INDEX

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
SAM_MEAN = (123.675 / 255, 116.28 / 255, 103.53 / 255)
SAM_STD = (58.395 / 255, 57.12 / 255, 57.375 / 255)


def _pad(seqs: Sequence[torch.Tensor], value: int) -> torch.Tensor:
    out = seqs[0].new_full((len(seqs), max(len(s) for s in seqs)), value)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = s
    return out


@MODELS.register_module()
class ULLaVADataPreprocessor(BaseDataPreprocessor):
    """Turns ``{'inputs': [per-sample dict], 'data_samples': [...]}`` into model inputs.

    Per-sample input keys (from ``PackULLaVAInputs``): ``input_ids``, ``labels``, ``prompt_len``,
    and optionally ``image`` (uint8 [3,h,w] for CLIP), ``video`` (uint8 [T,3,h,w]),
    ``sam_image`` (uint8 [3,S,S]). The batch holds the images of only the samples that have
    one, with ``*_index`` telling which sample each belongs to.

    Args:
        sam_pad: ``'after_norm'`` (the reference, as segment-anything's ``Sam.preprocess``:
            normalise, THEN pad with zeros, so the pad is 0 after normalising) or
            ``'before_norm'`` (the uint8 image's zero pad is normalised with it: about -2).
            The resized part of each SAM image is ``sam_resized_shape`` of its data sample.
    """

    def __init__(self, clip_mean: Sequence[float] = CLIP_MEAN, clip_std: Sequence[float] = CLIP_STD,
                 sam_mean: Sequence[float] = SAM_MEAN, sam_std: Sequence[float] = SAM_STD,
                 sam_pad: str = 'after_norm', pad_token_id: int = 0,
                 non_blocking: bool = False) -> None:
        super().__init__(non_blocking)
        if sam_pad not in ('after_norm', 'before_norm'):
            raise UserError(f"data_preprocessor.sam_pad must be 'after_norm' (the reference's) or "
                            f"'before_norm', got {sam_pad!r}")
        self.sam_pad = sam_pad
        self.register_buffer('clip_mean', torch.tensor(clip_mean).view(3, 1, 1), persistent=False)
        self.register_buffer('clip_std', torch.tensor(clip_std).view(3, 1, 1), persistent=False)
        self.register_buffer('sam_mean', torch.tensor(sam_mean).view(3, 1, 1), persistent=False)
        self.register_buffer('sam_std', torch.tensor(sam_std).view(3, 1, 1), persistent=False)
        self.pad_token_id = pad_token_id  # the model sets it from its tokenizer

    def _stack(self, samples: list[dict], key: str, mean: torch.Tensor, std: torch.Tensor):
        index = [i for i, s in enumerate(samples) if s.get(key) is not None]
        if not index:
            return None, None
        pixels = torch.stack([samples[i][key] for i in index]).to(self.device).float() / 255
        return (pixels - mean) / std, torch.tensor(index, device=self.device)

    @staticmethod
    def _zero_sam_padding(images: torch.Tensor, index: torch.Tensor, data_samples: list) -> None:
        """Set everything outside each image's resized part to 0 (in place, after normalising)."""
        for row, i in enumerate(index.tolist()):
            resized = data_samples[i].metainfo.get('sam_resized_shape')
            if resized is None:
                raise UserError(f'sample {data_samples[i].metainfo.get("img_path", i)} has a SAM '
                                f'image but no sam_resized_shape (set by ResizeForSAM)')
            h, w = resized
            images[row, :, h:] = 0
            images[row, :, :, w:] = 0

    def forward(self, data: dict, training: bool = False) -> dict:
        samples, data_samples = data['inputs'], data['data_samples']
        input_ids = _pad([s['input_ids'] for s in samples], self.pad_token_id)
        lengths = torch.tensor([len(s['input_ids']) for s in samples])
        batch = dict(
            input_ids=input_ids.to(self.device),
            labels=_pad([s['labels'] for s in samples], IGNORE_INDEX).to(self.device),
            attention_mask=(torch.arange(input_ids.shape[1])[None] < lengths[:, None]).to(self.device),
            prompt_lens=torch.tensor([s['prompt_len'] for s in samples], device=self.device))
        batch['images'], batch['image_index'] = self._stack(samples, 'image', self.clip_mean, self.clip_std)
        batch['videos'], batch['video_index'] = self._stack(samples, 'video', self.clip_mean[None],
                                                            self.clip_std[None])
        batch['sam_images'], batch['sam_index'] = self._stack(samples, 'sam_image', self.sam_mean,
                                                              self.sam_std)
        if batch['sam_images'] is not None and self.sam_pad == 'after_norm':
            self._zero_sam_padding(batch['sam_images'], batch['sam_index'], data_samples)
        return dict(inputs=batch, data_samples=[ds.to(self.device) for ds in data_samples])
