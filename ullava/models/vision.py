"""The vision tower: transformers' CLIPVisionModel, features of a chosen hidden layer, CLS dropped.

Videos go through the same tower frame by frame; the frame features are pooled into a fixed
budget of ``num_patches + num_frames`` tokens: the mean over frames (spatial tokens) followed by
the mean over patches (one temporal token per frame), as u-LLaVA does.
"""
from __future__ import annotations

import torch
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModel

from ullava.registry import MODELS
from ullava.utils import UserError

from .language import _check_folder


def video_tokens(tower: nn.Module, frames: torch.Tensor) -> torch.Tensor:
    """[B,T,3,H,W] -> [B, N + T, C] through ``tower`` frame by frame: the mean over frames (N
    spatial tokens), then the mean over patches (one temporal token per frame), as u-LLaVA; T must
    equal ``tower.num_frames`` (the transform samples it)."""
    b, t = frames.shape[:2]
    if t != tower.num_frames:
        raise UserError(f'video clips must have {tower.num_frames} frames, got {t}')
    feats = tower(frames.flatten(0, 1)).unflatten(0, (b, t))  # [B,T,N,C]
    return torch.cat([feats.mean(dim=1), feats.mean(dim=2)], dim=1)


@MODELS.register_module()
class CLIPVisionTower(nn.Module):
    """CLIP ViT that maps images [B,3,H,W] to patch features [B,N,C].

    Args:
        pretrained: local HF folder of a CLIP (vision) model.
        config: ``CLIPVisionConfig`` fields, for a randomly initialised tower.
        select_layer: which hidden state to use (-2: the penultimate layer, as LLaVA).
        num_frames: frames per video clip (the token budget is ``num_patches + num_frames``).
        embedding_cache: kwargs of :class:`~.embedding_cache.EmbeddingCache`: while the tower is
            frozen (stage II) its features are computed once per input and reused.
    """

    def __init__(self, pretrained: str | None = None, config: dict | None = None,
                 select_layer: int = -2, num_frames: int = 8,
                 embedding_cache: dict | None = None) -> None:
        super().__init__()
        from .embedding_cache import build_embedding_cache
        self.embedding_cache = build_embedding_cache(embedding_cache)
        if pretrained is not None:
            folder = _check_folder(pretrained, 'vision_tower')
            self.clip = CLIPVisionModel.from_pretrained(str(folder), local_files_only=True)
        elif config is not None:
            self.clip = CLIPVisionModel(CLIPVisionConfig(**config))
        else:
            raise UserError('vision_tower: give `pretrained` (a local folder) or `config` (a dict)')
        self.select_layer = select_layer
        self.num_frames = num_frames

    @property
    def hidden_size(self) -> int:
        return self.clip.config.hidden_size

    @property
    def image_size(self) -> int:
        return self.clip.config.image_size

    @property
    def num_patches(self) -> int:
        return (self.clip.config.image_size // self.clip.config.patch_size) ** 2

    @property
    def num_video_tokens(self) -> int:
        return self.num_patches + self.num_frames

    def unused_parameters(self) -> list[nn.Parameter]:
        """Layers after ``select_layer`` and the post-layernorm never see a gradient: kept for the
        checkpoint layout, never trained (DDP would wait forever for their gradients)."""
        body = getattr(self.clip, 'vision_model', self.clip)  # transformers < 5 nests the body
        layers = body.encoder.layers
        first_unused = len(layers) + 1 + self.select_layer if self.select_layer < 0 else self.select_layer
        unused = [p for layer in layers[first_unused:] for p in layer.parameters()]
        return unused + list(body.post_layernorm.parameters())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise UserError(f'vision tower expects images of shape [B, 3, H, W], got '
                            f'{list(images.shape)} (an image with {images.shape[-3]} channels?)')
        images = images.to(self.clip.dtype)
        if self.embedding_cache is not None:
            return self.embedding_cache(self.clip, images, fn=self._features,
                                        tag=f'layer{self.select_layer}')
        return self._features(images)

    def _features(self, images: torch.Tensor) -> torch.Tensor:
        out = self.clip(pixel_values=images, output_hidden_states=True)
        return out.hidden_states[self.select_layer][:, 1:]  # drop CLS

    def warm_cache(self, inputs: dict) -> None:
        """Compute (and so cache) the features of a preprocessed batch's images and clips."""
        if inputs.get('images') is not None:
            self(inputs['images'])
        if inputs.get('videos') is not None:
            self.encode_video(inputs['videos'])

    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        """[B,T,3,H,W] -> [B, N + T, C]; T must equal ``num_frames`` (the transform samples it)."""
        return video_tokens(self, frames)


@MODELS.register_module()
class SAMEncoderTower(nn.Module):
    """The LLM's visual tokens from a frozen SAM image encoder (MobileSAM's TinyViT), pooled.

    ullava's option, not the reference's (u-LLaVA's tower is CLIP): where no pretrained CLIP is at
    hand (the CPU demo: none ships in any package) a pretrained SAM encoder gives the LLM shape
    and position, and it is the same network and input SAM's mask decoder reads, as PSALM and
    OMG-LLaVA share one encoder, so with an :class:`~.embedding_cache.EmbeddingCache` one encoder
    pass per image serves both. Images come from the SAM stream (``sam_images``: resized, padded,
    SAM-normalised); video frames, which have no SAM view, from the CLIP stream re-normalised to
    SAM's statistics (``ResizeForCLIP`` at this tower's ``image_size``).

    Args:
        checkpoint: the encoder's weights (``image_encoder.*`` keys: MobileSAM's TinyViT file from
            tools/prepare_mini_weights.py); None: random (tests).
        image_size: the SAM input side the encoder sees (``ResizeForSAM.size``).
        pool: average-pool the (image_size / 16)^2 grid by this factor (fewer LLM tokens).
        num_frames: frames per video clip.
        embedding_cache: kwargs of :class:`~.embedding_cache.EmbeddingCache` (None: no cache).
        position_features: sine/cosine features of each token's grid cell (x and y, half each)
            appended to its 256 channels, as SAM's decoder adds its dense positional encoding to
            the same embeddings: the LLM then reads where a token is instead of inferring it from
            the token's index (0: none).
        pixel_features: the cell's mean colour appended too, on a ``pixel_features`` x
            ``pixel_features`` sub-grid (3 channels each; 0: none). SAM's embeddings are made for
            masks and carry little colour (the demo's first try: VQA's colour questions at
            chance, 0.17), which a referring expression ("the red star") needs.
        standardize: each token's SAM embedding standardised (a LayerNorm without weights)
            before the other features join: SAM's embeddings are small (std ~0.1 on the demo's
            images) beside the colour and position features (~0.6), and the projector learns
            faster from inputs of one scale.
    """

    image_stream = 'sam'  # the model splices this tower's image tokens at sam_index

    def __init__(self, checkpoint: str | None = None, image_size: int = 1024, pool: int = 1,
                 num_frames: int = 8, embedding_cache: dict | None = None,
                 position_features: int = 0, pixel_features: int = 0,
                 standardize: bool = False) -> None:
        super().__init__()
        from .embedding_cache import build_embedding_cache
        from .heads.tinyvit_encoder import TinyViTEncoder
        self.encoder = TinyViTEncoder(out_chans=256)
        if checkpoint is not None:
            from .heads.mask_head import read_sam_state
            prefix = 'image_encoder.'
            state = {k[len(prefix):]: v for k, v in read_sam_state(checkpoint).items()
                     if k.startswith(prefix)}
            missing, unexpected = self.encoder.load_state_dict(state, strict=False)
            if missing or unexpected:
                raise UserError(f'vision_tower.checkpoint {checkpoint}: not a TinyViT encoder '
                                f'(missing {missing[:4]}, unexpected {unexpected[:4]})')
        self.encoder.requires_grad_(False)
        self.image_size, self.pool, self.num_frames = image_size, pool, num_frames
        if (image_size // 16) % pool:
            raise UserError(f'vision_tower.pool {pool} must divide the {image_size // 16}-cell grid')
        self.embedding_cache = build_embedding_cache(embedding_cache)
        if position_features % 4:
            raise UserError(f'vision_tower.position_features must be a multiple of 4 (sin and '
                            f'cos of x and y), got {position_features}')
        self.position_features = position_features
        self.pixel_features = pixel_features
        self.standardize = standardize
        self.register_buffer('grid_position', self._grid_position(), persistent=False)
        from .data_preprocessor import CLIP_MEAN, CLIP_STD, SAM_MEAN, SAM_STD
        for name, value in (('clip_mean', CLIP_MEAN), ('clip_std', CLIP_STD),
                            ('sam_mean', SAM_MEAN), ('sam_std', SAM_STD)):
            self.register_buffer(name, torch.tensor(value).view(3, 1, 1), persistent=False)

    def _grid_position(self) -> torch.Tensor:
        """[N, position_features]: sin/cos of the cell centre (x, y in [0, 1]) at octave
        frequencies."""
        side = self.image_size // 16 // self.pool
        centre = (torch.arange(side, dtype=torch.float32) + 0.5) / side
        y, x = torch.meshgrid(centre, centre, indexing='ij')
        freqs = 2.0 ** torch.arange(self.position_features // 4, dtype=torch.float32) * torch.pi
        angles = torch.cat([x.reshape(-1, 1) * freqs, y.reshape(-1, 1) * freqs], dim=1)
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    @property
    def hidden_size(self) -> int:
        return 256 + self.position_features + 3 * self.pixel_features ** 2

    @property
    def num_patches(self) -> int:
        return (self.image_size // 16 // self.pool) ** 2

    @property
    def num_video_tokens(self) -> int:
        return self.num_patches + self.num_frames

    def unused_parameters(self) -> list[nn.Parameter]:
        return []

    def train(self, mode: bool = True) -> 'SAMEncoderTower':
        super().train(mode)
        self.encoder.eval()  # frozen: BatchNorm statistics stay, the cache stays valid
        return self

    def warm_cache(self, inputs: dict) -> None:
        """Compute (and so cache) the embeddings of a preprocessed batch's images and clips."""
        if inputs.get('sam_images') is not None:
            self(inputs['sam_images'])
        if inputs.get('videos') is not None:
            self.encode_video(inputs['videos'])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """[B,3,S,S] SAM-normalised -> [B,N,256]."""
        images = images.to(self.sam_mean.dtype)
        if self.embedding_cache is not None:
            grid = self.embedding_cache(self.encoder, images)
        else:
            with torch.no_grad():
                grid = self.encoder(images)
        if self.pool > 1:
            grid = torch.nn.functional.avg_pool2d(grid, self.pool)
        tokens = grid.flatten(2).transpose(1, 2)
        if self.standardize:
            tokens = torch.nn.functional.layer_norm(tokens, (tokens.shape[-1],))
        if self.pixel_features:  # mean colour of each sub-cell, from the (normalised) input
            side = grid.shape[-1] * self.pixel_features
            colour = torch.nn.functional.adaptive_avg_pool2d(images, side)
            colour = torch.nn.functional.pixel_unshuffle(colour, self.pixel_features)
            tokens = torch.cat([tokens, colour.flatten(2).transpose(1, 2).to(tokens.dtype)], -1)
        if self.position_features:
            where = self.grid_position.to(tokens.dtype).expand(len(tokens), -1, -1)
            tokens = torch.cat([tokens, where], dim=-1)
        return tokens

    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        """[B,T,3,S,S] CLIP-normalised frames -> [B, N + T, 256]."""
        if frames.shape[-1] != self.image_size:
            raise UserError(f'vision_tower: video frames are {frames.shape[-1]} px, the SAM '
                            f'encoder tower wants {self.image_size} (ResizeForCLIP.size)')
        sam = (frames * self.clip_std + self.clip_mean - self.sam_mean) / self.sam_std
        return video_tokens(self, sam)


def build_vision_tower(cfg: dict) -> nn.Module:
    """``dict(type='SAMEncoderTower', ...)`` (any tower registered in ``MODELS``) or the kwargs of
    :class:`CLIPVisionTower` (the default, and the only tower of the reference)."""
    cfg = dict(cfg)
    name = cfg.pop('type', 'CLIPVisionTower')
    tower = MODELS.get(name) if isinstance(name, str) else name
    if tower is None:
        raise UserError(f'model.vision_tower.type {name!r} is not a registered model '
                        f'(CLIPVisionTower, SAMEncoderTower, or a plugin\'s)')
    return tower(**cfg)
