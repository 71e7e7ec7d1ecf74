"""``edgekit eval --set``: one group of rows per named evaluation set, for every engine, through the one loop."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgekit.cli import main
from edgekit.errors import EdgekitError

SETS = ["dev", "test-docstrings"]


@pytest.fixture(scope="module")
def tiny_artifact(tiny_w4a8):
    return tiny_w4a8


def _eval(*args):
    r = CliRunner().invoke(main, ["eval", *map(str, args), "--ctx", "64", "--max-tokens", "128", "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.output[r.output.index("{"):])


@pytest.mark.parametrize("engine", ["fake", "kernels", "runtime"])
def test_set_rows_for_every_engine(tiny_artifact, engine):
    res = _eval(tiny_artifact, "--engine", engine, *[a for s in SETS for a in ("--set", s)])
    assert res["sets"] == SETS
    assert [r["set"] for r in res["rows"]] == SETS
    assert [r["set_role"] for r in res["rows"]] == ["dev", "test"]
    assert all(r["windows"] == 2 and r["tokens"] == 2 * 63 and r["perplexity"] > 1 for r in res["rows"])
    assert res["rows"][0]["perplexity"] != res["rows"][1]["perplexity"]
    if engine == "fake":  # --set dev is exactly the default text and windows
        plain = _eval(tiny_artifact, "--engine", engine)
        assert "set" not in plain["rows"][0]
        assert res["rows"][0]["perplexity"] == pytest.approx(plain["perplexity"], rel=1e-12)


def test_set_rows_with_the_reference_and_errors(tiny_artifact, tmp_path):
    res = _eval(tiny_artifact, "--set", "dev,test-docstrings", "--compare-reference")
    assert [(r["set"], r["model"].split()[0]) for r in res["rows"]] == [
        ("dev", "reference"), ("dev", "edgekit"), ("test-docstrings", "reference"), ("test-docstrings", "edgekit")]
    assert res["rows"][0]["delta_pct"] == 0 and res["rows"][2]["delta_pct"] == 0
    r = CliRunner().invoke(main, ["eval", str(tiny_artifact), "--set", "wiki"])
    assert r.exit_code != 0 and "valid sets: dev, test-man, test-docstrings" in r.output
    text = tmp_path / "t.txt"
    text.write_text("some text " * 100)
    r = CliRunner().invoke(main, ["eval", str(tiny_artifact), "--set", "dev", "--data", str(text)])
    assert r.exit_code != 0 and "exclusive" in r.output


def test_bench_quality_scores_every_seed_on_every_set(tiny_llama_dir, tmp_path, monkeypatch):
    """run_quality's protocol path (quantization in-process and small here; the CLI runs it in a subprocess)."""
    from edgekit.bench import quality
    from edgekit.quant.api import quantize_model
    from edgekit.recipes import load_recipe

    calls = []

    def fake_subprocess(model, recipe, out, threads, seed=None):
        calls.append((recipe, seed))
        quantize_model(model, load_recipe(recipe).config, out, calib_samples=4, calib_seqlen=64,
                       seed=seed or 0, progress=False)
        return {"recipe": recipe, "quantize_seconds": 1.0, "total_seconds": 2.0, "peak_rss_mb": 3.0,
                "calib_samples": 4, "calib_seqlen": 64}

    monkeypatch.setattr(quality, "_quantize_subprocess", fake_subprocess)
    rows = quality.run_quality(str(tiny_llama_dir), ["rtn-w4a8"], None, 64, 128, llamacpp=False,
                               workdir=str(tmp_path), sets=SETS, seeds=[0, 1, 2])
    assert calls == [("rtn-w4a8", 0), ("rtn-w4a8", 1), ("rtn-w4a8", 2)]  # one artifact per seed, scored on every set
    assert [(r["set"], r.get("seed")) for r in rows] == [("dev", None), ("test-docstrings", None)] + [
        (s, seed) for seed in (0, 1, 2) for s in SETS]
    for r in rows:  # Δ against the float reference on the same set
        ref = next(x for x in rows if x["set"] == r["set"] and x["engine"] == "torch")
        assert r["delta_pct"] == pytest.approx(100 * (r["perplexity"] / ref["perplexity"] - 1))
    summary = quality.aggregate_seeds(rows)
    assert [(r["set"], r["n"]) for r in summary] == [("dev", 1), ("dev", 3), ("test-docstrings", 1),
                                                    ("test-docstrings", 3)]
    assert "test-docstrings (test)" in quality.summary_to_markdown(summary)
    calls.clear()  # without --sets/--seeds: today's rows (no set, no seed, the quantize default seed)
    legacy = quality.run_quality(str(tiny_llama_dir), ["rtn-w4a8"], None, 64, 128, llamacpp=False,
                                 workdir=str(tmp_path / "legacy"))
    assert calls == [("rtn-w4a8", None)] and len(legacy) == 2
    assert not any("set" in r or "seed" in r for r in legacy)
    assert legacy[1]["perplexity"] == pytest.approx(rows[2]["perplexity"], rel=1e-12)  # seed 0 on dev


