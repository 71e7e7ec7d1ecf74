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
    assert table.splitlines()[0].startswith("| run | engine | CPU | kernel | test | t/s |") and f"| {flag} |" in table


def test_report_table_shows_devices_and_unverified_runs(tmp_path):
    a = write(tmp_path / "pi4.jsonl", [record(cpu="Cortex-A72", kernel="neon", tps=8.0, lo=7.9, hi=8.1)])
    b = write(tmp_path / "phone.jsonl", [record(cpu="Cortex-X3", kernel="neoni8mm", tps=60.0, lo=59, hi=61,
                                                verified=False), record(test="pp512", tps=300.0, lo=290, hi=310)])
    lines = report.markdown(report.load_runs([a, b])).splitlines()
    assert len(lines) == 2 + 3
    assert "| pi4 | edgekit | Cortex-A72 | neon | tg128 | 8.00 | 7.90 – 8.10 |" in lines[2]
    assert "| NO | — | faster |" in lines[3]
    assert lines[4].endswith("| yes | — | — |")  # pp512 has no baseline in the first file


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
    assert res.exit_code == 0 and "| b | edgekit | Cortex-A76 | neondot | tg128 | 10.00 |" in res.output
    assert "REGRESSION" in res.output
    (tmp_path / "out").mkdir()
    res = CliRunner().invoke(main, ["bundle", str(a), "--target", "rpi5", "-o", str(tmp_path / "out")])
    assert res.exit_code != 0 and "error:" in res.output and "already exists" in res.output
    res = CliRunner().invoke(main, ["device", "run", str(fake_bundle(tmp_path)), "--via", "ssh"])
    assert res.exit_code != 0 and "--via ssh needs HOST" in res.output


# --- llama.cpp in a bundle (edgekit.device.llama) ---

LLAMA_LINE = {  # the fields of llama-bench's -o jsonl line that edgekit reads (tools/llama-bench, build 0c1e570)
    "build_commit": "0c1e570", "cpu_info": "AMD EPYC", "backends": "CPU", "model_filename": "m.gguf",
    "model_type": "llama 135M Q4_0", "model_size": 89941248, "n_batch": 2048, "n_ubatch": 512, "n_threads": 2,
    "type_k": "f16", "flash_attn": -1, "n_prompt": 512, "n_gen": 0,
    "samples_ns": [700e6, 710e6, 690e6, 720e6, 705e6, 695e6], "samples_ts": [731.4, 721.1, 742.0, 711.1, 726.2, 736.7]}
MEASURE = {"schema": "edgekit-bench/measure", "command": ["llama-bench"], "exit_status": 0, "peak_rss_mb": 234.1,
           "cpu": {"model": "AMD EPYC"}, "thermal_before": [], "thermal_after": []}


@pytest.mark.parametrize("samples, expect", [
    ([3.0, 1.0, 2.0], (2.0, 1.0, 3.0)),                                  # under 6 samples: [min, max]
    (list(range(1, 11)), (5.5, 1, 10)),                                  # n = 10: ranks floor(5 - 3.10) - 1 = 0, 9
    (list(range(1, 31)), (15.5, 9, 22)),                                 # n = 30: ranks 8 and 21
])
def test_summarize_is_edgekit_benchs_interval(samples, expect):
    from edgekit.device import llama

    assert llama.summarize(samples) == pytest.approx(expect)


def test_llama_records_convert_with_rss_and_ttft():
    from edgekit.device import llama

    tg = dict(LLAMA_LINE, n_prompt=0, n_gen=128, samples_ts=[130.0, 131.0, 129.0], samples_ns=[1e9] * 3)
    recs = llama.convert([LLAMA_LINE, tg, MEASURE], "x")
    assert [r["test"] for r in recs] == ["pp512", "tg128"] and [r["phase"] for r in recs] == ["prefill", "decode"]
    pp = recs[0]
    assert pp["engine"] == "llama.cpp" and pp["verified"] is False and pp["peak_rss_mb"] == 234.1
    assert pp["tokens_per_s"] == pytest.approx(728.8) and pp["tokens_per_s_ci95"] == [711.1, 742.0]
    assert pp["ttft_ms"]["median"] == pytest.approx(702.5) and recs[1]["ttft_ms"] is None
    assert pp["threads"] == 2 and pp["build"] == "0c1e570" and "Q4_0" in pp["kernel"]["gemm_q4x4_q8"]
    schema = json.loads((bundle.Path(__file__).parents[2] / "docs" / "llama-bench-record.schema.json").read_text())
    assert not [k for k in schema["required"] if k not in pp] and not [k for k in pp if k not in schema["properties"]]
    with pytest.raises(EdgekitError, match="no llama-bench records"):
        llama.convert([MEASURE], "dev")
    with pytest.raises(EdgekitError, match="no llama-bench records"):
        llama.convert([LLAMA_LINE], "dev")


