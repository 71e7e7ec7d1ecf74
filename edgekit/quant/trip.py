"""Static per-tensor activation scales, and Agile-Quant's TRIP power-of-two per-channel factors.

TRIP gives channel c of a normalized activation the scale ``2^a_c * s`` with one base scale ``s`` per tensor and
``a_c`` in ``0..K`` chosen by least L2 quantization error on calibration tokens. Because the factors are powers of
two, they fold exactly into float weights: the RMSNorm weight is divided by ``2^a_c`` and every consuming linear's
input column c is multiplied by ``2^a_c``, so the float model computes the same function and the kernels see one
per-tensor int8 scale.
"""

from __future__ import annotations

import torch
from torch import nn

_SHRINKS = tuple(1.0 - 0.04 * i for i in range(20))  # 1.0 … 0.24 of the observed max


class TokenReservoir:
    """Keeps a seeded random subset of the token rows an activation produced during calibration.

    Every batch contributes the same number of rows (``capacity / expected_batches``), so the sample spans the
    whole calibration set without re-sampling what was already kept.
    """

    def __init__(self, capacity: int = 4096, expected_batches: int = 1, seed: int = 0):
        self.per_batch = max(1, capacity // max(1, expected_batches))
        self.rows: list[torch.Tensor] = []
        self.gen = torch.Generator().manual_seed(seed)

    def add(self, x: torch.Tensor) -> None:
        x = x.detach().reshape(-1, x.shape[-1])
        take = torch.randperm(x.shape[0], generator=self.gen)[: self.per_batch]
        self.rows.append(x[take].float())

    def tensor(self) -> torch.Tensor:
        """The kept rows ``[<= capacity, K]``, shuffled, so any prefix is a sample of every batch."""
        if len(self.rows) > 1:
            allr = torch.cat(self.rows)
            self.rows = [allr[torch.randperm(allr.shape[0], generator=self.gen)]]
        return self.rows[0]


def mse_tensor_scale(x: torch.Tensor, qmax: int = 127) -> float:
    """Per-tensor symmetric scale minimizing the squared error on samples ``x`` (max-abs, then shrunk)."""
    amax = float(x.abs().max())
    if amax == 0:
        return 1.0
    best, best_err = amax / qmax, None
    for r in _SHRINKS:
        s = amax * r / qmax
        err = float((torch.clamp(torch.round(x / s), -qmax, qmax) * s - x).pow(2).sum())
        if best_err is None or err < best_err:
            best, best_err = s, err
    return best


def trip_factors(x: torch.Tensor, max_exp: int, qmax: int = 127) -> tuple[torch.Tensor, float]:
    """Choose TRIP exponents for samples ``x`` ``[T, C]``.

    The base scale is ``s = max|x| / qmax / 2^max_exp`` so the widest channel needs ``a_c = max_exp``; every channel
    takes the exponent with the least squared error (ties to the smaller one).

    Returns:
        ``(a, s)``: int64 exponents ``[C]`` and the base scale.
    """
    amax = float(x.abs().max())
    if amax == 0:
        return torch.zeros(x.shape[1], dtype=torch.long), 1.0
    s = amax / qmax / 2 ** max_exp
    errs = []
    for a in range(max_exp + 1):
        sc = s * 2 ** a
        errs.append((torch.clamp(torch.round(x / sc), -qmax, qmax) * sc - x).pow(2).sum(0))
    return torch.stack(errs).argmin(0), s


def fold_trip(norm: nn.Module, linears: list[nn.Linear], a: torch.Tensor) -> None:
    """Fold factors ``2^a`` into a norm's weight (divide) and the consuming linears' input columns (multiply).

    Exact in float arithmetic: powers of two only change exponents.
    """
    from edgekit.quant.awq import fold_scales

    fold_scales(norm, "norm", linears, torch.exp2(a.to(torch.float32)))