def test_anchor_names():
    from edgekit.bench.anchors import parse_anchors

    assert parse_anchors("q4_0, q4_0-imatrix,gguf-export") == ("q4_0", "q4_0-imatrix", "gguf-export")
    assert parse_anchors("none") == () == parse_anchors("")
    for bad in ("q4_0,q4_0", "q4_k", "none,q4_0"):
        with pytest.raises(EdgekitError, match="--anchors"):
            parse_anchors(bad)


def test_imatrix_anchor_rows(tiny_llama_dir, tmp_path, monkeypatch):
    """One importance matrix per seed, on that seed's calibration windows, handed to llama.cpp's quantizer; rows per
    set and seed (llama.cpp itself is replaced: the tiny model has no GGUF)."""
    from edgekit.bench import anchors, llamacpp_baseline
    from edgekit.export.imatrix import read_imatrix
    from edgekit.models import load_model

    quantized, scored = [], []
    monkeypatch.setattr(llamacpp_baseline, "requantize_gguf",
                        lambda src, dst, ftype, imatrix=None, threads=2: quantized.append((ftype, read_imatrix(imatrix))))
    monkeypatch.setattr(llamacpp_baseline, "perplexity_llamacpp",
                        lambda path, windows, threads=2: scored.append(path) or {"perplexity": 10.0, "tokens": 5})
    ref = load_model(str(tiny_llama_dir))
    by_set = [("dev", None), ("test-man", None)]
    rows = anchors.imatrix_rows(ref, "src.gguf", by_set, [0, 1], tmp_path, lambda s, seed: {"set": s, "seed": seed},
                                1, calib_samples=2, calib_seqlen=32)
    assert [(r["set"], r["seed"]) for r in rows] == [("dev", 0), ("test-man", 0), ("dev", 1), ("test-man", 1)]
    assert all(r["name"] == "llama.cpp Q4_0 + edgekit imatrix" and r["calib"] == "2x32" for r in rows)
    assert [q[0] for q in quantized] == ["q4_0", "q4_0"] and len(quantized[0][1]) == 14  # 2 blocks x 7 linears
    m0, m1 = (q[1]["blk.0.ffn_down.weight"] for q in quantized)
    assert not np.array_equal(m0, m1)  # each seed its own windows
    assert scored == [str(tmp_path / f"llamacpp-q4_0-imatrix-seed{s}.gguf") for s in (0, 0, 1, 1)]


def test_bench_quality_cli_json_names_the_machine(tiny_llama_dir, tmp_path):
    """The protocol's JSON (what BENCHMARKS cites) carries the CPU it ran on beside the rows and the summary."""
    import torch

    out = tmp_path / "q.json"
    threads = torch.get_num_threads()
    try:
        r = CliRunner().invoke(main, ["bench", "quality", str(tiny_llama_dir), "--recipes", "", "--sets", "dev",
                                      "--seeds", "0", "--anchors", "none", "--ctx", "64", "--max-tokens", "128",
                                      "--threads", "1", "--json", str(out)])
    finally:  # --threads sets torch's pool for the process: later session fixtures must quantize as before
        torch.set_num_threads(threads)
    assert r.exit_code == 0, r.output
    got = json.loads(out.read_text())
    assert got["machine"]["cpu"] and got["machine"]["threads"] == 1 and got["seeds"] == [0]
    assert [row["name"] for row in got["rows"]] == ["reference (float32, transformers)"]
