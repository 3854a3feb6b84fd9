"""u-LLaVA: CLIP vision tower -> projector -> causal LM, whose [SEG] / [LOC] hidden states drive
a SAM mask decoder and a box decoder.

Its defaults follow the reference's conventions that released weights depend on (the state
BEFORE each [SEG]/[LOC] prompts the heads, centre-padded xyxy boxes, mask loss at the original
size, ...); ullava's own variants are named options of the heads and the data preprocessor.
See docs/conventions.md.

Read top to bottom: construction, freezing, embedding (visual features spliced in at the
placeholder tokens), the loss, and prediction (generate, then read the [SEG]/[LOC] states of the
generated answer; or read them off a given answer -- the reference's evaluation protocol).
The model knows no task: tasks reach it only through tokens and the targets in data samples.
"""
from __future__ import annotations

import re
from typing import Sequence

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModel

from ullava.registry import MODELS
from ullava.structures import ULLaVADataSample, denormalize_boxes
from ullava.utils import UserError

from . import losses
from .heads import BoxHead, SAMMaskHead, boxes_from_masks
from .heads.mask_head import postprocess_masks
from .heads.prompts import prompt_positions
from .language import build_llm, build_tokenizer, decoder_and_head, special_token_ids
from .projector import build_projector
from .tokens import IGNORE_INDEX, IMAGE_PATCH, LOC, SEG, VIDEO_PATCH
from .vision import CLIPVisionTower

def dtype_of(module: torch.nn.Module) -> torch.dtype:
    """The parameter dtype of a module (DeepSpeed bf16 or ``torch_dtype`` may differ from fp32)."""
    return next(module.parameters()).dtype


LOSS_WEIGHTS = dict(ce=1.0, bce=2.0, dice=0.5, l1=1.0, giou=1.0)  # the reference's weights


