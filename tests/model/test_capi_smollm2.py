"""The C API (libedgekit.so through ctypes, tests/capi_util.py) on the session's real quantized SmolLM2 (conftest),
against the kernel path (the PyTorch loader with the runtime's numerics); tests/engines/test_capi.py covers the rest on
synthetic artifacts."""

from __future__ import annotations

import numpy as np
import pytest

import capi_util as cu

native = cu.source_module("edgekit.native.capi")


@pytest.fixture(scope="module")
def lib():
    return native.load_library()


def test_real_smollm2_logits_equal_the_kernel_path(smollm2_artifacts, lib):
    """Needs the main build: the session's quantized SmolLM2 (conftest) loaded by the C loader through the C API, and
    by the PyTorch loader running the kernel path (the runtime's numerics), gives the same bits for a prompt and for
    the decode step after it."""
    import torch

    from edgekit.engines.kernels import use_kernels
    from edgekit.quant.serialize import load_artifact_model

    path = smollm2_artifacts["w4a8"].path
    lm, _ = load_artifact_model(path)
    use_kernels(lm.model)

    def kernel_path(ids: list[int]) -> np.ndarray:
        with torch.no_grad():
            return lm.model(input_ids=torch.tensor([ids]), use_cache=False).logits[0].float().numpy()

    ids = lm.tokenizer.encode("The capital of France is")
    want = kernel_path(ids)
    nxt = int(want[-1].argmax())
    with cu.Model(lib, path, max_ctx=64) as m:
        assert lib.ek_n_vocab(m.h) == want.shape[1]
        np.testing.assert_array_equal(m.eval(ids, all_logits=True), want)
        np.testing.assert_array_equal(m.decode(nxt), kernel_path(ids + [nxt])[-1])
