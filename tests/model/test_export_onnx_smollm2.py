"""ONNX export (edgekit/export/onnx.py) and the export engines of ``edgekit eval/run`` (edgekit/engines/) on the
real models.

The SmolLM2 artifact is the session's ``w4a8`` (conftest ``smollm2_artifacts``), exported once to ONNX through
the CLI and once to GGUF. Checked: the export passes ``onnx.checker``, every quantized linear became a
``MatMulNBits`` whose B/scales are the artifact's codes and scales; ONNX Runtime's perplexity is within 1 % of the
edgekit runtime's; the CLI evaluates and generates with ``--engine onnxruntime`` and ``--engine llama.cpp``; greedy
generations of the three engines are compared; MiniLM exports as an encoder. The operator, the tiny llama's exports
and the refusals are tests/export/test_export_onnx.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx", reason="onnx is not installed (pip install edgekit[export])")
pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install edgekit[export])")
pytest.importorskip("optimum.exporters.onnx", reason="optimum-onnx is not installed (pip install edgekit[export])")

import onnx  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgekit.cli import main  # noqa: E402
from edgekit.errors import EdgekitError  # noqa: E402
from edgekit.export import onnx as ox  # noqa: E402
from edgekit.quant import formats as F  # noqa: E402

THREADS = 2
CTX, MAX_TOKENS = 512, 2048  # conftest's eval_ids: 4 x 512 held-out tokens, as the runtime tests use
PROMPTS = ("The capital of France is", "def fibonacci(n):", "Once upon a time", "The three primary colors are")
N_GEN = 32


def _json(output: str) -> dict:
    """The JSON object in a command's output (library warnings may surround it)."""
    return json.JSONDecoder().raw_decode(output[output.index("{"):])[0]


@pytest.fixture(scope="module")
def exported(artifact, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "smollm2-onnx"
    res = CliRunner().invoke(main, ["export", str(artifact), "--format", "onnx", "-o", str(out), "--json"])
    assert res.exit_code == 0, res.output
    summary = _json(res.output)
    assert summary["matmulnbits"] == 210 and summary["tied_head"] and summary["bits"] == [4]
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name], "temporary directory left behind"
    return out


@pytest.fixture(scope="module")
def gguf_file(artifact, tmp_path_factory) -> Path:
    from edgekit.export.gguf import export_artifact_gguf

    return Path(export_artifact_gguf(str(artifact), tmp_path_factory.mktemp("gguf") / "smollm2.gguf")["path"])


@pytest.fixture(scope="module")
def runtime(artifact):
    from edgekit.engines.runtime import Runtime

    return Runtime.from_artifact(str(artifact), max_ctx=512)


@pytest.fixture(scope="module")
def ort_lm(exported):
    from edgekit.engines.onnxruntime import OrtSession

    return OrtSession(exported, threads=THREADS, spin=False)  # other engines run in between


