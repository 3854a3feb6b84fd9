"""u-LLaVA: CLIP vision tower -> projector -> causal LM -> heads.

Each head (``ullava.registry.HEADS``; ``heads/base.py``) reads the LLM's states at its own
tokens (SAM's mask decoder, the box decoder, a plugin's head) and brings its own loss terms,
predictions and targets.
The defaults follow the reference's conventions that released weights depend on (see
docs/conventions.md); ullava's own variants are named options of the heads and the data
preprocessor.

Read top to bottom: construction, freezing, embedding (visual features spliced in at the
placeholder tokens), the loss (the LM's, then each head's), and prediction (generate, or read a
given answer -- the reference's evaluation protocol -- then each head writes its outputs).
The model knows no task: tasks reach it only through its heads and the targets in data samples.
"""
from __future__ import annotations

import re
from typing import Sequence

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModel

from ullava.registry import HEADS, MODELS
from ullava.structures import ULLaVADataSample
from ullava.utils import UserError

from .heads.base import BaseHead, HeadBatch, dtype_of
from .heads.legacy import LEGACY_HEAD_NAMES, legacy_heads
from .language import build_llm, build_tokenizer, decoder_and_head, special_token_ids
from .packing import enable_packing, packed_forward
from .projector import build_projector
from .tokens import IGNORE_INDEX, IMAGE_PATCH, VIDEO_PATCH
from .vision import build_vision_tower

__all__ = ['ULLaVA', 'dtype_of']


