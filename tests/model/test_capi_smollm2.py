"""The C API (libedgekit.so through ctypes, tests/capi_util.py) on the session's real quantized SmolLM2 (conftest),
against the Python-built engine (edgekit._C) of the same build; tests/engines/test_capi.py covers the rest on
synthetic artifacts."""

from __future__ import annotations

import numpy as np
import pytest

import capi_util as cu

native = cu.source_module("edgekit.runtime.native")


@pytest.fixture(scope="module")
def lib():
    return native.load_library()


def test_real_smollm2_logits_equal_the_python_built_engine(smollm2_artifacts, lib):
    """Needs the main build: the session's quantized SmolLM2 (conftest) loaded by the C loader and by the Python
    loader (edgekit.runtime.engine → edgekit._C.LlamaRuntime) runs the same C++ engine on the same bytes."""
    from edgekit.runtime.engine import Runtime

    path = smollm2_artifacts["agile-w4a8"].path
    rt = Runtime.from_torch(path, max_ctx=64)
    ids = rt.tokenizer.encode("The capital of France is")
    want = rt.eval(ids, all_logits=True)
    with cu.Model(lib, path, max_ctx=64) as m:
        assert lib.ek_n_vocab(m.h) == want.shape[1]
        np.testing.assert_array_equal(m.eval(ids, all_logits=True), want)
        np.testing.assert_array_equal(m.decode(int(want[-1].argmax())), rt.eval([int(want[-1].argmax())]))
