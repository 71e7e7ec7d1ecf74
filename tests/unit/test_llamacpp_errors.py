"""llama.cpp requantization refuses bad input without a model: a missing source, a file llama.cpp cannot read. The
runs on the real SmolLM2 GGUF are tests/model/test_llamacpp.py."""

from __future__ import annotations

import pytest

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install edgekit[bench])")

from edgekit.bench.llamacpp_baseline import requantize_gguf  # noqa: E402
from edgekit.errors import EdgekitError  # noqa: E402


def test_requantize_missing_source(tmp_path):
    dst = tmp_path / "out.gguf"
    with pytest.raises(EdgekitError, match="not found"):
        requantize_gguf(str(tmp_path / "missing.gguf"), str(dst))
    assert not dst.exists()
    assert list(tmp_path.iterdir()) == []


def test_requantize_llama_cpp_failure_leaves_nothing(tmp_path):
    src = tmp_path / "junk.gguf"
    src.write_bytes(b"not a gguf file at all" * 10)
    dst = tmp_path / "out.gguf"
    with pytest.raises(EdgekitError, match="could not requantize"):
        requantize_gguf(str(src), str(dst))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.gguf"]
