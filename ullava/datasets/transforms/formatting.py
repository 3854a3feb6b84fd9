"""Tokenise the conversation and pack one sample for the data preprocessor."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform

from ullava.datasets.conversation import parse_turns, tokenize_conversation, visual_input_last
from ullava.models.language import build_tokenizer
from ullava.registry import TRANSFORMS
from ullava.structures import ULLaVADataSample, packed_fields


@TRANSFORMS.register_module()
class TokenizeConversation(BaseTransform):
    """``conversations`` (LLaVA format) -> ``input_ids``, ``labels``, ``prompt_len``, ``gt_answer``.

    Args:
        tokenizer: as the model's ``tokenizer`` config (``dict(path=...)`` or ``dict(tiny=True)``).
        template: ``'conv_simple'`` or ``'conv_sep2'``.
        image_token_len / video_token_len: placeholders per ``<image>`` / ``<video>``; must match
            the model's vision tower (the model checks).
        visual_last: move each human turn's ``<image>`` / ``<video>`` after its words
            (:func:`~ullava.datasets.conversation.visual_input_last`), so the visual tokens read
            the question; False (the reference's): the templates' own order.
    """

    def __init__(self, tokenizer: dict, template: str = 'conv_sep2', image_token_len: int = 256,
                 video_token_len: int = 264, max_length: int | None = None,
                 visual_last: bool = False) -> None:
        self.tokenizer_cfg = tokenizer
        self.template = template
        self.image_token_len = image_token_len
        self.video_token_len = video_token_len
        self.max_length = max_length
        self.visual_last = bool(visual_last)

    def transform(self, results: dict) -> dict:
        source = f"{results.get('ann_file', '?')} record {results.get('record_idx', '?')}"
        turns = parse_turns(results['conversations'], source)
        if self.visual_last:
            turns = [(role, visual_input_last(text) if role == 0 else text) for role, text in turns]
        tokens = tokenize_conversation(build_tokenizer(**self.tokenizer_cfg), self.template, turns,
                                       self.image_token_len, self.video_token_len, self.max_length)
        results.update(tokens)
        results['gt_answer'] = turns[-1][1]
        results['prompt'] = turns[-2][1] if len(turns) > 1 else ''
        return results


@TRANSFORMS.register_module()
class PackULLaVAInputs(BaseTransform):
    """Build ``{'inputs': dict, 'data_samples': ULLaVADataSample}`` from the results dict.

    The target fields packed are those the registered heads declare (and their resized forms;
    ``ullava.structures.targets``), so a plugin head's targets travel without a change here.
    """

    TEXT_FIELDS = ('gt_answer', 'gt_answers', 'gt_captions')

    def __init__(self, meta_keys: Sequence[str] = ('task', 'img_path', 'video_path', 'ori_shape',
                                                   'sam_resized_shape', 'prompt', 'img_id',
                                                   'record_idx', 'sample_idx', 'prompt_class_ids',
                                                   'background_id')) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        inputs = dict(input_ids=torch.tensor(results['input_ids'], dtype=torch.long),
                      labels=torch.tensor(results['labels'], dtype=torch.long),
                      prompt_len=int(results['prompt_len']))
        for src, dst in (('clip_img', 'image'), ('clip_frames', 'video'), ('sam_img', 'sam_image')):
            if src in results:
                inputs[dst] = torch.from_numpy(np.ascontiguousarray(results[src]))
        sample = ULLaVADataSample(metainfo={k: results[k] for k in self.meta_keys if k in results})
        for key in packed_fields():
            if key in results:
                sample.set_field(torch.as_tensor(np.asarray(results[key])), key)
        for key in self.TEXT_FIELDS:
            if key in results:
                sample.set_field(results[key], key)
        return dict(inputs=inputs, data_samples=sample)
