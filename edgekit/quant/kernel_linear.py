"""The integer execution path: :class:`KernelLinear` runs a quantized linear on edgekit's C++ W4A8 kernels.

:class:`~edgekit.quant.modules.QLinear` is the fake-quant reference (float matmul of dequantized weights and
rounded activations); ``KernelLinear`` computes the same product with int4 x int8 integer dot products
(``edgekit._C``, csrc/kernels). Activations are quantized per token or per block of 32 by the native quantizer, or
on the static per-tensor grid for TRIP recipes, with the W4A4 per-token int4/int8 choice honoured.
``use_kernels(model)`` swaps every QLinear of a loaded artifact for one and, for models the C++ runtime runs,
gives the rest of the model the runtime's float numerics (:mod:`edgekit.quant.runtime_numerics`), so that the two
engines compute the same bits; ``edgekit eval --engine kernels`` and ``edgekit run --engine kernels`` use it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from edgekit.errors import EdgekitError
from edgekit.quant import formats, runtime_numerics
from edgekit.quant.modules import QLinear

ENGINES = ("fake", "kernels")


def _native():
    try:
        from edgekit import _C
    except ImportError as e:  # pragma: no cover - the package always ships it
        raise EdgekitError(f"the native module edgekit._C is not available ({e}); rebuild with `make venv`") from None
    return _C


def kernel_support(q: QLinear) -> str | None:
    """Why ``q`` cannot run on the kernels, or None when it can."""
    w = q.qweight
    if w.bits != 4 or w.mins is not None or w.group_size != formats.Q4_0_BLOCK:
        return (f"W{w.bits} g{w.group_size} {'sym' if w.mins is None else 'asym'} weights (the kernels take "
                "symmetric int4 group-32 weights)")
    if q.act_bits != 8:
        return f"A{q.act_bits} activations (the kernels take int8 activations)"
    return None


class KernelLinear(nn.Module):
    """A :class:`QLinear` executed by the native W4A8 kernels.

    Args:
        q: the fake-quant module to convert (4-bit symmetric group-32 weights, 8-bit activations).
        impl: kernel implementation name (``""`` = dispatched, in the runtime's layout (``_C.preferred_q4_rows``);
            a named one runs on q4x4, see ``_C.implementations("gemm_q4x4_q8")``).
    """

    def __init__(self, q: QLinear, impl: str = ""):
        super().__init__()
        why = kernel_support(q)
        if why:
            raise EdgekitError(f"this linear cannot run on the kernels: {why}")
        _C = _native()
        qs, d = formats.pack_q4x4(q.qweight.storage(), q.qweight.scales)
        self.packed = _C.PackedQ4x4(qs, d, q.out_features, q.in_features)
        if not impl and _C.preferred_q4_rows() == 16:  # what the runtime runs, so that both round alike
            self.packed = self.packed.to_q4x16()
        self.in_features, self.out_features = q.in_features, q.out_features
        self.bias = q.bias
        self.act_mode = q.act_mode
        self.act_scale = None if q.act_scale is None else np.float32(q.act_scale)
        self.mix = q.mix
        self.impl = impl

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        x2 = np.ascontiguousarray(x.detach().reshape(-1, self.in_features).float().numpy())
        if self.act_mode == "per_tensor":
            # the static grid of fake_quant_per_tensor: clamp(rint(x / scale), -127, 127)
            xq = np.clip(np.rint(x2 / self.act_scale), -127, 127).astype(np.int8)
            y = self.packed.gemm(xq, np.full(len(x2), self.act_scale, np.float32), self.impl)
        elif self.act_mode == "per_block":
            y = self.packed.linear(x2, None, self.impl, per_block=True)
        else:
            qmax = self.mix.qmax(x) if self.mix is not None else 127
            rows = None if isinstance(qmax, int) else qmax.reshape(-1).to(torch.int32).numpy()
            y = self.packed.linear(x2, rows, self.impl)
        out = torch.from_numpy(y).view(*lead, self.out_features)
        return out + self.bias if self.bias is not None else out

    def extra_repr(self) -> str:
        return (f"{self.in_features}->{self.out_features} W4 g32 sym A8 {self.act_mode} "
                f"kernels={self.impl or 'auto'} q4x{self.packed.rows}")


def use_kernels(model: nn.Module, impl: str = "") -> int:
    """Replace every :class:`QLinear` of ``model`` with a :class:`KernelLinear`; returns how many. With the dispatched
    kernels, a model the C++ runtime runs also gets the runtime's numerics (:func:`runtime_numerics.match_runtime`).

    Raises:
        EdgekitError: naming the first linear the kernels cannot run, before anything is replaced.
    """
    targets = [(name, mod) for name, mod in model.named_modules() if isinstance(mod, QLinear)]
    if not targets:
        raise EdgekitError("--engine kernels needs a quantized artifact (.ekq); this model has no quantized linears")
    for name, mod in targets:
        why = kernel_support(mod)
        if why:
            raise EdgekitError(f"--engine kernels cannot run {name}: {why}; use --engine fake for this artifact")
    for name, mod in targets:
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, KernelLinear(mod, impl))
    if not impl and runtime_numerics.runtime_mismatch(model) is None:
        runtime_numerics.match_runtime(model)
    return len(targets)