@MODELS.register_module()
class ULLaVA(BaseModel):
    """The one model every task shares.

    Args:
        tokenizer: ``dict(path=FOLDER)`` or ``dict(tiny=True)``; ``extra_tokens`` must hold the
            heads' tokens the reference does not have (the data pipeline uses the same dict).
        llm: ``dict(pretrained=FOLDER)`` or ``dict(config={...})``; optional ``torch_dtype``.
        vision_tower: kwargs of :class:`~.vision.CLIPVisionTower` (the reference's), or
            ``dict(type='SAMEncoderTower', ...)`` (``ullava/models/vision.py``).
        projector: ``'mlp'`` / ``'linear'`` (one Linear, the reference's ``'mlp'``: released
            weights) or ``'mlp2x'`` (Linear-GELU-Linear).
        heads: name -> head config (``HEADS``), built in this order with ``llm_hidden``; the
            name is the module's attribute and state-dict prefix. They predict in this order.
        lora: kwargs of ``peft.LoraConfig`` to wrap the LLM (None: no LoRA).
        trainable: regexes over parameter names; matching parameters train, all others freeze.
        loss_weights: ``ce`` weighs the LM loss (the heads weigh their own terms; the old keys
            bce / dice / l1 / giou still reach them).
        mask_head / box_head / detector / box_source: deprecated, see
            :func:`~.heads.legacy.legacy_heads`.
        predict_protocol: ``'generate'`` (answer generated) or ``'teacher_forced'`` (the given
            answer is read in one forward pass, as the reference's RES/REC evaluation does).
        generation: kwargs for ``generate`` (max_new_tokens, do_sample, temperature, top_p).
        packing: run the LLM body on the batch's real tokens only, each sample attending within
            itself (``ullava/models/packing.py``); the same states as the padded batch, less
            work when lengths differ. Off by default (the reference pads).
        ce_reduction: ``'token'`` (the reference's, as every HF causal LM: the mean over the
            batch's supervised tokens) or ``'sample'`` (each sample's mean, then the mean over
            samples: a one-word VQA answer weighs as much as a 30-token caption instead of
            1/30 of it).
    """

    def __init__(self, tokenizer: dict, llm: dict, vision_tower: dict, projector: str = 'mlp',
                 heads: dict | None = None, mask_head: dict | None = None,
                 box_head: dict | None = None, lora: dict | None = None,
                 trainable: Sequence[str] = ('^projector',), loss_weights: dict | None = None,
                 box_source: str | None = None, detector: dict | None = None,
                 predict_protocol: str = 'generate', generation: dict | None = None,
                 packing: bool = False, ce_reduction: str = 'token',
                 data_preprocessor: dict | None = None,
                 init_cfg: dict | None = None) -> None:
        # built from our registry so the model also builds outside a Runner's default scope
        preprocessor = MODELS.build(data_preprocessor or dict(type='ULLaVADataPreprocessor'))
        super().__init__(data_preprocessor=preprocessor, init_cfg=init_cfg)
        if ce_reduction not in ('token', 'sample'):
            raise UserError(f"model.ce_reduction must be 'token' (the reference's) or 'sample', "
                            f"got {ce_reduction!r}")
        self.ce_reduction = ce_reduction
        if predict_protocol not in ('generate', 'teacher_forced'):
            raise UserError(f"predict_protocol must be 'generate' or 'teacher_forced', "
                            f"got {predict_protocol!r}")
        heads = {**legacy_heads(mask_head, box_head, detector, box_source, loss_weights),
                 **(heads or {})}
        self.tokenizer = build_tokenizer(**tokenizer)
        self.vision_tower = build_vision_tower(vision_tower)
        self.llm = build_llm(self.tokenizer, **llm)
        hidden = self.llm.config.hidden_size
        self.projector = build_projector(projector, self.vision_tower.hidden_size, hidden)
        self.head_names: list[str] = []
        for name, cfg in heads.items():
            if cfg is None:  # a config dropping a head of its base
                continue
            head = HEADS.build(cfg, default_args=dict(llm_hidden=hidden))
            if not isinstance(head, BaseHead):
                raise UserError(f'model.heads.{name}: {type(head).__name__} is not a BaseHead')
            if name in self._modules or hasattr(type(self), name):
                raise UserError(f'model.heads: the name {name!r} is taken by the model itself')
            setattr(self, name, head)  # not add_module: it refuses the legacy names (__getattr__)
            self.head_names.append(name)
        self.token_ids = self._head_token_ids()
        self.data_preprocessor.pad_token_id = self.tokenizer.pad_token_id
        if lora is not None:
            from peft import LoraConfig, get_peft_model
            self.llm = get_peft_model(self.llm, LoraConfig(task_type='CAUSAL_LM', **lora))
        self.ce_weight = float((loss_weights or {}).get('ce', 1.0))
        self.predict_protocol = predict_protocol
        self.generation = {**dict(max_new_tokens=32, do_sample=False), **(generation or {})}
        self.packing = bool(packing)
        if self.packing:
            enable_packing(self.llm)
        self.set_trainable(trainable)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name in LEGACY_HEAD_NAMES:  # deprecated: a head the model was built without
                return None
            raise

    @property
    def heads(self) -> dict[str, BaseHead]:
        """The heads by name, in config order."""
        return {name: getattr(self, name) for name in self.head_names}

    def _head_token_ids(self) -> dict[str, int]:
        """ullava's special-token ids plus every head's token, checked to be in the tokenizer."""
        ids = special_token_ids(self.tokenizer)
        vocab = self.tokenizer.get_vocab()
        for name, head in self.heads.items():
            for token in head.tokens:
                if token not in vocab:
                    raise UserError(
                        f'model.heads.{name}: its token {token} is not in the tokenizer; add it '
                        f'to tokenizer.extra_tokens (the config\'s one tokenizer dict, so the data '
                        f'pipeline tokenises it too), e.g. extra_tokens=[{token!r}]')
                ids[token] = vocab[token]
        return ids

    @property
    def box_source(self) -> str | None:
        """Deprecated: the ``box_source`` of the first head that has one."""
        return next((h.box_source for h in self.heads.values() if hasattr(h, 'box_source')), None)

    @box_source.setter
    def box_source(self, value: str) -> None:
        for head in self.heads.values():
            if hasattr(head, 'box_source'):
                head.box_source = value

    # ------------------------------------------------------------------ freezing
    def set_trainable(self, patterns: Sequence[str]) -> None:
        """Train exactly the parameters whose names match one of ``patterns``; log a table."""
        regexes = [re.compile(p) for p in patterns]
        for name, param in self.named_parameters():
            param.requires_grad_(any(r.search(name) for r in regexes))
        unused = self.vision_tower.unused_parameters()
        for head in self.heads.values():
            unused += head.unused_parameters()
        for param in unused:
            param.requires_grad_(False)
        rows: dict[str, list[int]] = {}
        for name, param in self.named_parameters():
            counts = rows.setdefault(name.split('.')[0], [0, 0])
            counts[0] += param.numel()
            counts[1] += param.numel() if param.requires_grad else 0
        lines = [f'{"module":16s} {"params":>14s} {"trainable":>14s}']
        lines += [f'{k:16s} {v[0]:14,d} {v[1]:14,d}' for k, v in rows.items()]
        total = [sum(v[i] for v in rows.values()) for i in (0, 1)]
        lines.append(f'{"total":16s} {total[0]:14,d} {total[1]:14,d}')
        print_log('trainable parameters:\n' + '\n'.join(lines), logger='current')

    @property
    def image_tokens(self) -> int:
        return self.vision_tower.num_patches

    @property
    def video_tokens(self) -> int:
        return self.vision_tower.num_video_tokens

    # ------------------------------------------------------------------ embedding
    def _splice(self, embeds: torch.Tensor, input_ids: torch.Tensor, token: str,
                feats: torch.Tensor | None, index: torch.Tensor | None) -> torch.Tensor:
        """Put ``feats`` [n,N,D] at the ``token`` placeholders of the samples named by ``index``."""
        where = input_ids == self.token_ids[token]
        found = where.sum(1)
        expected = torch.zeros_like(found)
        if feats is not None:
            expected.index_add_(0, index, torch.full_like(index, feats.shape[1]))
        if not torch.equal(found, expected):
            bad = int((found != expected).nonzero()[0])
            raise UserError(f'sample {bad} of the batch has {int(found[bad])} {token} placeholder '
                            f'tokens but its visual input gives {int(expected[bad])}: a prompt with '
                            f'more placeholders than images/videos, or a wrong image_token_len')
        if feats is None:
            return embeds
        embeds = embeds.clone()
        embeds[where] = feats.reshape(-1, feats.shape[-1]).to(embeds.dtype)
        return embeds

    def embed(self, inputs: dict, input_ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings with the projected image/video features spliced in."""
        embeds = self.llm.get_input_embeddings()(input_ids)
        image_feats = video_feats = None
        # a tower reading SAM's view of the images (SAMEncoderTower) is spliced at sam_index
        stream = getattr(self.vision_tower, 'image_stream', 'clip')
        images, image_index = (inputs.get('sam_images'), inputs.get('sam_index')) \
            if stream == 'sam' else (inputs.get('images'), inputs.get('image_index'))
        if images is not None:
            feats = self.vision_tower(images)
            image_feats = self.projector(feats.to(dtype_of(self.projector)))
        if inputs.get('videos') is not None:
            feats = self.vision_tower.encode_video(inputs['videos'])
            video_feats = self.projector(feats.to(dtype_of(self.projector)))
        embeds = self._splice(embeds, input_ids, IMAGE_PATCH, image_feats, image_index)
        return self._splice(embeds, input_ids, VIDEO_PATCH, video_feats, inputs.get('video_index'))

    def hidden_states(self, inputs: dict, input_ids: torch.Tensor,
                      attention_mask: torch.Tensor) -> torch.Tensor:
        """Last-layer hidden states [B,L,H] of the LLM body (the LM head is applied later)."""
        decoder, _ = decoder_and_head(self.llm)
        embeds = self.embed(inputs, input_ids)
        if self.packing:
            return packed_forward(decoder, embeds, attention_mask)
        return decoder(inputs_embeds=embeds, attention_mask=attention_mask).last_hidden_state

    # ------------------------------------------------------------------ loss
    def forward(self, inputs: dict, data_samples: list | None = None, mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        return self.hidden_states(inputs, inputs['input_ids'], inputs['attention_mask'])

    def loss(self, inputs: dict, data_samples: list[ULLaVADataSample]) -> dict:
        ids, labels = inputs['input_ids'], inputs['labels']
        hidden = self.hidden_states(inputs, ids, inputs['attention_mask'])
        batch = HeadBatch(inputs, ids, hidden, self.token_ids, self.data_preprocessor)
        # LM cross-entropy, with the LM head applied only where a label is supervised:
        # full-vocabulary logits over image tokens and prompts would cost more than the LLM body.
        shift_labels = labels[:, 1:]
        supervised = shift_labels != IGNORE_INDEX
        _, lm_head = decoder_and_head(self.llm)
        logits = lm_head(hidden[:, :-1][supervised])
        ce = self._lm_loss(logits, shift_labels[supervised], supervised) if supervised.any() \
            else batch.zero(self.llm)
        result = dict(loss_ce=self.ce_weight * ce)
        for name, head in self.heads.items():
            for key, value in head.loss(batch, data_samples).items():
                if key in result:
                    raise UserError(f'model.heads.{name}: loss term {key} is also another '
                                    f'head\'s; name each head\'s terms apart')
                result[key] = value
        return result

    def _lm_loss(self, logits: torch.Tensor, targets: torch.Tensor,
                 supervised: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the supervised positions (``supervised`` [B, L-1] marks them, in
        the row-major order of ``logits``), reduced as ``ce_reduction`` says."""
        if self.ce_reduction == 'token':
            return F.cross_entropy(logits.float(), targets)
        per_token = F.cross_entropy(logits.float(), targets, reduction='none')
        sample = supervised.nonzero()[:, 0]  # the sample of each supervised position
        counts = supervised.sum(1)
        per_sample = per_token.new_zeros(len(counts)).index_add_(0, sample, per_token)
        kept = counts > 0
        return (per_sample[kept] / counts[kept]).mean()

    # ------------------------------------------------------------------ predict
    @torch.no_grad()
    def generate(self, inputs: dict) -> list[torch.Tensor]:
        """Greedy or sampled generation (KV cache) from each sample's prompt; new tokens only."""
        ids, lens = inputs['input_ids'], inputs['prompt_lens']
        width = int(lens.max())
        left = ids.new_full((len(ids), width), self.tokenizer.pad_token_id)  # left padding
        attention = torch.zeros_like(left, dtype=torch.bool)
        for i, n in enumerate(lens.tolist()):
            left[i, width - n:] = ids[i, :n]
            attention[i, width - n:] = True
        out = self.llm.generate(inputs_embeds=self.embed(inputs, left), attention_mask=attention,
                                pad_token_id=self.tokenizer.pad_token_id,
                                eos_token_id=self.tokenizer.eos_token_id, **self.generation)
        stop = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id}
        answers = []
        for row in out:
            tokens = row.tolist()
            cut = next((j for j, t in enumerate(tokens) if t in stop), len(tokens))
            answers.append(row[:cut])
        return answers

    @torch.no_grad()
    def predict(self, inputs: dict, data_samples: list[ULLaVADataSample]) -> list[ULLaVADataSample]:
        ids, lens = inputs['input_ids'], inputs['prompt_lens']
        if self.predict_protocol == 'generate':
            answers = self.generate(inputs)
            seqs = [torch.cat([ids[i, :n], a]) for i, (n, a) in enumerate(zip(lens.tolist(), answers))]
            ids = ids.new_full((len(seqs), max(len(s) for s in seqs)), self.tokenizer.pad_token_id)
            for i, s in enumerate(seqs):
                ids[i, :len(s)] = s
            attention = torch.arange(ids.shape[1], device=ids.device)[None] < torch.tensor(
                [len(s) for s in seqs], device=ids.device)[:, None]
        else:
            answers = [ids[i, n:][inputs['labels'][i, n:] != IGNORE_INDEX]
                       for i, n in enumerate(lens.tolist())]
            attention = inputs['attention_mask']
        hidden = self.hidden_states(inputs, ids, attention)
        for ds, answer in zip(data_samples, answers):
            text = self.tokenizer.decode(answer, skip_special_tokens=False)
            ds.pred_text = text.replace(self.tokenizer.eos_token or '', '').strip()
        batch = HeadBatch(inputs, ids, hidden, self.token_ids, self.data_preprocessor)
        for head in self.heads.values():  # in config order: a box head reads the masks before it
            head.predict(batch, data_samples)
        return data_samples