def test_llama_bench_args_repeat_edgekit_benchs_tests():
    from edgekit.device import llama

    recs = [dict(phase="prefill", n_prompt=512, n_gen=0, threads=2, reps=12),
            dict(phase="decode", n_prompt=0, n_gen=128, threads=2, reps=5),
            dict(phase="prefill+decode", n_prompt=64, n_gen=16, threads=2, reps=3),
            dict(phase="sustained", n_prompt=0, n_gen=128, threads=2, reps=40)]
    args = llama.llama_bench_args(recs, ["-p", "512", "--delay", "2", "--cores", "big", "--no-warmup"])
    assert args == ["-p", "512", "-n", "128", "-pg", "64,16", "-r", "12", "-t", "2", "-o", "jsonl",
                    "--delay", "2", "--no-warmup"]
    assert llama.llama_bench_args(recs[1:2], [])[:4] == ["-p", "0", "-n", "128"]
    with pytest.raises(EdgekitError, match="no prefill or decode test"):
        llama.llama_bench_args(recs[3:], [])


def test_report_puts_llama_cpp_beside_edgekit(tmp_path):
    from edgekit.device import llama

    ours = dict(record(test="pp512", tps=1500.0, lo=1450, hi=1550), engine="edgekit")
    theirs = llama.convert([LLAMA_LINE, MEASURE], "x")
    lines = report.markdown(report.load_runs([write(tmp_path / "dev.jsonl", [ours] + theirs)])).splitlines()
    assert "| dev | edgekit |" in lines[2] and "| 2.06× |" in lines[2]  # 1500 / 728.8
    assert "| dev | llama.cpp |" in lines[3] and "| no check |" in lines[3]


def test_llama_bench_checks(tmp_path):
    import shutil
    import subprocess

    from edgekit.build import host_arch
    from edgekit.device import llama

    script = tmp_path / "llama-bench"
    script.write_text("#!/bin/sh\necho {}\n")
    with pytest.raises(EdgekitError, match="is not executable"):
        llama.check_llama_bench(script, "x86_64")
    script.chmod(0o755)
    assert llama.check_llama_bench(script, "aarch64") == (script, [])  # a wrapper script is taken as is
    with pytest.raises(EdgekitError, match="no such file"):
        llama.check_llama_bench(tmp_path / "none", "x86_64")
    if shutil.which("cc") is None or shutil.which("readelf") is None:
        pytest.skip("needs a C compiler and readelf")
    (tmp_path / "lib").mkdir()
    (tmp_path / "bin").mkdir()
    (tmp_path / "g.c").write_text("int ggml_x(void) { return 1; }\n")
    (tmp_path / "m.c").write_text("int ggml_x(void);\nint main(void) { return ggml_x() - 1; }\n")
    subprocess.run(["cc", "-shared", "-fPIC", "-o", tmp_path / "lib" / "libggml-test.so", tmp_path / "g.c"],
                   check=True)
    subprocess.run(["cc", "-o", tmp_path / "bin" / "llama-bench", tmp_path / "m.c", "-L", tmp_path / "lib",
                    "-lggml-test"], check=True)
    prog, libs = llama.check_llama_bench(tmp_path / "bin" / "llama-bench", host_arch())
    assert libs == [(tmp_path / "lib" / "libggml-test.so").resolve()]  # libc is the device's own
    other = "aarch64" if host_arch() == "x86_64" else "x86_64"
    with pytest.raises(EdgekitError, match=f"the bundle's target is {other}"):
        llama.check_llama_bench(prog, other)
    (tmp_path / "lib" / "libggml-test.so").unlink()
    with pytest.raises(EdgekitError, match="needs libggml-test.so, found neither"):
        llama.check_llama_bench(prog, host_arch())
    (tmp_path / "x.gguf").write_bytes(b"GGML")
    with pytest.raises(EdgekitError, match="is not a GGUF file"):
        llama.check_gguf(tmp_path / "x.gguf")
