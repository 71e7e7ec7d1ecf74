"""ACM training phases 1 and 2, one layer at a time on that layer's captured FFN inputs and outputs.

Both phases read the *original* model's FFN input ``x`` and output ``y`` of one layer (the frozen model's
activations on the calibration windows, :func:`edgekit.acm.convert.convert_`), so every layer trains on its own and
the walk over the layers needs one forward pass of the frozen model in all:

1. **Module-wise representation distillation** (:func:`distill_layer`): the learners learn to reproduce ``y`` for
   every k at once, loss ``sum_{k=1..N} mean((h(x, k) - y)^2)``. The learners start from the dense FFN's neurons
   (k = N exact), so this mostly teaches the first learners to carry what the later ones did.
2. **Gate pre-training** (:func:`train_gate`) on the labels of :func:`gate_labels`, the paper's ratio rule: with
   ``e_k = ||h(x, k) - y||``, a token's label is the smallest k whose next learner improves the error by a factor
   below ``tau`` (``e_k / e_{k+1} < tau``), else N. Cross-entropy on the gate's N + 1 logits.

Steps draw random token rows (``batch`` per step) with a seeded generator, so a run is reproducible.
"""

from __future__ import annotations

import torch
from torch import nn

from edgekit.acm.modules import AcmFfn
from edgekit.config import AcmPhaseConfig

# rows per chunk when a whole layer's tokens go through all_k without gradient (bounds the [rows, N+1, d] temporary)
_CHUNK = 2048


def distill_loss(acm: AcmFfn, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Phase 1's loss: the mean squared error to ``y`` of ``h(x, k)``, summed over k = 1..N."""
    cum = acm.all_k(x)[..., 1:, :]
    return ((cum - y.unsqueeze(-2)) ** 2).mean(-1).sum(-1).mean()


def distill_layer(acm: AcmFfn, x: torch.Tensor, y: torch.Tensor, phase: AcmPhaseConfig,
                  gen: torch.Generator) -> dict:
    """Phase 1 on one layer: ``phase.steps`` Adam steps of :func:`distill_loss` on random rows of ``(x, y)``.

    Args:
        acm: the layer's ACM (its learners are trained; the gate is left alone).
        x, y: the original FFN's inputs and outputs, ``[tokens, d]``.
        phase: steps, learning rate and rows per step.
        gen: the generator drawing the rows.

    Returns:
        ``{"loss_first", "loss_last"}`` (the first and last step's loss, relative to ``mean(y^2) * N``, so 1.0 is
        what all-zero outputs would score).
    """
    if phase.steps == 0:
        return {"loss_first": None, "loss_last": None}
    params = acm.learner_parameters()
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=phase.lr)
    scale = float((y ** 2).mean()) * acm.n_learners or 1.0
    first = last = None
    for _ in range(phase.steps):
        idx = torch.randint(0, x.shape[0], (min(phase.batch, x.shape[0]),), generator=gen)
        loss = distill_loss(acm, x[idx], y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        last = float(loss.detach()) / scale
        first = last if first is None else first
    for p in params:
        p.requires_grad_(False)
    return {"loss_first": first, "loss_last": last}


@torch.no_grad()
def gate_labels(acm: AcmFfn, x: torch.Tensor, y: torch.Tensor, tau: float) -> torch.Tensor:
    """The paper's ratio rule: per token, the smallest k with ``e_k / e_{k+1} < tau``, else N (int64 ``[tokens]``).

    ``e_k = ||h(x, k) - y||``; ``e_0 = ||y||``. A zero error (k = N reproduces ``y`` exactly) counts as an infinite
    improvement, so such a token keeps its last learners.
    """
    out = []
    n = acm.n_learners
    for s in range(0, x.shape[0], _CHUNK):
        err = torch.linalg.vector_norm(acm.all_k(x[s:s + _CHUNK]) - y[s:s + _CHUNK].unsqueeze(-2), dim=-1)
        ratio = err[:, :-1] / err[:, 1:].clamp_min(torch.finfo(err.dtype).tiny)
        ok = ratio < tau
        first = ok.to(torch.int8).argmax(-1)
        out.append(torch.where(ok.any(-1), first, torch.full_like(first, n)))
    return torch.cat(out)


def train_gate(acm: AcmFfn, x: torch.Tensor, labels: torch.Tensor, phase: AcmPhaseConfig,
               gen: torch.Generator) -> dict:
    """Phase 2 on one layer: ``phase.steps`` Adam steps of cross-entropy between the gate's logits and ``labels``.

    Returns:
        ``{"ce_first", "ce_last", "accuracy"}`` (accuracy of the trained gate on all of the layer's tokens).
    """
    if phase.steps == 0:
        return {"ce_first": None, "ce_last": None, "accuracy": None}
    params = list(acm.gate.parameters())
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=phase.lr)
    first = last = None
    for _ in range(phase.steps):
        idx = torch.randint(0, x.shape[0], (min(phase.batch, x.shape[0]),), generator=gen)
        loss = nn.functional.cross_entropy(acm.gate(x[idx]), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        last = float(loss.detach())
        first = last if first is None else first
    for p in params:
        p.requires_grad_(False)
    with torch.no_grad():
        acc = float(torch.cat([acm.gate(x[s:s + _CHUNK]).argmax(-1) for s in range(0, x.shape[0], _CHUNK)])
                    .eq(labels).float().mean())
    return {"ce_first": first, "ce_last": last, "accuracy": acc}
