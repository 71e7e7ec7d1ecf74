"""The float T5 student's exports (edgekit/export/gguf.py's export_t5_gguf, gguf_vocab.py; edgekit/export/onnx.py's
export_seq2seq_onnx) against torch, on tiny students: the same 32 greedy tokens per prompt from llama.cpp (low-level
API) and ONNX Runtime as from transformers, logits close, llama.cpp's tokenization equal to the student's
tokenizer, and one clear error for each bad input.

The students are random T5 v1.1 models (gated gelu_pytorch_tanh, tied embedding, 2 encoder + 1 decoder layers at
width 64) with a byte-level BPE trained on fuzz text (tests/tokenizer_fuzz.py) in the two layouts the export maps:
``gguf`` (ByteLevel alone: what the student saves from SmolLM2's GGUF → llama.cpp pre ``gpt-2``) and ``digits``
(single digits first: SmolLM2's own tokenizer.json → ``smollm``). Their attention and FFN output weights are drawn
large and their embedding small, so greedy decoding does not just repeat one token (checked in :func:`compare`:
otherwise the test could hardly fail).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import tokenizer_fuzz as tf
from t5_util import make_student
from edgekit.errors import EdgekitError

pytest.importorskip("gguf", reason="gguf is not installed (pip install edgekit[bench])")

N_TOKENS = 32
PROMPTS = ["The quick brown fox jumps over the lazy dog.", "ls -la /usr/bin | grep 2024 > out.txt",
           "Returns the number of bytes read, or -1 on error (errno is set)."]
LLAMA_ATOL = 1e-2  # llama.cpp's GELU reads a table of fp16 inputs; measured 1.5e-3 on these students
ORT_ATOL = 1e-4  # optimum's float graphs (the issue measured 7e-5 on a larger T5)
TIE_FOLD_ATOL = 1e-6


@pytest.fixture(scope="module", params=["gguf", "digits"])
def student(request, tmp_path_factory):
    return make_student(tmp_path_factory.mktemp(f"t5-{request.param}") / "student", request.param)


@pytest.fixture(scope="module")
def student_gguf(student, tmp_path_factory):
    from edgekit.export.gguf import export_gguf

    out = tmp_path_factory.mktemp("gguf") / "s.gguf"
    res = export_gguf(str(student[0]), out)
    assert res["types"] == {"F32": res["tensors"]}
    return out


def greedy(spec, engine, prompts_ids):
    from edgekit.engines import open_session
    from edgekit.eval.generate import generate_greedy

    sess = open_session(str(spec), engine, max_ctx=256, seq2seq=True)
    try:
        return [generate_greedy(sess, ids, N_TOKENS) for ids in prompts_ids]
    finally:
        sess.close()


def compare(ref, got, atol):
    """Token for token equality and the largest logit difference (printed for the report)."""
    seqs = [t for t, _ in ref]
    # a reference that could disagree: several distinct tokens, and a different sequence per prompt
    assert len({x for t in seqs for x in t}) >= 6 and len({tuple(t) for t in seqs}) == len(seqs), seqs
    worst = 0.0
    for (t_ref, l_ref), (t_got, l_got) in zip(ref, got):
        assert t_got == t_ref
        worst = max(worst, float(np.abs(l_got - l_ref).max()))
    print(f"max |logit difference| = {worst:.2e} over {len(ref)} x {N_TOKENS} steps")
    assert worst < atol
    return worst


def test_gguf_gives_torchs_greedy_tokens(student, student_gguf):
    path, hf = student
    ids = [hf(p)["input_ids"] for p in PROMPTS]
    compare(greedy(path, "torch", ids), greedy(student_gguf, "llama.cpp", ids), LLAMA_ATOL)


def test_gguf_tokenizes_like_the_student(student, student_gguf):
    from edgekit.engines.llamacpp import LlamaCppSeq2Seq

    _, hf = student
    sess = LlamaCppSeq2Seq(student_gguf, max_ctx=64)
    try:
        texts = PROMPTS + tf.fuzz_strings(300, seed=3)
        unknown = 0
        for text in texts:
            want = hf(text, add_special_tokens=False)["input_ids"]
            if hf.unk_token_id in want:
                # a byte missing from the vocabulary (the gguf layout, like SmolLM2, lacks 0x04 0x06 0x13 0x14):
                # transformers' byte fallback emits unk where llama.cpp drops the byte; everything else is equal
                unknown += 1
                assert sess.tokenize(text) == [t for t in want if t != hf.unk_token_id], text
                continue
            assert sess.tokenize(text) == want, text
            assert sess.tokenizer(text, add_special_tokens=False)["input_ids"] == want, text
        assert unknown < len(texts) // 10
        assert sess.decoder_start == hf.pad_token_id
    finally:
        sess.close()


def test_gguf_layout_folds_the_tied_head_scale(student, student_gguf):
    import gguf
    from safetensors.numpy import load_file

    path, _ = student
    hf = load_file(str(path / "model.safetensors"))
    r = gguf.GGUFReader(str(student_gguf))
    t = {x.name: x for x in r.tensors}
    assert r.fields["general.architecture"].contents() == "t5" and "output.weight" not in t
    assert r.fields["t5.block_count"].contents() == 2 and r.fields["t5.decoder_block_count"].contents() == 1
    assert r.fields["tokenizer.ggml.pre"].contents() == ("gpt-2" if "gguf" in str(path) else "smollm")
    got = np.asarray(t["dec.output_norm.weight"].data)
    assert np.allclose(got, hf["decoder.final_layer_norm.weight"] * 64 ** -0.5, atol=TIE_FOLD_ATOL)
    assert np.array_equal(np.asarray(t["enc.blk.0.attn_rel_b.weight"].data),
                          hf["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"])
    tokens = r.fields["tokenizer.ggml.tokens"]
    assert len(tokens.data) == 1280 and tokens.contents(1279) == "[PAD1279]"


def test_f16_gguf_stays_close(student, tmp_path):
    from edgekit.export.gguf import export_gguf

    path, hf = student
    res = export_gguf(str(path), tmp_path / "h.gguf", bits=16)
    assert res["types"]["F16"] >= 20 and res["types"]["F32"] >= 1
    ids = [hf(PROMPTS[0])["input_ids"]]
    (t_ref, l_ref), = greedy(path, "torch", ids)
    sess_out = greedy(tmp_path / "h.gguf", "llama.cpp", ids)
    assert np.abs(sess_out[0][1][:1] - l_ref[:1]).max() < 0.1  # the first step: same history, F16 weights


@pytest.fixture(scope="module")
def onnx_export(tmp_path_factory):
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install edgekit[export])")
    pytest.importorskip("optimum.exporters.onnx", reason="optimum-onnx is not installed (pip install edgekit[export])")
    from click.testing import CliRunner

    from edgekit.cli import main

    path, hf = make_student(tmp_path_factory.mktemp("t5-onnx") / "student", "gguf", seed=2)
    out = tmp_path_factory.mktemp("onnx") / "s"
    res = CliRunner().invoke(main, ["export", str(path), "--format", "onnx", "-o", str(out), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output[res.output.index("{"):])
    assert info["task"] == "seq2seq" and info["files"] == ["encoder_model.onnx", "decoder_model.onnx",
                                                           "decoder_with_past_model.onnx"]
    return path, hf, out


def test_onnx_gives_torchs_greedy_tokens(onnx_export):
    from edgekit.engines import pick_engine

    path, hf, out = onnx_export
    assert pick_engine(str(out), None) == "onnxruntime"
    assert json.loads((out / "edgekit_export.json").read_text())["task"] == "seq2seq"
    assert not any(p.name.startswith(".") for p in out.parent.iterdir())  # no temporary left behind
    ids = [hf(p)["input_ids"] for p in PROMPTS]
    compare(greedy(path, "torch", ids), greedy(out, None, ids), ORT_ATOL)


def test_onnx_decoder_reads_several_tokens_at_once(onnx_export):
    """The first call runs decoder_model.onnx, later ones decoder_with_past: both with several tokens, all logits."""
    from edgekit.engines import open_session

    path, hf, out = onnx_export
    ids = hf(PROMPTS[1])["input_ids"]
    dec = [0, 17, 300, 301, 9, 12]
    rows = []
    for spec, engine in ((path, "torch"), (out, "onnxruntime")):
        s = open_session(str(spec), engine, seq2seq=True)
        assert s.tokenizer(PROMPTS[1])["input_ids"] == ids  # the export carries the student's tokenizer
        s.encode(ids)
        rows.append(np.concatenate([s.eval(dec[:2], all_logits=True), s.eval(dec[2:], all_logits=True)]))
        assert s.n_past == len(dec)
        s.close()
    assert rows[0].shape == (6, 1280) and np.abs(rows[0] - rows[1]).max() < ORT_ATOL


# ---------------------------------------------------------------------------------------------- bad input


def test_a_config_llama_cpp_computes_differently_is_refused(tmp_path):
    from edgekit.export.gguf import export_gguf

    silu, _ = make_student(tmp_path / "silu", "gguf", feed_forward_proj="gated-silu")
    with pytest.raises(EdgekitError, match=r"cannot be exported to GGUF: feed_forward_proj 'gated-silu'"):
        export_gguf(str(silu), tmp_path / "x.gguf")
    far, _ = make_student(tmp_path / "far", "gguf", relative_attention_max_distance=64)
    with pytest.raises(EdgekitError, match="relative_attention_max_distance 64 \\(llama.cpp hard-codes 128\\)"):
        export_gguf(str(far), tmp_path / "x.gguf")
    assert not list(tmp_path.glob("*.gguf*"))


def test_a_tokenizer_llama_cpp_cannot_reproduce_is_refused(tmp_path):
    from tokenizers import pre_tokenizers

    from edgekit.export.gguf import export_gguf

    path, hf = make_student(tmp_path / "s", "gguf")
    hf.backend_tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    hf.save_pretrained(path)
    with pytest.raises(EdgekitError, match="pre-tokenizer .* has no llama.cpp equivalent"):
        export_gguf(str(path), tmp_path / "x.gguf")


def test_non_t5_input_and_decoder_sessions_are_one_clear_error(tmp_path, tiny_llama_dir, student):
    from edgekit.distill.student import load_t5_config
    from edgekit.engines import open_session
    from edgekit.eval.generate import generate_greedy

    with pytest.raises(EdgekitError, match="holds a 'llama' model, not a T5 encoder-decoder"):
        load_t5_config(tiny_llama_dir)
    with pytest.raises(EdgekitError, match="no config.json"):
        load_t5_config(tmp_path)
    sess = open_session(str(tiny_llama_dir), "torch")
    with pytest.raises(EdgekitError, match="runs a decoder-only model; greedy encoder-decoder generation needs"):
        generate_greedy(sess, [1, 2, 3], 4)
    with pytest.raises(EdgekitError, match="is not an encoder-decoder model"):
        open_session(str(tiny_llama_dir), "torch", seq2seq=True)
    with pytest.raises(EdgekitError, match="is an encoder-decoder model \\(T5\\); this command runs decoder-only"):
        open_session(str(student[0]), "torch")  # what eval / run / bench model get
    with pytest.raises(EdgekitError, match="runs an ONNX export directory"):
        open_session(str(student[0]), "onnxruntime", seq2seq=True)
    t5 = open_session(str(student[0]), "torch", seq2seq=True)
    with pytest.raises(EdgekitError, match="encode\\(prompt\\) must run before the decoder"):
        t5.eval([0])
    with pytest.raises(EdgekitError, match="outside the vocabulary of 1280"):
        t5.encode([5, 1280])


def test_cli_exports_the_student_and_refuses_with_one_line(student, tmp_path):
    from click.testing import CliRunner

    from edgekit.cli import main

    runner = CliRunner()
    res = runner.invoke(main, ["export", str(student[0]), "--format", "gguf", "-o", str(tmp_path / "s.gguf")])
    assert res.exit_code == 0, res.output
    assert "wrote" in res.output and (tmp_path / "s.gguf").is_file()
    res = runner.invoke(main, ["export", str(student[0]), "--format", "gguf", "--bits", "16",
                               "-o", str(tmp_path / "none" / "s.gguf")])
    lines = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert res.exit_code == 2 and len(lines) == 1 and "output directory does not exist" in lines[0], res.output
    res = runner.invoke(main, ["export", str(student[0]), "--embed-type", "f16", "-o", str(tmp_path / "e.gguf")])
    lines = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert res.exit_code == 2 and len(lines) == 1 and "--embed-type applies to an artifact" in lines[0], res.output
    res = runner.invoke(main, ["export", str(student[0]), "--format", "onnx", "--accuracy-level", "1",
                               "-o", str(tmp_path / "o")])
    lines = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert res.exit_code == 2 and len(lines) == 1 and "exported in float32" in lines[0], res.output
    for spec in (student[0], tmp_path / "s.gguf"):  # decoder-only commands refuse the student and its export
        res = runner.invoke(main, ["eval", str(spec)] + (["--engine", "llama.cpp"] if spec.suffix else []))
        lines = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
        assert res.exit_code == 2 and len(lines) == 1 and "is an encoder-decoder model (T5)" in lines[0], res.output
