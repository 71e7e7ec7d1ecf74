"""Quantized ACM artifacts (edgekit/acm, csrc/runtime/acm.cpp): the C++ runtime skips the learners its gates skip
and still gives, bit for bit, what the PyTorch kernel path computes with every skipped learner masked to zero;
forcing k = N is the dense FFN of the same weights, bit for bit; the engines that cannot run gates refuse the file.

One tiny ACM model (2 blocks, 4 learners of 32) is converted, briefly trained and quantized once for the module."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgekit.cli import main

N = 4


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def acm_artifact(tiny_llama_dir, tmp_path_factory):
    """(ACM directory, its W4A8 artifact); phase 2 trained enough that the gates pick several different k."""
    from edgekit.quant.api import quantize_model
    from edgekit.recipes import load_recipe

    d = tmp_path_factory.mktemp("acm-rt")
    res = _cli("acm", tiny_llama_dir, "--n-learners", N, "--steps1", 2, "--steps2", 20, "--steps3", 3,
               "--calib-samples", 4, "--budget", 0.5, "-o", d / "acm", "--json")
    assert res.exit_code == 0, res.output
    quantize_model(str(d / "acm"), load_recipe("w4a8").config, d / "acm.ekq", calib_samples=4, calib_seqlen=64,
                   progress=False)
    return d / "acm", d / "acm.ekq"


@pytest.fixture(scope="module")
def ids():
    return np.random.default_rng(3).integers(0, 30000, 48)


def _sessions(path):
    from edgekit.engines import open_session

    return open_session(str(path), "runtime", max_ctx=128), open_session(str(path), "kernels", max_ctx=128)


def test_artifact_carries_the_gates_and_loads_as_acm(acm_artifact):
    from edgekit.acm.modules import AcmFfn, acm_modules
    from edgekit.artifact import read_artifact
    from edgekit.quant.modules import QLinear
    from edgekit.quant.serialize import load_artifact_model

    art = read_artifact(acm_artifact[1])
    assert art.acm == {"n_learners": N, "learner_width": 32, "gate_hidden": 64, "gate_act": "gelu"}
    assert art.report["acm"]["budget"] == 0.5
    lm, _ = load_artifact_model(acm_artifact[1])
    mods = acm_modules(lm.model)
    assert len(mods) == 2 and all(isinstance(m, AcmFfn) for m in mods)
    assert all(isinstance(m.down_proj, QLinear) and not isinstance(m.gate.fc1, QLinear) for m in mods)


def test_runtime_equals_the_kernel_path_at_every_operating_point(acm_artifact, ids):
    """Gated (tokens of several k: the runtime's grouped prefill), forced k, and decode one token at a time: the
    same logits bit for bit and the same k histograms."""
    rt, kp = _sessions(acm_artifact[1])
    assert rt.acm_learners == kp.acm_learners == N
    mixed = False
    for force in (None, N, 2, 0):
        for s in (rt, kp):
            s.reset()
            s.set_acm(force_k=force)
            s.reset_acm_stats()
        a, b = rt.eval(ids, all_logits=True), kp.eval(ids, all_logits=True)
        np.testing.assert_array_equal(a, b)
        hr = [layer["k_hist"] for layer in rt.acm_stats()["layers"]]
        assert hr == [layer["k_hist"] for layer in kp.acm_stats()["layers"]]
        assert all(sum(h) == len(ids) for h in hr)
        if force is None:
            mixed = any(sum(1 for c in h if c) > 1 for h in hr)
        else:
            assert all(h[force] == len(ids) for h in hr)
    assert mixed, "the gates chose one k for every token: the grouped prefill path went untested"
    rt.set_acm()
    rt.reset()
    whole = rt.eval(ids, all_logits=True)
    rt.reset()
    steps = np.stack([rt.eval(ids[i:i + 1]) for i in range(len(ids))])
    np.testing.assert_array_equal(steps, whole)


def test_k_equal_n_is_the_dense_artifact_bit_for_bit(acm_artifact, ids, tmp_path):
    """The same file without its gates is an ordinary W4A8 artifact; forced k = N gives its logits exactly."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    from edgekit.engines import open_session

    plain = tmp_path / "plain.ekq"
    with safe_open(str(acm_artifact[1]), framework="numpy") as f:
        meta = {k: v for k, v in f.metadata().items() if k != "edgekit.acm"}
        tensors = {k: f.get_tensor(k) for k in f.keys() if ".mlp.gate." not in k}
    save_file(tensors, str(plain), metadata=meta)
    rt, _ = _sessions(acm_artifact[1])
    dense = open_session(str(plain), "runtime", max_ctx=128)
    assert dense.acm_learners == 0 and dense.acm_stats()["layers"] == []
    rt.set_acm(force_k=N)
    np.testing.assert_array_equal(rt.eval(ids, all_logits=True), dense.eval(ids, all_logits=True))
    # the gates' own choice skips learners (some tokens run k < N), and that changes the logits
    rt.reset()
    rt.set_acm()
    rt.reset_acm_stats()
    gated = rt.eval(ids, all_logits=True)
    assert any(sum(layer["k_hist"][:N]) for layer in rt.acm_stats()["layers"])
    dense.reset()
    assert not np.array_equal(gated, dense.eval(ids, all_logits=True))


def test_gate_bias_moves_the_executed_fraction(acm_artifact, ids):
    rt, _ = _sessions(acm_artifact[1])
    fractions = []
    for bias in (-50.0, 0.0, 50.0):
        rt.reset()
        rt.set_acm(gate_bias=bias)
        rt.reset_acm_stats()
        rt.eval(ids)
        fractions.append(rt.acm_stats()["learner_fraction"])
    assert fractions[0] == 0.0 and fractions[2] == 1.0 and fractions[0] <= fractions[1] <= fractions[2]


def test_acm_eval_on_the_runtime_and_bad_input(acm_artifact):
    res = _cli("acm-eval", acm_artifact[1], "--engine", "runtime", "--ctx", 64, "--max-tokens", 128, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output[res.output.index("{"):])
    assert out["engine"] == "runtime" and out["budget"] == 0.5 and len(out["layers"]) == 2
    assert 0.0 <= out["rows"][0]["learner_fraction"] <= 1.0
    for args, msg in (((acm_artifact[1], "--engine", "llama.cpp"), "does not run ACM gates"),
                      ((acm_artifact[1], "--k", N + 1), f"--k must be in 0..{N}")):
        bad = _cli("acm-eval", *args)
        assert bad.exit_code == 2 and bad.output.count("error:") == 1 and msg in bad.output, bad.output
    for engine in ("llama.cpp", "onnxruntime"):
        bad = _cli("eval", acm_artifact[1], "--engine", engine)
        assert bad.exit_code == 2 and "adaptive computation modules" in bad.output, bad.output
    rt, _ = _sessions(acm_artifact[1])
    from edgekit.errors import EdgekitError

    with pytest.raises(EdgekitError, match="force_k"):
        rt.set_acm(force_k=N + 1)


def test_c_api_runs_the_gates_and_counts(acm_artifact, ids):
    """ek_set_acm / ek_acm_counts: the C API's logits are the Python binding's at each operating point, its counts
    the binding's summed over layers."""
    import ctypes

    import capi_util as cu

    from edgekit import _C

    native = cu.source_module("edgekit.native.capi")
    lib = native.load_library()
    ref = _C.LlamaRuntime.load(str(acm_artifact[1]), 0)
    with cu.Model(lib, acm_artifact[1]) as m:
        assert lib.ek_acm_learners(m.h) == N
        counts = (ctypes.c_int64 * (N + 1))()
        frac = ctypes.c_double()
        for bias, force in ((0.0, -1), (0.0, 2), (-3.0, -1)):
            ref.reset()
            ref.set_acm(bias, force)
            ref.reset_acm_counts()
            want = ref.eval(ids.astype(np.int32), True)
            lib.ek_reset(m.h)
            cu.check(lib, lib.ek_set_acm(m.h, bias, force))
            np.testing.assert_array_equal(m.eval(ids, all_logits=True), want)
            cu.check(lib, lib.ek_acm_counts(m.h, counts, N + 1, ctypes.byref(frac), 1))
            hist = ref.acm_counts().sum(0)
            assert list(counts) == hist.tolist()
            assert frac.value == pytest.approx(float((hist * np.arange(N + 1)).sum()) / (hist.sum() * N))
        cu.check(lib, lib.ek_acm_counts(m.h, counts, N + 1, None, 0))
        assert sum(counts) == 0  # reset by the last call
        assert lib.ek_set_acm(m.h, 0.0, N + 1) == 1 and "force_k" in lib.ek_last_error().decode()
        assert lib.ek_acm_counts(m.h, counts, N, None, 0) == 1 and "N + 1" in lib.ek_last_error().decode()


@pytest.fixture(scope="module")
def dense_artifact(tiny_w4a8):
    """The dense W4A8 artifact of the same tiny source (conftest): ``bench acm``'s reference."""
    return tiny_w4a8


def test_bench_acm_rows_speed_and_bad_input(acm_artifact, dense_artifact, tmp_path):
    """`edgekit bench acm`: every method's rows with the keys the JSON promises; the static and all-learner points
    timed in the runtime with what its gates ran during the timing; the bytes bound below 1 only when nothing is
    skipped; threshold at keep = 1 is the dense artifact exactly."""
    out, png = tmp_path / "acm.json", tmp_path / "acm.png"
    res = _cli("bench", "acm", acm_artifact[1], "--dense", dense_artifact, "--sets", "dev", "--ctx", 64,
               "--max-tokens", 128, "--prefill", 16, "--decode", 4, "--reps", 1, "--gate-biases", "0,50", "--ks", 2,
               "--json", out, "--plot", png)
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    rows = doc["rows"]
    assert {"acm", "static", "random", "dense"} <= {r["method"] for r in rows} and png.stat().st_size > 0
    keys = ("method", "budget", "ffn_fraction", "perplexity", "dense_perplexity", "decode_tok_s",
            "dense_decode_tok_s", "prefill_tok_s", "dense_prefill_tok_s")
    assert all(k in r for r in rows for k in keys) and doc["machine"]["cpu"] and "command" in doc
    by = {(r["method"], r["gate_bias"] if r["method"] == "acm" else r["k"]): r for r in rows}
    dense, k2, full = by[("dense", None)], by[("static", 2)], by[("acm", 50.0)]
    assert dense["perplexity"] == dense["dense_perplexity"] and dense["budget"] == 0.5
    assert k2["timed_learner_fraction"] == 0.5 and full["timed_learner_fraction"] == 1.0
    assert k2["decode_bound"] > 1.0 > full["decode_bound"]  # all learners plus the gates: more bytes than dense
    assert k2["decode_tok_s"] > 0 and k2["dense_decode_tok_s"] > 0 and by[("random", None)]["decode_tok_s"] is None
    for args, msg in (((dense_artifact, "--dense", dense_artifact), "has no adaptive computation modules"),
                      ((acm_artifact[1], "--dense", acm_artifact[1]), "is an ACM artifact"),
                      ((acm_artifact[1], "--dense", dense_artifact, "--ks", N + 1, "--no-speed"),
                       f"static widths must be in 0..{N}")):
        bad = _cli("bench", "acm", *args, "--sets", "dev", "--max-tokens", 64, "--ctx", 32)
        assert bad.exit_code == 2 and bad.output.count("error:") == 1 and msg in bad.output, bad.output


def test_threshold_baseline_keeps_what_it_says(dense_artifact, ids):
    """Magnitude thresholding at keep = 1 is the dense artifact (up to the SwiGLU's float order); below 1 it changes
    the logits, and it refuses a keep outside (0, 1]."""
    from edgekit.acm.baselines import threshold_ffn, threshold_fraction
    from edgekit.engines import open_session
    from edgekit.models.families import get_family

    ref = open_session(str(dense_artifact), "kernels", max_ctx=128).eval(ids, all_logits=True)
    for keep, close in ((1.0, True), (0.25, False)):
        sess = open_session(str(dense_artifact), "kernels", max_ctx=128)
        assert threshold_ffn(sess.model, get_family(sess.lm.family), keep) == 2
        diff = np.abs(sess.eval(ids, all_logits=True) - ref).max()
        assert (diff < 1e-3) == close, diff
    assert threshold_fraction(0.25) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="keep"):
        threshold_ffn(sess.model, get_family(sess.lm.family), 0.0)


