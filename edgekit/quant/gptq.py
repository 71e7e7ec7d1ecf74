"""GPTQ: quantize a linear's weight column by column, feeding each column's error forward through the inverse
Hessian of its calibration inputs (Frantar et al., 2022).

Groups stay contiguous in the *original* K order (the storage format needs that, act-order or not). A group's
scale is fitted when GPTQ first reaches one of its columns, from the weights as updated by the error feedback so far
(more accurate than fitting every group up front on the original weights).
"""

from __future__ import annotations

import torch

from edgekit.errors import EdgekitError
from edgekit.quant.weights import (QuantizedWeight, dequantize_codes, fit_group_params, from_codes,
                                   quantize_with_params, resolve_group)


class HessianAccumulator:
    """Running ``2/n * X^T X`` over the rows of every input batch seen by one linear."""

    def __init__(self, k: int):
        self.h = torch.zeros(k, k, dtype=torch.float32)
        self.n = 0

    def add(self, x: torch.Tensor) -> None:
        """Accumulate a batch of inputs ``[..., K]``."""
        x = x.detach().reshape(-1, x.shape[-1]).float()
        t = x.shape[0]
        # keep h an average so its magnitude does not depend on the token count
        self.h.mul_(self.n / (self.n + t))
        self.n += t
        x = x * (2.0 / self.n) ** 0.5
        self.h.addmm_(x.t(), x)

    def diagonal(self) -> torch.Tensor:
        """``2/n * sum x_c^2`` per input channel."""
        return torch.diag(self.h)


class ChannelMeanSquares:
    """The diagonal of :class:`HessianAccumulator` alone (``2/n * sum x_c^2``: llama.cpp's importance matrix up to
    the factor 2) for recipes that need nothing more; O(K) per token instead of O(K^2), in fp32."""

    def __init__(self, k: int):
        self.d = torch.zeros(k, dtype=torch.float32)
        self.n = 0

    def add(self, x: torch.Tensor) -> None:
        """Accumulate a batch of inputs ``[..., K]``."""
        x = x.detach().reshape(-1, x.shape[-1]).float()
        t = x.shape[0]
        self.d.mul_(self.n / (self.n + t))
        self.n += t
        self.d.add_(x.pow(2).sum(0), alpha=2.0 / self.n)

    def diagonal(self) -> torch.Tensor:
        """``2/n * sum x_c^2`` per input channel."""
        return self.d


def gptq_quantize(w: torch.Tensor, h: torch.Tensor, bits: int, group_size: int, symmetric: bool,
                  act_order: bool = True, damp: float = 0.01, block_size: int = 128, search: bool = True,
                  name: str = "", weighted: bool = False, shrink: float = 0.0, return_updated: bool = False):
    """GPTQ-quantize a float ``[N, K]`` weight given the Hessian ``h`` ``[K, K]`` of its inputs.

    Args:
        w: float weight ``[N, K]``.
        h: ``2/n X^T X`` of the calibration inputs.
        bits, group_size, symmetric: the target format (group_size 0 = per-channel).
        act_order: process columns by decreasing ``diag(h)``.
        damp: added to the diagonal, as a fraction of its mean.
        block_size: columns per lazy batch update.
        search: least-squares scale search per group.
        weighted: weigh the search by the Hessian diagonal and try weighted least-squares scales
            (:func:`edgekit.quant.weights.fit_group_params` with ``importance``).
        name: used in error messages.
        shrink: pull the Hessian towards its diagonal, ``(1-shrink) H + shrink diag(H)``: 0 is GPTQ, 1 drops every
            cross-channel correlation (no error feedback: importance-weighted rounding). The off-diagonal terms are
            what GPTQ fits to the calibration text, so shrinking trades that fit for robustness on other text.
        return_updated: also return the weights GPTQ rounded (each column after the error feedback it received,
            ``[N, K]`` in the original K order), so that ``clamp(round(updated / d))`` are the codes; the rounding
            tuner (:mod:`edgekit.quant.tune`) starts from their fractional parts.

    Returns:
        The :class:`QuantizedWeight` (codes in the original K order); with ``return_updated`` the pair
        ``(QuantizedWeight, updated)``.
    """
    w = w.detach().float().clone()
    h = h.detach().float().clone()
    n, k = w.shape
    g = resolve_group(k, group_size, name)
    if shrink:
        diag = torch.diag(h).clone()
        h.mul_(1.0 - shrink).diagonal().copy_(diag)
    sym = symmetric or bits == 8

    dead = torch.diag(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    perm = torch.argsort(torch.diag(h), descending=True) if act_order else torch.arange(k)
    w = w[:, perm]
    h = h[perm][:, perm]
    h.diagonal().add_(damp * torch.mean(torch.diag(h)))
    try:
        hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    except RuntimeError:
        raise EdgekitError(f"GPTQ: the Hessian of {name or 'a linear'} is not positive definite; raise damp "
                           "or give more calibration text") from None

    hdiag = torch.diag(h).clone() if weighted else None  # permuted and damped, like the columns it weighs
    n_groups = k // g
    gid = perm // g  # group of each permuted column
    pos = torch.empty(k, dtype=torch.long)
    pos[perm] = torch.arange(k)
    members = pos.view(n_groups, g)  # permuted positions of every group's columns
    d_all = torch.zeros(n, n_groups)
    m_all = None if sym else torch.zeros(n, n_groups)
    fitted = torch.zeros(n_groups, dtype=torch.bool)
    codes = torch.zeros(n, k)
    updated = torch.zeros(n, k) if return_updated else None

    for i1 in range(0, k, block_size):
        i2 = min(i1 + block_size, k)
        w1 = w[:, i1:i2].clone()
        err1 = torch.zeros_like(w1)
        hinv1 = hinv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            gi = int(gid[i1 + i])
            if not fitted[gi]:
                cols = members[gi]
                vals = w[:, cols].clone()
                inblk = (cols >= i1) & (cols < i2)
                vals[:, inblk] = w1[:, cols[inblk] - i1]
                d, m = fit_group_params(vals, bits, sym, search, None if hdiag is None else hdiag[cols])
                d_all[:, gi] = d
                if m_all is not None:
                    m_all[:, gi] = m
                fitted[gi] = True
            d = d_all[:, gi]
            m = None if m_all is None else m_all[:, gi]
            col = w1[:, i]
            if updated is not None:
                updated[:, i1 + i] = col
            q = quantize_with_params(col, d, m, bits)
            e = (col - dequantize_codes(q, d, m, bits)) / hinv1[i, i]
            w1[:, i:] -= e[:, None] * hinv1[i, i:][None, :]
            err1[:, i] = e
            codes[:, i1 + i] = q
        w[:, i2:] -= err1 @ hinv[i1:i2, i2:]

    qw = from_codes(codes[:, pos], d_all, m_all, bits, g)
    return (qw, updated[:, pos]) if return_updated else qw
