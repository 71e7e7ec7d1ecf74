"""``edgekit bench distill --reports``: distillation runs side by side, from the reports ``edgekit distill`` writes.

Each run's ``distill.json`` holds its held-out continuation NLL next to the teacher's on the same pairs, the full KL
to the teacher, the parameter counts, the times, and the loss per step. This module turns several of them into the
quality rows of issue #19 (model, params, continuation_nll, gap to the teacher, KL, steps, seconds) and draws their
loss curves (:mod:`edgekit.distill.curves` holds the curve data; drawing lives here, with the other plots).
"""

from __future__ import annotations

import os
from pathlib import Path

from edgekit.distill import curves
from edgekit.errors import EdgekitError


def parse_labels(spec: str, option: str = "--reports") -> dict[str, str]:
    """``label=PATH[,label=PATH...]`` → label → PATH, as given.

    Raises:
        EdgekitError: an item without ``=``, a repeated label, or nothing given (naming ``option``).
    """
    out: dict[str, str] = {}
    for item in (x.strip() for x in spec.split(",") if x.strip()):
        label, sep, path = item.partition("=")
        if not sep or not label or not path:
            raise EdgekitError(f"{option} item {item!r} is not LABEL=PATH (e.g. encdec-kd=distill-kd)")
        if label in out:
            raise EdgekitError(f"{option} names {label!r} twice; give each its own label")
        out[label] = path
    if not out:
        raise EdgekitError(f"{option} is empty; give at least one LABEL=PATH")
    return out


def parse_reports(spec: str | dict[str, str]) -> dict[str, dict]:
    """``label=PATH[,label=PATH...]`` (or that spec already parsed by :func:`parse_labels`) → label → report (a PATH
    that is a directory means its distill.json).

    Raises:
        EdgekitError: as :func:`parse_labels`, or a report that does not load.
    """
    from edgekit.distill.api import REPORT

    runs: dict[str, dict] = {}
    for label, path in (spec if isinstance(spec, dict) else parse_labels(spec)).items():
        p = Path(path)
        runs[label] = curves.load_report(p / REPORT if p.is_dir() else p)
    return runs


def quality_rows(runs: dict[str, dict], window: int = 50) -> list[dict]:
    """One row per run (and one for the teacher, from the first run that scored it): held-out continuation NLL in
    nats/token, its gap to the teacher's on the same pairs, the full KL to the teacher, the parameter counts, steps,
    training and teacher-scoring seconds, and the mean training CE over the last ``window`` steps and the window
    before (is it still falling?)."""
    rows, teacher = [], None
    for label, r in runs.items():
        h, p, t = r["held_out"], r["params"], r["train"]
        if teacher is None:
            teacher = {"model": "teacher", "source": r.get("teacher"), "params": p["teacher"].get("total"),
                       "continuation_nll": h["teacher_nll"], "gap_to_teacher": 0.0, "engine": "torch",
                       "val_pairs": h["pairs"], "val_tokens": h["tokens"]}
        elif abs(h["teacher_nll"] - teacher["continuation_nll"]) > 1e-3:
            raise EdgekitError(f"run {label!r} was validated on other pairs (teacher NLL {h['teacher_nll']:.4f} vs "
                               f"{teacher['continuation_nll']:.4f}): compare runs made with the same data settings")
        ce = curves.summary(r, window).get("ce", {})
        rows.append({"model": label, "params": p["student"].get("total"), "continuation_nll": h["student_nll"],
                     "gap_to_teacher": round(h["student_nll"] - h["teacher_nll"], 4), "kl_full": h["kl_full"],
                     "kd_weight": r["config"]["train"].get("kd_weight"), "steps": t["steps"],
                     "train_seconds": t["seconds"], "teacher_scoring_seconds": r.get("teacher_scoring_seconds"),
                     "train_ce_last": ce.get("last_mean"), "train_ce_previous": ce.get("previous_mean"),
                     "engine": "torch", "val_pairs": h["pairs"], "val_tokens": h["tokens"]})
    return [teacher, *rows]


