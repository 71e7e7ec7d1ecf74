"""The adaptive computation module of a gated FFN: N learners summed in order, and a per-token gate choosing how many.

:class:`AcmFfn` replaces a SwiGLU FFN ``down(act(gate(x)) * up(x))`` whose intermediate neurons were ordered by
importance (:mod:`edgekit.acm.convert`). Learner ``n`` is that FFN restricted to neurons ``n*w .. (n+1)*w - 1``, so
``h(z, k) = sum_{n<k} s_n(z)`` and ``h(z, N)`` is the dense FFN. The weights stay the three dense matrices, named as
in the original MLP (``gate_proj``, ``up_proj``, ``down_proj``): learner ``n`` is a row block of the first two and a
column block of the third, so an export at k = N is the dense FFN and a quantizer sees ordinary linears.

The gate (:class:`AcmGate`) is a two-layer MLP on the FFN input giving N + 1 logits for k = 0..N; k = 0 is allowed
because the FFN sits under a residual. Modes (:func:`set_mode` sets them on every ACM of a model):

* ``gated`` (default): k = argmax of the logits plus ``gate_bias * k / N`` (a run-time knob: > 0 runs more
  learners, < 0 fewer), or ``force_k`` when set; skipped learners contribute exactly zero;
* ``dense``: the dense FFN (k = N) whatever the gate says;
* ``train``: the gate's hard Gumbel-softmax sample (straight-through), kept in ``last_gate`` for phase 3's losses.

This module computes every learner and masks the skipped ones (numerically what skipping does); the C++ runtime is
where skipped learners are not computed at all.
"""

from __future__ import annotations

import torch
from torch import nn

MODES = ("gated", "dense", "train")


class AcmGate(nn.Module):
    """FFN input ``[..., d]`` → logits ``[..., n_learners + 1]`` over k = 0..N."""

    def __init__(self, d: int, hidden: int, n_learners: int):
        super().__init__()
        self.fc1 = nn.Linear(d, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, n_learners + 1)
        # start at k = N for every token: a converted model runs dense until its gate is trained
        with torch.no_grad():
            self.fc2.weight.zero_()
            self.fc2.bias.zero_()
            self.fc2.bias[-1] = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))

    def flops(self) -> int:
        """Multiply-adds per token."""
        return self.fc1.in_features * self.fc1.out_features + self.fc2.in_features * self.fc2.out_features


