"""The distillation loss: ``kd_weight * KL(teacher ‖ student) + (1 - kd_weight) * CE`` per continuation token,
temperature 1 (the paper's 0.9 / 0.1 by default), each term the mean over the batch's continuation tokens.

The teacher is cached as its top-k log-probabilities per position (computed from its full softmax, so they sum to
less than one). The KL on them (:func:`topk_kl`) keeps the *tail as one bucket*: both distributions are reduced to
k + 1 outcomes (the k teacher tokens and "anything else"), with the teacher's tail mass ``1 - Σ p_topk`` against the
student's probability of all other tokens. That is the exact KL of the reduced distributions, never above the full
KL (data processing), equal to it when the student's tail is shaped like the teacher's, and it still pushes the
student's tail mass towards the teacher's; renormalising the teacher over its top k instead would ask the student
to put all its mass on k tokens. :func:`full_kl` is the reference the error is measured against.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def full_kl(teacher_logp: torch.Tensor, student_logp: torch.Tensor) -> torch.Tensor:
    """KL(teacher ‖ student) per position from full log-probabilities ``[..., V]``."""
    return (teacher_logp.exp() * (teacher_logp - student_logp)).sum(-1)


def topk_kl(topk_logp: torch.Tensor, topk_idx: torch.Tensor, student_logp: torch.Tensor) -> torch.Tensor:
    """KL(teacher ‖ student) per position from the teacher's top-k log-probs ``[..., k]`` at vocabulary ids
    ``topk_idx [..., k]``, with the tail as one bucket (module docstring); ``student_logp [..., V]``."""
    s_top = student_logp.gather(-1, topk_idx)
    p = topk_logp.exp()
    head = (p * (topk_logp - s_top)).sum(-1)
    t_tail = (1.0 - p.sum(-1)).clamp_min(0.0)
    # the student's tail from its own log-probs with the top-k masked out: exact even when the tail is tiny
    s_tail = torch.logsumexp(student_logp.scatter(-1, topk_idx, float("-inf")), dim=-1)
    # k = V leaves no tail (-inf) while the teacher's rounds to ~1e-7: no bucket then, and no inf in the graph
    has_tail = (t_tail > 0) & torch.isfinite(s_tail)
    s_tail = torch.where(has_tail, s_tail, torch.zeros_like(s_tail))
    tail = torch.where(has_tail, t_tail * (torch.log(t_tail.clamp_min(1e-30)) - s_tail), torch.zeros_like(t_tail))
    return head + tail


def kd_loss(student_logits: torch.Tensor, targets: torch.Tensor, topk_logp: torch.Tensor | None,
            topk_idx: torch.Tensor | None, kd_weight: float) -> dict[str, torch.Tensor]:
    """The training loss on one batch.

    Args:
        student_logits: ``[B, C, V]``, output ``j`` predicting ``targets[:, j]``.
        targets: the continuation ids ``[B, C]``.
        topk_logp, topk_idx: the teacher's cached top-k ``[B, C, k]`` at the same positions (None when
            ``kd_weight`` is 0: the CE-only baseline needs no teacher).
        kd_weight: weight of the KL term; ``1 - kd_weight`` weighs the CE.

    Returns:
        ``{"loss", "kl", "ce"}``: scalars, ``kl`` is 0 without a teacher.
    """
    s = F.log_softmax(student_logits.float(), dim=-1)
    ce = -s.gather(-1, targets.unsqueeze(-1)).squeeze(-1).mean()
    if kd_weight > 0:
        if topk_logp is None or topk_idx is None:
            raise ValueError("kd_weight > 0 needs the teacher's top-k log-probs")
        kl = topk_kl(topk_logp.float(), topk_idx.long(), s).mean()
    else:
        kl = ce.new_zeros(())
    return {"loss": kd_weight * kl + (1.0 - kd_weight) * ce, "kl": kl, "ce": ce}
