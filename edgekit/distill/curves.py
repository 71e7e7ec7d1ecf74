"""Loss curves of distillation runs: read from the reports ``edgekit distill`` writes, smoothed, compared, drawn.

A report's ``loss_curve`` holds one entry per optimizer step (``step``, ``lr``, ``loss`` and, when the run had a KD
term, ``kl`` and ``ce``). Single steps of 8 pairs are noisy, so curves are compared and drawn as means over windows of
steps; the raw points stay in the report.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError

#: the terms a curve can carry, in drawing order
TERMS = ("loss", "ce", "kl")


def load_report(path: str | os.PathLike) -> dict:
    """Read a distillation report (``distill.json`` of an ``edgekit distill`` output, or a copy in bench_results/).

    Raises:
        EdgekitError: when the file is missing, not JSON, or has no loss curve.
    """
    path = Path(path)
    try:
        report = json.loads(path.read_text())
    except FileNotFoundError:
        raise EdgekitError(f"{path}: no such distillation report; give the distill.json that `edgekit distill` "
                           "wrote") from None
    except json.JSONDecodeError as exc:
        raise EdgekitError(f"{path}: not JSON ({exc}); give the distill.json that `edgekit distill` wrote") from None
    if not isinstance(report, dict) or not report.get("loss_curve"):
        raise EdgekitError(f"{path}: has no loss_curve; give the distill.json of a finished `edgekit distill` run")
    return report


def has_kd(report: dict) -> bool:
    """Whether the run trained with a KD term (its ``kl`` values were measured against the teacher)."""
    return float(report.get("config", {}).get("train", {}).get("kd_weight", 1.0)) > 0


def curve(report: dict, term: str = "ce") -> tuple[np.ndarray, np.ndarray]:
    """The steps and values of one term of a report's loss curve (steps where the term is absent are skipped; ``kl``
    of a run without a KD term is empty).

    Raises:
        EdgekitError: for a term that is not one of :data:`TERMS`.
    """
    if term not in TERMS:
        raise EdgekitError(f"unknown loss term {term!r}; choose one of {', '.join(TERMS)}")
    if term == "kl" and not has_kd(report):
        # a CE-only run logs kl = 0 without a teacher: it was never measured, so it is not a curve
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    points = [(p["step"], p[term]) for p in report["loss_curve"] if p.get(term) is not None]
    if not points:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    steps, values = zip(*points)
    return np.asarray(steps, dtype=np.int64), np.asarray(values, dtype=np.float64)


def window_means(steps: np.ndarray, values: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Means of ``values`` over consecutive windows of ``window`` steps; each mean is placed at its window's last step.

    A last, partial window is kept (its mean over the steps it has), so the final step always has a point.
    """
    if window < 1:
        raise EdgekitError(f"window must be at least 1 step, got {window}")
    if len(steps) == 0:
        return steps, values
    ends = list(range(window, len(steps), window)) + [len(steps)]
    starts = [0] + ends[:-1]
    return (np.asarray([steps[e - 1] for e in ends]),
            np.asarray([values[s:e].mean() for s, e in zip(starts, ends)]))


def summary(report: dict, window: int = 50) -> dict:
    """Per term, the mean over the last ``window`` steps and over the window before it (is the curve still falling?)."""
    out = {}
    for term in TERMS:
        _, values = curve(report, term)
        if len(values) == 0:
            continue
        last = values[-window:]
        before = values[-2 * window:-window]
        out[term] = {"last_mean": round(float(last.mean()), 4),
                     "previous_mean": round(float(before.mean()), 4) if len(before) else None}
    return out
