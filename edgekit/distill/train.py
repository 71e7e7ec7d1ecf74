"""The distillation training loop: AdamW, linear warm-up then cosine, gradient clipping, checkpoints that resume
exactly, a progress bar with the loss and tokens/s, data parallelism under torchrun.

Everything a step depends on is either in the checkpoint or a function of the step number, so a run resumed from
the checkpoint of step ``s`` continues exactly as the uninterrupted run would have:

* the student's weights, AdamW's state and the scheduler's position are saved;
* the data position is the step: step ``s`` takes global positions ``s * batch .. (s + 1) * batch - 1`` of an
  endless sequence of epochs, epoch ``e`` being the permutation of the training pairs drawn from
  ``numpy.random.default_rng([seed, e])`` (:func:`batch_rows`);
* the random state (dropout) is reseeded from ``(seed, step, rank)`` before every step, so there is no generator
  state to carry.

Data parallelism (:mod:`edgekit.acm.distributed`): ``batch`` is the global batch; rank ``r`` of ``P`` takes the
``r``-th of ``P`` equal slices of each step's positions, the gradients (each rank's mean over its equal number of
tokens) are averaged, and every rank takes the same clipped AdamW step, so the loss curve is the one-process curve
on the same global batch. Rank 0 writes the checkpoints (``step-NNNNNN.pt``, only the newest kept, each written to a
temporary file and renamed).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from edgekit.acm import distributed
from edgekit.distill.loss import kd_loss
from edgekit.distill.precision import autocast, resolve
from edgekit.distill.student import student_logits
from edgekit.errors import EdgekitError

CHECKPOINT_FORMAT = "edgekit-distill-checkpoint"
KEEP_CHECKPOINTS = 1


def lr_factor(step: int, cfg) -> float:
    """The learning-rate multiplier of optimizer step ``step`` (0-based): linear warm-up over ``warmup_steps`` to 1,
    then a cosine from 1 down to ``min_lr_ratio`` at ``steps``."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    span = max(1, cfg.steps - cfg.warmup_steps)
    t = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))


def batch_rows(step: int, cfg, n: int, rank: int = 0, world: int = 1) -> np.ndarray:
    """The training pair indices rank ``rank`` of ``world`` uses at ``step`` (module docstring)."""
    b = cfg.batch // world
    g = step * cfg.batch + rank * b + np.arange(b)
    epochs, pos = g // n, g % n
    perms = {int(e): np.random.default_rng([cfg.seed, int(e)]).permutation(n) for e in np.unique(epochs)}
    return np.array([perms[int(e)][p] for e, p in zip(epochs, pos)], dtype=np.int64)


def make_optimizer(model, cfg):
    """AdamW (weight decay on matrices only, not on norms) and its warm-up + cosine scheduler."""
    params = [p for p in model.parameters() if p.requires_grad]
    seen, decay, rest = set(), [], []
    for p in params:  # the tied embedding appears once
        if id(p) in seen:
            continue
        seen.add(id(p))
        (decay if p.dim() >= 2 else rest).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": rest, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98), eps=1e-8)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, cfg))
    return opt, sched


def _unique_params(model) -> list:
    seen, out = set(), []
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    return out


def latest_checkpoint(folder) -> Path | None:
    """The checkpoint of the highest step in ``folder`` (None if there is none)."""
    found = sorted(Path(folder).glob("step-*.pt")) if Path(folder).is_dir() else []
    return found[-1] if found else None


def save_checkpoint(folder, step: int, model, opt, sched, fingerprint: dict, history: list, seconds: float) -> Path:
    """Write ``folder/step-NNNNNN.pt`` atomically and drop all but the newest :data:`KEEP_CHECKPOINTS`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step-{step:06d}.pt"
    tmp = folder / f".{path.name}.tmp-{os.getpid()}"
    torch.save({"format": CHECKPOINT_FORMAT, "step": step, "fingerprint": fingerprint, "model": model.state_dict(),
                "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "history": history,
                "seconds": seconds}, tmp)
    os.replace(tmp, path)
    for old in sorted(folder.glob("step-*.pt"))[:-KEEP_CHECKPOINTS]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path, fingerprint: dict, device: str = "cpu") -> dict:
    """A checkpoint, refused unless it was written by a run of the same fingerprint (config, teacher, data).

    Raises:
        EdgekitError: not a distillation checkpoint, or made with another config (naming the first difference).
    """
    try:
        ck = torch.load(path, map_location=device, weights_only=False)
    except (OSError, RuntimeError, EOFError) as e:
        raise EdgekitError(f"{path}: not a readable checkpoint ({type(e).__name__}); delete it to restart") from None
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise EdgekitError(f"{path} is not an edgekit distill checkpoint")
    if ck["fingerprint"] != fingerprint:
        diff = first_difference(ck["fingerprint"], fingerprint)
        raise EdgekitError(f"{path} was written by a run with another config ({diff}); resume with the same "
                           "student config, teacher, data and options, or start a new output directory")
    return ck


def first_difference(a, b, where: str = "") -> str:
    """``"key: old -> new"`` for the first differing leaf of two nested dicts (for the resume error)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if a.get(k) != b.get(k):
                return first_difference(a.get(k), b.get(k), f"{where}.{k}" if where else str(k))
        return where or "?"
    return f"{where}: {a!r} in the checkpoint, {b!r} now"


