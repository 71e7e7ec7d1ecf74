"""Loss curves and quality rows of distillation reports (edgekit/distill/curves.py, edgekit/bench/distill_report.py):
window means, the CE-only run's unmeasured KL, the PNG, the rows, the --reports spec, bad input."""

import json

import numpy as np
import pytest

from edgekit.distill import curves
from edgekit.errors import EdgekitError


def _report(steps: int, kd_weight: float, student_nll: float = 3.5, teacher_nll: float = 2.0) -> dict:
    rows = [{"step": s, "lr": 1e-3, "loss": 10.0 / s, "kl": (5.0 / s) if kd_weight else 0.0, "ce": 8.0 / s}
            for s in range(1, steps + 1)]
    return {"config": {"train": {"kd_weight": kd_weight}}, "loss_curve": rows, "teacher": "smollm2-135m",
            "params": {"student": {"total": 62_000_000}, "teacher": {"total": 134_000_000}},
            "held_out": {"student_nll": student_nll, "teacher_nll": teacher_nll, "kl_full": 2.3, "pairs": 32,
                         "tokens": 2048},
            "train": {"steps": steps, "seconds": 100.0}, "teacher_scoring_seconds": 50.0}


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
    from edgekit.bench.distill_report import plot_curves

    out = plot_curves({"kd": _report(40, 0.9), "ce": _report(40, 0.0)}, tmp_path / "loss.png", window=5)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob("*.tmp*"))
    with pytest.raises(EdgekitError, match="no distillation runs"):
        plot_curves({}, tmp_path / "none.png")


def test_quality_rows_put_the_teacher_first_and_refuse_other_pairs():
    from edgekit.bench.distill_report import quality_rows

    rows = quality_rows({"encdec-kd": _report(100, 0.9, 3.6), "encdec-ce": _report(100, 0.0, 3.5)})
    assert [r["model"] for r in rows] == ["teacher", "encdec-kd", "encdec-ce"]
    assert rows[0]["continuation_nll"] == 2.0 and rows[0]["params"] == 134_000_000
    assert rows[1]["gap_to_teacher"] == pytest.approx(1.6) and rows[2]["kd_weight"] == 0.0
    assert all(r["engine"] == "torch" for r in rows)
    with pytest.raises(EdgekitError, match="other pairs"):
        quality_rows({"a": _report(10, 0.9), "b": _report(10, 0.9, teacher_nll=2.5)})


def test_reports_spec_and_the_cli(tmp_path):
    pytest.importorskip("matplotlib")
    from click.testing import CliRunner

    from edgekit.bench.distill_report import parse_reports
    from edgekit.cli import main

    run_dir = tmp_path / "kd"
    run_dir.mkdir()
    (run_dir / "distill.json").write_text(json.dumps(_report(60, 0.9, 3.6)))
    (tmp_path / "ce.json").write_text(json.dumps(_report(60, 0.0, 3.5)))
    runs = parse_reports(f"kd={run_dir},ce={tmp_path / 'ce.json'}")
    assert list(runs) == ["kd", "ce"]  # a directory means its distill.json
    for bad, msg in (("kd", "LABEL=PATH"), (f"a={run_dir},a={run_dir}", "twice"), (",", "empty")):
        with pytest.raises(EdgekitError, match=msg):
            parse_reports(bad)
    out, png = tmp_path / "q.json", tmp_path / "loss.png"
    res = CliRunner().invoke(main, ["bench", "distill", "--reports", f"kd={run_dir},ce={tmp_path / 'ce.json'}",
                                    "--plot", str(png), "--json", str(out)])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert [r["model"] for r in doc["rows"]] == ["teacher", "kd", "ce"] and png.read_bytes()[:4] == b"\x89PNG"
    res = CliRunner().invoke(main, ["bench", "distill"])
    assert res.exit_code != 0 and "--reports" in res.output
    res = CliRunner().invoke(main, ["bench", "distill", "--speed"])
    assert res.exit_code != 0 and "--student" in res.output


def test_quantized_option_refuses_before_scoring(tmp_path):
    """--quantized: one clear error for each bad input, before any model is opened."""
    from click.testing import CliRunner

    from edgekit.cli import main

    run_dir = tmp_path / "kd"
    run_dir.mkdir()
    rep = _report(60, 0.9, 3.6)
    (run_dir / "distill.json").write_text(json.dumps(rep))
    (tmp_path / "ce.json").write_text(json.dumps(rep))
    art = tmp_path / "s.ekq"
    art.write_bytes(b"x")

    def run(*args):
        return CliRunner().invoke(main, ["bench", "distill", *args])

    res = run("--quantized", f"kd={art}")
    assert res.exit_code != 0 and "--reports" in res.output
    res = run("--reports", f"kd={run_dir}", "--quantized", f"kd={tmp_path / 'missing.ekq'}")
    assert res.exit_code != 0 and "no such artifact" in res.output
    res = run("--reports", f"ce={tmp_path / 'ce.json'}", "--quantized", f"ce={art}")  # a report file, no student/
    assert res.exit_code != 0 and "run directory" in res.output
    res = run("--reports", f"kd={run_dir}", "--quantized", f"kd={art}")  # the directory has no student/ folder
    assert res.exit_code != 0 and "run directory" in res.output
    res = run("--reports", f"kd={run_dir}", "--quantized", f"kd={art},kd={art}")
    assert res.exit_code != 0 and "twice" in res.output and "--quantized" in res.output
