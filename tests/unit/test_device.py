"""edgekit.device without a build: the report's table, flags and plot on synthetic records, the bundle checks and
run options that fail before anything is built or pushed (tests/cross/test_bundle.py runs real bundles)."""

from __future__ import annotations

import json

import pytest

from edgekit.device import bundle, report, run
from edgekit.errors import EdgekitError


def record(test="tg128", tps=20.0, lo=19.0, hi=21.0, cpu="Cortex-A76", kernel="neondot", verified=True) -> dict:
    return {"schema": "edgekit-bench/1", "verified": verified, "phase": "decode", "test": test, "threads": 4,
            "tokens_per_s": tps, "tokens_per_s_ci95": [lo, hi], "ttft_ms": None, "peak_rss_mb": 110.5,
            "cpu": {"model": cpu}, "kernel": {"gemm_q4x4_q8": kernel}}


def write(path, recs):
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


@pytest.mark.parametrize("other, flag", [((25.0, 24.0, 26.0), "faster"), ((15.0, 14.0, 16.0), "REGRESSION"),
                                         ((20.5, 20.8, 22.0), "="), ((18.5, 17.0, 19.0), "=")])
def test_regression_flag_follows_the_intervals(tmp_path, other, flag):
    a = write(tmp_path / "pi5-before.jsonl", [record()])
    b = write(tmp_path / "pi5-after.jsonl", [record(tps=other[0], lo=other[1], hi=other[2])])
    rows = report.rows(report.load_runs([a, b]))
    assert [r["flag"] for r in rows] == [None, flag]
    table = report.markdown(report.load_runs([a, b]))
    assert table.splitlines()[0].startswith("| run | CPU | kernel | test | t/s |") and f"| {flag} |" in table


def test_report_table_shows_devices_and_unverified_runs(tmp_path):
    a = write(tmp_path / "pi4.jsonl", [record(cpu="Cortex-A72", kernel="neon", tps=8.0, lo=7.9, hi=8.1)])
    b = write(tmp_path / "phone.jsonl", [record(cpu="Cortex-X3", kernel="neoni8mm", tps=60.0, lo=59, hi=61,
                                                verified=False), record(test="pp512", tps=300.0, lo=290, hi=310)])
    lines = report.markdown(report.load_runs([a, b])).splitlines()
    assert len(lines) == 2 + 3
    assert "| pi4 | Cortex-A72 | neon | tg128 | 8.00 | 7.90 – 8.10 |" in lines[2]
    assert "| NO | faster |" in lines[3]
    assert lines[4].endswith("| yes | — |")  # pp512 has no baseline in the first file


def test_report_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    a = write(tmp_path / "a.jsonl", [record(), record(test="pp512", tps=300, lo=290, hi=310)])
    out = tmp_path / "r.png"
    report.plot(report.load_runs([a, write(tmp_path / "b.jsonl", [record(tps=25, lo=24, hi=26)])]), out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_bad_input(tmp_path):
    with pytest.raises(EdgekitError, match="no such file"):
        report.load_runs([tmp_path / "none.jsonl"])
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(EdgekitError, match="holds no records"):
        report.load_runs([tmp_path / "empty.jsonl"])
    (tmp_path / "junk.jsonl").write_text('{"phase": "decode"}\nnot json\n')
    with pytest.raises(EdgekitError, match="junk.jsonl:2 is not a JSON line"):
        report.load_runs([tmp_path / "junk.jsonl"])
    (tmp_path / "other.jsonl").write_text('{"phase": "decode", "tokens_per_s": 3}\n')
    with pytest.raises(EdgekitError, match="record 1 lacks verified, peak_rss_mb, cpu, kernel"):
        report.load_runs([tmp_path / "other.jsonl"])


def fake_bundle(tmp_path):
    d = tmp_path / "b"
    (d / "model").mkdir(parents=True)
    (d / "model/model.ekq").write_bytes(b"model bytes")
    manifest = {"schema_version": bundle.SCHEMA_VERSION, "target": {"name": "rpi5"},
                "files": {"model/model.ekq": bundle.sha256(d / "model/model.ekq")}}
    (d / bundle.MANIFEST).write_text(json.dumps(manifest))
    return d


def test_check_bundle_names_the_bad_file(tmp_path):
    d = fake_bundle(tmp_path)
    assert bundle.check_bundle(d)["target"]["name"] == "rpi5"
    (d / "model/model.ekq").write_bytes(b"model bytez")
    with pytest.raises(EdgekitError, match="model/model.ekq does not match the sha256 in manifest.json"):
        bundle.check_bundle(d)
    (d / "model/model.ekq").unlink()
    with pytest.raises(EdgekitError, match="model/model.ekq is missing"):
        bundle.check_bundle(d)
    (d / bundle.MANIFEST).write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(EdgekitError, match="schema version 99"):
        bundle.check_bundle(d)
    with pytest.raises(EdgekitError, match="not an edgekit bundle"):
        bundle.check_bundle(tmp_path)


def test_make_bundle_refuses_before_building(tmp_path):
    (tmp_path / "exists").mkdir()
    with pytest.raises(EdgekitError, match="already exists"):
        bundle.make_bundle(tmp_path / "a.ekq", "rpi5", tmp_path / "exists")
    with pytest.raises(EdgekitError, match="artifact not found"):
        bundle.make_bundle(tmp_path / "a.ekq", "rpi5", tmp_path / "new")
    with pytest.raises(EdgekitError, match="unknown target|rpi9"):
        bundle.make_bundle(tmp_path / "a.ekq", "rpi9", tmp_path / "new")
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("via, address, message", [
    ("usb", None, "--via must be one of local, ssh, adb"),
    ("local", "pi@host", "--via local takes no host"),
    ("ssh", None, "--via ssh needs a HOST"),
])
def test_run_options(tmp_path, via, address, message):
    with pytest.raises(EdgekitError, match=message):
        run.run_bundle(fake_bundle(tmp_path), via, address)


def test_unreachable_adb_device(tmp_path):
    with pytest.raises(EdgekitError, match="adb-that-is-not-there not found on PATH"):
        run.run_bundle(fake_bundle(tmp_path), "adb", None, adb="adb-that-is-not-there")


def test_cli_report_and_errors(tmp_path):
    from click.testing import CliRunner

    from edgekit.cli import main

    a = write(tmp_path / "a.jsonl", [record()])
    b = write(tmp_path / "b.jsonl", [record(tps=10, lo=9, hi=11)])
    res = CliRunner().invoke(main, ["device", "report", str(a), str(b)])
    assert res.exit_code == 0 and "| b | Cortex-A76 | neondot | tg128 | 10.00 |" in res.output
    assert "REGRESSION" in res.output
    (tmp_path / "out").mkdir()
    res = CliRunner().invoke(main, ["bundle", str(a), "--target", "rpi5", "-o", str(tmp_path / "out")])
    assert res.exit_code != 0 and "error:" in res.output and "already exists" in res.output
    res = CliRunner().invoke(main, ["device", "run", str(fake_bundle(tmp_path)), "--via", "ssh"])
    assert res.exit_code != 0 and "--via ssh needs HOST" in res.output
