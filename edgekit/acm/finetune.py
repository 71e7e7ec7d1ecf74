"""ACM phase 3: end-to-end fine-tuning of the learners and gates against the dense model, with the paper's losses.

Every ACM runs in ``train`` mode: its gate draws a hard Gumbel-softmax sample of k per token (straight-through
gradient), and the model's logits are compared with the dense teacher's (the original model, frozen). The loss is

* the task term: ``kl`` = KL(teacher ‖ student) per token, ``ce`` = next-token cross-entropy, or both summed;
* ``budget_weight * |f - budget|``, f the mean executed fraction ``k / N`` over tokens and layers (the paper's L1
  budget loss; each learner costs the same here);
* ``entropy_weight * (-H)``, H the mean over sequences and layers of the normalized entropy of the distribution of
  k within the sequence (without it a gate settles on one k for every token);
* ``diversity_weight * (-D)``, D the mean L1 distance between the samples' executed fractions, times 2 (samples
  of different difficulty get different budgets).

Only the ACM parameters train; the rest of the model stays frozen. Under torchrun the gradients are averaged over
the ranks (:mod:`edgekit.acm.distributed`).
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn
from tqdm.auto import tqdm

from edgekit.acm import distributed
from edgekit.acm.modules import acm_modules, set_mode
from edgekit.config import AcmConfig


def budget_terms(gates: torch.Tensor, budget: float) -> dict[str, torch.Tensor]:
    """The gate losses from stacked gate samples ``[batch, seq, layers, N + 1]``.

    Returns:
        ``{"fraction", "budget", "entropy", "diversity"}``: the mean executed fraction and the three loss terms
        (entropy and diversity already negated, so lower is better for every term).
    """
    n = gates.shape[-1] - 1
    cost = (gates * torch.arange(n + 1, dtype=gates.dtype, device=gates.device) / n).sum(-1)  # [b, s, layers]
    fraction = cost.mean()
    per_seq = gates.sum(1)  # [b, layers, N+1]: how often each k was chosen in each sequence
    dist = per_seq / per_seq.sum(-1, keepdim=True).clamp_min(1e-12)
    entropy = -(dist * (dist + 1e-20).log()).sum(-1) / math.log(n + 1)
    per_sample = cost.mean(dim=(1, 2))  # [b]
    diversity = (per_sample[:, None] - per_sample[None, :]).abs().mean() * 2
    return {"fraction": fraction, "budget": (fraction - budget).abs(), "entropy": -entropy.mean(),
            "diversity": -diversity}


def task_loss(student: torch.Tensor, teacher: torch.Tensor | None, ids: torch.Tensor, distill: str) -> torch.Tensor:
    """KL to the teacher's logits and/or next-token cross-entropy, per :attr:`AcmConfig.distill`."""
    loss = student.new_zeros(())
    s = nn.functional.log_softmax(student.float(), dim=-1)
    if "kl" in distill:
        t = nn.functional.log_softmax(teacher.float(), dim=-1)
        loss = loss + (t.exp() * (t - s)).sum(-1).mean()
    if "ce" in distill:
        loss = loss + nn.functional.nll_loss(s[:, :-1].reshape(-1, s.shape[-1]), ids[:, 1:].reshape(-1))
    return loss


def finetune(model: nn.Module, teacher: nn.Module | None, ids: torch.Tensor, config: AcmConfig, *,
             progress: bool = True, dist: distributed.Dist | None = None) -> dict:
    """Phase 3 on ``model`` (already converted) for ``config.phase3.steps`` steps.

    Args:
        model: the ACM model (trained in place; left in ``gated`` mode).
        teacher: the dense original, frozen (needed unless ``config.distill == "ce"``).
        ids: training windows ``[n, L]``; each step every rank takes its own ``phase3.batch`` of them.
        config: the ACM config.
        progress: show a progress bar (rank 0 only).
        dist: the torchrun job (None: one process).

    Returns:
        ``{"phase3_steps", "phase3_seconds", "phase3_step_seconds", "loss_first", "loss_last", "fraction_first",
        "fraction_last"}`` (losses and fractions averaged over the ranks).
    """
    dist = dist or distributed.Dist()
    p3 = config.phase3
    acms = acm_modules(model)
    params = [p for m in acms for p in m.parameters()]
    report = {"phase3_steps": p3.steps, "phase3_seconds": 0.0, "phase3_step_seconds": None, "loss_first": None,
              "loss_last": None, "fraction_first": None, "fraction_last": None}
    if p3.steps == 0 or not acms:
        return report
    distributed.broadcast_params(params, dist)
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=p3.lr)
    gen = torch.Generator().manual_seed(config.seed + 7)  # the same window order on every rank
    torch.manual_seed(config.seed * 1009 + dist.rank)  # Gumbel noise differs per rank (different samples anyway)
    set_mode(model, "train", gumbel_tau=config.gumbel_tau)
    model.train()
    per_step = p3.batch * dist.world
    n = ids.shape[0]  # every rank draws the same order; step s, rank r takes its own slice of it
    order = torch.cat([torch.randperm(n, generator=gen) for _ in range(-(-p3.steps * per_step // n))])
    t0 = time.perf_counter()
    bar = tqdm(range(p3.steps), desc="acm phase 3", unit="step", disable=not (progress and dist.main))
    try:
        for step in bar:
            start = step * per_step + dist.rank * p3.batch
            batch = ids[order[start:start + p3.batch]].to(dist.device)
            t_logits = None
            if teacher is not None and "kl" in config.distill:
                with torch.no_grad():
                    t_logits = teacher(input_ids=batch, use_cache=False).logits
            logits = model(input_ids=batch, use_cache=False).logits
            terms = budget_terms(torch.stack([m.last_gate for m in acms], dim=2), config.budget)
            task = task_loss(logits, t_logits, batch, config.distill)
            loss = (task + config.budget_weight * terms["budget"] + config.entropy_weight * terms["entropy"]
                    + config.diversity_weight * terms["diversity"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            distributed.all_reduce_grads(params, dist)
            opt.step()
            lv = distributed.mean_scalar(float(loss.detach()), dist)
            fr = distributed.mean_scalar(float(terms["fraction"].detach()), dist)
            if report["loss_first"] is None:
                report["loss_first"], report["fraction_first"] = lv, fr
            report["loss_last"], report["fraction_last"] = lv, fr
            bar.set_postfix(loss=f"{lv:.4f}", task=f"{float(task.detach()):.4f}", fraction=f"{fr:.3f}")
    finally:
        for p in params:
            p.requires_grad_(False)
        model.eval()
        set_mode(model, "gated")
    seconds = time.perf_counter() - t0
    report.update({"phase3_seconds": round(seconds, 2), "phase3_step_seconds": round(seconds / p3.steps, 3)})
    return report
