"""SAM's encoder attention on SDPA computes segment-anything's numbers: outputs and gradients
(input, weights, relative-position tables) equal within 1e-5 in fp32, windowed and global blocks."""
import copy
import pickle
from functools import partial

import pytest
import torch
from segment_anything.modeling import ImageEncoderViT
from segment_anything.modeling.image_encoder import Attention
from torch import nn

from ullava.models.heads.sam_attention import FusedAttention, use_fused_attention

TOL = 1e-5


def assert_equal_within(ours: torch.Tensor, theirs: torch.Tensor, what: str) -> None:
    """|ours - theirs| <= 1e-5, relative to the largest value when that exceeds 1 (weight
    gradients are sums over thousands of tokens, of magnitude ~100 here)."""
    ours, theirs = ours.detach(), theirs.detach()
    scale = max(1.0, float(theirs.abs().max()))
    err = float((ours - theirs).abs().max())
    assert err <= TOL * scale, f'{what}: max error {err:.2e} (scale {scale:.1f})'


def randomise_rel_pos(module: nn.Module, seed: int) -> None:
    """segment-anything zero-initialises the tables; random ones make the bias matter."""
    g = torch.Generator().manual_seed(seed)
    for name, param in module.named_parameters():
        if 'rel_pos' in name:
            with torch.no_grad():
                param.copy_(torch.randn(param.shape, generator=g) * 0.5)


def compare_forward_backward(reference: nn.Module, x: torch.Tensor, seed: int) -> None:
    fused = copy.deepcopy(reference)
    assert use_fused_attention(fused) > 0
    x_ref = x.clone().requires_grad_()
    x_fused = x.clone().requires_grad_()
    y_ref, y_fused = reference(x_ref), fused(x_fused)
    assert_equal_within(y_fused, y_ref, 'output')
    grad_out = torch.randn(y_ref.shape, generator=torch.Generator().manual_seed(seed))
    y_ref.backward(grad_out)
    y_fused.backward(grad_out)
    assert_equal_within(x_fused.grad, x_ref.grad, 'input gradient')
    fused_params = dict(fused.named_parameters())
    for name, param in reference.named_parameters():
        assert fused_params[name].grad is not None, name
        assert_equal_within(fused_params[name].grad, param.grad, f'gradient of {name}')


@pytest.mark.parametrize('img_size,patch,window,global_blocks', [
    (64, 8, 3, (1,)),      # 8x8 grid: 3x3 windows need padding; block 1 global
    (96, 16, 4, (0,)),     # 6x6 grid, global first
    (128, 8, 14, (1,)),    # the benchmark's window 14 on a 16x16 grid (padded to 28)
])
def test_encoder_matches_segment_anything(img_size, patch, window, global_blocks):
    torch.manual_seed(0)
    encoder = ImageEncoderViT(
        img_size=img_size, patch_size=patch, embed_dim=32, depth=2, num_heads=2, out_chans=16,
        norm_layer=partial(nn.LayerNorm, eps=1e-6), use_rel_pos=True, window_size=window,
        global_attn_indexes=global_blocks)
    randomise_rel_pos(encoder, seed=1)
    x = torch.randn(2, 3, img_size, img_size, generator=torch.Generator().manual_seed(2))
    compare_forward_backward(encoder, x, seed=3)


@pytest.mark.parametrize('grid,table,use_rel_pos', [
    ((5, 7), (5, 7), True),    # non-square grid
    ((6, 6), (4, 4), True),    # table of another size: segment-anything interpolates it
    ((4, 4), None, False),     # no relative positions: no bias at all
])
def test_attention_layer_matches(grid, table, use_rel_pos):
    torch.manual_seed(0)
    layer = Attention(24, num_heads=3, use_rel_pos=use_rel_pos, input_size=table)
    randomise_rel_pos(layer, seed=4)
    x = torch.randn(3, *grid, 24, generator=torch.Generator().manual_seed(5))
    compare_forward_backward(layer, x, seed=6)


def test_swap_keeps_weights_and_reverts():
    encoder = ImageEncoderViT(img_size=32, patch_size=8, embed_dim=16, depth=3, num_heads=2,
                              out_chans=8, use_rel_pos=True, window_size=2,
                              global_attn_indexes=(2,))
    state = {k: v.clone() for k, v in encoder.state_dict().items()}
    assert use_fused_attention(encoder) == 3
    assert use_fused_attention(encoder) == 0  # idempotent
    assert all(type(b.attn) is FusedAttention and isinstance(b.attn, Attention)
               for b in encoder.blocks)
    assert encoder.state_dict().keys() == state.keys()
    assert all(torch.equal(v, state[k]) for k, v in encoder.state_dict().items())
    restored = pickle.loads(pickle.dumps(encoder))
    assert type(restored.blocks[0].attn) is FusedAttention
    assert use_fused_attention(encoder, enabled=False) == 3
    assert all(type(b.attn) is Attention for b in encoder.blocks)
