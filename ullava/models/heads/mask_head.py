"""[SEG] hidden state -> SAM sparse prompt -> SAM mask decoder -> masks.

Built from segment-anything's own classes (ImageEncoderViT, PromptEncoder, MaskDecoder), any size,
optionally loaded from an official SAM ``.pth`` (weights_only). The encoder's size is read off
the checkpoint's shapes, so ``sam_vit_b_01ec64.pth`` works where ``sam_vit_h_4b8939.pth`` did.
"""
from __future__ import annotations

import os
from functools import partial
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from segment_anything.modeling import (ImageEncoderViT, MaskDecoder, PromptEncoder,
                                       TwoWayTransformer)
from torch import nn

from ullava.registry import HEADS, MODELS
from ullava.structures import boxes_from_masks
from ullava.utils import UserError, load_external_checkpoint

from .base import BaseHead, HeadBatch, dtype_of, targets_per_token

# The three SAM sizes of the segment-anything release.
SAM_PRESETS = {
    'vit_h': dict(embed_dim=1280, depth=32, num_heads=16, global_attn_indexes=(7, 15, 23, 31)),
    'vit_l': dict(embed_dim=1024, depth=24, num_heads=16, global_attn_indexes=(5, 11, 17, 23)),
    'vit_b': dict(embed_dim=768, depth=12, num_heads=12, global_attn_indexes=(2, 5, 8, 11)),
}
LOSS_FRAMES = ('original', 'sam')
# ``loss_points``' keys and their defaults: Mask2Former's (mmdet's ``train_cfg``).
LOSS_POINTS = dict(num_points=12544, oversample_ratio=3.0, importance_sample_ratio=0.75)


def mlp(*dims: int) -> nn.Sequential:
    """Linear layers with ReLU between them."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _files(path: str | os.PathLike | Sequence[str]) -> list:
    return [path] if isinstance(path, (str, os.PathLike)) else list(path)


def read_sam_state(path: str | os.PathLike | Sequence[str]) -> dict[str, torch.Tensor]:
    """The union of one or more SAM checkpoint files (weights_only)."""
    state: dict[str, torch.Tensor] = {}
    for one in _files(path):
        state.update(load_external_checkpoint(one))
    return state


def read_sam_shapes(path: str | os.PathLike | Sequence[str]) -> dict[str, tuple[int, ...]]:
    """Key -> shape of SAM checkpoint files, without reading their tensors where possible
    (safetensors headers; ``torch.load(mmap=True)`` for zip ``.pth`` files)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for one in _files(path):
        if str(one).endswith('.safetensors') and os.path.isfile(one):
            from safetensors import safe_open
            with safe_open(str(one), framework='pt') as f:
                shapes.update({k: tuple(f.get_slice(k).get_shape()) for k in f.keys()})
            continue
        try:
            state = torch.load(one, map_location='cpu', weights_only=True, mmap=True)
        except Exception:  # a legacy (non-zip) file, or no file: the checked loader says why
            state = load_external_checkpoint(one)
        shapes.update({k: tuple(v.shape) for k, v in state.items()})
    return shapes


