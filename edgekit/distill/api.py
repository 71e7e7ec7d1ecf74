"""The distillation stage, teacher spec in, student directory out: :func:`distill_model` (what ``edgekit distill``
runs).

Output layout (``-o DIR``)::

    DIR/work/teacher-topk.npz   the teacher's cached top-k (edgekit.distill.teacher), reused by --resume
    DIR/work/checkpoints/       step-NNNNNN.pt, the newest (edgekit.distill.train)
    DIR/student/                the student as a Hugging Face directory: config.json, model.safetensors, the
                                teacher's tokenizer, generation_config.json, distill.json (the report); written
                                into a temporary directory and renamed into place when everything is done
    DIR/distill.json            the same report, written atomically last

Order of work: every cheap check first (output directory, text files, config), then the teacher (causal LM,
vocabulary), the pairs, the teacher cache, the student, training, the held-out comparison, the files (rank 0).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from edgekit.acm import distributed
from edgekit.distill.config import DistillConfig
from edgekit.errors import EdgekitError

WORK = "work"
STUDENT = "student"
REPORT = "distill.json"
LOSS_PLOT = "loss.png"  # the CLI draws the loss curve here (edgekit.bench.distill_report)


@dataclass
class DistillResult:
    """What :func:`distill_model` produced (``student`` is None on ranks other than 0)."""

    student: Path | None
    report: dict


def check_output(out, resume: bool) -> Path:
    """``out`` for a new run (missing or empty) or a resumed one (has ``work/``, no finished student yet).

    Raises:
        EdgekitError: a new run into a non-empty directory, or --resume where there is nothing to resume.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise EdgekitError(f"output {out} is a file; give a directory")
    if resume:
        if not (out / WORK).is_dir():
            raise EdgekitError(f"--resume: {out} has no {WORK}/ folder of an earlier run; start without --resume")
        if (out / STUDENT).exists():
            raise EdgekitError(f"--resume: {out / STUDENT} is finished already; give a new output directory")
    elif out.exists() and any(out.iterdir()):
        raise EdgekitError(f"output {out} exists and is not empty; give a new directory, or --resume to continue "
                           "the run in it")
    return out


def _atomic_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.replace(tmp, path)


