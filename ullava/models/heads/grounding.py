"""The detector path of u-LLaVA v1: mmdet's GroundingDINO, prompted with the grounded phrase of
the answer (``[tag]phrase[/tag]``), gives the box: :class:`~.detector_head.GroundingHead`, a
head with no token of its own (``heads=dict(..., detector=dict(type='GroundingHead',
model=...))``, or the old ``ULLaVA(detector=..., box_source='detector')``).

mmdet 3.3.0's BERT wrapper calls ``tokenizer.batch_encode_plus`` (removed in transformers 5) and
hands transformers' BERT a 3-D sub-sentence attention mask (transformers 5 wants 2-D or 4-D).
:class:`HF5BertModel` is that wrapper with those two calls updated -- written here because no
released mmdet has the fix; select it with ``language_model=dict(type='HF5BertModel', ...)``.
"""
from __future__ import annotations

import re
from typing import Sequence

import torch
from mmdet.models.language_models.bert import (BertModel,
                                               generate_masks_with_special_tokens_and_transfer_map)
from mmdet.registry import MODELS as MMDET_MODELS
from torch import nn

from ullava.utils import load_external_checkpoint

TAG = re.compile(r'\[tag\](.*?)\[/tag\]')


@MMDET_MODELS.register_module()
class HF5BertModel(BertModel):
    """mmdet's ``BertModel`` (GroundingDINO's text encoder) for transformers 5."""

    def forward(self, captions: Sequence[str], **kwargs) -> dict:
        device = next(self.language_backbone.parameters()).device
        tokenized = self.tokenizer(list(captions), max_length=self.max_tokens, truncation=True,
                                   padding='max_length' if self.pad_to_max else 'longest',
                                   return_special_tokens_mask=True, return_tensors='pt').to(device)
        position_ids = token_type_ids = None
        attention_mask = tokenized.attention_mask
        hf_mask = attention_mask
        if self.use_sub_sentence_represent:
            attention_mask, position_ids = generate_masks_with_special_tokens_and_transfer_map(
                tokenized, self.special_tokens)
            token_type_ids = tokenized['token_type_ids']
            hf_mask = attention_mask[:, None]  # [B,L,L] -> [B,1,L,L], a mask transformers 5 takes
        features = self.language_backbone(dict(input_ids=tokenized.input_ids, attention_mask=hf_mask,
                                                position_ids=position_ids,
                                                token_type_ids=token_type_ids))
        features['masks'] = attention_mask  # GroundingDINO's layers expect the 3-D form back
        if self.use_sub_sentence_represent:
            features['position_ids'] = position_ids
            features['text_token_mask'] = tokenized.attention_mask.bool()
        return features


class GroundingDetector(nn.Module):
    """A frozen mmdet GroundingDINO built from its config dict (weights: a local ``.pth``)."""

    def __init__(self, model: dict, checkpoint: str | None = None) -> None:
        super().__init__()
        from mmengine.config import ConfigDict
        from mmengine.registry import DefaultScope
        from mmdet.utils import register_all_modules
        register_all_modules(init_default_scope=False)
        with DefaultScope.overwrite_default_scope('mmdet'):  # mmdet reads cfg.attr: a ConfigDict
            self.model = MMDET_MODELS.build(ConfigDict(model))
        if checkpoint is not None:
            state = load_external_checkpoint(checkpoint)
            self.model.load_state_dict(state.get('state_dict', state))
        else:
            self._init_without_checkpoint()
        self.model.eval().requires_grad_(False)

    def _init_without_checkpoint(self) -> None:
        """mmdet leaves some parameters as ``torch.Tensor(n, d)`` until ``init_weights`` (the
        encoder's ``level_embed``): uninitialised memory, so a detector without a checkpoint gave
        NaN boxes at random. Its own ``init_weights``, minus ``Pretrained`` entries (URLs: nothing
        downloads here; real weights come from ``checkpoint``)."""
        for module in self.model.modules():
            init_cfg = getattr(module, 'init_cfg', None)
            if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
                module.init_cfg = None
        self.model.init_weights()

    @torch.no_grad()
    def forward(self, images: list[torch.Tensor], phrases: list[str]) -> list[dict]:
        """uint8 [3,H,W] images and one phrase each -> per image ``boxes`` [n,4] (pixels of that
        image, best first) and ``scores`` [n]."""
        from mmdet.structures import DetDataSample
        samples = [DetDataSample(metainfo=dict(img_shape=img.shape[1:], ori_shape=img.shape[1:],
                                               scale_factor=(1., 1.), text=(phrase,),
                                               custom_entities=True))
                   for img, phrase in zip(images, phrases)]
        data = self.model.data_preprocessor(dict(inputs=list(images), data_samples=samples), False)
        out = self.model.predict(data['inputs'], data['data_samples'])
        results = []
        for sample in out:
            inst = sample.pred_instances
            order = inst.scores.argsort(descending=True)
            results.append(dict(boxes=inst.bboxes[order], scores=inst.scores[order]))
        return results


def grounded_phrase(answer: str, fallback: str) -> str:
    """The phrase of ``[tag]...[/tag]`` in an answer, else ``fallback`` (the question)."""
    match = TAG.search(answer)
    return match.group(1).strip() if match and match.group(1).strip() else fallback

