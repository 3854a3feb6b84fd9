"""Padding-free packing (ULLaVA(packing=True)): the padded batch's losses, gradients and outputs."""
import copy

import pytest
import torch
import torch.nn.functional as F

from ullava.models.packing import pack, unpack, varlen_sdpa_attention
from ullava.registry import MODELS
from ullava.utils import UserError

from .batch import mixed_batch


def _pair(tiny_cfg, **changes):
    """The tiny model padded and packed, with the same weights."""
    cfg = copy.deepcopy(tiny_cfg.model)
    cfg.update(changes)
    torch.manual_seed(0)
    padded = MODELS.build(copy.deepcopy(cfg))
    packed = MODELS.build(dict(cfg, packing=True))
    packed.load_state_dict(padded.state_dict())
    return padded, packed


@pytest.mark.parametrize('lora', [None, dict(r=4, lora_alpha=8, lora_dropout=0.0,
                                             target_modules=['q_proj', 'v_proj'])])
def test_packed_batch_gives_the_padded_losses_and_gradients(tiny_cfg, lora):
    padded, packed = _pair(tiny_cfg, lora=lora)
    # the mixed batch: text-only, caption, RES with two [SEG], video, REC; lengths 17..90
    losses = [m(**m.data_preprocessor(mixed_batch(m), True), mode='loss') for m in (padded, packed)]
    lengths = padded.data_preprocessor(mixed_batch(padded), True)['inputs'][
        'attention_mask'].sum(1)
    assert len(set(lengths.tolist())) > 2  # the padding is real
    assert losses[0].keys() == losses[1].keys()
    for key in losses[0]:
        torch.testing.assert_close(losses[1][key], losses[0][key], rtol=1e-5, atol=1e-6)
    for loss in losses:
        sum(loss.values()).backward()
    grads = dict(padded.named_parameters())
    for name, param in packed.named_parameters():
        if param.requires_grad:
            torch.testing.assert_close(param.grad, grads[name].grad, rtol=1e-4, atol=1e-6,
                                       msg=name)


def test_packed_prediction_gives_the_padded_answers_and_masks(tiny_cfg):
    padded, packed = _pair(tiny_cfg, predict_protocol='teacher_forced')
    outs = []
    for m in (padded.eval(), packed.eval()):
        outs.append(m(**m.data_preprocessor(mixed_batch(m), False), mode='predict'))
    for a, b in zip(*outs):
        assert a.pred_text == b.pred_text
        if 'pred_mask_scores' in a:
            torch.testing.assert_close(b.pred_mask_scores, a.pred_mask_scores, rtol=1e-4,
                                       atol=1e-5)
    # generation (left-padded, KV cache) takes the unpacked path of the same attention
    for m in (padded, packed):
        m.predict_protocol, m.generation['max_new_tokens'] = 'generate', 5
    texts = [[s.pred_text for s in m(**m.data_preprocessor(mixed_batch(m), False),
                                      mode='predict')] for m in (padded, packed)]
    assert texts[0] == texts[1]


def test_varlen_attention_equals_sdpa_with_a_block_diagonal_causal_mask():
    g = torch.Generator().manual_seed(0)
    lengths = [5, 1, 9, 3]
    total, heads, kv_heads, dim = sum(lengths), 4, 2, 8
    q = torch.randn(1, heads, total, dim, generator=g)
    k = torch.randn(1, kv_heads, total, dim, generator=g)
    v = torch.randn(1, kv_heads, total, dim, generator=g)
    sample = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
    pos = torch.arange(total)
    allowed = (sample[:, None] == sample[None]) & (pos[:, None] >= pos[None])
    expected = F.scaled_dot_product_attention(q, k.repeat_interleave(2, 1),
                                              v.repeat_interleave(2, 1), attn_mask=allowed)
    cu = torch.tensor([0, 5, 6, 15, 18], dtype=torch.int32)
    out, _ = varlen_sdpa_attention(torch.nn.Module(), q, k, v, None, cu_seq_lens_q=cu)
    torch.testing.assert_close(out, expected.transpose(1, 2), rtol=1e-5, atol=1e-6)


def test_pack_and_unpack_round_trip_and_restart_positions():
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    embeds = torch.arange(12 * 2, dtype=torch.float).view(3, 4, 2)
    row = pack(embeds, mask)
    assert row.position_ids.tolist() == [[0, 1, 2, 0, 0, 1, 2, 3]]
    assert row.cu_seqlens.tolist() == [0, 3, 4, 8] and row.max_len == 4
    back = unpack(row.embeds, mask)
    assert torch.equal(back[mask], embeds[mask]) and not back[~mask].any()


def test_left_padding_is_refused_in_one_line():
    mask = torch.tensor([[0, 1, 1], [1, 1, 1]], dtype=torch.bool)
    with pytest.raises(UserError, match='right padding'):
        pack(torch.zeros(2, 3, 4), mask)


def test_packing_gives_an_eager_llm_the_per_sample_attention(tiny_cfg):
    from ullava.models.packing import VARLEN_SDPA
    cfg = copy.deepcopy(tiny_cfg.model)
    cfg['llm'] = dict(cfg['llm'], attn_implementation='eager')
    assert MODELS.build(copy.deepcopy(cfg)).llm.config._attn_implementation == 'eager'
    assert MODELS.build(dict(cfg, packing=True)).llm.config._attn_implementation == VARLEN_SDPA
