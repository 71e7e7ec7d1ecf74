"""GGUF export (edgekit/export/gguf.py) without a model: the Q/K row permutation, the Q8_0 blocks, the refusal of a
file that is not an artifact. The export of the real SmolLM2 artifact is tests/model/test_export_gguf.py."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gguf", reason="the gguf package is not installed (pip install edgekit[export])")

import capi_util as cu  # noqa: E402
import gguf  # noqa: E402

from edgekit.errors import EdgekitError  # noqa: E402

gg = cu.source_module("edgekit.export.gguf")


def test_permutation_is_convert_hf_to_gguf():
    # convert_hf_to_gguf.py LlamaModel.permute, verbatim
    def permute(w, n_head):
        return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

    w = np.random.default_rng(0).standard_normal((192, 8))
    assert np.array_equal(w[gg.llama_permute_rows(192, 3)], permute(w, 3))
    with pytest.raises(EdgekitError, match="rotary pairs"):
        gg.llama_permute_rows(190, 3)


def test_q8_0_matches_ggml_except_ties():
    x = np.random.default_rng(1).standard_normal((8, 96)).astype(np.float32) * 3
    x[0, :32] = 0.0  # an all-zero block: scale 0, codes 0
    ours = gg.q8_0_blocks(x)
    ref = gguf.quants.quantize(x, gguf.GGMLQuantizationType.Q8_0)  # ggml's rule (ties away from zero)
    assert ours.shape == ref.shape == (8, 3 * 34)
    assert np.array_equal(ours, ref)  # random data has no exact .5 ties
    y = _deq_bytes(ours, gguf.GGMLQuantizationType.Q8_0)
    d = np.abs(x.reshape(-1, 32)).max(1) / 127  # half a step, plus the fp16 rounding of the stored scale * 127
    assert (np.abs(y - x).reshape(-1, 32) <= d[:, None] * 0.6 + 1e-6).all()


def _deq_bytes(b, qtype):
    return gguf.quants.dequantize(b, qtype)


def test_not_an_artifact(tmp_path):
    p = tmp_path / "x.txt"
    p.write_text("hello")
    with pytest.raises(EdgekitError, match="not an edgekit artifact"):
        gg.export_gguf(str(p), tmp_path / "x.gguf")
    with pytest.raises(EdgekitError, match="only 16"):
        gg.export_gguf(str(p), tmp_path / "x.gguf", bits=8)
