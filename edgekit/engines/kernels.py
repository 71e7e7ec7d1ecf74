"""The ``kernels`` engine: PyTorch with the linears on edgekit's C++ W4A8 kernels and the runtime's float numerics.

:class:`KernelLinear` runs a quantized linear on edgekit's C++ W4A8 kernels.

:class:`~edgekit.quant.modules.QLinear` is the fake-quant reference (float matmul of dequantized weights and
rounded activations); ``KernelLinear`` computes the same product with int4 x int8 integer dot products
(``edgekit._C``, csrc/kernels). Activations are quantized per token or per block of 32 by the native quantizer, or
on the static per-tensor grid for TRIP recipes, with the W4A4 per-token int4/int8 choice honoured.
``use_kernels(model)`` swaps every QLinear of a loaded artifact for one and, for models the C++ runtime runs,
gives the rest of the model the runtime's float numerics (:func:`match_runtime`), so that the two engines compute
the same bits; ``--engine kernels`` is the PyTorch session (:mod:`edgekit.engines.fake`) after ``use_kernels``.

The runtime's float numerics: the runtime (csrc/runtime/llama.cpp) keeps the embedding, a tied head and the KV cache
in fp16 (the table in Q8_0 with lm_head_bits 8), sums RMSNorm's mean square in double, builds its RoPE tables from
double-precision cos / sin, and runs attention, SwiGLU and the LM head on its own kernels. :func:`match_runtime` makes
a transformers Llama model whose linears are already :class:`KernelLinear` (in the runtime's int4 layout) do the
same. Every step is either the very kernel the runtime calls (``attention_causal``, ``silu_mul_f32``,
``gemm_f16_f32`` / ``gemm_q8_0_f32``, the W4A8 linears) or a torch op whose float result is fixed (an fp16 rounding,
one correctly rounded value, an IEEE add or multiply in the runtime's order), so the two paths agree bit for bit.
Why it matters: with int8 activations a last-bit difference moves a code across a rounding boundary and 30 layers
amplify it; two float implementations that differ only in summation order (transformers' SDPA vs eager attention)
agree on just ~97 % of top-1 tokens, which would hide a real bug in the runtime's cache, GQA indexing or pruning behind the noise. What the kernel path keeps of its own: the orchestration
(transformers' modules, masks and cache, or :class:`~edgekit.engines.fake.PrunedLlama`), which is what the parity
tests check against the C++ engine.
"""

from __future__ import annotations

import types

import numpy as np
import torch
from torch import nn

from edgekit.errors import EdgekitError
from edgekit.quant import formats
from edgekit.quant.attention import register_attention
from edgekit.acm.modules import AcmFfn
from edgekit.quant.modules import QLinear

ATTN_NAME = "edgekit-runtime"


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
        self.packed = _C.PackedQ4(qs, d, q.out_features, q.in_features)
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
    kernels, a model the C++ runtime runs also gets the runtime's numerics (:func:`match_runtime`).

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
    if not impl and runtime_mismatch(model) is None:
        match_runtime(model)
    return len(targets)



def _np(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().float().numpy())


def _rms_norm(self, x: torch.Tensor) -> torch.Tensor:
    # the runtime's rule: mean square summed in double and rounded once; 1 / sqrt(ms + eps) in double, rounded once
    # (torch's float sqrt is not correctly rounded: off by one ulp now and then); then w * (x * inv) in float
    ms = (x.double().pow(2).sum(-1, keepdim=True) / x.shape[-1]).float()
    v = ms + torch.tensor(self.variance_epsilon, dtype=torch.float32)  # a float32 add of a float32 eps, as in C++
    inv = (1.0 / torch.sqrt(v.double())).float()
    return self.weight * (x * inv)


def _rope_tables(self, x: torch.Tensor, position_ids: torch.Tensor):
    # inv_freq, then cos / sin of float(position) * inv_freq, each computed in double and rounded once to float
    f = position_ids.float()[..., None] * self.ek_inv_freq  # [B, T, head_dim / 2], a float product as in C++
    emb = torch.cat((f, f), dim=-1).double()
    return emb.cos().float().to(x.dtype), emb.sin().float().to(x.dtype)


def _mlp(self, x: torch.Tensor) -> torch.Tensor:
    from edgekit import _C

    g, u = self.gate_proj(x), self.up_proj(x)
    h = _C.silu_mul_f32(_np(g).reshape(-1), _np(u).reshape(-1))  # the runtime's SwiGLU kernel
    return self.down_proj(torch.from_numpy(h).view(g.shape))


def _acm_intermediate(self, x: torch.Tensor) -> torch.Tensor:
    from edgekit import _C

    g, u = self.gate_proj(x), self.up_proj(x)
    return torch.from_numpy(_C.silu_mul_f32(_np(g).reshape(-1), _np(u).reshape(-1))).view(g.shape)


def _acm_choose_k(self, x: torch.Tensor) -> torch.Tensor:
    # the runtime's own gate (csrc/runtime/acm.cpp), so both engines make the same decision for every token
    from edgekit import _C

    if self.force_k is not None:
        return torch.full(x.shape[:-1], self.force_k, dtype=torch.long)
    g = self.gate
    k = _C.acm_choose(_np(x).reshape(-1, x.shape[-1]), _np(g.fc1.weight), _np(g.fc1.bias), _np(g.fc2.weight),
                      _np(g.fc2.bias), float(self.gate_bias))
    return torch.from_numpy(k.astype(np.int64)).view(x.shape[:-1])


