"""QLinear: a linear layer that holds edgekit's quantized weight and quantizes its input the way the recipe says.

The forward pass is the fake-quant reference of the integer kernels: activations are rounded to the int8 (or int4)
grid with exactly the rule of :mod:`edgekit.quant.formats`, weights are the dequantized codes, and the matmul runs in
float32. ``x_q · w_q`` computed that way equals ``scale_x * scale_w * sum(int codes)`` up to float summation order.
"""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F
from torch import nn

from edgekit.quant.weights import QuantizedWeight


def fake_quant_per_token(x: torch.Tensor, qmax: int | torch.Tensor) -> torch.Tensor:
    """Round each row (last dim) of ``x`` to a symmetric grid with ``qmax`` levels per side (127 = int8, 7 = int4).

    ``qmax`` may be a tensor broadcastable to ``x.shape[:-1] + (1,)`` to mix int4 and int8 tokens.
    """
    amax = x.abs().amax(-1, keepdim=True)
    qmax_t = torch.as_tensor(qmax, dtype=x.dtype, device=x.device)
    inv = torch.where(amax > 0, qmax_t / amax, torch.zeros_like(amax))
    q = (x * inv).round_()
    q = q.clamp_(-qmax, qmax) if isinstance(qmax, int) else torch.maximum(torch.minimum(q, qmax_t, out=q), -qmax_t, out=q)
    return q.mul_(amax / qmax_t)


