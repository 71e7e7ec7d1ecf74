"""Native kernels (``edgekit._C``) against the numpy source of truth in ``edgekit.quant.formats``.

Every implementation compiled into this build *and* supported by this CPU is tested, so on an AVX-512 machine the
scalar, AVX2 and AVX-512 kernels all run. Codes must be bit-identical and scales exactly equal (compared as bits).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from edgekit import _C  # a missing build must fail loudly here, not skip: `make test` builds it
from edgekit.quant import formats

OP = "quant_row_q8"
IMPLS = list(_C.implementations(OP))
K_SWEEP = [0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 576, 1536]
M_SWEEP = [1, 3, 33]


def _assert_same(x: np.ndarray, qmax: int, impl: str) -> None:
    """Run one implementation and compare it with ``formats.quantize_rows_q8``, naming impl/M/K on failure."""
    with np.errstate(all="ignore"):  # the reference warns on 0*inf and NaN casts; those cases are intended
        q_ref, s_ref = formats.quantize_rows_q8(x, qmax)
    q, s = _C.quant_row_q8(x, qmax, impl)
    m, k = x.shape
    where = f"impl={impl} M={m} K={k} qmax={qmax}"
    assert q.dtype == np.int8 and q.shape == (m, k), where
    assert s.dtype == np.float32 and s.shape == (m,), where
    bad = np.argwhere(q != q_ref)
    if bad.size:
        r, c = bad[0]
        pytest.fail(
            f"{where}: {len(bad)} codes differ; first at [{r},{c}]: x={x[r, c]!r} got {q[r, c]} want {q_ref[r, c]}"
        )
    # compare bit patterns so that NaN == NaN and -0.0 != 0.0 would both be caught
    bad_rows = np.flatnonzero(s.view(np.uint32) != s_ref.view(np.uint32))
    if bad_rows.size:
        r = bad_rows[0]
        pytest.fail(f"{where}: {bad_rows.size} scales differ; first row {r}: got {s[r]!r} want {s_ref[r]!r}")


def _rows(rng: np.random.Generator, m: int, k: int) -> np.ndarray:
    """Gaussian rows with a different magnitude per row, plus the awkward rows a real activation can have."""
    x = rng.standard_normal((m, k)).astype(np.float32)
    x *= np.exp(rng.uniform(-8, 8, size=(m, 1))).astype(np.float32)
    if m >= 3 and k:
        x[1] = 0.0  # zero row: scale 0, codes 0, no NaN
        x[2, rng.integers(k)] = 3e38  # huge outlier: everything else rounds to 0
    return np.ascontiguousarray(x)


def test_scalar_is_always_there_and_best_is_selected():
    assert "scalar" in IMPLS
    assert set(IMPLS) <= set(_C.compiled(OP))
    assert OP in _C.ops()
    if not os.environ.get("EDGEKIT_KERNELS"):
        assert _C.selected(OP) == IMPLS[-1]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("qmax", [formats.Q8_ROW_QMAX, formats.Q4_ACT_QMAX])
@pytest.mark.parametrize("k", K_SWEEP)
def test_quant_row_q8_matches_reference(impl, qmax, k):
    rng = np.random.default_rng(1000 * k + qmax)
    for m in M_SWEEP:
        _assert_same(_rows(rng, m, k), qmax, impl)


@pytest.mark.parametrize("impl", IMPLS)
def test_quant_row_q8_edge_values(impl):
    rng = np.random.default_rng(7)
    k = 37  # spans a SIMD body and a tail
    cases = {
        "huge": np.full((2, k), 3e38, np.float32) * np.sign(rng.standard_normal((2, k))).astype(np.float32),
        "max_float": np.array([[np.finfo(np.float32).max, -1.0] + [0.5] * (k - 2)], np.float32),
        "ties": np.array([[127.0] + [v + 0.5 for v in range(-18, 18)]], np.float32),  # inv = 1 → pure rounding
        "denormal": (rng.standard_normal((3, k)) * 1e-39).astype(np.float32),  # inv overflows to inf
        "tiny_with_zeros": np.where(rng.random((2, k)) < 0.5, 0.0, 1e-44).astype(np.float32),
        "inf": np.array([[np.inf] + [1.0] * (k - 1)], np.float32),
        "nan": np.array([[1.0, np.nan] + [2.0] * (k - 2)], np.float32),
        "nan_last": np.array([[3.0] * (k - 1) + [np.nan]], np.float32),
        "negative_zero": np.full((1, k), -0.0, np.float32),
    }
    for name, x in cases.items():
        for qmax in (127, 7, 1):
            try:
                _assert_same(np.ascontiguousarray(x), qmax, impl)
            except pytest.fail.Exception as e:
                raise AssertionError(f"case {name}: {e}") from None


@pytest.mark.parametrize("impl", IMPLS)
def test_quant_row_q8_large_rows(impl):
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((64, 2048)) * 40).astype(np.float32)
    _assert_same(x, 127, impl)


def test_dispatched_entry_equals_reference():
    x = _rows(np.random.default_rng(11), 5, 100)
    q, s = _C.quant_row_q8(x)  # qmax defaults to 127, impl "" → dispatched
    q_ref, s_ref = formats.quantize_rows_q8(x)
    np.testing.assert_array_equal(q, q_ref)
    np.testing.assert_array_equal(s.view(np.uint32), s_ref.view(np.uint32))


@pytest.mark.parametrize(
    "x, match",
    [
        (np.zeros((2, 4), np.float64), "float32"),
        (np.zeros(4, np.float32), "2-D"),
        (np.zeros((2, 2, 2), np.float32), "2-D"),
        (np.zeros((4, 6), np.float32)[:, ::2], "C-contiguous"),
        (np.asfortranarray(np.zeros((3, 5), np.float32)), "C-contiguous"),
    ],
)
def test_bad_inputs_raise_value_error(x, match):
    with pytest.raises(ValueError, match=match):
        _C.quant_row_q8(x)


def test_bad_qmax_and_impl_raise_value_error():
    x = np.ones((1, 4), np.float32)
    for qmax in (0, 128, -1):
        with pytest.raises(ValueError, match="qmax"):
            _C.quant_row_q8(x, qmax)
    with pytest.raises(ValueError, match="no implementation 'bogus'"):
        _C.quant_row_q8(x, 127, "bogus")
    with pytest.raises(ValueError, match="unknown kernel op"):
        _C.implementations("no_such_op")


def test_cpu_features_shape():
    feats = _C.cpu_features()
    assert {"avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512vnni", "avxvnni"} <= set(feats)
    assert {"neon", "dotprod", "i8mm"} <= set(feats)
    assert all(isinstance(v, bool) for v in feats.values())
    if "avx512" in IMPLS:
        assert feats["avx512f"] and feats["avx512bw"] and feats["avx512vl"]
    if "avx2" in IMPLS:
        assert feats["avx2"] and feats["fma"]


def _selected_in_subprocess(value: str) -> dict:
    """``selected(OP)`` in a fresh interpreter with ``EDGEKIT_KERNELS=value`` (selection is cached per process)."""
    code = (
        "import json, edgekit._C as c\n"
        "try:\n"
        f"    print(json.dumps({{'selected': c.selected({OP!r})}}))\n"
        "except RuntimeError as e:\n"
        "    print(json.dumps({'error': str(e)}))\n"
    )
    env = dict(os.environ, EDGEKIT_KERNELS=value)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("impl", IMPLS)
def test_env_var_forces_each_implementation(impl):
    assert _selected_in_subprocess(impl) == {"selected": impl}


def test_env_var_auto_and_errors():
    best = IMPLS[-1]
    assert _selected_in_subprocess("") == {"selected": best}
    assert _selected_in_subprocess("auto") == {"selected": best}
    assert _selected_in_subprocess(f" {IMPLS[0].upper()} ") == {"selected": IMPLS[0]}

    err = _selected_in_subprocess("bogus")["error"]
    assert "EDGEKIT_KERNELS='bogus'" in err and "scalar" in err

    missing = [f for f in ("avx2", "avx512", "neon") if f not in _C.compiled(OP)]
    if missing:
        err = _selected_in_subprocess(missing[0])["error"]
        assert f"no '{missing[0]}' implementation of {OP}" in err
    unsupported = [i for i in _C.compiled(OP) if i not in IMPLS]
    if unsupported:
        err = _selected_in_subprocess(unsupported[0])["error"]
        assert "this CPU lacks" in err


def test_forced_family_falls_back_where_an_op_lacks_it():
    """Forcing a family this build has (for the GEMMs) picks the best no-wider kernel for an op without one of that
    family, so a whole model runs: the fp16 head kernel has no AVX-512 version."""
    fams = [f for f in ("avx512", "avx2", "neon") if any(i.startswith(f) for i in IMPLS)]
    if not fams:
        pytest.skip("scalar-only build")
    fam = fams[0]
    code = ("import json, edgekit._C as c\n"
            "print(json.dumps({op: c.selected(op) for op in ('gemm_f16_f32', 'cvt_f32_f16', 'gemm_q4x4_q8')}))\n")
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, EDGEKIT_KERNELS=fam), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    sel = json.loads(out.stdout.strip().splitlines()[-1])
    assert sel["gemm_q4x4_q8"].startswith(fam)
    for op in ("gemm_f16_f32", "cvt_f32_f16"):
        assert sel[op] in _C.implementations(op)
        assert sel[op] == fam or not any(i.startswith(fam) for i in _C.implementations(op))


@pytest.mark.parametrize("impl", _C.implementations("quant_row_q8"))
def test_quant_block_q8_matches_reference(impl):
    """Per-block (32) activation quantization: bit-identical codes and scales, zeros and outlier blocks included."""
    rng = np.random.default_rng(11)
    for m, k in [(1, 32), (3, 96), (17, 576), (2, 4096)]:
        x = (rng.standard_normal((m, k)) * rng.choice([1e-3, 1.0, 300.0], (m, k // 32)).repeat(32, 1)).astype(
            np.float32)
        x[:, :32] = 0  # an all-zero block: scale 0, codes 0
        for qmax in (127, 7):
            q, s = _C.quant_block_q8(x, qmax, impl)
            q_ref, s_ref = formats.quantize_blocks_q8(x, qmax)
            np.testing.assert_array_equal(q, q_ref, err_msg=f"{impl} m={m} k={k} qmax={qmax}")
            np.testing.assert_array_equal(s.view(np.uint32), s_ref.view(np.uint32))
    with pytest.raises(ValueError, match="multiple of 32"):
        _C.quant_block_q8(np.zeros((1, 48), np.float32))
