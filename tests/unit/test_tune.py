"""Block-wise rounding / scale tuning (edgekit.quant.tune) on a tiny random Llama: it starts exactly at GPTQ's
result, lowers every block's reconstruction error, and leaves valid Q4_0 weights; the recipe key is strict."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from tiny_llama import tiny_model

from edgekit.config import AgileQuantConfig, TuneConfig, WeightConfig, from_dict
from edgekit.errors import EdgekitError
from edgekit.models.families import LLAMA
from edgekit.quant.api import quantize_
from edgekit.quant.modules import QLinear


def w4a8(iters=0, **tune):
    return from_dict(AgileQuantConfig, {
        "weight": {"bits": 4, "group_size": 32, "method": "gptq", "hessian_shrink": 0.9, "scale_search": True,
                   "weighted_search": True, "tune": {"iters": iters, **tune}},
        "activation": {"bits": 8, "granularity": "per_block"}})


@pytest.fixture(scope="module")
def ids():
    return torch.randint(0, 96, (8, 32), generator=torch.Generator().manual_seed(1))


def _qlinears(model):
    return {n: m for n, m in model.named_modules() if isinstance(m, QLinear)}


@pytest.mark.parametrize("target,loss", [("float", "mse"), ("local", "relative")])
def test_tuning_lowers_each_blocks_error_and_keeps_q4_0(ids, target, loss):
    base, tuned = tiny_model(), tiny_model()
    quantize_(base, w4a8(), family=LLAMA, calib_ids=ids, batch_size=4, progress=False)
    rep = quantize_(tuned, w4a8(iters=20, samples=4, seqlen=16, target=target, loss=loss), family=LLAMA, calib_ids=ids,
                    batch_size=4, progress=False)
    assert len(rep["tune"]) == 2
    for t in rep["tune"]:
        assert t["loss"] < 0.9 * t["loss0"], t  # clearly lower than GPTQ's on the tuning windows
        assert t["best_iter"] > 0
    changed = 0
    qb, qt = _qlinears(base), _qlinears(tuned)
    assert qb.keys() == qt.keys() and len(qt) == 14
    for name, lin in qt.items():
        qw = lin.qweight
        assert qw.codes.dtype == np.uint8 and qw.codes.min() >= 0 and qw.codes.max() <= 15  # signed [-8, 7]
        assert qw.scales.dtype == np.float16 and np.isfinite(qw.scales).all()
        assert qw.bits == 4 and qw.group_size == 32 and qw.mins is None
        assert qw.codes.shape == qb[name].qweight.codes.shape and qw.scales.shape == qb[name].qweight.scales.shape
        assert torch.equal(lin.weight, qw.dequantize())  # the fake-quant buffer is what is stored
        assert not hasattr(lin.__dict__, "forward") and "forward" not in lin.__dict__
        changed += int((qw.codes != qb[name].qweight.codes).sum())
    assert changed > 0
    # GGUF Q4_0 packing of the tuned codes round-trips
    from edgekit.quant import formats
    qw = next(iter(qt.values())).qweight
    assert np.array_equal(formats.unpack_int4(formats.pack_int4(qw.codes, 32), 32), qw.codes)


def test_tuning_starts_at_gptqs_weights(ids):
    """v = 0, m = 1 rebuilds GPTQ's codes and scales exactly (the updated weights round to them)."""
    from edgekit.quant.tune import _Tunable

    m = tiny_model()
    rep = {}
    from edgekit.quant import agile

    orig = agile.tune.tune_block

    def check(block, lins, *a, **k):
        for lin, upd in lins.values():
            t = _Tunable(lin, upd)
            with torch.no_grad():
                assert torch.equal(t.weight(), lin.weight)
        rep["n"] = len(lins)
        return orig(block, lins, *a, **k)

    agile.tune.tune_block = check
    try:
        quantize_(m, w4a8(iters=1), family=LLAMA, calib_ids=ids, batch_size=4, progress=False)
    finally:
        agile.tune.tune_block = orig
    assert rep["n"] == 7