class Fp16Head(nn.Module):
    """The runtime's LM head: fp16 weights on the ``gemm_f16_f32`` kernel (one fixed summation order)."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.w16 = np.ascontiguousarray(weight.detach().half().numpy().view(np.uint16))
        self.out_features, self.in_features = self.w16.shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from edgekit import _C

        y = _C.gemm_f16_f32(self.w16, _np(x).reshape(-1, self.in_features))
        return torch.from_numpy(y).view(*x.shape[:-1], self.out_features)


class Q8Head(nn.Module):
    """The runtime's Q8_0 LM head (lm_head_bits 8): the table's codes and scales on the ``gemm_q8_0_f32`` kernel, or
    with ``act8`` (lm_head_act_bits 8) the input quantized per block of 32 and the integer ``gemm_q8_0_q8b``."""

    def __init__(self, weight: torch.Tensor, act8: bool = False):
        super().__init__()
        from edgekit import _C

        self.q, self.d = _C.quantize_q8_0(_np(weight))  # the loader's rule: recovers the quantizer's codes
        self.out_features, self.in_features = self.q.shape
        self.act8 = act8

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from edgekit import _C

        gemm = _C.gemm_q8_0_q8b if self.act8 else _C.gemm_q8_0_f32
        y = gemm(self.q, self.d, _np(x).reshape(-1, self.in_features))
        return torch.from_numpy(y).view(*x.shape[:-1], self.out_features)


def runtime_attention(module: nn.Module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Attention through the runtime's own ``attention_causal`` (fp16 cache, fused kernel; transformers' attention
    signature). The queries are the last positions of the keys; rows of a batch must not be padded."""
    from edgekit import _C

    outs = []
    for b in range(query.shape[0]):  # [H, T, D] → [T, H, D], the runtime's row layout
        q, k, v = (_np(t[b].transpose(0, 1)) for t in (query, key, value))
        outs.append(torch.from_numpy(_C.attention_causal(q, k, v)))
    return torch.stack(outs).to(query.dtype), None


def _no_mask(*args, **kwargs) -> None:
    """The mask function registered with the attention: none is built, the runtime's kernel is causal itself."""
    return None


def runtime_mismatch(model: nn.Module) -> str | None:
    """Why the runtime's numerics cannot be matched on ``model`` (not what the runtime runs), or None."""
    cfg = getattr(model, "config", None)
    if cfg is None or getattr(cfg, "model_type", None) != "llama":
        return "not a llama-family decoder"
    rotary = getattr(getattr(model, "model", None), "rotary_emb", None)
    if rotary is None or rotary.rope_type != "default" or rotary.attention_scaling != 1.0:
        return "RoPE scaling, which the runtime does not implement"
    if any(getattr(getattr(m, "ek_attn", None), "needs_probs", False) for m in model.modules()):
        return "quantized attention, which the runtime does not implement"
    return None


def match_runtime(model: nn.Module) -> None:
    """Give a kernel-path Llama model the C++ runtime's numerics (see the module docstring); changes it in place.

    Raises:
        EdgekitError: when :func:`runtime_mismatch` names a reason.
    """
    why = runtime_mismatch(model)
    if why:
        raise EdgekitError(f"cannot match the runtime's numerics: {why}")
    inner, cfg = model.model, model.config
    head = model.lm_head
    if getattr(inner.embed_tokens, "ek_q8_0", False):  # lm_head_bits 8: the table already holds its Q8_0 values
        model.lm_head = Q8Head(head.weight, act8=getattr(head, "ek_act8", False))
    else:
        with torch.no_grad():
            emb = inner.embed_tokens.weight
            emb.copy_(emb.half().float())  # the runtime's fp16 table (a tied head shares it)
        model.lm_head = Fp16Head(head.weight)
    rotary = inner.rotary_emb
    hd = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    i = torch.arange(0, hd, 2, dtype=torch.float64)
    theta = float(np.float32(cfg.rope_theta))  # the runtime reads it as a float
    rotary.ek_inv_freq = (1.0 / theta ** (i / hd)).float()
    rotary.forward = types.MethodType(_rope_tables, rotary)
    for m in model.modules():
        if type(m).__name__ == "LlamaRMSNorm":
            m.forward = types.MethodType(_rms_norm, m)
        elif type(m).__name__ == "LlamaMLP":
            m.forward = types.MethodType(_mlp, m)
        elif isinstance(m, AcmFfn):  # skipped learners are exact zeros here: the runtime's prefix views' bits
            m.intermediate = types.MethodType(_acm_intermediate, m)
            m.choose_k = types.MethodType(_acm_choose_k, m)
    register_attention(ATTN_NAME, runtime_attention, _no_mask)
    model.set_attn_implementation(ATTN_NAME)


def open_kernels(spec: str, *, threads: int | None = None, pruning: bool = False, **_):
    """The opener of :data:`edgekit.engines.ENGINES`: an artifact's PyTorch session after :func:`use_kernels`."""
    from edgekit.engines.fake import FakeSession, load_any

    if threads:
        torch.set_num_threads(threads)
    lm, art = load_any(spec)
    use_kernels(lm.model)
    return FakeSession(lm, art, pruning)