def save_student(folder: Path, model, tokenizer, report: dict) -> Path:
    """Write the student's Hugging Face directory ``folder`` atomically (temporary directory, then rename)."""
    tmp = folder.parent / f".{folder.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        _atomic_json(tmp / REPORT, report)
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def distill_model(teacher_spec: str, config: DistillConfig, out, *, data: list[str] | None = None,
                  resume: bool = False, threads: int | None = None, progress: bool = True,
                  stop_after: int | None = None) -> DistillResult:
    """Distill a T5 student of ``config`` from the causal LM ``teacher_spec`` and write ``out`` (module docstring).

    Args:
        teacher_spec: a model spec (alias, HF directory, .gguf, hub id) of a causal LM.
        config: the student and training config.
        out: a new or empty directory (or, with ``resume``, the directory of an interrupted run).
        data: training text files (plain text or JSONL); default the man pages (:mod:`edgekit.distill.pairs`).
        resume: continue from the newest checkpoint in ``out`` (same config, teacher and data, else an error).
        threads: torch intra-op threads.
        progress: progress bars (rank 0).
        stop_after: train at most this many steps in this call and leave without writing the student (a test's
            interruption; checkpoints are written as usual).

    Raises:
        EdgekitError: the output, a text file, the config, the teacher (not a causal LM, another vocabulary), too
            little text for the lengths, or a checkpoint of another config; each before training.
    """
    import torch

    from edgekit import data as textdata
    from edgekit.distill import teacher as tmod
    from edgekit.distill.pairs import build_pairs
    from edgekit.distill.precision import resolve as resolve_precision
    from edgekit.distill.student import (build_student, check_teacher, parameter_counts, teacher_parameter_counts)
    from edgekit.distill.train import train
    from edgekit.models import load_model
    from edgekit.quant.api import peak_rss_mb

    out = check_output(out, resume)
    for f in data or ():
        textdata.read_text_file(f)
    tc = config.train
    dist = distributed.init()
    if tc.batch % dist.world:
        raise EdgekitError(f"--batch {tc.batch} is not divisible by the {dist.world} processes")
    if threads:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    lm = load_model(teacher_spec)
    check_teacher(lm, config.student)
    teacher = lm.model.to(dist.device)
    t_load = time.perf_counter() - t0
    t1 = time.perf_counter()
    train_pairs, val_pairs, data_info = build_pairs(lm.tokenizer, tc, data)
    t_data = time.perf_counter() - t1
    source = str(Path(teacher_spec).resolve()) if Path(teacher_spec).exists() else teacher_spec
    fingerprint = {"config": config.to_dict(), "teacher": source, "data": train_pairs.digest(),
                   "val": val_pairs.digest()}
    work = out / WORK
    distributed.barrier(dist)  # every rank has checked the output directory before rank 0 writes into it
    if dist.main:
        (work / "checkpoints").mkdir(parents=True, exist_ok=True)
    topk, t_score, reused = None, 0.0, False
    if tc.kd_weight > 0:
        t_prec = resolve_precision(tc.precision, dist.device)
        meta = {"teacher": source, "top_k": tc.top_k, "pairs": train_pairs.digest()}
        if t_prec != "fp32":  # a float32 cache (the only kind before this key) keeps its identity
            meta["precision"] = t_prec
        cached = tmod.load_cache(work / tmod.CACHE_FILE, meta)
        if cached is not None:
            topk, t_score, reused = cached[:2], cached[2], True
        else:
            v, i, t_score = tmod.score_topk(teacher, train_pairs, tc.top_k, dist=dist, progress=progress,
                                            precision=t_prec)
            topk = (v, i)
            if dist.main:
                tmod.save_cache(work / tmod.CACHE_FILE, v, i, meta, t_score)
    student = build_student(config.student, teacher, lm.tokenizer, seed=tc.seed).to(dist.device)
    counts = parameter_counts(student)
    res = train(student, train_pairs, topk, tc, ckpt_dir=work / "checkpoints", fingerprint=fingerprint,
                resume=resume, dist=dist, progress=progress, stop_after=stop_after)
    if res["steps"] < tc.steps:  # interrupted on purpose: the checkpoints are the result
        distributed.finish(dist)
        return DistillResult(None, {"train": res})
    t2 = time.perf_counter()
    held_out = tmod.compare(student, teacher, val_pairs, tc.top_k, device=dist.device)
    t_val = time.perf_counter() - t2
    history = res.pop("history")
    report = {"teacher": source, "config": config.to_dict(), "data": data_info,
              "params": {"student": counts, "teacher": teacher_parameter_counts(teacher),
                         "student_non_embedding_fraction": round(
                             counts["non_embedding"] / teacher_parameter_counts(teacher)["non_embedding"], 4)},
              "world_size": dist.world, "device": dist.device, "torch_threads": torch.get_num_threads(),
              "load_seconds": round(t_load, 2), "data_seconds": round(t_data, 2),
              "teacher_scoring_seconds": round(t_score, 2), "teacher_cache_reused": reused,
              "teacher_scoring_pairs_per_s": round(len(train_pairs) / t_score, 3) if t_score else None,
              "train": res, "held_out": held_out, "validation_seconds": round(t_val, 2),
              "loss_curve": history, "peak_rss_mb": round(peak_rss_mb(), 1)}
    path = None
    if dist.main:
        student.to("cpu")
        report["total_seconds"] = round(time.perf_counter() - t0, 2)
        path = save_student(out / STUDENT, student, lm.tokenizer, report)
        _atomic_json(out / REPORT, report)
    distributed.finish(dist)
    return DistillResult(path, report)
