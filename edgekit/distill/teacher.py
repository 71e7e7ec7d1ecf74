"""The teacher's side: its log-probabilities at the continuation positions, the top-k cache on disk, and the
held-out comparison of student and teacher.

Alignment: the teacher reads ``[prefix ; cont]`` as one causal sequence; its logits at positions ``P - 1 ..
P + C - 2`` predict ``cont[0] .. cont[C - 1]``, the same tokens the student decoder's outputs ``0 .. C - 1`` predict
(:func:`edgekit.distill.student.student_logits`), so they are compared position for position.

The cache (``teacher-topk.npz`` in the run's work folder) holds ``values [n, C, k]`` (float32 log-probs of the full
softmax) and ``indices [n, C, k]`` (int32 ids) for every training pair, plus a JSON ``meta`` (teacher, k, the
pairs' digest); it is written once, atomically, and reused by a resumed run whose meta matches.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from edgekit.acm import distributed
from edgekit.distill import precision as prec
from edgekit.distill.loss import full_kl, topk_kl
from edgekit.distill.student import student_logits

CACHE_FILE = "teacher-topk.npz"


def teacher_logprobs(teacher, prefix: torch.Tensor, cont: torch.Tensor) -> torch.Tensor:
    """The teacher's full log-probabilities ``[B, C, V]`` (float32) predicting ``cont`` after ``prefix``."""
    c = cont.shape[1]
    seq = torch.cat([prefix, cont], dim=1)
    try:  # the head only on the C + 1 last positions (transformers >= 4.50)
        logits = teacher(input_ids=seq, use_cache=False, logits_to_keep=c + 1).logits
    except TypeError:
        logits = teacher(input_ids=seq, use_cache=False).logits[:, -(c + 1):]
    return F.log_softmax(logits[:, :-1].float(), dim=-1)


@torch.no_grad()
def score_topk(teacher, pairs, k: int, *, batch: int = 4, dist=None, progress: bool = True,
               precision: str = "fp32"):
    """The teacher's top-``k`` log-probs and ids at every continuation position of ``pairs``, its matmuls in
    ``precision`` (``fp32`` or ``bf16``: :mod:`edgekit.distill.precision`; the log-softmax is float32 either way).

    Under torchrun each rank scores a contiguous share of the pairs and the shares are gathered, so every rank
    returns the whole arrays.

    Returns:
        ``(values float32 [n, C, k], indices int32 [n, C, k], seconds)``.
    """
    dist = dist or distributed.Dist()
    n, c = len(pairs), pairs.cont.shape[1]
    share = -(-n // dist.world)
    lo, hi = min(n, dist.rank * share), min(n, (dist.rank + 1) * share)
    vals = torch.zeros(share, c, k, dtype=torch.float32)
    idx = torch.zeros(share, c, k, dtype=torch.int64)
    t0 = time.perf_counter()
    bar = tqdm(range(lo, hi, batch), desc="teacher top-k", unit="batch", disable=not (progress and dist.main))
    for s in bar:
        e = min(hi, s + batch)
        pre = torch.from_numpy(pairs.prefix[s:e]).to(dist.device)
        con = torch.from_numpy(pairs.cont[s:e]).to(dist.device)
        with prec.autocast(precision, dist.device):
            logp = teacher_logprobs(teacher, pre, con)
        top = logp.float().topk(k, dim=-1)
        vals[s - lo:e - lo] = top.values.cpu()
        idx[s - lo:e - lo] = top.indices.cpu()
    if dist.active:
        import torch.distributed as tdist

        parts_v = [torch.zeros_like(vals) for _ in range(dist.world)]
        parts_i = [torch.zeros_like(idx) for _ in range(dist.world)]
        dev = dist.device
        gv, gi = [t.to(dev) for t in parts_v], [t.to(dev) for t in parts_i]
        tdist.all_gather(gv, vals.to(dev))
        tdist.all_gather(gi, idx.to(dev))
        vals, idx = torch.cat([t.cpu() for t in gv])[:n], torch.cat([t.cpu() for t in gi])[:n]
    return vals.numpy(), idx.numpy().astype(np.int32), time.perf_counter() - t0


def save_cache(path: Path, values: np.ndarray, indices: np.ndarray, meta: dict, seconds: float = 0.0) -> None:
    """Write the top-k cache atomically (temporary file, then rename); ``seconds``: what scoring took (reported
    again by a resumed run)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        np.savez(f, values=values, indices=indices, meta=np.array(json.dumps(meta, sort_keys=True)),
                 seconds=np.array(seconds))
    os.replace(tmp, path)


def load_cache(path: Path, meta: dict):
    """``(values, indices, seconds)`` from the cache at ``path`` if it exists and was made with ``meta``; else
    None."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path) as z:
            if json.loads(str(z["meta"])) != json.loads(json.dumps(meta, sort_keys=True)):
                return None
            return z["values"], z["indices"], float(z["seconds"]) if "seconds" in z else 0.0
    except (OSError, ValueError, KeyError):
        return None  # a damaged cache is recomputed, never trusted


@torch.no_grad()
def compare(student, teacher, pairs, k: int, *, batch: int = 4, device: str = "cpu") -> dict:
    """Held-out continuation NLL (nats/token) of the student and of the teacher on ``pairs``, the full KL(teacher ‖
    student), the top-``k`` KL the training uses and the error of the latter against the former."""
    was_training = student.training
    student.eval()
    sums = {"student_nll": 0.0, "teacher_nll": 0.0, "kl_full": 0.0, "kl_topk": 0.0, "kl_abs_error": 0.0}
    tokens = 0
    try:
        for s in range(0, len(pairs), batch):
            pre = torch.from_numpy(pairs.prefix[s:s + batch]).to(device)
            con = torch.from_numpy(pairs.cont[s:s + batch]).to(device)
            t = teacher_logprobs(teacher, pre, con)
            st = F.log_softmax(student_logits(student, pre, con).float(), dim=-1)
            tgt = con.unsqueeze(-1)
            top = t.topk(k, dim=-1)
            kf, kt = full_kl(t, st), topk_kl(top.values, top.indices, st)
            sums["student_nll"] += float(-st.gather(-1, tgt).sum())
            sums["teacher_nll"] += float(-t.gather(-1, tgt).sum())
            sums["kl_full"] += float(kf.sum())
            sums["kl_topk"] += float(kt.sum())
            sums["kl_abs_error"] += float((kf - kt).abs().sum())
            tokens += con.numel()
    finally:
        student.train(was_training)
    out = {key: round(v / tokens, 5) for key, v in sums.items()}
    out.update({"tokens": tokens, "pairs": len(pairs), "top_k": k})
    return out