def test_gate_choice_is_the_gate_mlp_argmax():
    """_C.acm_choose (the runtime's gate, also the kernel path's) against the gate MLP in float64: argmax of
    fc2(GELU(fc1 x)) + bias * k / N, the same k wherever the two best logits are not within float32 noise."""
    from math import erf

    from edgekit import _C

    rng = np.random.default_rng(5)
    d, hid, n = 96, 40, 6
    x = rng.standard_normal((300, d), dtype=np.float32)
    w1, b1 = rng.standard_normal((hid, d), dtype=np.float32) * 0.2, rng.standard_normal(hid, dtype=np.float32)
    w2, b2 = rng.standard_normal((n + 1, hid), dtype=np.float32), rng.standard_normal(n + 1, dtype=np.float32)
    for bias in (0.0, -3.0, 2.5):
        h = x.astype(np.float64) @ w1.T.astype(np.float64) + b1
        h = 0.5 * h * (1.0 + np.vectorize(erf)(h / np.sqrt(2.0)))
        z = h @ w2.T.astype(np.float64) + b2 + bias * np.arange(n + 1) / n
        got = _C.acm_choose(x, w1, b1, w2, b2, bias)
        top2 = np.sort(z, axis=1)[:, -2:]
        clear = top2[:, 1] - top2[:, 0] > 1e-3
        assert clear.mean() > 0.9
        np.testing.assert_array_equal(got[clear], z.argmax(axis=1)[clear])
        assert len(set(got.tolist())) > 2  # the rows really pick different k
