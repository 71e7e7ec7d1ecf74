"""A rotated artifact (``rotation: hadamard``, edgekit/quant/rotate.py) on the tiny Llama: a plain Llama with norm
weights of 1 and an untied Q8_0 head beside a Q8_0 embedding, which the C++ runtime runs with the same bits as the
kernel path, and the fake-quant engine to int8-activation noise. The real SmolLM2 and its GGUF export are
tests/model/test_rotation_smollm2.py."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def rotated(tiny_llama_dir, tmp_path_factory):
    """The tiny Llama with a final norm far from 1 (so the untied head E·diag(w)·Q differs from the embedding E·Q),
    quantized by w4a8 with a Hadamard rotation."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    from edgekit.quant.api import quantize_model
    from edgekit.recipes import load_recipe

    d = tmp_path_factory.mktemp("rot")
    model = LlamaForCausalLM.from_pretrained(tiny_llama_dir)
    with torch.no_grad():
        model.model.norm.weight.uniform_(0.2, 4.0, generator=torch.Generator().manual_seed(5))
    model.save_pretrained(d / "src")
    AutoTokenizer.from_pretrained(tiny_llama_dir).save_pretrained(d / "src")
    cfg = dataclasses.replace(load_recipe("w4a8").config, rotation="hadamard")
    quantize_model(str(d / "src"), cfg, d / "rot.ekq", calib_samples=4, calib_seqlen=64, progress=False)
    return d / "rot.ekq"


def test_rotated_artifact_is_a_plain_untied_llama(rotated):
    from safetensors import safe_open

    from edgekit.artifact import read_artifact
    from edgekit.quant.formats import dequantize_q8_0, quantize_q8_0

    art = read_artifact(rotated)
    assert art.model_config["tie_word_embeddings"] is False and art.quant["rotation"] == "hadamard"
    with safe_open(str(rotated), framework="numpy") as f:
        for key in f.keys():
            if key.endswith("norm.weight"):
                assert np.array_equal(f.get_tensor(key), np.ones_like(f.get_tensor(key))), key
        emb, head = f.get_tensor("model.embed_tokens.weight"), f.get_tensor("lm_head.weight")
    assert not np.array_equal(emb, head)
    for table in (emb, head):  # both on the Q8_0 grid: every engine and the GGUF export recover the same codes
        assert np.array_equal(dequantize_q8_0(*quantize_q8_0(table)), table)


def test_runtime_runs_the_rotated_artifact_bit_exact(rotated):
    """The C++ loader's two Q8_0 tables (embedding, untied head) against the kernel path, bit for bit (the kernel
    path's head is the artifact's lm_head.weight, which differs from the embedding, so a runtime that fell back to the
    tied table would fail); the fake-quant engine agrees to the int8 activations' rounding."""
    from edgekit.engines.kernels import Q8Head, use_kernels
    from edgekit.engines.runtime import Runtime
    from edgekit.quant.serialize import load_artifact_model

    ids = torch.randint(0, 1000, (48,), generator=torch.Generator().manual_seed(3))
    lm, _ = load_artifact_model(rotated)
    with torch.no_grad():
        fake = lm.model(input_ids=ids[None], use_cache=False).logits[0].float().numpy()
    use_kernels(lm.model)
    assert isinstance(lm.model.lm_head, Q8Head)
    with torch.no_grad():
        ref = lm.model(input_ids=ids[None], use_cache=False).logits[0].float().numpy()
    rt = Runtime.from_artifact(rotated, max_ctx=64)
    got = rt.eval(ids.numpy(), all_logits=True)
    np.testing.assert_array_equal(got, ref)
    assert np.abs(got - fake).max() < 0.05 * np.abs(fake).max()
    assert (got.argmax(-1) == fake.argmax(-1)).mean() > 0.9