@MODELS.register_module()
class ULLaVA(BaseModel):
    """The one model every task shares.

    Args:
        tokenizer: ``dict(path=FOLDER)`` or ``dict(tiny=True)``.
        llm: ``dict(pretrained=FOLDER)`` or ``dict(config={...})``; optional ``torch_dtype``.
        vision_tower: kwargs of :class:`CLIPVisionTower`.
        projector: ``'mlp'`` / ``'linear'`` (one Linear, the reference's ``'mlp'``: released
            weights) or ``'mlp2x'`` (Linear-GELU-Linear).
        mask_head: kwargs of :class:`SAMMaskHead` (None: no segmentation).
        box_head: kwargs of :class:`BoxHead` (None: boxes only from masks).
        lora: kwargs of ``peft.LoraConfig`` to wrap the LLM (None: no LoRA).
        trainable: regexes over parameter names; matching parameters train, all others freeze.
        loss_weights: weights of ce / bce / dice / l1 / giou.
        box_source: ``'head'`` (the [LOC] decoder), ``'mask'`` (tight box of the predicted mask),
            ``'fuse'`` (their mean where the mask is not empty) or ``'detector'`` (u-LLaVA v1:
            GroundingDINO prompted with the answer's ``[tag]phrase[/tag]``; needs ``detector``).
        detector: kwargs of :class:`~ullava.models.heads.grounding.GroundingDetector` (an mmdet
            GroundingDINO config dict and an optional local checkpoint); frozen, predict only.
        predict_protocol: ``'generate'`` (answer generated) or ``'teacher_forced'`` (the given
            answer is read in one forward pass, as the reference's RES/REC evaluation does).
        generation: kwargs for ``generate`` (max_new_tokens, do_sample, temperature, top_p).
    """

    def __init__(self, tokenizer: dict, llm: dict, vision_tower: dict, projector: str = 'mlp',
                 mask_head: dict | None = None, box_head: dict | None = None,
                 lora: dict | None = None, trainable: Sequence[str] = ('^projector',),
                 loss_weights: dict | None = None, box_source: str = 'fuse',
                 detector: dict | None = None,
                 predict_protocol: str = 'generate', generation: dict | None = None,
                 data_preprocessor: dict | None = None, init_cfg: dict | None = None) -> None:
        # built from our registry so the model also builds outside a Runner's default scope
        preprocessor = MODELS.build(data_preprocessor or dict(type='ULLaVADataPreprocessor'))
        super().__init__(data_preprocessor=preprocessor, init_cfg=init_cfg)
        if box_source not in ('head', 'mask', 'fuse', 'detector'):
            raise UserError(f"box_source must be 'head', 'mask', 'fuse' or 'detector', "
                            f"got {box_source!r}")
        if box_source == 'detector' and detector is None:
            raise UserError("box_source='detector' needs a `detector` (GroundingDINO) config")
        if predict_protocol not in ('generate', 'teacher_forced'):
            raise UserError(f"predict_protocol must be 'generate' or 'teacher_forced', "
                            f"got {predict_protocol!r}")
        self.tokenizer = build_tokenizer(**tokenizer)
        self.token_ids = special_token_ids(self.tokenizer)
        self.data_preprocessor.pad_token_id = self.tokenizer.pad_token_id
        self.vision_tower = CLIPVisionTower(**vision_tower)
        self.llm = build_llm(self.tokenizer, **llm)
        hidden = self.llm.config.hidden_size
        self.projector = build_projector(projector, self.vision_tower.hidden_size, hidden)
        self.mask_head = SAMMaskHead(hidden, **mask_head) if mask_head is not None else None
        self.box_head = BoxHead(hidden, **box_head) if box_head is not None else None
        self.detector = None
        if detector is not None:
            from .heads.grounding import GroundingDetector  # imports mmdet only when asked for
            self.detector = GroundingDetector(**detector)
        if lora is not None:
            from peft import LoraConfig, get_peft_model
            self.llm = get_peft_model(self.llm, LoraConfig(task_type='CAUSAL_LM', **lora))
        self.loss_weights = {**LOSS_WEIGHTS, **(loss_weights or {})}
        self.box_source = box_source
        self.predict_protocol = predict_protocol
        self.generation = {**dict(max_new_tokens=32, do_sample=False), **(generation or {})}
        self.set_trainable(trainable)

    # ------------------------------------------------------------------ freezing
    def set_trainable(self, patterns: Sequence[str]) -> None:
        """Train exactly the parameters whose names match one of ``patterns``; log a table."""
        regexes = [re.compile(p) for p in patterns]
        for name, param in self.named_parameters():
            param.requires_grad_(any(r.search(name) for r in regexes))
        unused = self.vision_tower.unused_parameters()
        if self.detector is not None:  # frozen: u-LLaVA uses GroundingDINO as it comes
            unused += list(self.detector.parameters())
        if self.mask_head is not None:
            unused += self.mask_head.unused_parameters()
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
        if inputs.get('images') is not None:
            feats = self.vision_tower(inputs['images'])
            image_feats = self.projector(feats.to(dtype_of(self.projector)))
        if inputs.get('videos') is not None:
            feats = self.vision_tower.encode_video(inputs['videos'])
            video_feats = self.projector(feats.to(dtype_of(self.projector)))
        embeds = self._splice(embeds, input_ids, IMAGE_PATCH, image_feats, inputs.get('image_index'))
        return self._splice(embeds, input_ids, VIDEO_PATCH, video_feats, inputs.get('video_index'))

    def hidden_states(self, inputs: dict, input_ids: torch.Tensor,
                      attention_mask: torch.Tensor) -> torch.Tensor:
        """Last-layer hidden states [B,L,H] of the LLM body (the LM head is applied later)."""
        decoder, _ = decoder_and_head(self.llm)
        out = decoder(inputs_embeds=self.embed(inputs, input_ids), attention_mask=attention_mask)
        return out.last_hidden_state

    # ------------------------------------------------------------------ heads
    def _prompts(self, input_ids: torch.Tensor, hidden: torch.Tensor, token: str, head):
        """The hidden state prompting ``head`` for every ``token`` (chosen by the head's
        ``prompt_state``), the batch index of its sample, and the count per sample."""
        where = prompt_positions(input_ids, self.token_ids[token], head.prompt_state)
        return hidden[where], where.nonzero()[:, 0], where.sum(1)

    def _mask_logits(self, inputs: dict, states: torch.Tensor, sample_idx: torch.Tensor):
        """Mask logits [P,S,S] in the SAM frame; the SAM encoder runs only on images with prompts."""
        if inputs.get('sam_images') is None:
            raise UserError('the answer holds [SEG] but the sample has no image for SAM')
        sam_of_sample = torch.full((inputs['input_ids'].shape[0],), -1, device=states.device)
        sam_of_sample[inputs['sam_index']] = torch.arange(len(inputs['sam_index']),
                                                          device=states.device)
        needed, prompt_to_image = torch.unique(sample_idx, return_inverse=True)
        if (sam_of_sample[needed] < 0).any():
            raise UserError('a sample with [SEG] in its answer has no SAM image')
        images = inputs['sam_images'][sam_of_sample[needed]].to(dtype_of(self.mask_head))
        encoder_trains = any(p.requires_grad for p in self.mask_head.image_encoder.parameters())
        with torch.set_grad_enabled(encoder_trains and torch.is_grad_enabled()):
            embeddings = self.mask_head.encode_images(images)
        return self.mask_head(embeddings, states.to(embeddings.dtype), prompt_to_image).float()

    @staticmethod
    def _targets(data_samples: Sequence[ULLaVADataSample], field: str, counts: torch.Tensor,
                 token: str, optional: bool = False) -> list[torch.Tensor]:
        """One GT field of each sample with targets, checking one target per token.

        ``optional``: a sample whose answer has none of ``token`` is not supervised by ``field``
        even if it carries targets (semantic segmentation samples have boxes but no [LOC]).
        """
        items = []
        for i, ds in enumerate(data_samples):
            target = ds.get(field)
            n = 0 if target is None else len(target)
            if optional and int(counts[i]) == 0:
                continue
            if n != int(counts[i]):
                raise UserError(f'sample {ds.metainfo.get("img_path", i)}: the answer has '
                                f'{int(counts[i])} {token} tokens but {n} targets in {field}')
            if n:
                items.append(target)
        return items

    # ------------------------------------------------------------------ loss
    def forward(self, inputs: dict, data_samples: list | None = None, mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        return self.hidden_states(inputs, inputs['input_ids'], inputs['attention_mask'])

    def _zero(self, module) -> torch.Tensor:
        """A zero that touches every trainable parameter of ``module`` (keeps DDP in step)."""
        return sum((p.sum() * 0 for p in module.parameters() if p.requires_grad),
                   torch.zeros((), device=self.data_preprocessor.device))

    def loss(self, inputs: dict, data_samples: list[ULLaVADataSample]) -> dict:
        ids, labels = inputs['input_ids'], inputs['labels']
        hidden = self.hidden_states(inputs, ids, inputs['attention_mask'])
        w = self.loss_weights
        # LM cross-entropy, with the LM head applied only where a label is supervised:
        # full-vocabulary logits over image tokens and prompts would cost more than the LLM body.
        shift_labels = labels[:, 1:]
        supervised = shift_labels != IGNORE_INDEX
        _, lm_head = decoder_and_head(self.llm)
        logits = lm_head(hidden[:, :-1][supervised])
        ce = F.cross_entropy(logits.float(), shift_labels[supervised]) if supervised.any() \
            else self._zero(self.llm)
        result = dict(loss_ce=w['ce'] * ce)
        if self.mask_head is not None:
            states, sample_idx, counts = self._prompts(ids, hidden, SEG, self.mask_head)
            field = 'gt_masks_sam' if self.mask_head.loss_frame == 'sam' else 'gt_masks'
            if self._targets(data_samples, field, counts, SEG):
                mask_logits = self._mask_logits(inputs, states, sample_idx)
                bce, dice = self._mask_losses(mask_logits, counts, data_samples)
                result['loss_mask_bce'] = w['bce'] * bce
                result['loss_mask_dice'] = w['dice'] * dice
            else:
                result['loss_mask_bce'] = self._zero(self.mask_head)
        if self.box_head is not None:
            states, _, counts = self._prompts(ids, hidden, LOC, self.box_head)
            targets = self._targets(data_samples, 'gt_boxes_norm', counts, LOC, optional=True)
            if targets:
                gt = torch.cat(targets)
                boxes = self.box_head(states.to(dtype_of(self.box_head))).float()
                result['loss_box_l1'] = w['l1'] * losses.box_l1_loss(boxes, gt)
                result['loss_box_giou'] = w['giou'] * losses.box_giou_loss(boxes, gt)
            else:
                result['loss_box_l1'] = self._zero(self.box_head)
        return result

    def _mask_losses(self, mask_logits: torch.Tensor, counts: torch.Tensor,
                     data_samples: Sequence[ULLaVADataSample]) -> tuple[torch.Tensor, torch.Tensor]:
        """BCE and Dice averaged over every mask of the batch, each mask in the mask head's
        ``loss_frame`` (sizes differ between samples at the original size, hence the loop)."""
        bce, dice = [], []
        for logits, ds in zip(mask_logits.split(counts.tolist()), data_samples):
            if len(logits):
                logits, gt = self.mask_head.loss_frame_pair(logits, ds)
                bce.append(losses.mask_bce_loss(logits, gt, reduction='none'))
                dice.append(losses.mask_dice_loss(logits, gt, reduction='none'))
        return torch.cat(bce).mean(), torch.cat(dice).mean()

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
        self._predict_masks_and_boxes(inputs, ids, hidden, data_samples)
        return data_samples

    def _detector_boxes(self, inputs: dict, i: int, ds: ULLaVADataSample, want: int):
        """The detector's best ``want`` boxes for the answer's grounded phrase (original pixels).

        The image is the sample's SAM input, de-normalised and cropped to its resized part.
        """
        from .heads.grounding import grounded_phrase
        boxes = torch.zeros(want, 4, device=inputs['input_ids'].device)
        scores = torch.zeros(want, device=boxes.device)
        where = (inputs['sam_index'] == i).nonzero() if inputs.get('sam_index') is not None else []
        if not want or not len(where):
            return boxes, scores
        pre = self.data_preprocessor
        image = inputs['sam_images'][int(where[0])] * pre.sam_std + pre.sam_mean
        rh, rw = ds.metainfo['sam_resized_shape']
        image = (image[:, :rh, :rw] * 255).round().clamp(0, 255).to(torch.uint8)
        phrase = grounded_phrase(ds.pred_text, ds.metainfo.get('prompt', ''))
        found = self.detector([image], [phrase])[0]
        h, w = ds.metainfo['ori_shape']
        n = min(want, len(found['boxes']))
        scale = boxes.new_tensor([w / rw, h / rh, w / rw, h / rh])
        boxes[:n] = found['boxes'][:n].to(boxes) * scale
        scores[:n] = found['scores'][:n].to(scores)
        return boxes, scores

    def _predict_masks_and_boxes(self, inputs: dict, ids: torch.Tensor, hidden: torch.Tensor,
                                 data_samples: list[ULLaVADataSample]) -> None:
        """Masks at the original size and boxes in original pixels for every [SEG] / [LOC]."""
        mask_logits = head_boxes = None
        seg_counts = loc_counts = torch.zeros(len(ids), dtype=torch.long, device=ids.device)
        if self.mask_head is not None:
            states, sample_idx, seg_counts = self._prompts(ids, hidden, SEG, self.mask_head)
            # a generated [SEG] in a sample with no image for SAM (text, video) yields no mask
            has_sam = torch.zeros(len(ids), dtype=torch.bool, device=ids.device)
            if inputs.get('sam_index') is not None:
                has_sam[inputs['sam_index']] = True
            keep = has_sam[sample_idx]
            if keep.any():
                mask_logits = self._mask_logits(inputs, states[keep], sample_idx[keep]) \
                    .split((seg_counts * has_sam).tolist())
        if self.box_head is not None:
            states, _, loc_counts = self._prompts(ids, hidden, LOC, self.box_head)
            if len(states):
                head_boxes = self.box_head(states.to(dtype_of(self.box_head))).float() \
                    .split(loc_counts.tolist())
        for i, ds in enumerate(data_samples):
            h, w = ds.metainfo.get('ori_shape', (0, 0))
            want = len(ds.gt_masks) if 'gt_masks' in ds else len(ds.gt_boxes) if 'gt_boxes' in ds \
                else max(int(seg_counts[i]), int(loc_counts[i]))
            scores = torch.zeros(want, h, w, device=ids.device)
            if mask_logits is not None and len(mask_logits[i]):
                logits = postprocess_masks(mask_logits[i], ds.metainfo['sam_resized_shape'], (h, w))
                scores[:min(want, len(logits))] = logits[:want].sigmoid()  # a missing [SEG]: empty
            masks = scores > 0.5
            boxes = boxes_from_masks(masks)
            if head_boxes is not None and loc_counts[i] > 0 and self.box_source != 'mask':
                from_head = torch.zeros(want, 4, device=ids.device)
                n = min(want, int(loc_counts[i]))
                from_head[:n] = denormalize_boxes(head_boxes[i][:n], (h, w))
                if self.box_source == 'head':
                    boxes = from_head
                else:  # fuse: the mean of both where the mask found something
                    has_mask = masks.flatten(1).any(1, keepdim=True)
                    boxes = torch.where(has_mask, (boxes + from_head) / 2, from_head)
            box_scores = torch.ones(want, device=ids.device)
            if self.box_source == 'detector':
                boxes, box_scores = self._detector_boxes(inputs, i, ds, want)
            ds.pred_mask_scores = scores
            ds.pred_masks = masks
            ds.pred_boxes = boxes
            ds.pred_box_scores = box_scores
