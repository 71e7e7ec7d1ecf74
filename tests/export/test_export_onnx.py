"""ONNX export (edgekit/export/onnx.py) and the engine choice of ``edgekit eval/run`` (edgekit/engines/), on
one-node models and the tiny random llama.

Checked: the MatMulNBits operator reproduces the dequantized matmul (one-node models); an asymmetric artifact exports
with zero points; with accuracy_level 1 ORT gives the weight-only model's logits; unsupported artifacts are named;
bad input writes nothing. The exports of the real SmolLM2 and MiniLM are tests/model/test_export_onnx_smollm2.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx", reason="onnx is not installed (pip install edgekit[export])")
pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install edgekit[export])")
pytest.importorskip("optimum.exporters.onnx", reason="optimum-onnx is not installed (pip install edgekit[export])")

import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgekit.cli import main  # noqa: E402
from edgekit.errors import EdgekitError  # noqa: E402
from edgekit.export import onnx as ox  # noqa: E402
from edgekit.quant import formats as F  # noqa: E402


# ---------------------------------------------------------------------------------------------- the operator


def _one_node(b, s, zp, n, k, bits, block, level):
    ins = ["A", "B", "scales"] + (["zp"] if zp is not None else [])
    node = helper.make_node("MatMulNBits", ins, ["Y"], domain="com.microsoft", K=k, N=n, bits=bits,
                            block_size=block, accuracy_level=level)
    inits = [numpy_helper.from_array(b, "B"), numpy_helper.from_array(s, "scales")]
    inits += [numpy_helper.from_array(zp, "zp")] if zp is not None else []
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("A", TensorProto.FLOAT, [1, "M", k])],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, "M", n])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.microsoft", 1)])
    m.ir_version = 10
    onnx.checker.check_model(m)
    return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("bits, block, symmetric", [(4, 32, True), (4, 64, True), (8, 32, True), (4, 32, False)])
def test_matmulnbits_equals_the_dequantized_matmul(bits, block, symmetric):
    """accuracy_level 1 (fp32 compute) reproduces edgekit's dequantized weights exactly up to fp32 rounding, so the
    nibble pairing, the implicit zero point and the scale order are right; level 4 (int8 activations per block,
    what the export uses) stays within int8 rounding of it."""
    rng = np.random.default_rng(bits + block)
    n, k = 48, 256
    scales = rng.uniform(0.002, 0.02, (n, k // block)).astype(np.float16)
    mins = None if symmetric else rng.uniform(-0.1, 0.0, (n, k // block)).astype(np.float16)
    if bits == 4:
        stored = F.pack_int4(rng.integers(0, 16, (n, k)), block)
        w = F.dequantize_int4(stored, scales, block, mins)
    else:
        stored = rng.integers(-127, 128, (n, k)).astype(np.int8)
        w = (stored.reshape(n, -1, block) * scales.astype(np.float32)[..., None]).reshape(n, k)
    b, s, zp = ox.matmulnbits_weights(stored, scales, mins, bits, block)
    assert b.dtype == np.uint8 and b.shape == (n, k // block, block * bits // 8)
    assert s.dtype == np.float32 and np.array_equal(s, scales.astype(np.float32).reshape(-1))
    assert (zp is None) == symmetric
    x = rng.standard_normal((1, 5, k)).astype(np.float32)
    ref = x.astype(np.float64) @ w.T.astype(np.float64)
    y1 = _one_node(b, s, zp, n, k, bits, block, 1).run(None, {"A": x})[0]
    y4 = _one_node(b, s, zp, n, k, bits, block, 4).run(None, {"A": x})[0]
    scale = np.abs(ref).max()
    assert np.abs(y1 - ref).max() / scale < 1e-5
    assert np.abs(y4 - ref).max() / scale < 0.02


# ---------------------------------------------------------------------------------------------- engine choice


def test_engine_choice(tmp_path):
    from edgekit.engines import pick_engine

    onnx_dir = tmp_path / "m-onnx"
    onnx_dir.mkdir()
    (onnx_dir / "model.onnx").write_bytes(b"")
    art, gg = str(tmp_path / "a.ekq"), str(tmp_path / "m.gguf")
    assert pick_engine(str(onnx_dir), None) == "onnxruntime"
    assert pick_engine(art, None) == "fake" and pick_engine(gg, None) == "fake"
    assert pick_engine(art, "edgekit") == "runtime" and pick_engine(gg, "llama.cpp") == "llama.cpp"
    # an artifact runs on llama.cpp / ORT through its cached export (open_session, cache.cached_export)
    assert pick_engine(art, "llama.cpp") == "llama.cpp" and pick_engine(art, "onnxruntime") == "onnxruntime"
    for spec, engine, pattern in ((gg, "runtime", "runs a quantized artifact"), (gg, "onnxruntime", "ONNX export"),
                                  (str(onnx_dir), "fake", "--engine onnxruntime"),
                                  ("smollm2-135m", "llama.cpp", "runs a .gguf file")):
        with pytest.raises(EdgekitError, match=pattern):
            pick_engine(spec, engine)


# ---------------------------------------------------------------------------------------------- zero points, errors


def test_asymmetric_artifact_exports_with_zero_points(tiny_llama_dir, tmp_path):
    """Asymmetric weights (q * d + m) become float zero points -m/d; ORT matches the fake-quant torch model."""
    import dataclasses

    from edgekit.quant.api import quantize_model
    from edgekit.recipes import load_recipe

    cfg = load_recipe("rtn-w4a8").config
    cfg = dataclasses.replace(cfg, weight=dataclasses.replace(cfg.weight, symmetric=False))
    art = quantize_model(str(tiny_llama_dir), cfg, tmp_path / "asym.ekq", calib_samples=4, calib_seqlen=32,
                         progress=False).path
    res = ox.export_onnx(art, tmp_path / "asym-onnx")
    assert res["zero_points"] and res["matmulnbits"] == 14
    from edgekit.engines.onnxruntime import OrtSession

    ids = [5, 17, 300, 42, 7, 1000, 3, 12]
    got = OrtSession(tmp_path / "asym-onnx", threads=1).eval(ids, all_logits=True)
    # ORT runs these MatMuls in fp32 (its int8 path needs integer zero points): the weight-only model
    ref = _torch_logits(art, ids, act_bits=16)
    assert np.abs(got - ref).max() < 1e-4 * np.abs(ref).max()


@pytest.fixture(scope="module")
def tiny_rtn(tiny_llama_dir, tmp_path_factory) -> Path:
    """The tiny random llama quantized with RTN W4A8 (seconds)."""
    from edgekit.quant.api import quantize_model
    from edgekit.recipes import load_recipe

    return quantize_model(str(tiny_llama_dir), load_recipe("rtn-w4a8").config,
                          tmp_path_factory.mktemp("tiny") / "t.ekq", calib_samples=2, calib_seqlen=16,
                          progress=False).path


def _torch_logits(art, ids, act_bits=None):
    import torch

    from edgekit.quant.modules import QLinear
    from edgekit.quant.serialize import load_artifact_model

    lm, _ = load_artifact_model(art)
    for m in lm.model.modules():
        if act_bits and isinstance(m, QLinear):
            m.act_bits = act_bits
    with torch.no_grad():
        return lm.model(input_ids=torch.tensor([ids])).logits[0].numpy()


def test_fp32_accuracy_level_is_the_weight_only_model(tiny_rtn, tmp_path):
    """With accuracy_level 1 ORT computes in fp32 on the exported 4-bit weights: its logits are the artifact's
    weight-only model's (torch, activations unquantized) up to float summation order, so the whole graph
    (codes, scales, the MatMuls matched to their linears, tied head) is exact; level 4 adds int8 activations."""
    from edgekit.engines.onnxruntime import OrtSession

    ids = [5, 17, 300, 42, 7, 1000, 3, 12, 99, 2048]
    ref = _torch_logits(tiny_rtn, ids, act_bits=16)
    r = CliRunner().invoke(main, ["export", str(tiny_rtn), "--format", "onnx", "--accuracy-level", "1", "-o",
                                  str(tmp_path / "l1")])
    assert r.exit_code == 0, r.output
    got = OrtSession(tmp_path / "l1", threads=1).eval(ids, all_logits=True)
    assert np.abs(got - ref).max() < 1e-4 * np.abs(ref).max()
    ox.export_onnx(tiny_rtn, tmp_path / "l4")
    got4 = OrtSession(tmp_path / "l4", threads=1).eval(ids, all_logits=True)
    assert 1e-4 * np.abs(ref).max() < np.abs(got4 - ref).max() < 0.05 * np.abs(ref).max()
    with pytest.raises(EdgekitError, match="accuracy level 2"):
        ox.export_onnx(tiny_rtn, tmp_path / "l2", accuracy_level=2)


def _artifact_obj(path, **changes):
    from edgekit.artifact import read_artifact

    art = read_artifact(path)
    for k, v in changes.items():
        setattr(art, k, v)
    return art


@pytest.mark.parametrize("change, pattern", [
    (lambda a: a.quant.update(w4a4_ratio=0.5), "W4A4"),
    (lambda a: [s.update(act_mode="per_tensor") for s in a.linears.values()], "static per-tensor"),
    (lambda a: a.quant.update(attention={"qkv_bits": 8}), "quantized attention"),
    (lambda a: a.linears["model.layers.0.mlp.up_proj"].update(group_size=24), "group size 24"),
    (lambda a: a.linears["model.layers.1.mlp.up_proj"].update(bits=3), "3-bit"),
    (lambda a: setattr(a, "task", "seq2seq"), "task 'seq2seq'"),
    (lambda a: a.linears.update(lm_head=dict(a.linears["model.layers.0.mlp.up_proj"])), "quantized LM head"),
])
def test_unsupported_artifacts_are_named(tiny_rtn, change, pattern):
    ox.check_exportable(_artifact_obj(tiny_rtn))  # the real one passes
    art = _artifact_obj(tiny_rtn)
    change(art)
    with pytest.raises(EdgekitError, match=pattern) as e:
        ox.check_exportable(art)
    assert "w4a8 (or rtn-w4a8" in str(e.value)


def test_bad_input_writes_nothing(tiny_llama_dir, tiny_rtn, tmp_path, monkeypatch):
    from edgekit.quant.api import quantize_model
    from edgekit.recipes import load_recipe

    runner = CliRunner()
    out = tmp_path / "out"
    out.mkdir()

    def export(*args):
        return runner.invoke(main, ["export", *map(str, args), "--format", "onnx"])

    r = export(tmp_path / "missing.ekq", "-o", out / "m")
    assert r.exit_code == 2 and "not found" in r.output and "Traceback" not in r.output
    (tmp_path / "x.txt").write_text("hello")
    r = export(tmp_path / "x.txt", "-o", out / "m")
    assert r.exit_code == 2 and "not an edgekit artifact" in r.output
    w4a4 = quantize_model(str(tiny_llama_dir), load_recipe("agile-quant-w4a4").config, tmp_path / "w4a4.ekq",
                          calib_samples=2, calib_seqlen=16, progress=False).path
    r = export(w4a4, "-o", out / "m")
    assert r.exit_code == 2 and "W4A4" in r.output and r.output.count("\n") == 1
    r = export(w4a4, "-o", out / "m", "--bits", "16")
    assert r.exit_code == 2 and "--format gguf only" in r.output
    (out / "keep.txt").write_text("not an export")
    good = tiny_rtn
    r = export(good, "-o", out)
    assert r.exit_code == 2 and "not an earlier ONNX export" in r.output
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]

    # optimum's failure on an architecture it does not know: one line, no traceback
    from transformers import XLNetConfig, XLNetModel

    xl = XLNetModel(XLNetConfig(vocab_size=50, d_model=32, n_layer=1, n_head=2, d_inner=64)).eval()
    with pytest.raises(EdgekitError, match="optimum could not export this xlnet model") as e:
        ox.optimum_export(xl, tmp_path / "xl", "feature-extraction")
    assert "\n" not in str(e.value)

    # a failure while writing leaves neither a temporary directory nor a half export, and an earlier export intact
    first = ox.export_onnx(good, out / "m")
    before = sorted(p.name for p in (out / "m").iterdir())

    def boom(model, path):
        raise OSError("disk full")

    monkeypatch.setattr(ox, "_save", boom)
    with pytest.raises(OSError, match="disk full"):
        ox.export_onnx(good, out / "m")
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt", "m"]
    assert sorted(p.name for p in (out / "m").iterdir()) == before and first["matmulnbits"] == 14
