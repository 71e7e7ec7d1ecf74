"""Activation-aware channel scaling (in the spirit of AWQ, Lin et al. 2023), folded exactly into the float model
before GPTQ.

Input channels that carry large activations matter more to a linear's output; multiplying their weight columns by
``s_c > 1`` (and dividing the producer of that channel by ``s_c``) gives them finer effective int4 steps. ``s`` is
``mean|x_c|^alpha`` with ``alpha`` searched per input group for the least output error of RTN-quantized weights on
calibration tokens. The producer is the RMSNorm/LayerNorm before q/k/v and gate/up, the value projection's rows
before o_proj (shared across the query heads of one KV head under GQA), and up_proj's rows before down_proj.
"""

from __future__ import annotations

import torch
from torch import nn

from edgekit.quant.weights import rtn_fake_quant

_ALPHAS = tuple(i / 8 for i in range(9))
_SEARCH_TOKENS = 2048  # enough to rank alphas; the search cost grows linearly with it


def _tie_gqa(s: torch.Tensor, n_heads: int, n_kv: int) -> torch.Tensor:
    """Average scales over the query heads that read one KV head, so a value-row fold can express them."""
    if n_heads == n_kv:
        return s
    d = s.numel() // n_heads
    g = s.view(n_kv, n_heads // n_kv, d).mean(1, keepdim=True)
    return g.expand(n_kv, n_heads // n_kv, d).reshape(-1)


@torch.no_grad()
def search_scales(x: torch.Tensor, weights: list[torch.Tensor], bits: int, group_size: int, symmetric: bool,
                  gqa: tuple[int, int] | None = None, h: torch.Tensor | None = None) -> tuple[torch.Tensor, float]:
    """Pick per-channel scales for inputs ``x`` ``[T, K]`` of the linears ``weights`` (each ``[N_i, K]``).

    Args:
        x: sampled input rows; their mean magnitude per channel sets the scales.
        weights: the linears reading that input.
        bits, group_size, symmetric: the weight format the error is measured in.
        gqa: ``(n_heads, n_kv_heads)`` when the scales must be tied over the query heads of a KV head.
        h: the inputs' ``2/n X^T X`` over all calibration tokens, when there is one (GPTQ). The output error of
            each alpha is then exact over every calibration token, ``tr(D h D^T)`` with ``D`` the weight error,
            instead of measured on the first :data:`_SEARCH_TOKENS` sampled rows.

    Returns:
        ``(s, alpha)``: float32 scales ``[K]`` (all ones when ``alpha`` = 0 wins) and the chosen exponent.
    """
    x = x[:_SEARCH_TOKENS].float()
    act = x.abs().mean(0).clamp_min(1e-6)
    if h is not None:
        h = h.float()
        err_of = lambda ws: sum(float(((q - w) @ h * (q - w)).sum()) for q, w in zip(ws, weights))  # noqa: E731
    else:
        ref = torch.cat([x @ w.T for w in weights], dim=1)
        err_of = lambda ws: float((torch.cat([x @ q.T for q in ws], dim=1) - ref).pow(2).mean())  # noqa: E731
    best = (torch.ones_like(act), 0.0, None)
    for alpha in _ALPHAS:
        s = act.pow(alpha)
        if gqa is not None:
            s = _tie_gqa(s, *gqa)
        s = s / (s.max() * s.min()).sqrt()  # centre the scales around 1 so neither end under/overflows
        err = err_of([rtn_fake_quant(w * s, bits, group_size, symmetric, False) / s for w in weights])
        if best[2] is None or err < best[2]:
            best = (s, alpha, err)
    return best[0], best[1]


@torch.no_grad()
def fold_scales(producer: nn.Module, kind: str, consumers: list[nn.Module], s: torch.Tensor,
                head_dim: int | None = None) -> None:
    """Divide the producer's output channel c by ``s_c`` and multiply the consumers' input column c by it.

    Args:
        producer: a norm (``kind="norm"``: weight and bias divided) or a linear (``kind="rows"``: its output rows
            and bias divided; under GQA ``s`` must already be tied, and its rows are the per-KV-head values).
        kind: ``"norm"`` or ``"rows"``.
        consumers: the linears reading that tensor.
        s: scales ``[K]`` of the consumers' input (for GQA value rows, the expanded per-query-head vector).
        head_dim: the attention head size, needed when ``s`` is longer than the producer's rows (GQA).
    """
    if kind == "norm":
        producer.weight.div_(s.to(producer.weight.dtype))
        if getattr(producer, "bias", None) is not None:
            producer.bias.div_(s.to(producer.bias.dtype))
    elif kind == "rows":
        rows = producer.weight.shape[0]
        sr = s if s.numel() == rows else _kv_rows(s, rows, head_dim)
        producer.weight.div_(sr[:, None].to(producer.weight.dtype))
        if producer.bias is not None:
            producer.bias.div_(sr.to(producer.bias.dtype))
    else:
        raise ValueError(f"unknown fold kind {kind!r}")
    for lin in consumers:
        lin.weight.mul_(s[None, :].to(lin.weight.dtype))


def _kv_rows(s: torch.Tensor, rows: int, head_dim: int) -> torch.Tensor:
    """Collapse a tied per-query-head scale vector ``[n_kv * n_rep * head_dim]`` onto the value rows."""
    n_kv = rows // head_dim
    return s.view(n_kv, s.numel() // rows, head_dim)[:, 0, :].reshape(-1)