class AcmFfn(nn.Module):
    """A gated FFN as ``n_learners`` learners of ``width`` neurons each and a per-token gate.

    Args:
        gate_w, up_w: ``[ffn, d]`` weights, rows in learner order (most important neurons first).
        down_w: ``[d, ffn]``, columns in the same order.
        n_learners: N; ``ffn`` must be a multiple of it.
        gate_hidden: the gate MLP's hidden width.
        act_fn: the FFN's activation module (SiLU for SwiGLU), shared with the original MLP.

    Attributes:
        mode, force_k, gate_bias, gumbel_tau: the run-time controls (see the module docstring).
        last_gate: in ``train`` mode, the last forward's one-hot gate sample ``[..., N + 1]`` (with gradient).
        k_counts: tokens seen per k since the last :func:`reset_stats` (int64 ``[N + 1]``), counted in ``gated`` mode.
    """

    def __init__(self, gate_w: torch.Tensor, up_w: torch.Tensor, down_w: torch.Tensor, n_learners: int,
                 gate_hidden: int, act_fn: nn.Module):
        super().__init__()
        ffn, d = gate_w.shape
        if ffn % n_learners:
            raise ValueError(f"{n_learners} learners do not divide {ffn} neurons")
        self.n_learners, self.width, self.d = n_learners, ffn // n_learners, d
        self.gate_proj = nn.Linear(d, ffn, bias=False)
        self.up_proj = nn.Linear(d, ffn, bias=False)
        self.down_proj = nn.Linear(ffn, d, bias=False)
        with torch.no_grad():
            self.gate_proj.weight.copy_(gate_w)
            self.up_proj.weight.copy_(up_w)
            self.down_proj.weight.copy_(down_w)
        self.act_fn = act_fn
        self.gate = AcmGate(d, gate_hidden, n_learners)
        self.mode = "gated"
        self.force_k: int | None = None
        self.gate_bias = 0.0
        self.gumbel_tau = 0.8
        self.last_gate: torch.Tensor | None = None
        self.register_buffer("k_counts", torch.zeros(n_learners + 1, dtype=torch.long), persistent=False)
        self.requires_grad_(False)  # frozen like a loaded model; each training phase unfreezes what it trains

    @classmethod
    def empty(cls, d: int, ffn: int, n_learners: int, gate_hidden: int, act_fn: nn.Module) -> AcmFfn:
        """A module of the right shapes to load saved weights into."""
        z = torch.zeros(ffn, d)
        return cls(z, z, torch.zeros(d, ffn), n_learners, gate_hidden, act_fn)

    def learner_parameters(self) -> list[nn.Parameter]:
        """The learners' weights (phase 1 trains these, not the gate)."""
        return [self.gate_proj.weight, self.up_proj.weight, self.down_proj.weight]

    def intermediate(self, x: torch.Tensor) -> torch.Tensor:
        """The SwiGLU intermediate ``act(gate(x)) * up(x)`` of all learners, ``[..., ffn]``."""
        return self.act_fn(self.gate_proj(x)) * self.up_proj(x)

    def all_k(self, x: torch.Tensor) -> torch.Tensor:
        """``h(x, k)`` for every k = 0..N at once, ``[..., N + 1, d]`` (k = 0 is zero)."""
        h = self.intermediate(x).unflatten(-1, (self.n_learners, self.width))
        w = self.down_proj.weight.unflatten(1, (self.n_learners, self.width))  # [d, N, width]
        parts = torch.einsum("...nw,dnw->...nd", h, w)
        return torch.cat([torch.zeros_like(parts[..., :1, :]), parts.cumsum(-2)], dim=-2)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The gate's logits for k = 0..N, with the run-time ``gate_bias`` applied."""
        z = self.gate(x)
        if self.gate_bias:
            z = z + self.gate_bias * torch.arange(self.n_learners + 1, device=z.device, dtype=z.dtype) / self.n_learners
        return z

    def choose_k(self, x: torch.Tensor) -> torch.Tensor:
        """The number of learners each token runs (int64 ``[...]``)."""
        if self.force_k is not None:
            return torch.full(x.shape[:-1], self.force_k, dtype=torch.long, device=x.device)
        return self.logits(x).argmax(-1)

    def _masked(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """``down(h * mask)``: ``keep[..., n]`` weighs learner n (1 runs it, 0 skips it exactly)."""
        return self.down_proj(self.intermediate(x) * keep.repeat_interleave(self.width, dim=-1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "dense" or self.force_k == self.n_learners:
            if self.mode == "gated":  # forced k = N is counted like any forced k (dense mode counts nothing)
                self.k_counts[self.n_learners] += x[..., 0].numel()
            return self.down_proj(self.intermediate(x))
        if self.mode == "train":
            g = nn.functional.gumbel_softmax(self.logits(x), tau=self.gumbel_tau, hard=True)
            self.last_gate = g
            # learner n runs when k > n: P(k > n) = 1 - sum_{j<=n} g_j (exactly 0/1 forward, a gradient for g)
            return self._masked(x, 1.0 - g.cumsum(-1)[..., :-1])
        k = self.choose_k(x)
        self.k_counts += torch.bincount(k.reshape(-1), minlength=self.n_learners + 1).to(self.k_counts.device)
        keep = (torch.arange(self.n_learners, device=x.device) < k[..., None]).to(x.dtype)
        return self._masked(x, keep)


def attach_empty_acms(model: nn.Module, family, info: dict) -> None:
    """Replace every gated FFN of ``model`` by an :class:`AcmFfn` of the right shapes (weights to be loaded), from
    ``info`` (``n_learners``, ``gate_hidden``: an ACM directory's ``acm.json`` or an artifact's ``edgekit.acm``)."""
    from transformers.activations import ACT2FN

    cfg = model.config
    for block in family.layers(model):
        setattr(block, family.gated_ffn[0], AcmFfn.empty(cfg.hidden_size, cfg.intermediate_size, info["n_learners"],
                                                         info["gate_hidden"], ACT2FN[cfg.hidden_act]))


def acm_modules(model: nn.Module) -> list[AcmFfn]:
    """Every :class:`AcmFfn` of ``model``, in layer order."""
    return [m for m in model.modules() if isinstance(m, AcmFfn)]


def set_mode(model: nn.Module, mode: str = "gated", *, force_k: int | None = None, gate_bias: float = 0.0,
             gumbel_tau: float | None = None) -> None:
    """Set the run-time controls of every ACM of ``model`` (see the module docstring).

    Raises:
        ValueError: an unknown mode or a ``force_k`` outside 0..N (the CLI validates before it gets here).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    for m in acm_modules(model):
        if force_k is not None and not 0 <= force_k <= m.n_learners:
            raise ValueError(f"force_k must be in 0..{m.n_learners}, got {force_k}")
        m.mode, m.force_k, m.gate_bias = mode, force_k, float(gate_bias)
        if gumbel_tau is not None:
            m.gumbel_tau = gumbel_tau
        m.last_gate = None


def reset_stats(model: nn.Module) -> None:
    """Zero every ACM's k counts."""
    for m in acm_modules(model):
        m.k_counts.zero_()


def ffn_stats(model: nn.Module) -> dict:
    """What the gates decided since :func:`reset_stats`: per layer the k histogram and the executed fraction.

    ``learner_fraction`` is the mean of k / N over tokens and layers; ``ffn_fraction`` adds each gate's own cost
    (its multiply-adds over the dense FFN's), so it is the fraction of the dense FFN's work actually executed. In
    ``dense`` mode nothing is counted (every layer runs everything).

    Returns:
        ``{"ffn_fraction", "learner_fraction", "gate_fraction", "n_learners", "layers": [{"layer", "k_hist",
        "fraction"}]}``.
    """
    mods = acm_modules(model)
    if not mods:
        return stats_from_counts([], 0, 0.0)
    m0 = mods[0]
    return stats_from_counts([m.k_counts.cpu().tolist() for m in mods], m0.n_learners,
                             gate_fraction(m0.d, m0.n_learners * m0.width, m0.gate.fc1.out_features, m0.n_learners))


def gate_fraction(d: int, ffn: int, gate_hidden: int, n_learners: int) -> float:
    """A gate's multiply-adds per token over the dense SwiGLU FFN's (``3 * d * ffn``)."""
    return (d * gate_hidden + gate_hidden * (n_learners + 1)) / (3 * d * ffn)


def stats_from_counts(counts: list[list[int]], n_learners: int, gate_frac: float) -> dict:
    """:func:`ffn_stats`'s dict from per-layer token counts per k (``counts[layer][k]``); the runtime's counts
    (``edgekit._C.LlamaRuntime.acm_counts``) go through here too, so every engine reports alike."""
    layers, fracs = [], []
    for i, hist in enumerate(counts):
        hist = [int(c) for c in hist]
        n = sum(hist)
        frac = sum(k * c for k, c in enumerate(hist)) / (n * n_learners) if n else float("nan")
        layers.append({"layer": i, "k_hist": hist, "fraction": frac})
        fracs.append(frac)
    if not counts:
        return {"ffn_fraction": None, "learner_fraction": None, "gate_fraction": 0.0, "n_learners": 0, "layers": []}
    learner = sum(fracs) / len(fracs)
    return {"ffn_fraction": learner + gate_frac, "learner_fraction": learner, "gate_fraction": gate_frac,
            "n_learners": n_learners, "layers": layers}
