"""The residual-stream rotation (edgekit/quant/rotate.py) on the real SmolLM2-135M: the rotated float model gives the
original logits, and a rotated artifact (norm weights of 1, an untied Q8_0 head) runs the same in the C++ runtime as
in the kernel path, and in llama.cpp through the GGUF export as the unrotated export does (tests/model/
test_export_gguf.py's tolerances). The artifact is quantized with the importance-weighted RTN of ``w4a8`` (GPTQ off)
on few windows: what is tested is the plumbing, not the accuracy (BENCHMARKS §1 has that).
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

CTX, MAX_TOKENS = 256, 512


def test_rotated_float_smollm2_gives_the_same_logits(smollm2, eval_ids):
    from edgekit.models.families import LLAMA
    from edgekit.quant.rotate import rotate_model

    model = copy.deepcopy(smollm2.model)
    ids = eval_ids[:1, :256]
    with torch.no_grad():
        ref = smollm2.model(input_ids=ids).logits
        rotate_model(model, LLAMA, "hadamard")
        got = model(input_ids=ids).logits
    assert (got - ref).abs().max() < 1e-4 * ref.abs().max()
    assert (got.argmax(-1) == ref.argmax(-1)).float().mean() > 0.99
    assert model.config.tie_word_embeddings is False and smollm2.model.config.tie_word_embeddings is True


@pytest.fixture(scope="module")
def rotated(tmp_path_factory):
    from edgekit.quant.api import quantize_model
    from edgekit.recipes import load_recipe

    base = load_recipe("w4a8").config
    cfg = dataclasses.replace(base, rotation="hadamard", weight=dataclasses.replace(base.weight, method="rtn"))
    out = tmp_path_factory.mktemp("rot-smollm2") / "rot.ekq"
    quantize_model("smollm2-135m", cfg, out, calib_samples=8, calib_seqlen=128, progress=False)
    return out


@pytest.fixture(scope="module")
def runtime(rotated):
    from edgekit.engines.runtime import Runtime

    return Runtime.from_artifact(str(rotated), max_ctx=512)


def test_runtime_matches_the_kernel_path_on_a_rotated_artifact(rotated, runtime, eval_ids):
    from edgekit.engines.kernels import Q8Head, use_kernels
    from edgekit.quant.serialize import load_artifact_model

    lm, _ = load_artifact_model(rotated)
    use_kernels(lm.model)
    assert isinstance(lm.model.lm_head, Q8Head)
    w = eval_ids[0, :128]
    runtime.reset()
    with torch.no_grad():
        ref = lm.model(input_ids=w[None], use_cache=False).logits[0].float().numpy()
    np.testing.assert_array_equal(runtime.eval(w.numpy(), all_logits=True), ref)


def test_gguf_export_of_a_rotated_artifact(rotated, runtime, tmp_path, capsys):
    """The export writes the untied head as ``output.weight`` with the artifact's own Q8_0 codes and the folded norms
    as ones; llama.cpp's perplexity is the weight-only model's within 1 % and the runtime's within 5 %."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install edgekit[bench])")
    gguf = pytest.importorskip("gguf", reason="the gguf package is not installed (pip install edgekit[export])")
    from safetensors import safe_open

    from edgekit.bench.llamacpp_baseline import perplexity_llamacpp
    from edgekit.data import eval_windows
    from edgekit.eval.perplexity import perplexity, perplexity_of
    from edgekit.export.gguf import export_artifact_gguf, q8_0_blocks
    from edgekit.quant.modules import QLinear
    from edgekit.quant.serialize import load_artifact_model

    res = export_artifact_gguf(str(rotated), tmp_path / "rot.gguf")
    tensors = {t.name: t for t in gguf.GGUFReader(res["path"]).tensors}
    with safe_open(str(rotated), framework="numpy") as f:
        head = f.get_tensor("lm_head.weight")
    assert tensors["output.weight"].tensor_type == gguf.GGMLQuantizationType.Q8_0
    assert np.asarray(tensors["output.weight"].data).tobytes() == q8_0_blocks(head).tobytes()
    assert np.array_equal(np.asarray(tensors["output_norm.weight"].data), np.ones(head.shape[1], np.float32))

    windows = eval_windows(runtime.tokenizer, ctx=CTX, max_tokens=MAX_TOKENS)
    llama = perplexity_llamacpp(res["path"], windows, threads=1, progress=False)

    def rt_logits(w):
        runtime.reset()
        return torch.from_numpy(runtime.eval(w.numpy(), all_logits=True))

    rt = perplexity_of(rt_logits, windows, progress=False)
    lm, _ = load_artifact_model(rotated)
    for m in lm.model.modules():  # the weight-only model: what llama.cpp's Q8_0 activations and ours approximate
        if isinstance(m, QLinear):
            m.act_bits = 16
    w16 = perplexity(lm.model, windows, progress=False)
    gap_w16, gap_rt = llama["perplexity"] / w16["perplexity"] - 1, llama["perplexity"] / rt["perplexity"] - 1
    with capsys.disabled():
        print(f"\n[rotated gguf export] llama.cpp {llama['perplexity']:.3f}, runtime {rt['perplexity']:.3f} "
              f"({gap_rt:+.2%}), weight-only torch {w16['perplexity']:.3f} ({gap_w16:+.2%})")
    assert abs(gap_w16) < 0.01 and abs(gap_rt) < 0.05
