"""SAM's image-encoder attention on ``torch.nn.functional.scaled_dot_product_attention``.

segment-anything's ``image_encoder.Attention`` writes out ``softmax(q k^T * scale + rel_pos) v``
step by step: the attention matrix (4,096 x 4,096 per head in a global block at 1024 px) is
built, the decomposed relative-position terms are added to it, it is soft-maxed in a second pass
and multiplied by ``v`` in a third; backward keeps all of them. Here the same sum goes to SDPA,
the relative-position terms as its float ``attn_mask`` (an additive bias), so the softmax and the
product with ``v`` run in one fused kernel (flash attention on CPU and on CUDA) and backward
recomputes instead of storing the probabilities.

This is the one place ullava changes segment-anything, and it changes behaviour only, never
weights: :func:`use_fused_attention` swaps the class of every ``Attention`` inside a module to
:class:`FusedAttention`, a subclass with the same parameters and state-dict keys whose
``forward`` computes the same numbers (equal within 1e-5 in fp32, forward and backward:
``tests/test_models/test_sam_attention.py``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from segment_anything.modeling.image_encoder import Attention, get_rel_pos
from torch import nn


def decomposed_rel_pos_bias(q: torch.Tensor, rel_pos_h: torch.Tensor, rel_pos_w: torch.Tensor,
                            size: tuple[int, int]) -> torch.Tensor:
    """The additive bias of SAM's decomposed relative positions (MViTv2), as a tensor.

    segment-anything's ``add_decomposed_rel_pos`` adds these terms to an attention matrix it
    already holds; SDPA needs them on their own, so the same two products are written here.

    Args:
        q: queries [N, H*W, C] (unscaled, as segment-anything uses them for the bias).
        rel_pos_h, rel_pos_w: the module's relative-position tables [2*S-1, C].
        size: the (H, W) grid of queries and keys (self-attention: the same grid).

    Returns:
        The bias [N, H*W, H*W]: ``bias[n, (qh, qw), (kh, kw)] = rel_h[n, qh, qw, kh] +
        rel_w[n, qh, qw, kw]``.
    """
    h, w = size
    r_h = get_rel_pos(h, h, rel_pos_h)  # [qh, kh, C]; interpolated if the table is another size
    r_w = get_rel_pos(w, w, rel_pos_w)  # [qw, kw, C]
    r_q = q.reshape(q.shape[0], h, w, q.shape[-1])
    rel_h = torch.einsum('nhwc,hkc->nhwk', r_q, r_h.to(q.dtype))
    rel_w = torch.einsum('nhwc,wkc->nhwk', r_q, r_w.to(q.dtype))
    return (rel_h[..., :, None] + rel_w[..., None, :]).reshape(q.shape[0], h * w, h * w)


class FusedAttention(Attention):
    """segment-anything's ``Attention`` with its forward on SDPA (same parameters, same output)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        heads = self.num_heads
        # [3, B, heads, H*W, C] as segment-anything lays it out
        q, k, v = self.qkv(x).reshape(b, h * w, 3, heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        bias = None
        if self.use_rel_pos:
            bias = decomposed_rel_pos_bias(q.reshape(b * heads, h * w, -1), self.rel_pos_h,
                                           self.rel_pos_w, (h, w))
            bias = bias.view(b, heads, h * w, h * w)
        # SDPA's default scale is head_dim ** -0.5, the module's own ``self.scale``
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale)
        out = out.view(b, heads, h, w, -1).permute(0, 2, 3, 1, 4).reshape(b, h, w, -1)
        return self.proj(out)


def use_fused_attention(module: nn.Module, enabled: bool = True) -> int:
    """Put every SAM image-encoder ``Attention`` inside ``module`` on SDPA (or back).

    A class swap rather than a patched ``forward`` attribute: the module keeps its parameters
    and state-dict keys, still is an ``Attention`` (isinstance), and deep-copies and pickles.

    Args:
        module: any module holding segment-anything ``Attention`` layers (an ``ImageEncoderViT``,
            a :class:`~ullava.models.heads.SAMMaskHead`, a whole model).
        enabled: ``False`` swaps fused layers back to segment-anything's own forward (the
            benchmarks compare both on one model).

    Returns:
        How many layers were swapped.
    """
    source, target = (Attention, FusedAttention) if enabled else (FusedAttention, Attention)
    swapped = 0
    for layer in module.modules():
        if type(layer) is source:
            layer.__class__ = target
            swapped += 1
    return swapped
