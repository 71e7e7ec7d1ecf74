"""Group-wise weight quantization math (torch): scale fitting, rounding, RTN, and the QuantizedWeight container.

Codes and scales follow :mod:`edgekit.quant.formats` exactly: 4-bit codes are unsigned 0..15 (``(q-8)*d`` symmetric,
``q*d+m`` asymmetric), 8-bit codes are signed -127..127 (``q*d``); scales (and mins) are rounded to fp16 *before* the
codes are chosen, so what is stored is what was optimized.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from edgekit.quant import formats

# Shrink factors tried by the scale search: 1.0 is plain max-abs scaling; smaller values clip the largest weights
# of a group to spend the grid on the rest.
_SEARCH = (1.0, 0.97, 0.94, 0.91, 0.88, 0.85, 0.82, 0.79, 0.76, 0.73, 0.70)
# the importance-weighted search also tries scales above the peak's (llama.cpp's candidates reach max / 7.1: when the
# peak sits in a quiet channel, a finer grid for the rest may matter more), in finer steps; it keeps every plain one
_WEIGHTED_SEARCH = (1.0,) + tuple(sorted(({round(1.12 - 0.02 * i, 2) for i in range(22)} | set(_SEARCH)) - {1.0},
                                         reverse=True))


def _fp16(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.float16).to(torch.float32)


def quantize_with_params(w: torch.Tensor, d: torch.Tensor, m: torch.Tensor | None, bits: int) -> torch.Tensor:
    """Codes for ``w`` given per-row scale ``d`` (and min ``m``), broadcast over the last dim.

    Returns:
        float tensor of integer-valued codes (0..15 for 4-bit, -127..127 for 8-bit).
    """
    safe = torch.where(d == 0, torch.ones_like(d), d)
    if bits == 8:
        q = torch.clamp(torch.round(w / safe), -127, 127)
    elif m is None:
        q = torch.clamp(torch.round(w / safe) + 8, 0, 15)
    else:
        q = torch.clamp(torch.round((w - m) / safe), 0, 15)
    return torch.where(d == 0, torch.full_like(q, 8.0 if bits == 4 and m is None else 0.0), q)


def dequantize_codes(q: torch.Tensor, d: torch.Tensor, m: torch.Tensor | None, bits: int) -> torch.Tensor:
    """Float values of codes ``q`` (the inverse of :func:`quantize_with_params`)."""
    if bits == 8:
        return q * d
    if m is None:
        return (q - 8) * d
    return q * d + m


def _sq_error(w: torch.Tensor, d: torch.Tensor, m: torch.Tensor | None, bits: int,
              importance: torch.Tensor | None = None) -> torch.Tensor:
    """Squared error of ``w`` rounded with scale ``d`` (and min ``m``), summed over the last dim.

    Equal, bit for bit, to ``dequantize_codes(quantize_with_params(w, d, m), d, m) - w`` squared, in a third of the
    memory passes (the scale search runs it ~20 times per group).
    """
    t = w / torch.where(d == 0, torch.ones_like(d), d)
    if m is None:
        lo, hi = (-127, 127) if bits == 8 else (-8, 7)
        t.round_().clamp_(lo, hi).mul_(d)
    else:
        t = (w - m).div_(torch.where(d == 0, torch.ones_like(d), d))
        t.round_().clamp_(0, 15).mul_(d).add_(m)
    t.sub_(w).pow_(2)
    return (t if importance is None else t.mul_(importance)).sum(-1)


def _ls_scale(w: torch.Tensor, d: torch.Tensor, importance: torch.Tensor) -> torch.Tensor:
    """The importance-weighted least-squares scale for the symmetric 4-bit codes that ``d`` gives ``w``
    (``argmin_s sum_j imp_j (s q_j - w_j)^2``), rounded to fp16; ``d`` where no code is non-zero."""
    q = (w / torch.where(d == 0, torch.ones_like(d), d)[..., None]).round_().clamp_(-8, 7)
    num = (importance * w * q).sum(-1)
    den = (importance * q * q).sum(-1)
    return torch.where(den > 0, _fp16(num / den.clamp_min(1e-30)), d)


def fit_group_params(w: torch.Tensor, bits: int, symmetric: bool, search: bool,
                     importance: torch.Tensor | None = None):
    """Fit one scale (and min) per row of ``w`` (``[..., G]``, the last dim is one group).

    Symmetric 4-bit maps the group's largest-magnitude weight onto code 0 (``-8*d``) as GGUF Q4_0 does; with
    ``search`` it also tries shrunk scales and the positive end (``+7*d``) and keeps the least squared error.

    With ``importance`` (broadcastable to ``w``: how much each weight's error costs, e.g. the mean square of its
    input channel) the search minimizes the importance-weighted error, and for symmetric 4-bit also tries the
    weighted least-squares scale of every candidate's codes (as llama.cpp's importance-matrix quantization does).

    Returns:
        ``(d, m)`` float32 tensors of shape ``w.shape[:-1]`` already rounded to fp16; ``m`` is None if symmetric.
    """
    shrinks = _SEARCH if search else (1.0,)
    if search and importance is not None:
        shrinks = _WEIGHTED_SEARCH
    if bits == 8:
        cands = [(_fp16(w.abs().amax(-1) / 127 * r), None) for r in shrinks]
    elif symmetric:
        idx = w.abs().argmax(-1, keepdim=True)
        peak = torch.gather(w, -1, idx).squeeze(-1)
        cands = [(_fp16(peak / -8 * r), None) for r in shrinks]
        if search:
            cands += [(_fp16(peak / 7 * r), None) for r in shrinks]
        if search and importance is not None:
            cands += [(_ls_scale(w, d, importance), None) for d, _ in cands]
    else:
        lo, hi = w.amin(-1).clamp(max=0), w.amax(-1).clamp(min=0)
        cands = [(_fp16((hi - lo) * r / 15), _fp16(lo * r)) for r in shrinks]
    if len(cands) == 1:
        return cands[0]
    best_d, best_m, best_err = None, None, None
    for d, m in cands:
        err = _sq_error(w, d[..., None], None if m is None else m[..., None], bits, importance)
        if best_err is None:
            best_d, best_m, best_err = d, m, err
            continue
        better = err < best_err  # strict: among equal errors the plainest (earliest) scale stays
        best_d = torch.where(better, d, best_d)
        best_m = None if m is None else torch.where(better, m, best_m)
        best_err = torch.where(better, err, best_err)
    return best_d, best_m


@dataclass
class QuantizedWeight:
    """One quantized ``[N, K]`` weight: codes in K order plus per-group fp16 scales (and mins).

    Attributes:
        codes: uint8 ``[N, K]`` (4-bit, 0..15) or int8 ``[N, K]`` (8-bit).
        scales: float16 ``[N, K/G]``.
        mins: float16 ``[N, K/G]`` for the asymmetric format, else None.
        bits, group_size: the format (group_size is the real G, K for per-channel).
    """

    codes: np.ndarray
    scales: np.ndarray
    mins: np.ndarray | None
    bits: int
    group_size: int

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.codes.shape)

    def storage(self) -> np.ndarray:
        """The bytes stored in an artifact: packed nibbles for 4-bit, the int8 codes for 8-bit."""
        if self.bits == 4:
            return formats.pack_int4(self.codes, self.group_size)
        return self.codes

    @classmethod
    def from_storage(cls, data: np.ndarray, scales, mins, bits: int, group_size: int) -> "QuantizedWeight":
        codes = formats.unpack_int4(data, group_size) if bits == 4 else np.asarray(data, dtype=np.int8)
        return cls(codes, np.asarray(scales, np.float16), None if mins is None else np.asarray(mins, np.float16),
                   bits, group_size)

    def dequantize(self) -> torch.Tensor:
        """Float32 ``[N, K]`` weights exactly as the format defines them."""
        n, k = self.shape
        g = self.group_size
        q = torch.from_numpy(self.codes.astype(np.float32)).view(n, k // g, g)
        d = torch.from_numpy(self.scales.astype(np.float32))[..., None]
        m = None if self.mins is None else torch.from_numpy(self.mins.astype(np.float32))[..., None]
        return dequantize_codes(q, d, m, self.bits).reshape(n, k)

    def bits_per_weight(self) -> float:
        return self.bits + (16.0 if self.mins is None else 32.0) / self.group_size


def resolve_group(k: int, group_size: int, name: str = "") -> int:
    """The real group length for a K-wide weight (0 → K), with a clear error when K does not divide."""
    from edgekit.errors import EdgekitError

    g = k if group_size == 0 else group_size
    if k % g:
        raise EdgekitError(f"{name or 'a linear'} has K={k}, not a multiple of group_size={g}; "
                           f"use a group size that divides {k} or group_size: 0 (per-channel)")
    return g


def from_codes(q: torch.Tensor, d: torch.Tensor, m: torch.Tensor | None, bits: int, g: int) -> QuantizedWeight:
    """Wrap float code/scale tensors (``q`` ``[N, K]``, ``d``/``m`` ``[N, K/G]``) as a :class:`QuantizedWeight`."""
    dtype = np.uint8 if bits == 4 else np.int8
    return QuantizedWeight(q.cpu().numpy().astype(dtype), d.cpu().numpy().astype(np.float16),
                           None if m is None else m.cpu().numpy().astype(np.float16), bits, g)


def channel_importance(msq: torch.Tensor, rows: int) -> torch.Tensor:
    """Per-weight importance ``[rows, K]`` for the weighted scale search: the mean square of each weight's input
    channel (llama.cpp's importance matrix), the same for every row.

    llama.cpp multiplies it by ``sqrt(mean(w_row^2) + w^2)`` when it quantizes Q4_0; on SmolLM2 that factor cost
    0.08-0.26 perplexity (BENCHMARKS.md), so edgekit weighs by the channel alone."""
    return msq.detach().float()[None, :].expand(rows, -1)


def _rtn(w: torch.Tensor, bits: int, group_size: int, symmetric: bool, search: bool, name: str,
         importance: torch.Tensor | None = None):
    w = w.detach().float()
    n, k = w.shape
    g = resolve_group(k, group_size, name)
    wg = w.view(n, k // g, g)
    imp = None if importance is None else importance.reshape(n, k // g, g)
    d, m = fit_group_params(wg, bits, symmetric or bits == 8, search, imp)
    q = quantize_with_params(wg, d[..., None], None if m is None else m[..., None], bits)
    return q, d, m, g


def rtn_quantize(w: torch.Tensor, bits: int, group_size: int, symmetric: bool, search: bool,
                 name: str = "", importance: torch.Tensor | None = None) -> QuantizedWeight:
    """Round-to-nearest group quantization of a float ``[N, K]`` weight.

    ``importance`` (``[N, K]``, e.g. :func:`channel_importance`) weighs the scale search's squared error."""
    q, d, m, g = _rtn(w, bits, group_size, symmetric, search, name, importance)
    return from_codes(q.reshape(w.shape), d, m, bits, g)


def rtn_fake_quant(w: torch.Tensor, bits: int, group_size: int, symmetric: bool, search: bool) -> torch.Tensor:
    """``rtn_quantize(...).dequantize()`` without the trip through numpy storage (for searches that try many)."""
    q, d, m, _ = _rtn(w, bits, group_size, symmetric, search, "")
    return dequantize_codes(q, d[..., None], None if m is None else m[..., None], bits).reshape(w.shape)


def split_rows(qw: QuantizedWeight, sizes: list[int]) -> list[QuantizedWeight]:
    """Cut a weight quantized as one stack of rows (linears sharing a Hessian) back into its linears."""
    out, start = [], 0
    for n in sizes:
        rows = slice(start, start + n)
        out.append(QuantizedWeight(qw.codes[rows], qw.scales[rows], None if qw.mins is None else qw.mins[rows],
                                   qw.bits, qw.group_size))
        start += n
    return out