def fake_quant_per_block(x: torch.Tensor, qmax: int = 127, block: int = 32) -> torch.Tensor:
    """Round every ``block`` consecutive values of each row to their own symmetric grid (GGUF Q8_0's blocking).

    The per-row rule of :func:`fake_quant_per_token` applied to ``x`` viewed as ``[..., K / block, block]``.
    """
    k = x.shape[-1]
    if k % block:
        raise ValueError(f"per-block activation quantization needs K a multiple of {block}, got {k}")
    return fake_quant_per_token(x.reshape(*x.shape[:-1], k // block, block), qmax).reshape(x.shape)


def straight_through(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``y`` in the forward pass, the identity's gradient (to ``x``) in the backward pass (rounding in training:
    :mod:`edgekit.quant.tune`, :mod:`edgekit.quant.e2e`)."""
    return x + (y - x).detach()


def _head_input_per_block(module: nn.Module, args: tuple) -> tuple:
    x = args[0]
    if not x.requires_grad:
        return (fake_quant_per_block(x),) + tuple(args[1:])
    # straight through when something trains through the head (edgekit.quant.e2e)
    return (straight_through(x, fake_quant_per_block(x.detach())),) + tuple(args[1:])


def mark_q8_head(model: nn.Module, head: str | None, act_bits: int | None) -> None:
    """A model whose tied table lies on the Q8_0 grid (``lm_head_bits: 8``), after quantizing or loading: marks the
    embedding (``ek_q8_0``) so the kernel path runs the runtime's Q8_0 head; with ``act_bits`` 8
    (``lm_head_act_bits``) the head module ``head`` also rounds its input per block of 32 before the matmul (GGUF
    Q8_0's rule, as the runtime's integer head kernel sees it) and is marked ``ek_act8``."""
    model.get_input_embeddings().ek_q8_0 = True
    if act_bits == 8 and head:
        module = model.get_submodule(head)
        if not getattr(module, "ek_act8", False):
            module.ek_act8 = True
            module.register_forward_pre_hook(_head_input_per_block)


def fake_quant_per_tensor(x: torch.Tensor, scale: torch.Tensor, qmax: int = 127) -> torch.Tensor:
    """Round ``x`` to a static per-tensor grid ``scale * [-qmax, qmax]``."""
    return torch.clamp(torch.round(x / scale), -qmax, qmax) * scale


class TokenMix:
    """Per-layer state shared by a decoder layer's attention and its QLinears for the W4A4 per-token mix.

    The attention writes each token's importance (attention to the first token, summed over heads); the QLinears
    of o_proj, gate/up and down read the int4/int8 choice derived from it.
    """

    def __init__(self, ratio: float):
        self.ratio = float(ratio)
        self.importance: torch.Tensor | None = None  # [B, T]

    def qmax(self, x: torch.Tensor) -> torch.Tensor | int:
        """qmax per row of ``x`` ``[B, T, K]``: 7 for the ``ratio`` least important tokens, 127 for the rest."""
        imp = self.importance
        if self.ratio <= 0 or imp is None or imp.shape != x.shape[:-1] or x.shape[-2] < 2:
            return 127
        t = imp.shape[-1]
        n4 = int(round(self.ratio * t))
        if n4 == 0:
            return 127
        low = torch.topk(imp, n4, dim=-1, largest=False).indices
        qmax = torch.full(imp.shape, 127.0, dtype=x.dtype, device=x.device)
        qmax.scatter_(-1, low, 7.0)
        qmax[..., 0] = 127.0  # the first token is the attention sink: keep it at int8
        return qmax[..., None]


class _OneSlotMemo:
    """Remembers the last quantized input: weakly keyed on the tensor, guarded by its in-place version counter."""

    def __init__(self):
        self._ref, self._version, self._key, self._out = None, -1, None, None

    def get(self, x: torch.Tensor, key: tuple) -> torch.Tensor | None:
        if self._ref is not None and self._ref() is x and x._version == self._version and key == self._key:
            return self._out
        return None

    def put(self, x: torch.Tensor, key: tuple, out: torch.Tensor) -> None:
        self._ref, self._version, self._key, self._out = weakref.ref(x), x._version, key, out


_LAST_INPUT = _OneSlotMemo()


class QLinear(nn.Module):
    """A quantized ``nn.Linear`` replacement (fake-quant execution).

    Args:
        qweight: the quantized weight.
        bias: optional float bias.
        act_bits: 8 to quantize inputs, 16 for weight-only.
        act_mode: ``"per_token"`` or ``"per_block"`` (dynamic) or ``"per_tensor"`` (static ``act_scale``).
        act_scale: the static per-tensor scale (per_tensor only).
        mix: the layer's :class:`TokenMix` for the W4A4 per-token int4/int8 choice, or None.
    """

    def __init__(self, qweight: QuantizedWeight, bias: torch.Tensor | None = None, act_bits: int = 8,
                 act_mode: str = "per_token", act_scale: float | None = None, mix: TokenMix | None = None):
        super().__init__()
        self.qweight = qweight
        self.out_features, self.in_features = qweight.shape
        self.register_buffer("weight", qweight.dequantize(), persistent=False)
        self.bias = None if bias is None else nn.Parameter(bias.detach().float().clone(), requires_grad=False)
        self.act_bits = act_bits
        self.act_mode = act_mode
        self.act_scale = None if act_scale is None else torch.tensor(float(act_scale))
        self.mix = mix

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        """The input as the integer kernel sees it (dequantized back to float)."""
        if self.act_bits >= 16:
            return x
        # q/k/v (and gate/up) read the same tensor with the same rule: quantize it once
        key = (self.act_mode, None if self.act_scale is None else float(self.act_scale), id(self.mix))
        hit = _LAST_INPUT.get(x, key)
        if hit is not None:
            return hit
        if self.act_mode == "per_tensor":
            out = fake_quant_per_tensor(x, self.act_scale)
        elif self.act_mode == "per_block":
            out = fake_quant_per_block(x)
        else:
            out = fake_quant_per_token(x, self.mix.qmax(x) if self.mix is not None else 127)
        _LAST_INPUT.put(x, key, out)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.quantize_input(x.float()), self.weight, self.bias)

    def extra_repr(self) -> str:
        q = self.qweight
        act = "A16" if self.act_bits >= 16 else f"A{self.act_bits} {self.act_mode}"
        mix = f" w4a4_ratio={self.mix.ratio}" if self.mix is not None and self.mix.ratio else ""
        return f"{self.in_features}->{self.out_features} W{q.bits} g{q.group_size} " \
               f"{'sym' if q.mins is None else 'asym'} {act}{mix}"
