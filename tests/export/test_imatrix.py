"""edgekit imatrix: the statistics it collects, and llama.cpp's GGUF imatrix layout written and read back."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gguf", reason="the gguf package is not installed (pip install edgekit[export])")

import gguf  # noqa: E402
import torch  # noqa: E402

from edgekit.errors import EdgekitError  # noqa: E402
from edgekit.export.gguf import gguf_linear_name  # noqa: E402
from edgekit.export.imatrix import Imatrix, compute_imatrix, read_imatrix, write_imatrix  # noqa: E402
from edgekit.models import load_model  # noqa: E402
from edgekit.models.families import get_family  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tiny_llama_dir):
    lm = load_model(str(tiny_llama_dir))
    ids = torch.randint(0, lm.config.vocab_size, (3, 16), generator=torch.Generator().manual_seed(0))
    return lm, get_family(lm.family), ids


def test_sums_are_the_inputs_squared(tiny):
    lm, fam, ids = tiny
    seen = {}
    block1 = fam.layers(lm.model)[1]
    h = block1.get_submodule("mlp.down_proj").register_forward_pre_hook(
        lambda m, a: seen.setdefault("x", []).append(a[0].detach().reshape(-1, a[0].shape[-1]).double()))
    try:
        im = compute_imatrix(lm.model, fam, ids, batch_size=2, progress=False)  # two batches: sums must add up
    finally:
        h.remove()
    x = torch.cat(seen["x"])
    name = gguf_linear_name(1, "mlp.down_proj")
    np.testing.assert_allclose(im.sums[name], (x * x).sum(0).numpy(), rtol=1e-6)
    assert im.counts[name] == 3 * 16
    assert len(im.sums) == 2 * len(fam.linears())
    q, k, v = (im.sums[gguf_linear_name(0, n)] for n in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"))
    np.testing.assert_array_equal(q, k)  # one input, one statistic
    np.testing.assert_array_equal(q, v)
    assert (im.chunk_count, im.chunk_size) == (3, 16)


def test_gguf_layout_round_trip(tiny, tmp_path):
    lm, fam, ids = tiny
    im = compute_imatrix(lm.model, fam, ids, progress=False)
    im.datasets = ["calib.txt"]
    path = write_imatrix(tmp_path / "im.gguf", im)
    r = gguf.GGUFReader(str(path))
    assert r.fields["general.type"].contents() == "imatrix"
    assert r.fields["imatrix.datasets"].contents() == ["calib.txt"]
    assert (r.fields["imatrix.chunk_count"].contents(), r.fields["imatrix.chunk_size"].contents()) == (3, 16)
    t = {x.name: x for x in r.tensors}
    name = gguf_linear_name(0, "mlp.gate_proj")
    assert list(t[f"{name}.in_sum2"].shape) == [64, 1] and list(t[f"{name}.counts"].shape) == [1, 1]
    assert float(t[f"{name}.counts"].data.reshape(-1)[0]) == 48.0
    means = read_imatrix(path)
    assert set(means) == set(im.sums)
    for k, s in im.sums.items():
        np.testing.assert_allclose(means[k], s / 48.0, rtol=1e-6)
    assert not list(tmp_path.glob(".*tmp"))  # written through a temporary file, renamed into place


def test_bad_files(tmp_path):
    with pytest.raises(EdgekitError, match="not found"):
        read_imatrix(tmp_path / "missing.gguf")
    (tmp_path / "x.dat").write_bytes(b"\x00" * 64)
    with pytest.raises(EdgekitError, match="legacy"):
        read_imatrix(tmp_path / "x.dat")
    bad = Imatrix({"blk.0.attn_q.weight": np.array([1.0, np.nan], np.float32)}, {"blk.0.attn_q.weight": 2})
    write_imatrix(tmp_path / "nan.gguf", bad)
    with pytest.raises(EdgekitError, match="non-finite"):
        read_imatrix(tmp_path / "nan.gguf")
    with pytest.raises(EdgekitError, match="not a Llama block linear"):
        gguf_linear_name(0, "lm_head")
