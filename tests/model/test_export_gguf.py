"""GGUF export (edgekit/export/gguf.py): byte-exact Q4_0 blocks, llama.cpp metadata, llama.cpp runs the export.

The artifact is the session's SmolLM2 ``w4a8`` (conftest ``smollm2_artifacts``); it is exported once through
the CLI. The export is checked three ways: read back with ``gguf.GGUFReader`` (every Q4_0 block is the artifact's
fp16 scale and packed bytes, Q/K rows in llama.cpp's rotary order), against the source GGUF (the permuted Q/K
weights line up with the source's), and under llama.cpp (perplexity and greedy generation next to edgekit's).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gguf", reason="the gguf package is not installed (pip install edgekit[export])")
pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install edgekit[bench])")

import capi_util as cu  # noqa: E402
import gguf  # noqa: E402

from edgekit.errors import EdgekitError  # noqa: E402

gg = cu.source_module("edgekit.export.gguf")

THREADS = 1  # numbers, not speed; one thread avoids OpenMP spin barriers on shared CPUs
CTX, MAX_TOKENS = 256, 512
PROMPTS = ["The GNU General Public License is", "Once upon a time", "def fibonacci(n):",
           "The capital of France is"]
N_GEN = 32


def _cli_main(monkeypatch):
    """The checkout's CLI, with ``edgekit.export.gguf`` resolving to the checkout's module."""
    monkeypatch.setitem(sys.modules, "edgekit.export.gguf", gg)
    return cu.source_module("edgekit.cli").main


def _deq(t) -> np.ndarray:
    return gguf.quants.dequantize(t.data, t.tensor_type)


@pytest.fixture(scope="module")
def exported(artifact, tmp_path_factory) -> Path:
    from click.testing import CliRunner

    out = tmp_path_factory.mktemp("gguf") / "smollm2-agile.gguf"
    mp = pytest.MonkeyPatch()
    try:
        res = CliRunner().invoke(_cli_main(mp), ["export", str(artifact), "--format", "gguf", "-o", str(out)])
    finally:
        mp.undo()
    assert res.exit_code == 0, res.output
    assert "wrote" in res.output and "210 Q4_0" in res.output
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name], "temporary file left behind"
    return out


@pytest.fixture(scope="module")
def reader(exported):
    return gguf.GGUFReader(str(exported))


@pytest.fixture(scope="module")
def source_reader():
    from edgekit.models import resolve_spec

    return gguf.GGUFReader(resolve_spec("smollm2-135m").file)


@pytest.fixture(scope="module")
def runtime(artifact):
    from edgekit.engines.runtime import Runtime

    return Runtime.from_artifact(str(artifact), max_ctx=512)


@pytest.fixture(scope="module")
def windows(runtime):
    from edgekit.data import eval_windows

    return eval_windows(runtime.tokenizer, ctx=CTX, max_tokens=MAX_TOKENS)


# ---------------------------------------------------------------------------------------------- read-back


def test_q4_0_blocks_are_the_artifacts_bytes(artifact, reader):
    from safetensors import safe_open

    from edgekit.artifact import read_artifact
    from edgekit.quant.formats import q4_0_rows

    art = read_artifact(artifact)
    cfg = art.model_config
    tensors = {t.name: t for t in reader.tensors}
    checked = 0
    with safe_open(str(artifact), framework="numpy") as f:
        for name in art.linears:
            i = int(name.split(".")[2])
            key = f"blk.{i}.{gg._LINEARS[name.split('.', 3)[3]]}.weight"
            codes, scales = f.get_tensor(f"{name}.qweight"), f.get_tensor(f"{name}.scales")
            n, k = codes.shape[0], codes.shape[1] * 2
            if name.endswith(("q_proj", "k_proj")):
                heads = cfg["num_attention_heads"] if name.endswith("q_proj") else cfg["num_key_value_heads"]
                order = gg.llama_permute_rows(n, heads)
                codes, scales = codes[order], scales[order]
            t = tensors[key]
            assert t.tensor_type == gguf.GGMLQuantizationType.Q4_0
            assert [int(s) for s in t.shape] == [k, n]
            assert np.asarray(t.data).tobytes() == q4_0_rows(codes, scales).tobytes(), key
            checked += 1
        for i in range(cfg["num_hidden_layers"]):
            for hf, g in gg._NORMS.items():
                t = tensors[f"blk.{i}.{g}.weight"]
                assert t.tensor_type == gguf.GGMLQuantizationType.F32
                assert np.array_equal(np.asarray(t.data), f.get_tensor(f"model.layers.{i}.{hf}.weight"))
        assert np.array_equal(np.asarray(tensors["output_norm.weight"].data), f.get_tensor("model.norm.weight"))
        emb = f.get_tensor("model.embed_tokens.weight")
    assert checked == 7 * cfg["num_hidden_layers"] == 210
    assert "output.weight" not in tensors  # tied head: llama.cpp uses token_embd
    t = tensors["token_embd.weight"]
    assert t.tensor_type == gguf.GGMLQuantizationType.Q8_0
    y = _deq(t)
    d = np.abs(emb.reshape(-1, 32)).max(1) / 127
    assert (np.abs(y - emb).reshape(-1, 32) <= d[:, None] * 0.6 + 1e-6).all()
    assert len(tensors) == 2 + 9 * cfg["num_hidden_layers"]


def test_embedding_q8_0_reproduces_the_source(reader, source_reader):
    # the source's embedding is Q8_0 already and the artifact holds its exact dequantized values, so re-blocking
    # them with the absmax/127 rule gives back the source's bytes
    ours = next(t for t in reader.tensors if t.name == "token_embd.weight")
    src = next(t for t in source_reader.tensors if t.name == "token_embd.weight")
    assert src.tensor_type == gguf.GGMLQuantizationType.Q8_0
    assert np.array_equal(np.asarray(ours.data), np.asarray(src.data))


def test_metadata(artifact, reader, source_reader):
    from edgekit.artifact import read_artifact

    cfg = read_artifact(artifact).model_config

    def v(key, r=reader):
        return r.fields[key].contents()

    assert v("general.architecture") == "llama"
    assert v("general.file_type") == int(gguf.LlamaFileType.MOSTLY_Q4_0)
    assert v("llama.block_count") == cfg["num_hidden_layers"] == 30
    assert v("llama.context_length") == cfg["max_position_embeddings"]
    assert v("llama.embedding_length") == cfg["hidden_size"]
    assert v("llama.feed_forward_length") == cfg["intermediate_size"]
    assert v("llama.attention.head_count") == cfg["num_attention_heads"]
    assert v("llama.attention.head_count_kv") == cfg["num_key_value_heads"]
    assert v("llama.rope.dimension_count") == cfg["head_dim"]
    assert v("llama.rope.freq_base") == pytest.approx(cfg["rope_theta"])
    assert v("llama.attention.layer_norm_rms_epsilon") == pytest.approx(cfg["rms_norm_eps"])
    assert v("llama.vocab_size") == cfg["vocab_size"]
    assert "edgekit" in v("general.quantized_by")
    for key in ("tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.bos_token_id",
                "tokenizer.ggml.eos_token_id", "tokenizer.ggml.add_bos_token", "tokenizer.chat_template",
                "general.name"):
        assert v(key) == v(key, source_reader), key
    for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type"):
        assert len(reader.fields[key].data) == len(source_reader.fields[key].data) > 0
        assert v(key)[:50] == v(key, source_reader)[:50] and v(key)[-50:] == v(key, source_reader)[-50:]
    assert len(reader.fields["tokenizer.ggml.tokens"].data) == cfg["vocab_size"]


def test_q_k_rows_line_up_with_the_source(reader, source_reader):
    # AWQ scales the inputs of q/k/v and divides attn_norm by the same factors, so compare W * diag(attn_norm);
    # the remaining difference is the two files' 4-bit rounding (edgekit's GPTQ Q4_0 vs the source's Q4_1)
    ours = {t.name: t for t in reader.tensors}
    src = {t.name: t for t in source_reader.tensors}
    for i in (0, 17):
        for proj, heads in (("attn_q", 9), ("attn_k", 3)):
            a = _deq(ours[f"blk.{i}.{proj}.weight"]) * _deq(ours[f"blk.{i}.attn_norm.weight"])[None]
            b = _deq(src[f"blk.{i}.{proj}.weight"]) * _deq(src[f"blk.{i}.attn_norm.weight"])[None]
            err = np.linalg.norm(a - b) / np.linalg.norm(b)
            # without the permutation (rows in transformers' order) the same comparison is far off
            inv = np.argsort(gg.llama_permute_rows(a.shape[0], heads))
            err_hf = np.linalg.norm(a[inv] - b) / np.linalg.norm(b)
            assert err < 0.2 and err_hf > 0.8, (i, proj, err, err_hf)


# ---------------------------------------------------------------------------------------------- under llama.cpp


def test_llamacpp_perplexity_matches_edgekit(artifact, exported, runtime, windows, capsys):
    import torch

    from edgekit.bench.llamacpp_baseline import perplexity_llamacpp
    from edgekit.eval.perplexity import perplexity, perplexity_of
    from edgekit.quant.modules import QLinear
    from edgekit.quant.serialize import load_artifact_model

    llama = perplexity_llamacpp(str(exported), windows, threads=THREADS, progress=False)

    def rt_logits(w):
        runtime.reset()
        return torch.from_numpy(runtime.eval(w.numpy(), all_logits=True))

    rt = perplexity_of(rt_logits, windows, progress=False)
    # the same weights without activation quantization: llama.cpp quantizes activations per 32-block (Q8_0), the
    # edgekit runtime as the recipe says (per 32-block by default, per token for GPTQ recipes), so the weight-only
    # model is the reference both approximate
    lm, _ = load_artifact_model(artifact)
    for m in lm.model.modules():
        if isinstance(m, QLinear):
            m.act_bits = 16
    w16 = perplexity(lm.model, windows, progress=False)
    assert llama["tokens"] == rt["tokens"] == 2 * (CTX - 1)
    gap_w16 = llama["perplexity"] / w16["perplexity"] - 1
    gap_rt = llama["perplexity"] / rt["perplexity"] - 1
    with capsys.disabled():
        print(f"\n[gguf export] perplexity {CTX}x{len(windows)}: llama.cpp {llama['perplexity']:.3f}, edgekit "
              f"runtime {rt['perplexity']:.3f} ({gap_rt:+.2%}), weight-only torch "
              f"{w16['perplexity']:.3f} ({gap_w16:+.2%})")
    assert abs(gap_w16) < 0.01
    assert abs(gap_rt) < 0.05


def test_greedy_generation_agrees(exported, runtime, capsys):
    from edgekit.bench.llamacpp_baseline import generate_llamacpp

    tok = runtime.tokenizer
    agree = []
    for p in PROMPTS:
        ids = tok(p, add_special_tokens=False)["input_ids"]
        ours = generate_llamacpp(str(exported), ids, N_GEN, threads=THREADS, stop_at_eog=False)
        runtime.reset()
        logits, ref = runtime.eval(ids), []
        for _ in range(N_GEN):
            ref.append(int(np.argmax(logits)))
            logits = runtime.eval([ref[-1]])
        agree.append(next((i for i, (a, b) in enumerate(zip(ours, ref)) if a != b), N_GEN))
    with capsys.disabled():
        print(f"\n[gguf export] greedy {N_GEN} tokens, common prefix llama.cpp vs edgekit runtime: {agree}")
    assert sum(a >= 4 for a in agree) >= 3, agree


# ---------------------------------------------------------------------------------------------- options, errors


def test_embed_type_f16(artifact, tmp_path):
    res = gg.export_artifact_gguf(str(artifact), tmp_path / "f16e.gguf", embed_type="f16")
    assert res["types"] == {"F16": 1, "F32": 61, "Q4_0": 210}
    r = gguf.GGUFReader(res["path"])
    t = next(t for t in r.tensors if t.name == "token_embd.weight")
    assert t.tensor_type == gguf.GGMLQuantizationType.F16
    with pytest.raises(EdgekitError, match="unknown embedding type"):
        gg.export_artifact_gguf(str(artifact), tmp_path / "x.gguf", embed_type="q4_0")


def test_f16_export_of_the_source(tmp_path, source_reader, monkeypatch):
    from click.testing import CliRunner

    from edgekit.bench.llamacpp_baseline import generate_llamacpp

    out = tmp_path / "smollm2-f16.gguf"
    res = CliRunner().invoke(_cli_main(monkeypatch), ["export", "smollm2-135m", "--bits", "16", "-o", str(out),
                                                      "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["types"] == {"F16": 211, "F32": 61}
    r = gguf.GGUFReader(str(out))
    assert r.fields["general.file_type"].contents() == int(gguf.LlamaFileType.MOSTLY_F16)
    ours = {t.name: t for t in r.tensors}
    for t in source_reader.tensors[:12]:
        a, b = _deq(ours[t.name]), _deq(t)
        assert a.shape == b.shape and np.allclose(a, b, rtol=1e-3, atol=1e-6), t.name
    prompt = [504, 5347, 3335, 45, 3264, 314]  # arbitrary in-vocabulary ids
    assert len(generate_llamacpp(str(out), prompt, 4, threads=THREADS, stop_at_eog=False)) == 4


def _artifact_obj(artifact, **changes):
    import copy

    from edgekit.artifact import read_artifact

    art = copy.deepcopy(read_artifact(artifact))
    for k, v in changes.items():
        setattr(art, k, v)
    return art


@pytest.mark.parametrize("change, pattern", [
    (lambda a: a.linears["model.layers.3.mlp.up_proj"].update(group_size=64), "group size 64"),
    (lambda a: a.linears["model.layers.0.self_attn.q_proj"].update(symmetric=False), "asymmetric"),
    (lambda a: a.quant.update(w4a4_ratio=0.5), "W4A4"),
    (lambda a: [s.update(act_mode="per_tensor") for s in a.linears.values()], "static per-tensor"),
    (lambda a: a.quant["attention"].update(qkv_bits=8), "quantized attention"),
    (lambda a: setattr(a, "family", "bert"), "not a llama decoder"),
    (lambda a: a.model_config.update(rope_scaling={"type": "linear", "factor": 2.0}), "rope_scaling"),
])
def test_unsupported_artifacts_are_named(artifact, change, pattern):
    art = _artifact_obj(artifact)
    change(art)
    with pytest.raises(EdgekitError, match=pattern) as e:
        gg.check_exportable(art)
    assert "w4a8 (or rtn-w4a8" in str(e.value)
    gg.check_exportable(_artifact_obj(artifact))  # the real one passes


def _with_metadata(src: Path, dst: Path, edit) -> Path:
    """Copy a safetensors file with its ``__metadata__`` changed by ``edit(meta)`` (tensor bytes untouched)."""
    import shutil

    with open(src, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        head = json.loads(f.read(n))
        edit(head["__metadata__"])
        blob = json.dumps(head).encode()
        with open(dst, "wb") as o:
            o.write(len(blob).to_bytes(8, "little"))
            o.write(blob)
            shutil.copyfileobj(f, o)
    return dst


def test_cli_refuses_group_64_and_writes_nothing(artifact, tmp_path, monkeypatch):
    from click.testing import CliRunner

    def edit(meta):
        lin = json.loads(meta["edgekit.linears"])
        for s in lin.values():
            s["group_size"] = 64
        meta["edgekit.linears"] = json.dumps(lin)

    bad = _with_metadata(artifact, tmp_path / "g64.ekq", edit)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    res = CliRunner().invoke(_cli_main(monkeypatch), ["export", str(bad), "-o", str(out_dir / "m.gguf")])
    assert res.exit_code == 2
    assert "group size 64" in res.output and "w4a8 (or rtn-w4a8" in res.output
    assert "Traceback" not in res.output
    assert list(out_dir.iterdir()) == []


def test_failed_write_leaves_no_file(artifact, tmp_path, monkeypatch):
    out = tmp_path / "m.gguf"
    out.write_bytes(b"previous export")

    def boom(self, *a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(gguf.GGUFWriter, "write_tensors_to_file", boom)
    with pytest.raises(OSError, match="disk full"):
        gg.export_artifact_gguf(str(artifact), out)
    assert [p.name for p in tmp_path.iterdir()] == ["m.gguf"]  # no temporary file left
    assert out.read_bytes() == b"previous export"  # the old file is untouched


def test_int8_linears_become_q8_0(artifact, tmp_path):
    # an 8-bit artifact holding the very same weights: int4 codes q become int8 codes q - 8 with the same scales, so
    # its Q8_0 export must dequantize to exactly what the Q4_0 export does
    from safetensors import safe_open
    from safetensors.numpy import save_file

    from edgekit.quant.formats import unpack_int4

    with safe_open(str(artifact), framework="numpy") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    lin = json.loads(meta["edgekit.linears"])
    for name, s in lin.items():
        tensors[f"{name}.qweight"] = (unpack_int4(tensors[f"{name}.qweight"], 32).astype(np.int16) - 8).astype(np.int8)
        s["bits"] = 8
    meta["edgekit.linears"] = json.dumps(lin)
    w8 = tmp_path / "w8.ekq"
    save_file(tensors, str(w8), metadata=meta)
    del tensors
    a = gguf.GGUFReader(gg.export_artifact_gguf(str(w8), tmp_path / "w8.gguf")["path"])
    b = gguf.GGUFReader(gg.export_artifact_gguf(str(artifact), tmp_path / "w4.gguf")["path"])
    assert a.fields["general.file_type"].contents() == int(gguf.LlamaFileType.MOSTLY_Q8_0)
    tb = {t.name: t for t in b.tensors}
    n_q8 = 0
    for t in a.tensors:
        if tb[t.name].tensor_type == gguf.GGMLQuantizationType.Q4_0:
            assert t.tensor_type == gguf.GGMLQuantizationType.Q8_0
            assert np.array_equal(_deq(t), _deq(tb[t.name])), t.name
            n_q8 += 1
    assert n_q8 == 210


def test_acm_artifact_exports_as_the_dense_model(artifact, exported, tmp_path, monkeypatch):
    """An ACM artifact's learners are the dense FFN's rows/columns: its GGUF is the k = N model, tensor for tensor
    the GGUF of the same file without gates, with a notice; the ONNX export refuses it by name."""
    from click.testing import CliRunner
    from safetensors import safe_open
    from safetensors.numpy import save_file

    from edgekit.artifact import read_artifact

    rng = np.random.default_rng(0)
    with safe_open(str(artifact), framework="numpy") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    n_layers = int(read_artifact(artifact).model_config["num_hidden_layers"])
    for i in range(n_layers):  # gates of the runtime's shape: d -> 64 -> N + 1
        g = f"model.layers.{i}.mlp.gate"
        tensors.update({f"{g}.fc1.weight": rng.standard_normal((64, 576), dtype=np.float32),
                        f"{g}.fc1.bias": np.zeros(64, np.float32),
                        f"{g}.fc2.weight": rng.standard_normal((9, 64), dtype=np.float32),
                        f"{g}.fc2.bias": np.zeros(9, np.float32)})
    meta["edgekit.acm"] = json.dumps({"n_learners": 8, "learner_width": 192, "gate_hidden": 64, "gate_act": "gelu"})
    acm = tmp_path / "acm.ekq"
    save_file(tensors, str(acm), metadata=meta)
    assert read_artifact(acm).acm["n_learners"] == 8
    out = tmp_path / "acm.gguf"
    res = CliRunner().invoke(_cli_main(monkeypatch), ["export", str(acm), "--format", "gguf", "-o", str(out)])
    assert res.exit_code == 0 and "adaptive computation modules" in res.output and "k = N" in res.output, res.output
    a, b = gguf.GGUFReader(str(out)), gguf.GGUFReader(str(exported))
    assert [t.name for t in a.tensors] == [t.name for t in b.tensors]
    assert all(np.array_equal(x.data, y.data) for x, y in zip(a.tensors, b.tensors))
    onnx_mod = cu.source_module("edgekit.export.onnx")
    with pytest.raises(EdgekitError, match="adaptive computation modules"):
        onnx_mod.check_exportable(read_artifact(acm))
