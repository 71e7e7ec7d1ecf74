"""The C++ runtime engine (csrc/runtime/llama.cpp) against the PyTorch kernel path of the same SmolLM2 artifact (a tiny
TRIP artifact in the runtime is tests/engines/test_runtime_tiny.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def runtime(smollm2_artifacts):
    from edgekit.engines.runtime import Runtime

    return Runtime.from_artifact(smollm2_artifacts["w4a8"].path, max_ctx=512)


@pytest.fixture(scope="module")
def kernel_model(smollm2_artifacts):
    from edgekit.engines.kernels import use_kernels
    from edgekit.quant.serialize import load_artifact_model

    lm, _ = load_artifact_model(smollm2_artifacts["w4a8"].path)
    use_kernels(lm.model)
    return lm.model


def _nll(logits: np.ndarray, ids: torch.Tensor) -> float:
    return float(torch.nn.functional.cross_entropy(torch.from_numpy(logits[:-1]), ids[1:], reduction="sum"))


def test_runtime_matches_the_kernel_path(runtime, kernel_model, eval_ids):
    """The C++ engine and the PyTorch kernel path compute the same bits over 4 x 512 positions.

    The kernel path runs transformers' modules with the runtime's numerics (edgekit.engines.kernels: the same
    kernels for the linears, attention, SwiGLU and head, fp16 tables and cache, norms and RoPE rounded alike), so
    what this compares is the runtime's own logic: loader, cache, GQA indexing, RoPE positions, batching. Without
    that, int8 activations make the comparison chaotic: transformers' own SDPA and eager attention agree on only
    ~97 % of top-1 tokens of this model, so a 99 % bar could not tell a bug from float noise."""
    agree = total = 0
    nll_rt = nll_pt = 0.0
    for w in eval_ids[:4]:
        runtime.reset()
        a = runtime.eval(w.numpy(), all_logits=True)
        with torch.no_grad():
            b = kernel_model(input_ids=w[None], use_cache=False).logits[0].float().numpy()
        np.testing.assert_array_equal(a, b)
        agree += int((a.argmax(-1) == b.argmax(-1)).sum())
        total += len(w)
        nll_rt += _nll(a, w)
        nll_pt += _nll(b, w)
    n = total - 2
    print(f"runtime ppl {np.exp(nll_rt / n):.4f}, kernel path {np.exp(nll_pt / n):.4f}, top-1 {agree / total:.3f}")


def test_kernel_path_has_the_runtime_numerics(kernel_model, smollm2_artifacts):
    from edgekit.engines.kernels import ATTN_NAME, Fp16Head, Q8Head
    from edgekit.quant.formats import dequantize_q8_0, quantize_q8_0

    assert kernel_model.config._attn_implementation == ATTN_NAME
    emb = kernel_model.model.embed_tokens.weight
    if smollm2_artifacts["w4a8"].config.lm_head_bits == 8:  # the default: one Q8_0 table, head and embedding
        assert isinstance(kernel_model.lm_head, Q8Head)
        # the default rounds the head's input per block too (integer head kernel), as the runtime does
        assert kernel_model.lm_head.act8 == (smollm2_artifacts["w4a8"].config.lm_head_act_bits == 8)
        q, d = quantize_q8_0(emb.detach().numpy())
        assert torch.equal(emb, torch.from_numpy(dequantize_q8_0(q, d)))
    else:
        assert isinstance(kernel_model.lm_head, Fp16Head)
        assert torch.equal(emb, emb.half().float())


def test_cache_decode_equals_prefill_and_truncate_resets(runtime, eval_ids):
    ids = eval_ids[0, :24].numpy()
    runtime.reset()
    full = runtime.eval(ids, all_logits=True)
    assert runtime.n_past == 24
    runtime.truncate(16)  # drop the last 8, then decode them one by one
    steps = np.stack([runtime.eval(ids[i:i + 1]) for i in range(16, 24)])
    np.testing.assert_array_equal(steps, full[16:])
    runtime.reset()
    assert runtime.n_past == 0
    np.testing.assert_array_equal(runtime.eval(ids[:5]), full[4])


def test_runtime_errors(runtime):
    from edgekit.errors import EdgekitError

    runtime.reset()
    with pytest.raises(EdgekitError, match="outside the vocabulary"):
        runtime.eval([1, 10 ** 6])
    with pytest.raises(EdgekitError, match="KV cache holds 512"):
        runtime.eval(np.zeros(513, np.int32))
    with pytest.raises(ValueError, match="truncate"):
        runtime.truncate(5)


def test_greedy_generation_matches_the_kernel_path(smollm2_artifacts):
    """32 greedy tokens through the KV cache: the runtime and the PyTorch kernel path (transformers' cache, the
    runtime's numerics) generate the same tokens for every prompt."""
    from edgekit.eval.generate import generate

    path = str(smollm2_artifacts["w4a8"].path)
    for prompt in ("The capital of France is", "def fibonacci(n):", "Once upon a time", "The three primary colors are"):
        a = generate(path, prompt, 32, stream=False, engine="runtime")["new_token_ids"]
        b = generate(path, prompt, 32, stream=False, engine="kernels")["new_token_ids"]
        assert a == b, (prompt, a, b)
