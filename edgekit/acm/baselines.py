"""The baselines an ACM is measured against at the same executed FFN fraction (``edgekit bench acm``).

* **static width**: the ACM's own learners at one forced k for every token (:func:`edgekit.acm.modules.set_mode`
  with ``force_k``; the same neuron order and the same training as the ACM);
* **magnitude thresholding** (CATS / TEAL style, training-free, on the dense model): per token, ``gate_proj`` runs
  densely, and only the ``keep`` share of intermediate neurons with the largest ``|act(gate(x))|`` run ``up_proj``
  and ``down_proj``; executed fraction ``(1 + 2 keep) / 3`` (:func:`threshold_ffn`, :func:`threshold_fraction`);
* **random gate**: the ACM's learners with k drawn per token from the ACM's own per-layer k histogram, so the
  executed fraction matches and only the choice of which tokens get more is lost (:func:`random_gates`).

Each changes a loaded torch model in place (the kernel path's modules: the runtime's numerics elsewhere); the
runtime itself runs the ACM and static rows.
"""

from __future__ import annotations

import types

import torch
from torch import nn


def threshold_fraction(keep: float) -> float:
    """The executed fraction of a SwiGLU FFN that runs gate_proj densely and up/down on ``keep`` of its neurons."""
    return (1.0 + 2.0 * keep) / 3.0


def _threshold_forward(self, x: torch.Tensor) -> torch.Tensor:
    a = self.act_fn(self.gate_proj(x))
    n_keep = max(1, round(self.ek_keep * a.shape[-1]))
    # the n_keep-th largest magnitude per token: neurons at or above it run (ties keep a few more)
    cut = a.abs().topk(n_keep, dim=-1).values[..., -1:]
    mask = (a.abs() >= cut).to(a.dtype)
    return self.down_proj(a * mask * self.up_proj(x))


def threshold_ffn(model: nn.Module, family, keep: float) -> int:
    """Make every gated FFN of ``model`` run per-token magnitude thresholding keeping ``keep`` of its neurons;
    returns how many FFNs changed.

    Raises:
        ValueError: ``keep`` outside (0, 1], or a family without a gated FFN.
    """
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep must be in (0, 1], got {keep}")
    if family.gated_ffn is None:
        raise ValueError(f"the {family.name} family has no gated FFN to threshold")
    n = 0
    for block in family.layers(model):
        mlp = block.get_submodule(family.gated_ffn[0])
        mlp.ek_keep = keep
        mlp.forward = types.MethodType(_threshold_forward, mlp)
        n += 1
    return n


def _random_choose_k(self, x: torch.Tensor) -> torch.Tensor:
    flat = torch.multinomial(self.ek_k_probs, x[..., 0].numel(), replacement=True, generator=self.ek_rng)
    return flat.view(x.shape[:-1])


def random_gates(model: nn.Module, hists: list[list[int]], seed: int = 0) -> None:
    """Replace every ACM gate of ``model`` by a draw from ``hists[layer]`` (token counts per k, e.g. the ACM's own
    ``acm_stats()["layers"][i]["k_hist"]``), seeded.

    Raises:
        ValueError: the histograms do not match the model's ACMs.
    """
    from edgekit.acm.modules import acm_modules

    mods = acm_modules(model)
    if len(hists) != len(mods) or any(len(h) != m.n_learners + 1 or sum(h) <= 0 for h, m in zip(hists, mods)):
        raise ValueError("one non-empty k histogram of N + 1 counts per ACM layer is needed")
    for i, (m, hist) in enumerate(zip(mods, hists)):
        m.ek_k_probs = torch.tensor(hist, dtype=torch.float64)
        m.ek_rng = torch.Generator().manual_seed(seed * 1000 + i)
        m.choose_k = types.MethodType(_random_choose_k, m)
