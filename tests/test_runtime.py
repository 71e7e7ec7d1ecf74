"""The C++ runtime engine (csrc/runtime/llama.cpp) against the PyTorch kernel path of the same SmolLM2 artifact."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def runtime(smollm2_artifacts):
    from edgekit.runtime.engine import Runtime

    return Runtime.from_artifact(smollm2_artifacts["agile-w4a8"].path, max_ctx=512)


@pytest.fixture(scope="module")
def kernel_model(smollm2_artifacts):
    from edgekit.quant.kernel_linear import use_kernels
    from edgekit.quant.restore import load_artifact_model

    lm, _ = load_artifact_model(smollm2_artifacts["agile-w4a8"].path)
    use_kernels(lm.model)
    return lm.model


def _nll(logits: np.ndarray, ids: torch.Tensor) -> float:
    return float(torch.nn.functional.cross_entropy(torch.from_numpy(logits[:-1]), ids[1:], reduction="sum"))


def test_runtime_matches_the_kernel_path(runtime, kernel_model, eval_ids):
    """Same integer matmuls, float ops in another order (fp16 tables and KV cache): over 2048 positions perplexity
    within 0.5 %, most top-1 tokens equal.

    int8 activations make the top-1 agreement chaotic: a last-bit difference moves a code across a rounding boundary
    and 30 layers amplify it (transformers' own SDPA vs eager attention agreed on 93.6 % of 512 positions of a
    per-token artifact; 96.4 % here with per-block activations), so the bar is 90 %. Over 2 x 512 positions the
    perplexity gap of one session's artifact was -0.55 % where 8 x 512 gave +0.07 %: 4 x 512 it is."""
    nll_rt = nll_pt = 0.0
    agree = total = 0
    for w in eval_ids[:4]:  # 4 × 512 positions: fewer let single int8 rounding flips decide
        runtime.reset()
        a = runtime.eval(w.numpy(), all_logits=True)
        with torch.no_grad():
            b = kernel_model(input_ids=w[None], use_cache=False).logits[0].float().numpy()
        agree += int((a.argmax(-1) == b.argmax(-1)).sum())
        total += len(w)
        nll_rt += _nll(a, w)
        nll_pt += _nll(b, w)
    n = total - 2
    ppl_rt, ppl_pt = np.exp(nll_rt / n), np.exp(nll_pt / n)
    print(f"runtime ppl {ppl_rt:.4f}, kernel path {ppl_pt:.4f}, top-1 agreement {agree / total:.3f}")
    assert abs(ppl_rt / ppl_pt - 1) < 0.005, (ppl_rt, ppl_pt)
    assert agree / total >= 0.90, agree / total


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
    """Greedy decoding through the cache follows the PyTorch kernel path. Not all 32 tokens: a near-tie between two
    tokens can flip with the float summation order (fp16 tables and int8 activation codes amplify it), as it does
    between transformers' own SDPA and eager attention. Every prompt must agree on its first 4 tokens, most on 8."""
    from edgekit.generate import generate

    path = str(smollm2_artifacts["agile-w4a8"].path)
    prefixes = []
    for prompt in ("The capital of France is", "def fibonacci(n):", "Once upon a time", "The three primary colors are"):
        a = generate(path, prompt, 32, stream=False, engine="runtime")["new_token_ids"]
        b = generate(path, prompt, 32, stream=False, engine="kernels")["new_token_ids"]
        n = min(len(a), len(b))
        prefixes.append(next((i for i in range(n) if a[i] != b[i]), n))
        assert n >= 8, (prompt, a, b)
    print("identical greedy prefixes:", prefixes)
    assert min(prefixes) >= 4, prefixes
    assert sum(p >= 8 for p in prefixes) >= 3, prefixes