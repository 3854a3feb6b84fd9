"""MobileSAM's image encoder (TinyViT-5M + SAM's neck), built from ``timm``'s TinyVit.

MobileSAM distils SAM's ViT-H encoder into a TinyViT whose layout is timm's TinyVit with three
differences, all handled here rather than by a private copy of TinyViT:

1. the last patch merging (160 -> 320 channels) keeps the resolution (stride 1), so a 1024 px
   image gives SAM's 64x64 embedding grid;
2. no classifier: SAM's neck (1x1 conv, LayerNorm2d, 3x3 conv, LayerNorm2d -> 256 channels)
   follows the last stage;
3. its checkpoint names differ: :func:`mobile_sam_to_timm` maps them (the mapping below).
"""
from __future__ import annotations

import re

import torch
from segment_anything.modeling.common import LayerNorm2d
from timm.models.tiny_vit import TinyVit
from torch import nn

# MobileSAM's ``build_sam_vit_t`` sizes.
MOBILE_SAM_TINYVIT = dict(embed_dims=(64, 128, 160, 320), depths=(2, 2, 6, 2),
                          num_heads=(2, 4, 5, 10), window_sizes=(7, 7, 14, 7))

# MobileSAM name (after ``image_encoder.``) -> timm name. MobileSAM puts each patch merging at
# the END of stage i; timm puts it at the START of stage i + 1 (same modules, same order).
_RENAMES = [
    (r'^patch_embed\.seq\.0\.', 'trunk.patch_embed.conv1.'),
    (r'^patch_embed\.seq\.2\.', 'trunk.patch_embed.conv2.'),
    (r'^layers\.(\d+)\.downsample\.', lambda m: f'trunk.stages.{int(m[1]) + 1}.downsample.'),
    (r'^layers\.(\d+)\.', r'trunk.stages.\1.'),
    (r'\.c\.', '.conv.'),  # Conv2d_BN's conv is `c` in MobileSAM, `conv` in timm
]
_DROPPED = ('norm_head.', 'head.')  # MobileSAM's unused ImageNet classifier


def mobile_sam_to_timm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename MobileSAM ``image_encoder.*`` weights (prefix stripped) to this module's names."""
    out = {}
    for key, value in state.items():
        if key.startswith(_DROPPED):
            continue
        new = key
        for pattern, repl in _RENAMES:
            new = re.sub(pattern, repl, new)
        out[new] = value
    return out


class TinyViTEncoder(nn.Module):
    """TinyViT trunk (timm) + SAM neck: [B,3,S,S] normalised images -> [B,out_chans,S/16,S/16].

    Args:
        out_chans: channels of the image embedding (SAM's prompt dim, 256).
        norm_eval: keep the BatchNorm layers in eval mode (frozen running statistics) even when
            the model trains: the batches here hold one or two images, whose statistics would
            replace the pretrained ones (ImageEncoderViT has no BatchNorm, so SAM never had this).
        **sizes: TinyVit sizes (``embed_dims``, ``depths``, ``num_heads``, ``window_sizes``);
            MobileSAM's by default.
    """

    def __init__(self, out_chans: int = 256, norm_eval: bool = True, **sizes) -> None:
        super().__init__()
        self.norm_eval = norm_eval
        sizes = {**MOBILE_SAM_TINYVIT, **sizes}
        # no stochastic depth, as MobileSAM's build_sam_vit_t
        self.trunk = TinyVit(num_classes=0, drop_path_rate=0.0, **sizes)
        # timm's classifier head (pooling + norm) is unused: SAM needs the spatial map
        self.trunk.head = nn.Identity()
        # (1) the last merging keeps the resolution, as in MobileSAM
        self.trunk.stages[-1].downsample.conv2.conv.stride = (1, 1)
        dim = sizes['embed_dims'][-1]
        self.neck = nn.Sequential(
            nn.Conv2d(dim, out_chans, kernel_size=1, bias=False), LayerNorm2d(out_chans),
            nn.Conv2d(out_chans, out_chans, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(out_chans))
        # timm caches the expanded attention biases in eval mode: new weights must drop that cache
        self.register_load_state_dict_post_hook(lambda module, _: module._clear_bias_caches())

    def _clear_bias_caches(self) -> None:
        for module in self.modules():
            if hasattr(module, 'attention_bias_cache'):
                module.attention_bias_cache = {}

    def train(self, mode: bool = True) -> TinyViTEncoder:
        super().train(mode)
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.eval()
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.neck(self.trunk.forward_features(images))
