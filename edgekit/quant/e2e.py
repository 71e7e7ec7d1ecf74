"""End-to-end tuning of a quantized causal LM's group scales and norms against the float model's logits.

After every block is quantized (and block-wise tuned, :mod:`edgekit.quant.tune`), each group of each block linear
gets a scale multiplier ``exp(m)`` (``m`` starts at 0, so the quantizer's result is the starting point) and the
RMSNorm weights (the blocks' and the final one) become trainable. The 4-bit codes stay fixed. Adam (warm-up, cosine
decay) follows the gradient of KL(float ‖ quantized) over the next-token distributions of random crops of the
calibration windows, through straight-through rounding of the fp16 scales, of the int8 activations and of the Q8_0
head's int8 input. This is EfficientQAT's end-to-end stage (train the step sizes with the codes frozen) with the float
model as the teacher instead of labels: the loss is the whole model's output, so a scale can undo what blocks before
it got wrong, which block-wise reconstruction cannot see.

Only fp16 scales and float32 norm weights change: the artifact is still Q4_0 (symmetric int4, group 32, fp16
scale), so the GGUF export and the runtime carry the result unchanged.
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from edgekit.config import E2EConfig
from edgekit.distill.loss import full_kl
from edgekit.quant.modules import QLinear, straight_through
from edgekit.quant.weights import from_codes


class _ScaledLinear:
    """A 4-bit symmetric QLinear whose group scales are ``fp16(d · exp(m))`` with trainable ``m`` (codes fixed)."""

    def __init__(self, lin: QLinear):
        qw = lin.qweight
        n, k = qw.shape
        self.lin, self.g = lin, qw.group_size
        self.codes = torch.from_numpy(qw.codes.astype("float32")).view(n, k // self.g, self.g) - 8
        self.d = torch.from_numpy(qw.scales.astype("float32"))
        self.m = torch.zeros_like(self.d, requires_grad=True)

    def scales(self) -> torch.Tensor:
        s = self.d * torch.exp(self.m)
        return straight_through(s, s.detach().to(torch.float16).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = (self.codes * self.scales()[..., None]).reshape(self.lin.out_features, self.lin.in_features)
        xq = straight_through(x.float(), self.lin.quantize_input(x.detach().float()))
        return F.linear(xq, w, self.lin.bias)

    def commit(self) -> None:
        """Write the tuned fp16 scales into the QLinear (its qweight and dequantized buffer)."""
        with torch.no_grad():
            s = self.scales()
        n, k = self.lin.out_features, self.lin.in_features
        self.lin.qweight = from_codes((self.codes + 8).reshape(n, k), s, None, 4, self.g)
        self.lin.weight = self.lin.qweight.dequantize()


def _crops(ids: torch.Tensor, n: int, seqlen: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` random crops of ``seqlen`` tokens from the calibration windows ``ids [rows, L]``."""
    rows = torch.randint(0, ids.shape[0], (n,), generator=gen).tolist()
    starts = torch.randint(0, ids.shape[1] - seqlen + 1, (n,), generator=gen).tolist()
    return torch.stack([ids[r, s:s + seqlen] for r, s in zip(rows, starts)])


def kl_to_teacher(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Mean over positions of KL(teacher ‖ student) between next-token distributions (logits ``[..., V]``)."""
    return full_kl(F.log_softmax(teacher_logits.float(), -1), F.log_softmax(student_logits.float(), -1)).mean()


def tune_end_to_end(model: nn.Module, teacher: nn.Module, layers: nn.ModuleList, final_norm: nn.Module | None,
                    calib_ids: torch.Tensor, cfg: E2EConfig, progress: bool = True) -> dict:
    """Tune ``model``'s block-linear scales (and norms) in place towards ``teacher``'s logits.

    Args:
        model: the quantized causal LM (its block linears :class:`QLinear`, 4-bit symmetric).
        teacher: the float model it was quantized from (same tokenizer and outputs).
        layers: ``model``'s decoder blocks (their QLinears and RMSNorms are tuned).
        final_norm: the norm before the head, tuned too with ``cfg.norms``; None to leave it.
        calib_ids: the calibration windows ``[n, L]``.
        cfg: the budget.
        progress: show a progress bar.

    Returns:
        ``{"kl_first", "kl_last", "seconds", "steps"}``: the KL of the first step and the mean of the last tenth.
    """
    t0 = time.perf_counter()
    seqlen = min(cfg.seqlen, calib_ids.shape[1])
    lins = [_ScaledLinear(mod) for mod in layers.modules() if isinstance(mod, QLinear)]
    norms = []
    if cfg.norms:
        norms = [mod.weight for name, mod in layers.named_modules() if name.endswith("norm") and hasattr(mod, "weight")]
        if final_norm is not None:
            norms.append(final_norm.weight)
    frozen = {p: p.requires_grad for p in model.parameters()}
    for p in frozen:
        p.requires_grad_(False)
    for w in norms:
        w.requires_grad_(True)
    for t in lins:
        t.lin.forward = t.forward  # an instance attribute: nn.Module.__call__ finds it first
    opt = torch.optim.Adam([t.m for t in lins] + norms, lr=cfg.lr, betas=(0.9, 0.95))
    warm = max(1, cfg.steps // 12)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * s / cfg.steps)))
    gen = torch.Generator().manual_seed(0)
    losses = []
    bar = tqdm(range(cfg.steps), desc="tune end to end", unit="step", leave=False, disable=not progress)
    try:
        for _ in bar:
            x = _crops(calib_ids, cfg.batch, seqlen, gen)
            with torch.no_grad():
                target = teacher(x).logits
            loss = kl_to_teacher(model(x).logits, target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            bar.set_postfix(kl=f"{losses[-1]:.4f}")
    finally:
        for t in lins:
            del t.lin.forward
        for p, g in frozen.items():
            p.requires_grad_(g)
        bar.close()
    for t in lins:
        t.commit()
    tail = losses[-max(1, len(losses) // 10):]
    return {"steps": cfg.steps, "kl_first": losses[0] if losses else None,
            "kl_last": sum(tail) / len(tail) if tail else None, "seconds": time.perf_counter() - t0}