def sam_encoder_from_shapes(shapes: Mapping[str, Sequence[int]], source: str = 'checkpoint') -> dict:
    """ImageEncoderViT sizes (embed_dim, depth, num_heads, window_size, global_attn_indexes,
    mlp_ratio) read off the shapes of a SAM state dict (any size, not only the three presets).

    A block's relative-position table has 2 * window - 1 rows, or 2 * grid - 1 rows where the
    block attends globally; its width is the head dimension.
    """
    def shape(key: str) -> tuple[int, ...]:
        if key not in shapes:
            raise UserError(f'{source}: no {key}, so the SAM image encoder\'s size cannot be read '
                            f'from it; set mask_head.encoder (vit_h / vit_l / vit_b / tiny_vit / '
                            f'a dict of sizes)')
        return tuple(shapes[key])

    embed_dim = shape('image_encoder.patch_embed.proj.weight')[0]
    grid = shape('image_encoder.pos_embed')[1]
    depth = len({k.split('.')[2] for k in shapes if k.startswith('image_encoder.blocks.')})
    rows, head_dim = zip(*(shape(f'image_encoder.blocks.{i}.attn.rel_pos_h') for i in range(depth)))
    windows = {(r + 1) // 2 for r in rows if r != 2 * grid - 1}
    if len(windows) > 1:
        raise UserError(f'{source}: blocks with different window sizes {sorted(windows)}')
    return dict(embed_dim=embed_dim, depth=depth, num_heads=embed_dim // head_dim[0],
                window_size=windows.pop() if windows else 0,
                global_attn_indexes=tuple(i for i, r in enumerate(rows) if r == 2 * grid - 1),
                mlp_ratio=shape('image_encoder.blocks.0.mlp.lin1.weight')[0] / embed_dim)


@HEADS.register_module()
class SAMMaskHead(BaseHead):
    """SAM driven by the LLM's states at its token (``[SEG]``): one mask per token.

    Consumes ``gt_masks`` (and ``gt_masks_sam`` with ``loss_frame='sam'``); writes
    ``pred_masks`` bool [k,H,W] and ``pred_mask_scores`` [k,H,W] at the original size, and the
    masks' tight boxes as ``pred_boxes`` / ``pred_box_scores`` (a box head after it may replace
    them), k being the number of its tokens in the answer.

    Args:
        llm_hidden: hidden size of the LLM.
        encoder: None (read the size off ``checkpoint``; ViT-H without one),
            ``'vit_h' | 'vit_l' | 'vit_b'``, a dict of ImageEncoderViT sizes, or
            ``'tiny_vit'`` (MobileSAM's TinyViT encoder, from timm; see ``tinyvit_encoder.py``).
        image_size: SAM input side (1024 for the released SAM).
        patch_size: ViT patch size (16 for the released SAM).
        prompt_dim: SAM's prompt/transformer width (256 for the released SAM).
        decoder: sizes of the two-way transformer (depth, mlp_dim, num_heads).
        checkpoint: an official SAM ``.pth`` (keys ``image_encoder.*``, ``prompt_encoder.*``,
            ``mask_decoder.*``), or a list of files whose union holds those keys; loaded with
            weights_only=True.
        token: the token whose states prompt SAM.
        prompt_state: ``'before'`` (the reference: the state before each [SEG]) or ``'token'``.
        loss_mask_bce / loss_mask_dice: loss configs (MODELS); the reference's weights 2.0 and
            0.5 (``ullava/models/losses.py`` says which mmdet losses are the same).
        fused_attention: run the image encoder's attention on SDPA (``sam_attention.py``; the
            same numbers within 1e-5, less memory).
        loss_frame: ``'original'`` (the reference: BCE/Dice on the logits post-processed to the
            original image size, against the original-size masks) or ``'sam'`` (in the
            resized-and-padded SAM frame against ``gt_masks_sam``: faster, one batched call).
        loss_points: None (the reference: BCE/Dice on every pixel of ``loss_frame``) or a dict
            of ``num_points`` (12544), ``oversample_ratio`` (3.0) and
            ``importance_sample_ratio`` (0.75), missing keys taking those (Mask2Former's)
            values: BCE/Dice on ``num_points`` points per mask, sampled in ``loss_frame`` as
            mmdet's Mask2Former does (``oversample_ratio * num_points`` random points, the
            ``importance_sample_ratio`` share of ``num_points`` kept where the logits are the
            most uncertain, ``-|logit|``, the rest uniform; torch's global generator). Off by
            default; a training-only option (docs/conventions.md).
        embedding_cache: kwargs of :class:`~ullava.models.embedding_cache.EmbeddingCache`
            (``dict(cache_dir=...)``): a frozen image encoder's embeddings are computed once per
            input and reused (across epochs, and across prompts on one image at inference).
        remove_islands: None (the reference: a predicted mask is every pixel with probability
            > 0.5), ``'largest'`` (keep each mask's largest 8-connected region only) or a pixel
            count N (drop the regions smaller than N pixels at the original size, the largest
            always kept, as SAM's automatic mask generator's ``min_mask_region_area``). Applied
            before the masks' boxes are taken: one stray speck far from the object widens the
            tight box of the whole mask past IoU 0.5. An inference-only option.
        mask_box: how a mask's box (``pred_boxes``) is taken: ``'tight'`` (the reference: the
            tight box of the mask) or ``'largest_region'`` (the tight box of its largest
            8-connected region; the mask itself is kept whole for RES). Inference only.
        prompt_norm: None (the reference: the [SEG] state enters ``seg_projector`` as it is) or
            ``'batch'``: each feature of the [SEG] states standardised over the batch's prompts
            before the projector (a BatchNorm1d without weights; its running statistics at
            inference). The tiny demo's [SEG] states share a large common part (mean cosine
            0.85-0.96 between different targets' states, ``bench/diagnose_demo.py``), and a run
            whose decoder learnt to ignore the small rest segments every shape whatever it is
            asked; centring and scaling shows the decoder only what tells prompts apart.
    """

    target_fields = {'gt_masks': 'mask'}
    pred_fields = ('pred_masks', 'pred_mask_scores', 'pred_boxes', 'pred_box_scores')

    def __init__(self, llm_hidden: int, encoder: str | dict | None = None, image_size: int = 1024,
                 patch_size: int = 16, prompt_dim: int = 256, decoder: dict | None = None,
                 checkpoint: str | Sequence[str] | None = None, token: str = '[SEG]',
                 prompt_state: str = 'before', loss_frame: str = 'original',
                 loss_mask_bce: dict | None = None, loss_mask_dice: dict | None = None,
                 fused_attention: bool = True, embedding_cache: dict | None = None,
                 loss_points: dict | None = None,
                 remove_islands: str | int | None = None, mask_box: str = 'tight',
                 prompt_norm: str | None = None) -> None:
        super().__init__(tokens=(token,), prompt_state=prompt_state)
        if not (remove_islands in (None, 'largest') or (isinstance(remove_islands, int)
                                                        and remove_islands >= 1)):
            raise UserError(f"mask_head.remove_islands must be None, 'largest' or a pixel count "
                            f'>= 1, got {remove_islands!r}')
        self.remove_islands = remove_islands
        if mask_box not in ('tight', 'largest_region'):
            raise UserError(f"mask_head.mask_box must be 'tight' (the reference's) or "
                            f"'largest_region', got {mask_box!r}")
        self.mask_box = mask_box
        if prompt_norm not in (None, 'batch'):
            raise UserError(f"mask_head.prompt_norm must be None (the reference's) or 'batch', "
                            f'got {prompt_norm!r}')
        from ullava.models.embedding_cache import build_embedding_cache
        self.embedding_cache = build_embedding_cache(embedding_cache)
        if loss_frame not in LOSS_FRAMES:
            raise UserError(f"mask_head.loss_frame must be 'original' (the reference's) or 'sam', "
                            f'got {loss_frame!r}')
        self.loss_mask_bce = MODELS.build(loss_mask_bce or dict(type='MaskBCELoss', loss_weight=2.0))
        self.loss_mask_dice = MODELS.build(loss_mask_dice or dict(type='MaskDiceLoss',
                                                                  loss_weight=0.5))
        self.loss_frame = loss_frame
        self.loss_points = check_loss_points(loss_points)
        dec = {**dict(depth=2, mlp_dim=2048, num_heads=8), **(decoder or {})}
        grid = image_size // patch_size
        self.image_size = image_size
        state = read_sam_state(checkpoint) if checkpoint is not None else None
        if encoder is None:
            encoder = 'vit_h' if state is None else sam_encoder_from_shapes(
                {k: v.shape for k, v in state.items()}, f'SAM checkpoint {checkpoint}')
        if encoder == 'tiny_vit':
            if patch_size != 16:
                raise UserError(f"encoder 'tiny_vit' reduces images 16x: patch_size must be 16, "
                                f'got {patch_size}')
            from .tinyvit_encoder import TinyViTEncoder  # timm is needed for MobileSAM only
            self.image_encoder = TinyViTEncoder(out_chans=prompt_dim)
        else:
            if isinstance(encoder, str) and encoder not in SAM_PRESETS:
                raise UserError(f'mask_head.encoder must be one of {sorted(SAM_PRESETS)}, '
                                f"'tiny_vit', a dict of sizes or None, got {encoder!r}")
            enc = dict(mlp_ratio=4, global_attn_indexes=(), window_size=14)
            enc.update(SAM_PRESETS[encoder] if isinstance(encoder, str) else encoder)
            self.image_encoder = ImageEncoderViT(
                img_size=image_size, patch_size=patch_size, out_chans=prompt_dim,
                norm_layer=partial(nn.LayerNorm, eps=1e-6), qkv_bias=True, use_rel_pos=True,
                **enc)
            if fused_attention:
                from .sam_attention import use_fused_attention
                use_fused_attention(self.image_encoder)
        self.prompt_encoder = PromptEncoder(
            embed_dim=prompt_dim, image_embedding_size=(grid, grid),
            input_image_size=(image_size, image_size), mask_in_chans=16)
        self.mask_decoder = MaskDecoder(
            num_multimask_outputs=3, transformer_dim=prompt_dim, iou_head_depth=3,
            iou_head_hidden_dim=256,
            transformer=TwoWayTransformer(embedding_dim=prompt_dim, **dec))
        # u-LLaVA's text-to-prompt projection: Linear(h, h) -> ReLU -> Linear(h, 256)
        self.seg_projector = mlp(llm_hidden, llm_hidden, prompt_dim)
        self.prompt_norm = nn.BatchNorm1d(llm_hidden, affine=False) \
            if prompt_norm == 'batch' else None
        if state is not None:
            self.load_sam(checkpoint, state)

    def _apply(self, fn, recurse: bool = True):
        """Casts (``model.to(torch.bfloat16)``) leave SAM's random positional matrix in fp32:
        segment-anything multiplies fp32 grid coordinates by it, which fails in bf16."""
        super()._apply(fn, recurse)
        pe = self.prompt_encoder.pe_layer
        pe.positional_encoding_gaussian_matrix = pe.positional_encoding_gaussian_matrix.float()
        return self

    def load_sam(self, path: str | Sequence[str],
                 state: Mapping[str, torch.Tensor] | None = None) -> None:
        """Load an official SAM checkpoint (or the union of several files, e.g. MobileSAM's
        encoder and decoder as prepared by tools/prepare_mini_weights.py); a clear error naming
        bad keys or shapes."""
        state = read_sam_state(path) if state is None else state
        own = {k: v for k, v in self.state_dict().items()
               if not k.startswith(('seg_projector.', 'prompt_norm.'))}  # ullava's, not SAM's
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if missing or unexpected:
            raise UserError(f'SAM checkpoint {path}: missing keys {missing[:8]}'
                            f'{"..." if len(missing) > 8 else ""} ({len(missing)}), unexpected keys '
                            f'{unexpected[:8]}{"..." if len(unexpected) > 8 else ""} ({len(unexpected)})')
        bad = [f'{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}'
               for k, v in own.items() if state[k].shape != v.shape]
        if bad:
            raise UserError(f'SAM checkpoint {path}: shape mismatch: {bad[:5]}')
        self.load_state_dict(state, strict=False)

    def unused_parameters(self) -> list[nn.Parameter]:
        """SAM parts the single-mask, text-prompted path never uses (kept for checkpoint layout)."""
        dec = self.mask_decoder
        unused = [*dec.iou_prediction_head.parameters(),
                  *(p for mlp_ in dec.output_hypernetworks_mlps[1:] for p in mlp_.parameters())]
        pe = self.prompt_encoder
        unused += [p for m in (pe.point_embeddings, pe.not_a_point_embed, pe.mask_downscaling)
                   for p in m.parameters()]
        return unused

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """[B,3,S,S] normalised SAM inputs -> image embeddings [B,C,S/16,S/16], batched (from
        the embedding cache where one is configured and the encoder is frozen)."""
        if self.embedding_cache is not None:
            return self.embedding_cache(self.image_encoder, images)
        return self.image_encoder(images)

    def warm_cache(self, inputs: dict) -> None:
        """Compute (and so cache) the embeddings of a preprocessed batch's SAM images."""
        if inputs.get('sam_images') is not None:
            self.encode_images(inputs['sam_images'].to(dtype_of(self)))

    def forward(self, image_embeddings: torch.Tensor, seg_states: torch.Tensor,
                prompt_to_image: torch.Tensor) -> torch.Tensor:
        """Decode one mask per [SEG] state.

        Args:
            image_embeddings: [B,C,h,w] from :meth:`encode_images`.
            seg_states: [P,H] last-layer LLM hidden states of the [SEG] tokens.
            prompt_to_image: [P] index into ``image_embeddings`` for each prompt.

        Returns:
            Mask logits [P, S, S] in the SAM input frame (resized + padded image).
        """
        if self.prompt_norm is not None:
            seg_states = self.normalize_prompts(seg_states)
        sparse = self.seg_projector(seg_states).unsqueeze(1)  # [P,1,C]
        low_res = self._decode(image_embeddings[prompt_to_image], sparse)
        return F.interpolate(low_res, (self.image_size, self.image_size), mode='bilinear',
                             align_corners=False)[:, 0]

    def normalize_prompts(self, states: torch.Tensor) -> torch.Tensor:
        """``prompt_norm='batch'``: batch statistics in training (a lone prompt, which has
        none, uses the running ones and leaves them as they are), running ones otherwise."""
        norm = self.prompt_norm
        batch_stats = self.training and len(states) > 1
        out = F.batch_norm(states.to(norm.running_mean.dtype), norm.running_mean,
                           norm.running_var, training=batch_stats, momentum=norm.momentum,
                           eps=norm.eps)
        return out.to(states.dtype)

    def _decode(self, src: torch.Tensor, sparse: torch.Tensor) -> torch.Tensor:
        """SAM's ``MaskDecoder.predict_masks`` for per-prompt image embeddings.

        Written here because SAM's version repeats ONE image embedding for all prompts, which
        forces a Python loop over the images of a batch; we gather each prompt's own image
        embedding instead so the whole batch is one call. Only the single-mask output token is
        decoded (the IoU head and the multimask outputs are unused, as in u-LLaVA).
        """
        dec = self.mask_decoder
        p = src.shape[0]
        tokens = torch.cat([dec.iou_token.weight, dec.mask_tokens.weight], dim=0)
        tokens = torch.cat([tokens.unsqueeze(0).expand(p, -1, -1), sparse.to(tokens.dtype)], dim=1)
        dense = self.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)
        src = src + dense
        pos = self.prompt_encoder.get_dense_pe().to(src.dtype).expand(p, -1, -1, -1)
        b, c, h, w = src.shape
        hs, src = dec.transformer(src, pos, tokens)
        src = src.transpose(1, 2).reshape(b, c, h, w)
        upscaled = dec.output_upscaling(src)
        hyper = dec.output_hypernetworks_mlps[0](hs[:, 1, :]).unsqueeze(1)  # [P,1,C/8]
        b, c, h, w = upscaled.shape
        return (hyper @ upscaled.view(b, c, h * w)).view(b, 1, h, w)

    # ------------------------------------------------------------------ the model's calls
    def mask_logits(self, batch: HeadBatch, states: torch.Tensor,
                    sample_idx: torch.Tensor) -> torch.Tensor:
        """Mask logits [P,S,S] in the SAM frame; the encoder runs only on images with prompts."""
        inputs = batch.inputs
        if inputs.get('sam_images') is None:
            raise UserError(f'the answer holds {self.token} but the sample has no image for SAM')
        sam_of_sample = torch.full((batch.input_ids.shape[0],), -1, device=states.device)
        sam_of_sample[inputs['sam_index']] = torch.arange(len(inputs['sam_index']),
                                                          device=states.device)
        needed, prompt_to_image = torch.unique(sample_idx, return_inverse=True)
        if (sam_of_sample[needed] < 0).any():
            raise UserError(f'a sample with {self.token} in its answer has no SAM image')
        images = inputs['sam_images'][sam_of_sample[needed]].to(dtype_of(self))
        encoder_trains = any(p.requires_grad for p in self.image_encoder.parameters())
        with torch.set_grad_enabled(encoder_trains and torch.is_grad_enabled()):
            embeddings = self.encode_images(images)
        return self(embeddings, states.to(embeddings.dtype), prompt_to_image).float()

    def loss(self, batch: HeadBatch, data_samples: Sequence) -> dict:
        """BCE and Dice averaged over every mask of the batch, each in ``loss_frame`` (sizes
        differ between samples at the original size, hence the loop), on every pixel or, with
        ``loss_points``, on sampled points (:meth:`sample_loss_points`)."""
        states, sample_idx, counts = batch.prompts(self.token, self.prompt_state)
        field = 'gt_masks_sam' if self.loss_frame == 'sam' else 'gt_masks'
        if not targets_per_token(data_samples, field, counts, self.token):
            return dict(loss_mask_bce=batch.zero(self))
        logits = self.mask_logits(batch, states, sample_idx)
        bce, dice = [], []
        for one, ds in zip(logits.split(counts.tolist()), data_samples):
            if len(one):
                one, gt = self.loss_frame_pair(one, ds)
                if self.loss_points is not None:
                    one, gt = self.sample_loss_points(one, gt)
                bce.append(self.loss_mask_bce(one, gt, reduction_override='none'))
                dice.append(self.loss_mask_dice(one, gt, reduction_override='none'))
        return dict(loss_mask_bce=torch.cat(bce).mean(), loss_mask_dice=torch.cat(dice).mean())

    def predict(self, batch: HeadBatch, data_samples: Sequence) -> None:
        """One mask per token at the original size; a token in a sample with no image for SAM
        (text, video) yields none."""
        states, sample_idx, counts = batch.prompts(self.token, self.prompt_state)
        has_sam = torch.zeros(len(counts), dtype=torch.bool, device=counts.device)
        if batch.inputs.get('sam_index') is not None:
            has_sam[batch.inputs['sam_index']] = True
        keep = has_sam[sample_idx]
        logits = None
        if keep.any():
            logits = self.mask_logits(batch, states[keep], sample_idx[keep]) \
                .split((counts * has_sam).tolist())
        for i, ds in enumerate(data_samples):
            h, w = ds.metainfo.get('ori_shape', (0, 0))
            if logits is not None and len(logits[i]):
                scores = postprocess_masks(logits[i], ds.metainfo['sam_resized_shape'],
                                           (h, w)).sigmoid()
            else:
                scores = torch.zeros(0, h, w, device=counts.device)
            ds.pred_mask_scores = scores
            ds.pred_masks = remove_islands(scores > 0.5, self.remove_islands)
            ds.pred_boxes = boxes_from_masks(remove_islands(ds.pred_masks, 'largest')
                                             if self.mask_box == 'largest_region' else ds.pred_masks)
            ds.pred_box_scores = torch.ones(len(scores), device=counts.device)

    def sample_loss_points(self, logits: torch.Tensor,
                           gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One sample's logits [k,H,W] and masks [k,H,W] (one frame) -> their values [k,P] at
        ``loss_points['num_points']`` points per mask, chosen as Mask2Former chooses them.

        The pattern of mmdet's ``Mask2FormerHead.loss_by_feat``: the points (normalised [0,1]
        coordinates) and the targets at them are computed without grad, since the choice of
        points is not to be learnt; only the logits' sampling carries gradient, so the loss's own
        work is on k * P values instead of k * H * W (the logits' gradient is still full-size,
        zero away from the points). The targets are the bilinear samples of the
        float masks (soft at the boundary), as there. Both tensors are in the same frame
        (``loss_frame_pair``), so one set of coordinates serves both. The loss modules flatten
        all but the first dimension, so [k,P] is averaged per mask and then over masks exactly
        as [k,H,W] is. mmcv / mmdet are imported here: only runs that switch this on pay for
        loading them.
        """
        from mmcv.ops import point_sample
        from mmdet.models.utils.point_sample import get_uncertain_point_coords_with_randomness
        cfg = self.loss_points
        logits = logits[:, None]  # [k,1,H,W]: one class-agnostic channel per mask
        with torch.no_grad():
            coords = get_uncertain_point_coords_with_randomness(
                logits, None, cfg['num_points'], cfg['oversample_ratio'],
                cfg['importance_sample_ratio'])  # [k,P,2]
            gt_points = point_sample(gt[:, None].to(logits.dtype), coords)[:, 0]
        return point_sample(logits, coords)[:, 0], gt_points

    def loss_frame_pair(self, logits: torch.Tensor, data_sample) -> tuple[torch.Tensor, torch.Tensor]:
        """One sample's mask logits [k,S,S] (SAM frame) and its target masks, both in the frame
        the loss is computed in (``loss_frame``)."""
        if self.loss_frame == 'sam':
            return logits, data_sample.gt_masks_sam
        meta = data_sample.metainfo
        return postprocess_masks(logits, meta['sam_resized_shape'], meta['ori_shape']), \
            data_sample.gt_masks


def check_loss_points(cfg: Mapping | None) -> dict | None:
    """``mask_head.loss_points`` with its defaults filled in (None stays None)."""
    if cfg is None:
        return None
    if not isinstance(cfg, Mapping):
        raise UserError(f'mask_head.loss_points must be None or a dict of '
                        f'{", ".join(LOSS_POINTS)}, got {cfg!r}')
    unknown = sorted(set(cfg) - set(LOSS_POINTS))
    if unknown:
        raise UserError(f'mask_head.loss_points: unknown key {unknown[0]!r}, expected '
                        f'{", ".join(LOSS_POINTS)}')
    out = {**LOSS_POINTS, **cfg}
    n, over, share = out['num_points'], out['oversample_ratio'], out['importance_sample_ratio']
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UserError(f'mask_head.loss_points.num_points must be an int >= 1, got {n!r}')
    if isinstance(over, bool) or not isinstance(over, (int, float)) or not over >= 1:
        raise UserError(f'mask_head.loss_points.oversample_ratio must be >= 1, got {over!r}')
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
        raise UserError(f'mask_head.loss_points.importance_sample_ratio must be in [0, 1], '
                        f'got {share!r}')
    return dict(num_points=n, oversample_ratio=float(over), importance_sample_ratio=float(share))


def remove_islands(masks: torch.Tensor, min_area: str | int | None) -> torch.Tensor:
    """Bool masks [k,H,W] without their regions under ``min_area`` pixels (``'largest'``: all
    but the largest; None: unchanged), by segment-anything's ``remove_small_regions``."""
    if min_area is None or not len(masks):
        return masks
    from segment_anything.utils.amg import remove_small_regions
    area = float('inf') if min_area == 'largest' else min_area  # all small: the largest stays
    kept = [remove_small_regions(m, area, 'islands')[0] if m.any() else m
            for m in masks.cpu().numpy()]
    return torch.from_numpy(np.stack(kept)).to(masks.device)


def postprocess_masks(logits: torch.Tensor, resized_hw: tuple[int, int],
                      ori_hw: tuple[int, int]) -> torch.Tensor:
    """Mask logits in the SAM frame [k,S,S] -> logits at the original image size [k,H,W]."""
    cropped = logits[:, :resized_hw[0], :resized_hw[1]]
    return F.interpolate(cropped[:, None].float(), ori_hw, mode='bilinear',
                         align_corners=False)[:, 0]