def train(model, pairs, topk, cfg, *, ckpt_dir=None, fingerprint: dict | None = None, resume: bool = False,
          dist=None, progress: bool = True, stop_after: int | None = None) -> dict:
    """Train ``model`` (in place) on ``pairs`` for ``cfg.steps`` steps.

    Args:
        model: the T5 student (on ``dist.device``).
        pairs: the training :class:`~edgekit.distill.pairs.Pairs`.
        topk: ``(values, indices)`` of the teacher's cached top-k per pair (None when ``cfg.kd_weight`` is 0).
        cfg: the :class:`~edgekit.distill.config.TrainConfig`.
        ckpt_dir: where checkpoints go (None: none are written).
        fingerprint: what a checkpoint must match to be resumed.
        resume: continue from the newest checkpoint in ``ckpt_dir`` (none there: start at step 0).
        dist: the torchrun job (None: one process).
        progress: show the progress bar (rank 0).
        stop_after: stop after this many steps of this call (a test's interruption); checkpoints as usual.

    Returns:
        ``{"steps", "start_step", "history" (per step: step, loss, kl, ce, lr), "seconds" (all sessions),
        "session_seconds", "steps_per_s", "tokens_per_s", "pairs_per_s", "precision" (``cfg.precision`` resolved
        for the device)}``; tokens are prefix + continuation tokens of every rank.
    """
    dist = dist or distributed.Dist()
    if cfg.batch % dist.world:
        raise EdgekitError(f"batch {cfg.batch} is not divisible by the {dist.world} processes; the global batch is "
                           "split evenly over them")
    fingerprint = fingerprint or {}
    precision = resolve(cfg.precision, dist.device)
    opt, sched = make_optimizer(model, cfg)
    start, history, before = 0, [], 0.0
    ck_path = latest_checkpoint(ckpt_dir) if (resume and ckpt_dir) else None
    if ck_path is not None:
        ck = load_checkpoint(ck_path, fingerprint, dist.device)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        start, history, before = int(ck["step"]), list(ck["history"]), float(ck["seconds"])
    params = _unique_params(model)
    distributed.broadcast_params(params, dist)
    model.train()
    n, per_step = len(pairs), cfg.batch * (pairs.prefix.shape[1] + pairs.cont.shape[1])
    end = cfg.steps if stop_after is None else min(cfg.steps, start + stop_after)
    bar = tqdm(range(start, end), initial=start, total=cfg.steps, desc="distill", unit="step",
               disable=not (progress and dist.main))
    t0 = time.perf_counter()
    for step in bar:
        torch.manual_seed(cfg.seed * 1_000_003 + step * 7919 + dist.rank)  # dropout: a function of the step
        rows = batch_rows(step, cfg, n, dist.rank, dist.world)
        pre = torch.from_numpy(pairs.prefix[rows]).to(dist.device)
        con = torch.from_numpy(pairs.cont[rows]).to(dist.device)
        tv = ti = None
        if cfg.kd_weight > 0:
            tv = torch.from_numpy(topk[0][rows]).to(dist.device)
            ti = torch.from_numpy(topk[1][rows]).to(dist.device)
        with autocast(precision, dist.device):
            logits = student_logits(model, pre, con)
        terms = kd_loss(logits, con, tv, ti, cfg.kd_weight)  # log-softmax and loss in float32
        opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        distributed.all_reduce_grads(params, dist)
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        lr = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
        row = {"step": step + 1, "lr": lr}
        row.update({k: distributed.mean_scalar(float(v.detach()), dist) for k, v in terms.items()})
        history.append(row)
        elapsed = time.perf_counter() - t0
        bar.set_postfix(loss=f"{row['loss']:.4f}", kl=f"{row['kl']:.3f}", ce=f"{row['ce']:.3f}",
                        tok_s=f"{per_step * (step + 1 - start) / max(elapsed, 1e-9):.0f}")
        done = step + 1
        due = done == cfg.steps or (cfg.checkpoint_every and done % cfg.checkpoint_every == 0)
        if ckpt_dir and dist.main and due:
            save_checkpoint(ckpt_dir, done, model, opt, sched, fingerprint, history, before + elapsed)
    bar.close()
    session = time.perf_counter() - t0
    ran = max(0, end - start)
    return {"steps": end, "start_step": start, "history": history, "seconds": round(before + session, 2),
            "session_seconds": round(session, 2),
            "steps_per_s": round(ran / session, 4) if ran else None,
            "tokens_per_s": round(ran * per_step / session, 1) if ran else None,
            "pairs_per_s": round(ran * cfg.batch / session, 3) if ran else None, "precision": precision}
