"""Padding-free packing of a batch through the LLM body (``ULLaVA(packing=True)``).

A right-padded batch [B, L] becomes one row of its T = sum(len_i) real tokens. Each sample
keeps its own positions 0..len_i-1 (so rotary embeddings are those of the padded batch) and
attends only within itself:

- flash-attention 2/3/4 (a CUDA host with ``flash_attn``, ``llm.attn_implementation``):
  transformers' own varlen path reads the ``cu_seq_lens_*`` / ``max_length_*`` we pass;
- any other implementation is replaced by :data:`VARLEN_SDPA` below: causal SDPA on each
  sample's slice, so attention costs sum(len_i^2) instead of the T^2 a block-diagonal mask
  over the packed row would (SDPA computes every masked entry). Written here because
  transformers ships varlen attention only for flash-attention kernels.

Projections, MLPs and norms then run on T tokens instead of B * L. The states are scattered
back to [B, L, H] (zeros at the pads), so the LM loss and every head read them as before.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ullava.utils import UserError

VARLEN_SDPA = 'ullava_varlen_sdpa'


class Packed(NamedTuple):
    """One packed row and how to find its samples in it."""
    embeds: torch.Tensor        # [1, T, D]
    position_ids: torch.Tensor  # [1, T], restarting at 0 for each sample
    cu_seqlens: torch.Tensor    # [B + 1] int32 offsets of the samples in the row
    max_len: int


def sample_lengths(attention_mask: torch.Tensor) -> torch.Tensor:
    """Lengths of right-padded rows; refuse a mask that is not a prefix (left padding)."""
    lengths = attention_mask.sum(1)
    prefix = torch.arange(attention_mask.shape[1], device=attention_mask.device)[None] \
        < lengths[:, None]
    if not torch.equal(prefix, attention_mask.bool()):
        raise UserError('packing: the attention mask must be right padding (each row ones then '
                        'zeros), as ULLaVADataPreprocessor writes it; got a row with a gap or '
                        'left padding')
    return lengths


def pack(embeds: torch.Tensor, attention_mask: torch.Tensor) -> Packed:
    """The real tokens of a right-padded batch [B, L, D] in one row."""
    lengths = sample_lengths(attention_mask)
    cu_seqlens = F.pad(lengths.cumsum(0), (1, 0)).to(torch.int32)
    position_ids = torch.cat([torch.arange(int(n), device=embeds.device) for n in lengths])
    return Packed(embeds[attention_mask.bool()][None], position_ids[None], cu_seqlens,
                  int(lengths.max()))


def unpack(states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Scatter a packed row's states [1, T, H] back to [B, L, H], zeros at the pads."""
    out = states.new_zeros(*attention_mask.shape, states.shape[-1])
    out[attention_mask.bool()] = states[0]
    return out


def packed_forward(decoder: nn.Module, embeds: torch.Tensor,
                   attention_mask: torch.Tensor) -> torch.Tensor:
    """The decoder's last hidden states [B, L, H] for a right-padded batch, run packed."""
    row = pack(embeds, attention_mask)
    out = decoder(inputs_embeds=row.embeds, position_ids=row.position_ids,
                  cu_seq_lens_q=row.cu_seqlens, cu_seq_lens_k=row.cu_seqlens,
                  max_length_q=row.max_len, max_length_k=row.max_len)
    return unpack(out.last_hidden_state, attention_mask)


def varlen_sdpa_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor,
                          value: torch.Tensor, attention_mask: torch.Tensor | None,
                          dropout: float = 0.0, scaling: float | None = None,
                          cu_seq_lens_q: torch.Tensor | None = None, **kwargs):
    """transformers' attention interface: causal SDPA per packed sample, else plain SDPA.

    ``query`` [1, Hq, T, d], ``key`` / ``value`` [1, Hkv, T, d]; returns [1, T, Hq, d] as
    transformers' own ``sdpa_attention_forward`` does.
    """
    if cu_seq_lens_q is None:  # an unpacked call (generation, a padded batch)
        from transformers.integrations.sdpa_attention import sdpa_attention_forward
        return sdpa_attention_forward(module, query, key, value, attention_mask,
                                      dropout=dropout, scaling=scaling, **kwargs)
    spans = list(zip(cu_seq_lens_q[:-1].tolist(), cu_seq_lens_q[1:].tolist()))
    window = kwargs.get('sliding_window')
    longest = max(e - s for s, e in spans)
    if window and longest > window:  # Mistral-style local attention is not implemented here
        raise UserError(f'packing: a sample of {longest} tokens is longer than the LLM\'s '
                        f'sliding window ({window}); run it with packing=False')
    groups = query.shape[1] // key.shape[1]
    if groups > 1:  # grouped-query attention: each kv head serves `groups` query heads
        key, value = key.repeat_interleave(groups, 1), value.repeat_interleave(groups, 1)
    parts = [F.scaled_dot_product_attention(query[:, :, s:e], key[:, :, s:e], value[:, :, s:e],
                                            dropout_p=dropout, scale=scaling, is_causal=True)
             for s, e in spans]
    return torch.cat(parts, 2).transpose(1, 2).contiguous(), None


def _varlen_sdpa_mask(*args, attention_mask: torch.Tensor | None = None, **kwargs):
    """No mask for a packed call (the attention finds the samples itself); SDPA's otherwise."""
    if attention_mask is None:
        return None
    from transformers.masking_utils import sdpa_mask
    return sdpa_mask(*args, attention_mask=attention_mask, **kwargs)


def enable_packing(llm: nn.Module) -> str:
    """Give ``llm`` an attention that keeps packed samples apart; returns its implementation.

    Flash-attention implementations are kept (their varlen kernels do it); any other becomes
    :data:`VARLEN_SDPA`, which is plain SDPA for unpacked calls (generation).
    """
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface
    base = llm.get_base_model() if hasattr(llm, 'get_base_model') else llm
    current = base.config._attn_implementation or 'sdpa'
    if current.startswith('flash_attention'):
        return current
    AttentionInterface.register(VARLEN_SDPA, varlen_sdpa_attention)
    AttentionMaskInterface.register(VARLEN_SDPA, _varlen_sdpa_mask)
    base.set_attn_implementation(VARLEN_SDPA)
    return VARLEN_SDPA