def test_export_layout_and_codes(artifact, exported):
    from safetensors import safe_open

    from edgekit.artifact import read_artifact

    onnx.checker.check_model(str(exported / "model.onnx"))
    names = {p.name for p in exported.iterdir()}
    assert {"model.onnx", "config.json", "tokenizer.json", "edgekit_export.json"} <= names
    info = json.loads((exported / "edgekit_export.json").read_text())
    assert info["task"] == "causal-lm" and info["source"] == "smollm2-135m" and info["matmulnbits"] == 210
    m = onnx.load(str(exported / "model.onnx"))
    assert ("com.microsoft", 1) in [(o.domain, o.version) for o in m.opset_import]
    inits = {t.name: t for t in m.graph.initializer}
    nodes = [n for n in m.graph.node if n.op_type == "MatMulNBits"]
    art = read_artifact(artifact)
    assert len(nodes) == len(art.linears) == 210
    # no float copy of a quantized weight is left, and the tied head reads the embedding through a Transpose
    float_2d = [t for t in m.graph.initializer if t.data_type == TensorProto.FLOAT and len(t.dims) == 2]
    assert [t.name for t in float_2d] == ["model.embed_tokens.weight"]
    with safe_open(str(artifact), framework="numpy") as f:
        for node in nodes:
            lin = node.input[1][: -len(".nbits.B")]
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            codes, scales = f.get_tensor(f"{lin}.qweight"), f.get_tensor(f"{lin}.scales")
            n, k = codes.shape[0], codes.shape[1] * 2
            assert attrs == {"K": k, "N": n, "bits": 4, "block_size": 32, "accuracy_level": 4}, lin
            assert f"/{lin.replace('.', '/')}/" in "/" + node.name.replace(".", "/"), (lin, node.name)
            b = numpy_helper.to_array(inits[node.input[1]])
            assert b.shape == (n, k // 32, 16)
            ort_codes = np.stack([b & 0x0F, b >> 4], axis=-1).reshape(n, k)  # low nibble = even element
            assert np.array_equal(ort_codes, F.unpack_int4(codes, 32)), lin
            s = numpy_helper.to_array(inits[node.input[2]])
            assert s.dtype == np.float32 and s.tobytes() == scales.astype(np.float32).reshape(-1).tobytes(), lin
            assert np.array_equal(s.astype(np.float16).reshape(scales.shape).view(np.uint16),
                                  scales.view(np.uint16))  # and back to the artifact's exact fp16 bits


def test_onnxruntime_perplexity_within_1pct_of_the_runtime(runtime, ort_lm, capsys):
    """The runtime rounds activations as the recipe says, MatMulNBits (accuracy_level 4) per 32-block, so the two
    differ by activation rounding only (test_fp32_accuracy_level_is_the_weight_only_model shows the weights are
    exact). That difference is noise that averages out over tokens: on 2 x 256 tokens of one session artifact it
    was +2.5 %, on these 4 x 512 +0.33 % (and -0.44 % on another run's artifact)."""
    import torch

    from edgekit.data import eval_windows
    from edgekit.eval.perplexity import perplexity_of

    windows = eval_windows(runtime.tokenizer, ctx=CTX, max_tokens=MAX_TOKENS)
    assert np.array_equal(eval_windows(ort_lm.tokenizer, ctx=CTX, max_tokens=MAX_TOKENS), windows)

    def run(sess):
        def logits(w):
            sess.reset()
            return torch.from_numpy(sess.eval(w.numpy(), all_logits=True))
        return perplexity_of(logits, windows, progress=False)

    o, r = run(ort_lm), run(runtime)
    gap = o["perplexity"] / r["perplexity"] - 1
    with capsys.disabled():
        print(f"\n[onnx export] perplexity {CTX}x{len(windows)}: ONNX Runtime {o['perplexity']:.3f}, edgekit runtime "
              f"{r['perplexity']:.3f} ({gap:+.2%})")
    assert o["tokens"] == r["tokens"] == 4 * (CTX - 1)
    assert abs(gap) < 0.01


def test_decode_through_the_cache_equals_prefill(ort_lm, runtime):
    ids = runtime.tokenizer("The GNU General Public License is a free license", add_special_tokens=False)["input_ids"]
    ort_lm.reset()
    full = ort_lm.eval(ids, all_logits=True)
    ort_lm.reset()
    ort_lm.eval(ids[:4])
    steps = np.stack([ort_lm.eval([t]) for t in ids[4:]])
    assert ort_lm.n_past == len(ids)
    # same weights, other batch shapes: the logits agree closely. Not always on the top-1 token: MLAS takes another
    # int8 path for one row than for nine, and on one session's artifact 2 of 5 near-ties flipped (max logit
    # difference 0.8), so the check is closeness of every row; a cache at the wrong positions fails both bounds.
    assert np.abs(steps - full[4:]).max() < 0.05 * np.abs(full).max()
    cos = (steps * full[4:]).sum(-1) / np.linalg.norm(steps, axis=-1) / np.linalg.norm(full[4:], axis=-1)
    assert cos.min() > 0.999, cos
    with pytest.raises(EdgekitError, match="ONNX Runtime failed"):
        ort_lm.eval([10 ** 6])


def _greedy(sess, ids: list[int], n: int) -> list[int]:
    sess.reset()
    logits, out = sess.eval(ids), []
    for _ in range(n):
        out.append(int(np.argmax(logits)))
        logits = sess.eval([out[-1]])
    return out


def _common_prefix(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def test_greedy_agreement_with_the_runtime(runtime, ort_lm, gguf_file, capsys):
    """32 greedy tokens from llama.cpp (GGUF export) and ONNX Runtime (ONNX export) against the edgekit runtime, on
    the runtime tests' prompts. The engines round activations in other orders or groupings, so near-ties
    flip and only a broken export would fail the bar: at least one prompt identical for 8 tokens."""
    from edgekit.engines.llamacpp import LlamaCppSession

    prompts = [runtime.tokenizer(p, add_special_tokens=False)["input_ids"] for p in PROMPTS]
    ref = [_greedy(runtime, ids, N_GEN) for ids in prompts]  # one engine at a time: their thread pools collide
    ort_out = [_greedy(ort_lm, ids, N_GEN) for ids in prompts]
    llama = LlamaCppSession(gguf_file, max_ctx=128, threads=THREADS)
    try:
        lc_out = [_greedy(llama, ids, N_GEN) for ids in prompts]
    finally:
        llama.close()
    lc = [_common_prefix(a, r) for a, r in zip(lc_out, ref)]
    ox_ = [_common_prefix(a, r) for a, r in zip(ort_out, ref)]
    both = [_common_prefix(a, b) for a, b in zip(lc_out, ort_out)]
    with capsys.disabled():
        print(f"\n[exports] greedy {N_GEN} tokens, common prefix with the edgekit runtime: llama.cpp {lc} "
              f"({sum(x == N_GEN for x in lc)}/4 identical), ONNX Runtime {ox_} ({sum(x == N_GEN for x in ox_)}/4); "
              f"llama.cpp vs ONNX Runtime {both}")
    assert sum(x >= 8 for x in lc) >= 1, lc
    assert sum(x >= 8 for x in ox_) >= 1, ox_


def test_cli_eval_and_run_on_the_exports(exported, gguf_file, artifact, tmp_path, monkeypatch):
    runner = CliRunner()
    ppl = {}
    for path, engine in ((exported, "onnxruntime"), (gguf_file, "llama.cpp"), (artifact, "edgekit")):
        r = runner.invoke(main, ["eval", str(path), "--engine", engine, "--ctx", "64", "--max-tokens", "128",
                                 "--threads", str(THREADS), "--json"])
        assert r.exit_code == 0, r.output
        res = _json(r.output)
        assert res["tokens"] == 2 * 63 and res["engine"] == ("runtime" if engine == "edgekit" else engine)
        ppl[engine] = res["perplexity"]
    assert max(ppl.values()) / min(ppl.values()) < 1.1, ppl  # 126 tokens: only a sanity bound
    r = runner.invoke(main, ["run", str(exported), "--prompt", "The capital of France is", "--max-tokens", "6",
                             "--threads", str(THREADS)])
    assert r.exit_code == 0, r.output
    assert r.output.startswith("The capital of France is") and len(r.output) > len("The capital of France is")
    # an artifact on llama.cpp: exported once into the cache, then the same file as the explicit export
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    r = runner.invoke(main, ["eval", str(artifact), "--engine", "llama.cpp", "--ctx", "64", "--max-tokens", "128",
                             "--threads", str(THREADS), "--json"])
    assert r.exit_code == 0, r.output
    cached = list((tmp_path / "edgekit" / "exports").glob("*.gguf"))
    assert len(cached) == 1 and cached[0].read_bytes() == Path(gguf_file).read_bytes()
    assert _json(r.output)["perplexity"] == ppl["llama.cpp"]
    r = runner.invoke(main, ["run", str(exported), "--prompt", "Hi", "--engine", "llama.cpp"])
    assert r.exit_code == 2 and "ONNX export" in r.output and "Traceback" not in r.output


# ---------------------------------------------------------------------------------------------- MiniLM encoder


def test_minilm_exports_as_an_encoder(tmp_path_factory):
    """An RTN W4A8 MiniLM (the quantizer does not matter here, the export does): ORT's sentence embeddings of the
    export against edgekit's fake-quant torch path of the same artifact."""
    from edgekit import data
    from edgekit.engines.onnxruntime import OrtEncoder
    from edgekit.eval.evaluate import embed, sentences
    from edgekit.quant.serialize import load_artifact_model
    from edgekit.quant.api import quantize_model
    from edgekit.recipes import load_recipe

    d = tmp_path_factory.mktemp("minilm")
    art = quantize_model("minilm-l6", load_recipe("rtn-w4a8").config, d / "minilm.ekq", calib_samples=8,
                         calib_seqlen=32, progress=False).path
    res = ox.export_onnx(art, d / "minilm-onnx")
    assert res["task"] == "encoder" and res["matmulnbits"] == 36 and not res["tied_head"]
    onnx.checker.check_model(str(d / "minilm-onnx" / "model.onnx"))
    texts = sentences("\n\n".join(data.load_texts(None, "eval")), limit=48)
    lm, _ = load_artifact_model(art)
    cos = (OrtEncoder(d / "minilm-onnx", threads=THREADS).embed(texts) * embed(lm.model, lm.tokenizer, texts)).sum(-1)
    print(f"MiniLM ORT vs edgekit torch: mean cosine {float(cos.mean()):.5f}, min {float(cos.min()):.5f}")
    assert float(cos.min()) > 0.99
