"""Loss curves of distillation reports: window means, the CE-only run's unmeasured KL, the PNG, bad input."""

import json

import numpy as np
import pytest

from edgekit.distill import curves
from edgekit.errors import EdgekitError


def _report(steps: int, kd_weight: float) -> dict:
    rows = [{"step": s, "lr": 1e-3, "loss": 10.0 / s, "kl": (5.0 / s) if kd_weight else 0.0, "ce": 8.0 / s}
            for s in range(1, steps + 1)]
    return {"config": {"train": {"kd_weight": kd_weight}}, "loss_curve": rows}


def test_window_means_keep_a_partial_last_window():
    steps = np.arange(1, 8)
    values = np.asarray([1.0, 3.0, 5.0, 7.0, 9.0, 11.0, 13.0])
    at, means = curves.window_means(steps, values, 3)
    assert at.tolist() == [3, 6, 7]
    assert means.tolist() == [3.0, 9.0, 13.0]
    with pytest.raises(EdgekitError, match="at least 1"):
        curves.window_means(steps, values, 0)


def test_kl_of_a_ce_only_run_is_not_a_curve():
    ce_only, kd = _report(20, 0.0), _report(20, 0.9)
    assert len(curves.curve(ce_only, "kl")[0]) == 0
    steps, values = curves.curve(kd, "kl")
    assert steps.tolist() == list(range(1, 21)) and values[0] == 5.0
    with pytest.raises(EdgekitError, match="unknown loss term"):
        curves.curve(kd, "entropy")


def test_summary_compares_the_last_two_windows():
    s = curves.summary(_report(100, 0.9), window=50)
    assert s["ce"]["last_mean"] == pytest.approx(np.mean(8.0 / np.arange(51, 101)), abs=1e-4)
    assert s["ce"]["previous_mean"] == pytest.approx(np.mean(8.0 / np.arange(1, 51)), abs=1e-4)
    assert "kl" not in curves.summary(_report(100, 0.0))


def test_load_report_errors(tmp_path):
    with pytest.raises(EdgekitError, match="no such distillation report"):
        curves.load_report(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(EdgekitError, match="not JSON"):
        curves.load_report(bad)
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"loss_curve": []}))
    with pytest.raises(EdgekitError, match="no loss_curve"):
        curves.load_report(empty)


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    out = curves.plot_curves({"kd": _report(40, 0.9), "ce": _report(40, 0.0)}, tmp_path / "loss.png", window=5)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob("*.tmp*"))
    with pytest.raises(EdgekitError, match="no distillation runs"):
        curves.plot_curves({}, tmp_path / "none.png")
