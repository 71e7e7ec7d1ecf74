"""``edgekit bench kernels`` on tiny shapes: every implementation runs, agrees with the float reference, and the rows
have the documented keys and types and survive the JSON round trip."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgekit.bench.kernels import MAX_REL_ERR, parse_shapes, rows_to_markdown, run_kernel_bench
from edgekit.bench.report import save_json
from edgekit.cli.bench import kernels
from edgekit.errors import EdgekitError

HAS_ORT = importlib.util.find_spec("onnxruntime") is not None
IMPLS = ("torch", "ort", "edgekit") if HAS_ORT else ("torch", "edgekit")
SHAPES = [(64, 64), (96, 64)]
MS = (1, 3)
# the ORT rows are checked only where onnxruntime is installed (`make test` installs it); elsewhere those tests skip
needs_ort = pytest.mark.skipif(not HAS_ORT, reason="onnxruntime is not installed (pip install edgekit[export]): "
                                                   "no ORT rows to check")
KEYS = {"impl": str, "kernel": str, "m": int, "n": int, "k": int, "threads": int, "median_s": float, "gops": float,
        "weight_gbps": float, "weight_bytes": int, "rel_err": float, "reps": int}


@pytest.fixture(scope="module")
def rows():
    return run_kernel_bench(SHAPES, MS, (1,), IMPLS, all_impls=True, min_time=0.0, min_reps=1, rounds=1, warmup=1)


@needs_ort
def test_rows_cover_every_impl_and_config(rows):
    from edgekit import _C

    impls = {r["impl"] for r in rows}
    expected = {"torch-fp32", "edgekit"} | {f"edgekit-{i}" for i in _C.implementations("gemm_q4x4_q8")}
    expected.add("ort-matmulnbits")
    assert impls == expected
    for n, k in SHAPES:
        for m in MS:
            assert {r["impl"] for r in rows if (r["n"], r["k"], r["m"]) == (n, k, m)} == expected


@needs_ort
def test_rows_keys_types_and_derived_numbers(rows):
    for r in rows:
        for key, typ in KEYS.items():
            assert isinstance(r[key], typ), (key, r)
        assert r["median_s"] > 0 and r["reps"] >= 1
        assert r["gops"] == pytest.approx(2 * r["m"] * r["n"] * r["k"] / r["median_s"] / 1e9)
        assert r["weight_gbps"] == pytest.approx(r["weight_bytes"] / r["median_s"] / 1e9)
        fp32 = 4 * r["n"] * r["k"]
        assert r["weight_bytes"] == fp32 if r["impl"] == "torch-fp32" else r["weight_bytes"] < fp32 / 6
        if r["impl"].startswith("edgekit"):
            base = {x["impl"]: x["median_s"] for x in rows if (x["n"], x["k"], x["m"]) == (r["n"], r["k"], r["m"])}
            assert r["speedup_vs_torch"] == pytest.approx(base["torch-fp32"] / r["median_s"])
            assert r["speedup_vs_ort"] == pytest.approx(base["ort-matmulnbits"] / r["median_s"])


def test_all_impls_agree_with_float_reference(rows):
    for r in rows:
        assert r["rel_err"] < MAX_REL_ERR, r
        if r["impl"] == "torch-fp32":
            assert r["rel_err"] < 1e-5  # same float weights: only summation order differs
        else:
            assert r["rel_err"] > 1e-5  # int4 paths quantize activations, so not bit-equal to the float product
    ek = {(r["n"], r["m"], r["impl"]): r["rel_err"] for r in rows if r["impl"].startswith("edgekit-")}
    runtime = {(r["n"], r["m"]): r for r in rows if r["impl"] == "edgekit"}
    for n, _ in SHAPES:
        for m in MS:
            errs = [v for (nn, mm, _), v in ek.items() if (nn, mm) == (n, m)]
            assert np.ptp(errs) < 1e-4  # every ISA computes the same integer dot products (per-token)
            # the runtime's configuration (int8 per block of 32) is finer than one scale per token
            assert "A8 per block" in runtime[(n, m)]["kernel"]
            assert runtime[(n, m)]["rel_err"] < min(errs) + 1e-4


def test_markdown_and_json_roundtrip(rows, tmp_path):
    md = rows_to_markdown(rows)
    assert md.count("\n") == 2 + sum(r["impl"].startswith("edgekit") for r in rows)
    assert "(dispatched)" in md and "64×64" in md
    path = tmp_path / "sub" / "rows.json"
    save_json(rows, str(path))
    assert json.loads(path.read_text()) == rows
    assert not list(path.parent.glob("*.tmp"))


def test_parse_shapes():
    assert parse_shapes("576x576, 64×32,576x576") == [(576, 576), (64, 32)]
    assert len(parse_shapes("smollm2,llama7b")) == 7
    for bad in ("576x100", "foo", "", "0x64"):
        with pytest.raises(EdgekitError):
            parse_shapes(bad)


def test_cli_writes_json_and_reports_errors(tmp_path):
    out = tmp_path / "k.json"
    args = ["--shapes", "64x64", "--m", "2", "--threads", "1", "--min-time", "0", "--min-reps", "1",
            "--json", str(out), "--markdown"] + ([] if HAS_ORT else ["--no-ort"])
    res = CliRunner().invoke(kernels, args)
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert {r["impl"] for r in data} >= {"torch-fp32", "edgekit"}
    assert "| 64×64 | 2 | 1 |" in res.output
    res = CliRunner().invoke(kernels, ["--shapes", "64x50"])
    assert res.exit_code == 2 and "error:" in res.output


def test_layouts_time_both_int4_layouts_and_name_the_faster():
    from edgekit import _C
    from edgekit.bench.kernels import layout_verdicts

    rows = run_kernel_bench([(64, 64)], (1,), (1,), ("edgekit",), min_time=0.0, min_reps=1, rounds=1, warmup=1,
                            layouts=True)
    impls = {r["impl"] for r in rows}
    q4x16 = "avx512vnni" in _C.implementations("gemm_q4x16_q8b")
    assert impls == {"edgekit", "edgekit-q4x4"} | ({"edgekit-q4x16"} if q4x16 else set())
    assert all(r["rel_err"] < 0.05 for r in rows)  # both layouts compute the same matrix
    lines = layout_verdicts(rows)
    assert len(lines) == (1 if q4x16 else 0)
    if q4x16:
        by = {r["impl"]: r["median_s"] for r in rows}
        faster = 16 if by["edgekit-q4x16"] < by["edgekit-q4x4"] else 4
        assert f"q4x{faster} faster" in lines[0] and f"runtime picks q4x{_C.preferred_q4_rows()}" in lines[0]
