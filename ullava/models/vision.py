"""The vision tower: transformers' CLIPVisionModel, features of a chosen hidden layer, CLS dropped.

Videos go through the same tower frame by frame; the frame features are pooled into a fixed
budget of ``num_patches + num_frames`` tokens: the mean over frames (spatial tokens) followed by
the mean over patches (one temporal token per frame), as u-LLaVA does.
"""
from __future__ import annotations

import torch
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModel

from ullava.utils import UserError

from .language import _check_folder


class CLIPVisionTower(nn.Module):
    """CLIP ViT that maps images [B,3,H,W] to patch features [B,N,C].

    Args:
        pretrained: local HF folder of a CLIP (vision) model.
        config: ``CLIPVisionConfig`` fields, for a randomly initialised tower.
        select_layer: which hidden state to use (-2: the penultimate layer, as LLaVA).
        num_frames: frames per video clip (the token budget is ``num_patches + num_frames``).
    """

    def __init__(self, pretrained: str | None = None, config: dict | None = None,
                 select_layer: int = -2, num_frames: int = 8) -> None:
        super().__init__()
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
        out = self.clip(pixel_values=images.to(self.clip.dtype), output_hidden_states=True)
        return out.hidden_states[self.select_layer][:, 1:]  # drop CLS

    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        """[B,T,3,H,W] -> [B, N + T, C]; T must equal ``num_frames`` (the transform samples it)."""
        b, t = frames.shape[:2]
        if t != self.num_frames:
            raise UserError(f'video clips must have {self.num_frames} frames, got {t}')
        feats = self(frames.flatten(0, 1)).unflatten(0, (b, t))  # [B,T,N,C]
        return torch.cat([feats.mean(dim=1), feats.mean(dim=2)], dim=1)
