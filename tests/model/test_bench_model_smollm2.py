"""``edgekit bench model`` on the real SmolLM2: one tiny run of the engine workers on the session's artifact (the
command line, the row schema and its renderings from fake rows are tests/unit/test_bench_model.py)."""

from __future__ import annotations

import os

import pytest

from bench_rows import ROW_KEYS
from edgekit.bench import model as bm
from edgekit.bench.model_report import RATIO_KEY, rows_to_markdown

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install edgekit[bench])")


def test_tiny_real_run(smollm2_artifacts, tmp_path):
    """Every worker in its own process on 16 prompt tokens and 4 decode steps; llama.cpp runs the shipped GGUF
    (no requantization)."""
    from edgekit.models import resolve_spec

    art = str(smollm2_artifacts["w4a8"].path)
    engines = ["edgekit", "llama.cpp", "torch"]
    res = bm.run_model_bench(art, engines, threads=2, prefill=16, decode=4, reps=1,
                             gguf=resolve_spec("smollm2-135m").file, progress=False)
    rows = res["rows"]
    assert [(r["engine"], r["phase"]) for r in rows] == [(e, p) for e in engines for p in ("prefill_16", "decode_4")]
    for r in rows:
        for key, typ in ROW_KEYS.items():
            assert isinstance(r[key], typ), (key, r)
        assert r["tokens_per_s"] > 0 and r["ttft_s"] > 0 and r["threads"] == 2
        assert r["peak_rss_mb"] > 0.5 * r["model_mb"]  # each process holds (most of) its own model
    by = {(r["engine"], r["phase"]): r for r in rows}
    assert by[("edgekit", "decode_4")]["ttft_s"] == by[("edgekit", "prefill_16")]["ttft_s"]
    assert by[("edgekit", "prefill_16")]["model_mb"] == pytest.approx(os.path.getsize(art) / 2 ** 20)
    assert 450 < by[("torch", "prefill_16")]["model_mb"] < 560  # 134.5 M float32 parameters
    assert by[("edgekit", "decode_4")][RATIO_KEY] == pytest.approx(
        by[("edgekit", "decode_4")]["tokens_per_s"] / by[("llama.cpp", "decode_4")]["tokens_per_s"])
    assert res["machine"]["logical_cores"] == os.cpu_count()
    # the roofline ran once (2 threads): fractions computed from the measured limits and the counted bytes / ops
    lim = res["roofline"]["2"]
    dec, pre = by[("edgekit", "decode_4")], by[("edgekit", "prefill_16")]
    assert dec["bandwidth_fraction"] == dec["bytes_per_token"] * dec["tokens_per_s"] / lim["read_bytes_per_s"]
    assert pre["int8_peak_fraction"] == pre["ops_per_token"] * pre["tokens_per_s"] / lim["int8_ops_per_s"]
    assert 0 < dec["bandwidth_fraction"] < 1.5 and 0 < pre["int8_peak_fraction"] < 1.5
    lcd = by[("llama.cpp", "decode_4")]  # its bytes from the GGUF's tensor sizes
    assert 0 < lcd["bandwidth_fraction"] < 1.5 and 40e6 < lcd["bytes_per_token"] < 200e6
    # llama.cpp runs the shipped Q4_1 GGUF (20 B per 32 weights, edgekit's Q4_0 18 B) with its Q8_0 head: more bytes
    # than an artifact with the Q8_0 head (the default), fewer than one with the 56.6 MB fp16 head
    q8 = smollm2_artifacts["w4a8"].config.lm_head_bits == 8
    assert (lcd["bytes_per_token"] > dec["bytes_per_token"]) == q8, (lcd["bytes_per_token"], dec["bytes_per_token"])
    md = rows_to_markdown(res)
    assert md.count("\n") == 2 + len(rows)