def test_tuning_off_is_the_default_and_keeps_gptq(ids):
    a, b = tiny_model(), tiny_model()
    quantize_(a, w4a8(), family=LLAMA, calib_ids=ids, batch_size=4, progress=False)
    rep = quantize_(b, copy.deepcopy(w4a8()), family=LLAMA, calib_ids=ids, batch_size=4, progress=False)
    assert "tune" not in rep
    assert WeightConfig().tune.iters == 0
    for (na, la), (nb, lb) in zip(_qlinears(a).items(), _qlinears(b).items()):
        assert np.array_equal(la.qweight.codes, lb.qweight.codes)


def test_tune_config_is_strict():
    with pytest.raises(EdgekitError, match="unknown key 'iter'.*allowed"):
        from_dict(AgileQuantConfig, {"weight": {"tune": {"iter": 5}}})
    with pytest.raises(EdgekitError, match="Q4_0"):
        WeightConfig(bits=8, tune=TuneConfig(iters=5))
    with pytest.raises(EdgekitError, match="target"):
        TuneConfig(target="both")
    with pytest.raises(EdgekitError, match="tune loss"):
        TuneConfig(loss="mae")
    with pytest.raises(EdgekitError, match="scale_range"):
        TuneConfig(scale_range=1.5)
    cfg = w4a8(iters=50, lr=0.01)
    assert cfg.weight.tune == TuneConfig(iters=50, lr=0.01) and cfg.weight.tune.step == 0.01
    assert TuneConfig(iters=50).step == pytest.approx(0.02)
    from edgekit.config import to_dict
    assert from_dict(AgileQuantConfig, to_dict(cfg)) == cfg  # the artifact's recipe round-trips


def test_window_heads_are_exact_for_a_causal_block(ids):
    """A window's first T tokens, with the block's arguments cut to T, give the full window's first T outputs."""
    from edgekit.quant.calibrate import capture_block_inputs
    from edgekit.quant.tune import block_outputs, gather_windows, pick_windows

    m = tiny_model()
    inputs, kwargs = capture_block_inputs(m, LLAMA, ids, 4)
    picks = pick_windows(inputs, 3)
    assert picks == [(0, 0), (1, 0), (1, 3)]  # windows 0, 4, 7 of 8
    block = m.model.layers[0]
    full = block_outputs(block, *gather_windows(inputs, kwargs, picks))
    head = block_outputs(block, *gather_windows(inputs, kwargs, picks, seqlen=12))
    for f, h in zip(full, head):
        assert h.shape[1] == 12
        torch.testing.assert_close(h, f[:, :12], rtol=1e-5, atol=1e-6)


def test_tuning_with_minibatches_and_held_out_windows(ids):
    m = tiny_model()
    rep = quantize_(m, w4a8(iters=10, samples=5, batch=2, seqlen=16, holdout=2), family=LLAMA, calib_ids=ids,
                    batch_size=4, progress=False)
    for t in rep["tune"]:
        assert t["held"] <= t["held0"]  # the kept iterate is the best on the held-out windows (GPTQ's included)
    assert any(t["held"] < t["held0"] for t in rep["tune"])


def test_norm_tuning_stays_in_range_and_lowers_the_error(ids):
    """norm_range tunes the feeding norms' weights within their range of the float values; 0 leaves them."""
    base, tuned = tiny_model(), tiny_model()
    w0 = {n: p.detach().clone() for n, p in base.named_parameters() if "layernorm" in n}
    assert len(w0) == 4  # two blocks: input_layernorm, post_attention_layernorm
    quantize_(base, w4a8(iters=10, samples=4, seqlen=16), family=LLAMA, calib_ids=ids, batch_size=4, progress=False)
    rep = quantize_(tuned, w4a8(iters=10, samples=4, seqlen=16, norm_range=0.1), family=LLAMA, calib_ids=ids,
                    batch_size=4, progress=False)
    moved = 0
    for name, p in base.named_parameters():
        if name in w0:
            assert torch.equal(p, w0[name])  # without norm_range the norms are untouched
    for name, p in tuned.named_parameters():
        if name in w0:
            lo = torch.minimum(w0[name] * 0.9, w0[name] * 1.1)
            hi = torch.maximum(w0[name] * 0.9, w0[name] * 1.1)
            assert bool(((p >= lo - 1e-6) & (p <= hi + 1e-6)).all()) and not p.requires_grad
            moved += int((p != w0[name]).sum())
    assert moved > 0
    for t in rep["tune"]:
        assert t["loss"] < t["loss0"]
    with pytest.raises(EdgekitError, match="norm_range"):
        TuneConfig(norm_range=1.0)