def quantized_rows(runs: dict[str, dict], paths: dict[str, Path], artifacts: dict[str, str],
                   engines=("fake", "runtime"), progress: bool = True) -> list[dict]:
    """The issue's "quantized student within +8 % of its float continuation perplexity": each ``artifacts[label]``
    (``edgekit quantize`` of run ``label``'s student) scored on exactly that run's held-out pairs, per engine, against
    the run's float student on the same pairs (scored again here: it must give the report's NLL, which checks that
    the pairs are the run's).

    Args:
        runs: label → report (:func:`parse_reports`).
        paths: label → the run's directory (its ``student/`` is the float reference).
        artifacts: label → the quantized student's artifact.

    Raises:
        EdgekitError: a label that is not a run directory, a run made on ``--data`` (its pairs are not rebuilt
            here), or pairs that do not reproduce the report's NLL.
    """
    import dataclasses
    import math

    import numpy as np

    from edgekit.distill.api import STUDENT
    from edgekit.distill.config import TrainConfig
    from edgekit.distill.pairs import build_pairs
    from edgekit.engines import open_session
    from edgekit.eval.continuation import score_seq2seq_window

    for label, art in artifacts.items():  # every check before any scoring
        if label not in runs or label not in paths or not (paths[label] / STUDENT).is_dir():
            raise EdgekitError(f"--quantized {label}=...: {label!r} must be a --reports label given as a run "
                               f"directory (with its {STUDENT}/ folder), the run whose student {art} quantizes")
        if not str(runs[label].get("data", {}).get("source", "")).startswith("man pages"):
            raise EdgekitError(f"run {label!r} was trained on --data files; its held-out pairs are rebuilt only for "
                               "man-page runs")
    rows = []
    for label, art in artifacts.items():
        r = runs[label]
        names = {f.name for f in dataclasses.fields(TrainConfig)}
        tc = TrainConfig(**{k: v for k, v in r["config"]["train"].items() if k in names})
        scored, val = {}, None
        for spec, eng in [(str(paths[label] / STUDENT), "fake"), *((art, e) for e in engines)]:
            sess = open_session(spec, eng, max_ctx=tc.cont_len + 1, seq2seq=True)
            try:
                if val is None:
                    val = build_pairs(sess.tokenizer, tc)[1]
                nll = [score_seq2seq_window(sess, np.concatenate([p, c]), len(p))["cont_nll"]
                       for p, c in zip(val.prefix, val.cont)]
            finally:
                sess.close()
            scored[(spec, eng)] = float(np.mean(np.concatenate(nll)))
            if progress:
                print(f"{label}: {spec} ({eng}) held-out NLL {scored[(spec, eng)]:.4f}", flush=True)
        ref = scored[(str(paths[label] / STUDENT), "fake")]
        if abs(ref - r["held_out"]["student_nll"]) > 2e-3:
            want = r["held_out"]["student_nll"]
            raise EdgekitError(f"run {label!r}: its student scores {ref:.4f} here against {want:.4f} in its report; "
                               "the held-out pairs did not reproduce")
        for eng in engines:
            nll = scored[(art, eng)]
            rows.append({"model": f"{label} w4a8", "source_run": label, "file": art, "engine": eng,
                         "continuation_nll": nll, "float_nll": ref,
                         "ppl_vs_float_pct": 100.0 * (math.exp(nll - ref) - 1.0), "val_pairs": len(val)})
    return rows


def plot_curves(runs: dict[str, dict], path: str | os.PathLike, window: int = 10) -> Path:
    """Draw the cross-entropy (left) and, where runs have a KD term, the top-k KL to the teacher (right) of each run
    against the optimizer step, as means over ``window`` steps, to a PNG written atomically.

    Raises:
        EdgekitError: when ``runs`` is empty or matplotlib is missing.
    """
    from edgekit.bench.report import plot_file

    if not runs:
        raise EdgekitError("no distillation runs to plot")
    with plot_file(path, ncols=2, figsize=(10, 4)) as (_, (ax_ce, ax_kl)):
        for i, (label, report) in enumerate(runs.items()):
            for ax, term in ((ax_ce, "ce"), (ax_kl, "kl")):
                steps, values = curves.window_means(*curves.curve(report, term), window)
                if len(steps):  # one colour per run in both panels (a CE-only run has no KL curve)
                    ax.plot(steps, values, label=label, color=f"C{i}")
        for ax, title in ((ax_ce, "cross-entropy on the target tokens"), (ax_kl, "KL(teacher ‖ student), top-k")):
            ax.set_xlabel("step")
            ax.set_ylabel("nats/token")
            ax.set_title(f"{title}, mean of {window} steps", fontsize=9)
            ax.grid(alpha=0.3)
            if ax.lines:
                ax.legend(fontsize=8)
    return Path(path)
