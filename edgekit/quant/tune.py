"""Block-wise output reconstruction: tune a quantized block's rounding and scales (AutoRound / SignRound style).

Cheng et al., "Optimize Weight Rounding via Signed Gradient Descent for the Quantization of LLMs" (Intel
auto-round), written here for edgekit's format. After GPTQ (or RTN) has quantized a block's linears, every weight
gets a rounding offset ``v`` in [-0.5, 0.5] and every group a scale multiplier ``m`` (near 1); the block's weights are

    s = fp16(d · m),   q = clamp(round(u / s + v), -8, 7),   ŵ = q · s

where ``d`` is the group's fitted scale and ``u`` the weight GPTQ rounded (after its error feedback), so ``v = 0,
m = 1`` is exactly GPTQ's result. ``v`` and ``m`` follow the sign of the gradient of the squared error between the
quantized block's output and the float block's on a few calibration windows, through straight-through rounding of
the weights and of the activations (the runtime's int8 fake quantization). The best iterate by that loss is kept,
so the block never ends worse on it than GPTQ left it. Only codes and fp16 scales change: the artifact is still
Q4_0 (symmetric int4, group 32, fp16 scale). With ``norm_range`` the weights of the norms feeding the block's
linears are tuned too, within that fraction of their float values (float32 in the artifact and in GGUF).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from edgekit.config import TuneConfig
from edgekit.quant.calibrate import call_block, per_batch_kwargs
from edgekit.quant.modules import QLinear, straight_through
from edgekit.quant.weights import from_codes


class _Tunable:
    """One QLinear's tunable weight: GPTQ's rounded weights ``u`` ``[N, K]``, scales ``d`` ``[N, K/G]``, the
    offsets ``v`` and multipliers ``m``."""

    def __init__(self, lin: QLinear, updated: torch.Tensor):
        qw = lin.qweight
        n, k = qw.shape
        self.lin, self.g = lin, qw.group_size
        self.u = updated.detach().float().reshape(n, k // self.g, self.g)
        self.d = torch.from_numpy(qw.scales.astype("float32"))
        self.v = torch.zeros_like(self.u, requires_grad=True)
        self.m = torch.ones_like(self.d, requires_grad=True)

    def codes_scales(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Signed codes ``[N, K/G, G]`` and fp16-rounded scales ``[N, K/G]`` of the current ``v``, ``m``
        (straight-through: differentiable in ``v`` and ``m``)."""
        s = self.d * self.m
        s = straight_through(s, s.detach().to(torch.float16).float())
        live = self.d != 0
        safe = torch.where(live, s, torch.ones_like(s))
        t = self.u / safe[..., None] + self.v
        q = torch.clamp(straight_through(t, t.detach().round()), -8, 7)
        q = torch.where(live[..., None], q, torch.zeros_like(q))  # a dead group stores code 8 (zero)
        return q, s

    def weight(self) -> torch.Tensor:
        q, s = self.codes_scales()
        return (q * s[..., None]).reshape(self.lin.out_features, self.lin.in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The QLinear's forward with the tunable weight and straight-through activation quantization."""
        xq = straight_through(x.float(), self.lin.quantize_input(x.detach().float()))
        return F.linear(xq, self.weight(), self.lin.bias)

    def commit(self, v: torch.Tensor, m: torch.Tensor) -> None:
        """Write the codes and scales of ``v``, ``m`` into the QLinear (its qweight and dequantized buffer)."""
        with torch.no_grad():
            self.v.copy_(v)
            self.m.copy_(m)
            q, s = self.codes_scales()
        n, k = self.lin.out_features, self.lin.in_features
        self.lin.qweight = from_codes((q + 8).reshape(n, k), s, None, 4, self.g)
        self.lin.weight = self.lin.qweight.dequantize()


def pick_windows(inputs: list[torch.Tensor], n: int) -> list[tuple[int, int]]:
    """``n`` calibration windows evenly spaced over the batches ``inputs``, as (batch, row) pairs."""
    where = [(bi, r) for bi, x in enumerate(inputs) for r in range(x.shape[0])]
    n = min(n, len(where))
    return [where[round(i * (len(where) - 1) / max(n - 1, 1))] for i in range(n)]


def _head(v, length: int, keep: int):
    """``v`` (a tensor, or a tuple / list of them) with every dimension but the first of size ``length`` cut to its
    first ``keep`` entries: the block's positional arguments (rotary tables, masks, positions, position biases)
    for a window's first ``keep`` tokens."""
    if isinstance(v, (tuple, list)):
        return type(v)(_head(t, length, keep) for t in v)
    if not isinstance(v, torch.Tensor):
        return v
    for dim in range(1 if v.dim() > 1 else 0, v.dim()):
        if v.shape[dim] == length:
            v = v.narrow(dim, 0, keep)
    return v


def gather_windows(inputs: list[torch.Tensor], kwargs, picks: list[tuple[int, int]], seqlen: int = 0):
    """The picked windows (``[1, T, hidden]`` each: the first ``seqlen`` tokens, all with 0) and each one's block
    keyword arguments. A causal block's outputs on a window's first T tokens do not depend on the rest, so a
    shorter window is exact, only less text."""
    per_batch = per_batch_kwargs(kwargs, len(inputs))
    length = inputs[0].shape[1]
    keep = length if not seqlen or seqlen >= length else seqlen
    xs = [inputs[b][r:r + 1, :keep] for b, r in picks]
    kws = [per_batch[b] if keep == length else {k: _head(v, length, keep) for k, v in per_batch[b].items()}
           for b, _ in picks]
    return xs, kws


def _error(out: torch.Tensor, y: torch.Tensor, kind: str) -> torch.Tensor:
    """``"mse"``: the mean squared error; ``"relative"``: each token's squared error over its target's squared
    norm, averaged over tokens (the next block reads its input through an RMSNorm, so a token's error matters
    relative to its size; the few tokens with massive residuals, such as the first, then do not dominate)."""
    if kind == "mse":
        return F.mse_loss(out, y)
    return ((out - y).pow(2).sum(-1) / y.pow(2).sum(-1).clamp_min(1e-12)).mean()


@torch.no_grad()
def block_outputs(block: nn.Module, xs: list[torch.Tensor], kws: list[dict]) -> list[torch.Tensor]:
    """The block's outputs on every window (float, or quantized once its linears are QLinears)."""
    return [call_block(block, x, kw).detach() for x, kw in zip(xs, kws)]


def tune_block(block: nn.Module, lins: dict[str, tuple[QLinear, torch.Tensor]], xs: list[torch.Tensor],
               kws: list[dict], targets: list[torch.Tensor], cfg: TuneConfig, desc: str = "tune",
               progress: bool = True, held: int = 0, norms: list[nn.Module] = ()) -> dict:
    """Tune the rounding and scales of one block's quantized linears, and the ``norms``' weights, in place.

    Args:
        block: the block, its linears already :class:`QLinear` (4-bit symmetric).
        lins: name → (the QLinear, the weights GPTQ rounded: ``clamp(round(updated / d))`` are its codes).
        xs, kws: the block's inputs (``[b, L, hidden]``) and keyword arguments, one per window.
        targets: the outputs to reconstruct, one per window.
        cfg: the tuning budget.
        desc: progress bar label.
        held: the last ``held`` windows are not trained on: every iterate's loss there picks the one kept.
            Without them the kept iterate is the one with the least loss on its step's windows.
        norms: norm modules (a ``weight`` each) tuned beside the codes when ``cfg.norm_range`` > 0.

    Returns:
        ``{"loss0": GPTQ's loss, "loss": the kept iterate's, "best_iter": its step}`` (mean squared error on the
        training windows) and, with ``held``, ``"held0"`` and ``"held"``: the same on the held-out windows.
    """
    n_train = len(xs) - held
    train = list(zip(xs[:n_train], kws[:n_train], targets[:n_train]))
    hold = list(zip(xs[n_train:], kws[n_train:], targets[n_train:]))
    tun = {name: _Tunable(lin, upd) for name, (lin, upd) in lins.items()}
    params = [p for t in tun.values() for p in (t.v, t.m)]
    grads_before = {p: p.requires_grad for p in block.parameters()}
    for p in grads_before:
        p.requires_grad_(False)
    # each tuned norm weight w0 stays in w0 ± span (span = norm_range |w0|) and crosses it at the scales' pace
    norm_ws = [n.weight for n in norms] if cfg.norm_range > 0 else []
    norm_w0 = [w.detach().clone() for w in norm_ws]
    norm_span = [w.abs() * cfg.norm_range for w in norm_w0]
    for w in norm_ws:
        w.requires_grad_(True)
    params += norm_ws
    for t in tun.values():
        t.lin.forward = t.forward  # an instance attribute: nn.Module.__call__ finds it first
    best = None
    loss0 = held0 = None
    gen = torch.Generator().manual_seed(0)
    bar = tqdm(range(cfg.iters + 1), desc=desc, unit="it", leave=False, disable=not progress)
    try:
        for it in bar:
            last = it == cfg.iters
            total = 0.0
            batch = train
            if 0 < cfg.batch < len(train):  # a fresh draw of windows from the pool every step
                batch = [train[int(i)] for i in torch.randperm(len(train), generator=gen)[:cfg.batch]]
            with torch.set_grad_enabled(not last):
                for x, kw, y in batch:
                    loss = _error(call_block(block, x, kw), y, cfg.loss) / len(batch)
                    if not last:
                        loss.backward()
                    total += float(loss.detach())
            with torch.no_grad():
                score = sum(float(_error(call_block(block, x, kw), y, cfg.loss)) for x, kw, y in hold) / max(len(hold), 1)
            if loss0 is None:
                loss0, held0 = total, score
            key = score if hold else total
            if best is None or key < best[0]:
                best = (key, it, [p.detach().clone() for p in params], total)
            bar.set_postfix(loss=f"{total / loss0 if loss0 else 1:.3f}x",
                            best=f"{best[0] / (held0 if hold else loss0) if loss0 else 1:.3f}x")
            if last:
                break
            step = cfg.step * (1.0 - it / cfg.iters)  # linear decay to 0
            with torch.no_grad():
                for t in tun.values():
                    t.v.sub_(step * torch.sign(t.v.grad)).clamp_(-0.5, 0.5)
                    if cfg.scale_range > 0:  # m crosses its range at the pace v crosses [-0.5, 0.5]
                        t.m.sub_(step * 2 * cfg.scale_range * torch.sign(t.m.grad))
                        t.m.clamp_(1 - cfg.scale_range, 1 + cfg.scale_range)
                    t.v.grad = None
                    t.m.grad = None
                for w, w0, span in zip(norm_ws, norm_w0, norm_span):
                    w.sub_(step * 2 * span * torch.sign(w.grad))
                    w.clamp_(w0 - span, w0 + span)
                    w.grad = None
    finally:
        for t in tun.values():
            del t.lin.forward
        for p, g in grads_before.items():
            p.requires_grad_(g)
        bar.close()
    kept = iter(best[2])
    for t in tun.values():
        t.commit(next(kept), next(kept))
    with torch.no_grad():
        for w in norm_ws:
            w.copy_(next(kept))
    out = {"loss0": loss0, "loss": best[3], "best_iter": best[1]}
    if hold:
        out.update(held0=held0, held=best[0])
    return out
