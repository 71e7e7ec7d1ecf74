"""``edgekit bench model``: the command line, the row schema and its renderings from fake rows, the clear errors, the
llama.cpp Q4_0 cache (the tiny real run on the session's SmolLM2 artifact: tests/model/test_bench_model_smollm2.py)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from bench_rows import ROW_KEYS
from edgekit.bench import model as bm
from edgekit.bench.model_report import RATIO_KEY, document, plot_rows, print_table, rows_to_markdown
from edgekit.bench.report import save_json
from edgekit.cli import main
from edgekit.errors import EdgekitError



def _fake_result() -> dict:
    rows = []
    for engine, tps, rss, size in (("edgekit", (300.0, 40.0), 150.0, 170.0), ("llama.cpp", (400.0, 80.0), 210.0, 87.5),
                                   ("torch", (150.0, 20.0), 1200.0, 513.0)):
        for phase, v, n in (("prefill_16", tps[0], 16), ("decode_4", tps[1], 4)):
            rows.append({"engine": engine, "phase": phase, "tokens_per_s": v, "ttft_s": 16 / tps[0],
                         "peak_rss_mb": rss, "model_mb": size, "threads": 2, "reps": 3, "tokens": n, "load_s": 1.0})
    return {"model": "x.ekq", "source": "smollm2-135m", "rows": bm.add_ratios(rows), "notes": ["a note"],
            "machine": {"cpu": "Test CPU", "logical_cores": 2, "edgekit_gemm_kernel": "avx2"}}


def _fake_artifact(path, task="causal-lm"):
    """A minimal file that passes read_artifact (metadata only), for the errors raised before any engine runs."""
    from safetensors.numpy import save_file

    meta = {"edgekit.format": "edgekit-artifact", "edgekit.format_version": "1", "edgekit.family": "llama",
            "edgekit.task": task, "edgekit.source": "smollm2-135m", "edgekit.quant": "{}", "edgekit.linears": "{}",
            "edgekit.model_config": "{}"}
    save_file({"x": np.zeros(4, np.float32)}, str(path), metadata=meta)
    return path


def test_help_lists_the_command_and_options():
    res = CliRunner().invoke(main, ["bench", "--help"])
    assert res.exit_code == 0 and "model" in res.output
    res = CliRunner().invoke(main, ["bench", "model", "--help"])
    assert res.exit_code == 0
    for opt in ("--threads", "--prefill", "--decode", "--engines", "--json", "--plot", "--markdown", "--gguf"):
        assert opt in res.output


def test_ratios_only_on_edgekit_rows():
    rows = _fake_result()["rows"]
    ek = {r["phase"]: r[RATIO_KEY] for r in rows if r["engine"] == "edgekit"}
    assert ek == {"prefill_16": pytest.approx(0.75), "decode_4": pytest.approx(0.5)}
    assert all(RATIO_KEY not in r for r in rows if r["engine"] != "edgekit")
    alone = bm.add_ratios([dict(r) for r in rows if r["engine"] == "edgekit"])
    assert all(r[RATIO_KEY] is None for r in alone)


def test_json_is_written_atomically_with_header(tmp_path):
    res = _fake_result()
    path = tmp_path / "sub" / "model.json"
    save_json(document(res, command="edgekit bench model x.ekq"), str(path))
    doc = json.loads(path.read_text())
    assert doc["command"] == "edgekit bench model x.ekq"
    assert doc["machine"]["cpu"] == "Test CPU" and doc["rows"] == res["rows"] and doc["notes"] == ["a note"]
    for r in doc["rows"]:
        for key, typ in ROW_KEYS.items():
            assert isinstance(r[key], typ), (key, r)
    assert [p.name for p in path.parent.iterdir()] == ["model.json"]  # no temp file left behind


def test_markdown_and_table_formatting():
    res = _fake_result()
    md = rows_to_markdown(res).splitlines()
    assert len(md) == 2 + 6
    assert md[0].startswith("| engine | phase | tokens/s | TTFT s | vs llama.cpp | peak RSS MiB")
    assert md[2] == "| edgekit W4A8 (C++ runtime) | prefill_16 | 300.0 | 0.053 | 0.75× | 150 | 170 | 2 |"
    assert md[4].startswith("| llama.cpp Q4_0 | prefill_16 | 400.0 |") and "| — |" in md[4]
    from rich.console import Console

    console = Console(record=True, width=200)
    print_table(res, console=console)
    text = console.export_text()
    assert "median of 3 rep(s)" in text and "Test CPU, 2 logical cores" in text and "note: a note" in text
    assert "0.50×" in text and "torch fp32" in text


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "model.png"
    plot_rows(_fake_result(), str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_artifact_is_one_error_line(tmp_path):
    res = CliRunner().invoke(main, ["bench", "model", str(tmp_path / "nope.ekq"), "--prefill", "4", "--decode", "1"])
    assert res.exit_code == 2
    assert "artifact not found" in res.output and "Traceback" not in res.output


def test_plain_model_skips_or_refuses_edgekit():
    plan = bm.make_plan("smollm2-135m", None)
    assert plan.artifact is None and plan.engines == ["llama.cpp", "torch"] and "edgekit quantize" in plan.notes[0]
    with pytest.raises(EdgekitError, match="not one; create it with `edgekit quantize"):
        bm.make_plan("smollm2-135m", ["edgekit", "torch"])
    with pytest.raises(EdgekitError, match="unknown engine"):
        bm.parse_engines("edgekit,onnx")
    assert bm.parse_engines("llamacpp, torch,torch") == ["llama.cpp", "torch"]


def test_encoder_artifact_and_bad_numbers_are_refused(tmp_path):
    enc = _fake_artifact(tmp_path / "enc.ekq", task="encoder")
    with pytest.raises(EdgekitError, match="text generation"):
        bm.make_plan(str(enc), None)
    with pytest.raises(EdgekitError, match="--prefill"):
        bm.run_model_bench(str(enc), prefill=0)


def test_missing_llama_cpp_is_a_clear_error(tmp_path, monkeypatch):
    art = _fake_artifact(tmp_path / "a.ekq")
    monkeypatch.setitem(__import__("sys").modules, "llama_cpp", None)  # makes `import llama_cpp` fail
    with pytest.raises(EdgekitError, match="llama-cpp-python is not installed"):
        bm.run_model_bench(str(art), ["llama.cpp"], prefill=4, decode=1, progress=False)


def test_q4_0_cache_is_keyed_by_source(tmp_path, monkeypatch):
    from edgekit.bench import llamacpp_baseline as llamacpp

    calls = []

    def fake_requantize(src, dst, ftype, threads=2):
        calls.append((src, ftype))
        with open(dst, "wb") as f:
            f.write(b"GGUF")

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(llamacpp, "requantize_gguf", fake_requantize)
    src = tmp_path / "m.gguf"
    src.write_bytes(b"x" * 10)
    p1, hit1 = bm.cached_q4_0(str(src))
    p2, hit2 = bm.cached_q4_0(str(src))
    assert (hit1, hit2) == (False, True) and p1 == p2 and len(calls) == 1
    assert p1.parent == tmp_path / "cache" / "edgekit" / "llamacpp"
    os.utime(src, ns=(0, 10 ** 9))  # a replaced source (new mtime) is requantized again
    p3, hit3 = bm.cached_q4_0(str(src))
    assert not hit3 and p3 != p1 and len(calls) == 2
