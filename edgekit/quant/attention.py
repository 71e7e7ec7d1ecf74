"""Quantized attention for llama-family models: 8-bit Q/K/V per head, the 4-bit log2 softmax quantizer, and the
per-token importance (attention to the first token) that drives the W4A4 mix and token pruning.

It plugs into transformers' attention registry under the name ``"edgekit"``; a module without an ``ek_attn`` spec
runs plain SDPA, so registering it changes nothing until a layer opts in.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from edgekit.quant.modules import TokenMix

ATTN_NAME = "edgekit"


@dataclass
class AttentionSpec:
    """What one attention module quantizes and records.

    Attributes:
        qkv_bits: 8 to fake-quantize Q, K, V per head (dynamic amax over tokens and head dim), or None.
        softmax_log2_bits: b for ``p -> 2^-clamp(round(-log2 p), 0, 2^b - 1)``, or None.
        mix: the layer's :class:`TokenMix`; when set, each query token's attention to the first key, summed over
            heads, is written to ``mix.importance``.
    """

    qkv_bits: int | None = None
    softmax_log2_bits: int | None = None
    mix: TokenMix | None = None

    @property
    def needs_probs(self) -> bool:
        return bool(self.qkv_bits or self.softmax_log2_bits or self.mix is not None)


def fake_quant_per_head(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Symmetric fake quantization of ``[B, H, T, D]`` with one dynamic scale per (batch, head)."""
    qmax = 2 ** (bits - 1) - 1
    amax = x.abs().amax(dim=(-2, -1), keepdim=True)
    scale = torch.where(amax > 0, amax / qmax, torch.ones_like(amax))
    return torch.clamp(torch.round(x / scale), -qmax, qmax) * scale


def log2_quantize_probs(p: torch.Tensor, bits: int, allowed: torch.Tensor | None) -> torch.Tensor:
    """Agile-Quant's log2 softmax quantizer: code ``clamp(round(-log2 p), 0, 2^bits - 1)``, value ``2^-code``.

    Masked positions (``allowed`` False) stay exactly zero; the smallest code stands for every tiny probability.
    """
    code = torch.clamp(torch.round(-torch.log2(p.clamp_min(1e-30))), 0, 2 ** bits - 1)
    q = torch.exp2(-code)
    return q if allowed is None else torch.where(allowed, q, torch.zeros_like(q))


def first_token_importance(probs: torch.Tensor) -> torch.Tensor:
    """Each query token's attention probability on the first key, summed over heads: ``[B, H, T, S]`` → ``[B, T]``.

    The heads are added one after another in head order, the order the C++ runtime uses, so that both pick the same
    tokens to prune from the same probabilities. It drives both token pruning and the W4A4 int4/int8 mix.
    """
    p0 = probs[..., 0].float()
    s = p0[:, 0].clone()
    for h in range(1, p0.shape[1]):
        s += p0[:, h]
    return s


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """Grouped-query attention: each of the ``h`` KV heads of ``x`` ``[b, h, t, d]`` repeated ``n_rep`` times."""
    if n_rep == 1:
        return x
    b, h, t, d = x.shape
    return x[:, :, None].expand(b, h, n_rep, t, d).reshape(b, h * n_rep, t, d)


def edgekit_attention(module: nn.Module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Attention function registered with transformers (same signature as its eager/SDPA functions)."""
    spec: AttentionSpec | None = getattr(module, "ek_attn", None)
    if spec is None or not spec.needs_probs:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    if spec.qkv_bits:
        query, key, value = (fake_quant_per_head(t, spec.qkv_bits) for t in (query, key, value))
    n_rep = query.shape[1] // key.shape[1]
    key, value = repeat_kv(key, n_rep), repeat_kv(value, n_rep)
    scores = torch.matmul(query, key.transpose(2, 3)) * (scaling if scaling is not None else query.shape[-1] ** -0.5)
    allowed = None
    if attention_mask is not None:
        mask = attention_mask[:, :, :, : key.shape[-2]]
        if mask.dtype == torch.bool:
            allowed = mask
            scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        else:
            allowed = mask == 0
            scores = scores + mask
    probs = torch.softmax(scores.float(), dim=-1)
    if spec.softmax_log2_bits:
        probs = log2_quantize_probs(probs, spec.softmax_log2_bits, allowed)
    if spec.mix is not None:
        spec.mix.importance = first_token_importance(probs)  # [B, T]
    out = torch.matmul(probs.to(value.dtype), value)
    return out.transpose(1, 2).contiguous(), probs


_registered: set[str] = set()


def register_attention(name: str, attention_fn, mask_fn) -> None:
    """Register ``name`` with transformers' attention and mask registries, once per process."""
    if name in _registered:
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(name, attention_fn)
    AttentionMaskInterface.register(name, mask_fn)
    _registered.add(name)


def register() -> None:
    """Register ``"edgekit"`` (fake-quant attention, transformers' eager mask) with transformers."""
    from transformers.masking_utils import eager_mask

    register_attention(ATTN_NAME, edgekit_attention, eager_mask)


def enable(model: nn.Module) -> None:
    """Switch a transformers model to the edgekit attention function."""
    register()
    model.set_attn_implementation(ATTN_NAME)
