"""Quantization algorithms on tiny and synthetic inputs: GPTQ, TRIP factors, AWQ's search, attention quantizers,
configs. The same algorithms on the real SmolLM2 and MiniLM are tests/model/test_quant_real.py."""

from __future__ import annotations

import pytest
import torch

from edgekit.config import ActivationConfig, AgileQuantConfig, WeightConfig, from_dict
from edgekit.errors import EdgekitError
from edgekit.quant.gptq import HessianAccumulator, gptq_quantize


def test_channel_mean_squares_is_the_hessian_diagonal():
    from edgekit.quant.gptq import ChannelMeanSquares

    torch.manual_seed(0)
    full, diag = HessianAccumulator(96), ChannelMeanSquares(96)
    for t in (5, 300, 17):  # batches of different sizes: both keep a running mean
        x = torch.randn(2, t, 96) * torch.logspace(-2, 1, 96)
        full.add(x)
        diag.add(x)
    torch.testing.assert_close(diag.diagonal(), full.diagonal(), rtol=1e-5, atol=0)


def test_per_block_activation_fake_quant_matches_the_kernel_quantizer():
    """fake_quant_per_block is the per-row rule on every 32 values: the codes and scales of
    formats.quantize_blocks_q8 (GGUF Q8_0's blocking), which the per-block kernels consume."""
    import numpy as np

    from edgekit.quant import formats
    from edgekit.quant.modules import fake_quant_per_block, fake_quant_per_token

    torch.manual_seed(0)
    x = torch.randn(5, 96) * torch.logspace(-3, 2, 96)  # blocks of very different magnitude
    x[1, 32:64] = 0  # an all-zero block
    q, s = formats.quantize_blocks_q8(x.numpy())
    want = (q.astype(np.float32).reshape(5, 3, 32) * s[..., None]).reshape(5, 96)
    assert torch.equal(fake_quant_per_block(x), torch.from_numpy(want))
    # a quiet block keeps its resolution next to loud ones (one scale per token rounds most of it to zero)
    quiet = slice(0, 32)
    err_b = (fake_quant_per_block(x) - x)[:, quiet].pow(2).sum()
    err_t = (fake_quant_per_token(x, 127) - x)[:, quiet].pow(2).sum()
    assert err_b < 1e-3 * err_t
    with pytest.raises(ValueError, match="multiple of 32"):
        fake_quant_per_block(torch.zeros(2, 48))


def test_hessian_shrink_spans_importance_weighted_rounding_to_gptq():
    """shrink 1 drops every cross-channel term: no error feedback, so GPTQ's codes and scales are exactly the
    importance-weighted RTN of the same diagonal; shrink 0 is plain GPTQ, and anything between lies between them on
    the calibration inputs' output error."""
    from edgekit.quant.weights import channel_importance, rtn_quantize

    torch.manual_seed(0)
    mix = torch.randn(64, 64) * 0.3 + torch.eye(64)  # correlated channels, as real activations are
    x = (torch.randn(2048, 64) @ mix) * torch.linspace(0.2, 3, 64)
    w = torch.randn(24, 64)
    acc = HessianAccumulator(64)
    acc.add(x)
    diag_only = gptq_quantize(w, acc.h, 4, 32, True, damp=0.0, weighted=True, shrink=1.0)
    rtn = rtn_quantize(w, 4, 32, True, True, importance=channel_importance(acc.diagonal(), 24))
    assert (diag_only.codes == rtn.codes).all() and (diag_only.scales == rtn.scales).all()

    def err(q):
        return float((x @ (q.dequantize() - w).T).pow(2).mean())

    errs = [err(gptq_quantize(w, acc.h, 4, 32, True, weighted=True, shrink=s)) for s in (0.0, 0.5, 1.0)]
    assert errs[0] < errs[1] < errs[2], errs
    with pytest.raises(EdgekitError, match="hessian_shrink"):
        WeightConfig(hessian_shrink=1.5)


def test_gptq_act_order_keeps_groups_in_k_order():
    torch.manual_seed(0)
    x = torch.randn(512, 64) * torch.linspace(0.1, 3, 64)
    w = torch.randn(16, 64)
    acc = HessianAccumulator(64)
    acc.add(x)
    q = gptq_quantize(w, acc.h, 4, 32, True, act_order=True)
    assert q.codes.shape == (16, 64) and q.scales.shape == (16, 2)
    assert ((q.dequantize() - w).abs().max() < w.abs().max())
    with pytest.raises(EdgekitError, match="not a multiple"):
        gptq_quantize(torch.randn(4, 48), torch.eye(48), 4, 32, True)


def test_trip_factors_pick_the_least_error_exponent():
    from edgekit.quant.trip import trip_factors

    torch.manual_seed(0)
    x = torch.randn(1000, 4) * torch.tensor([100.0, 10.0, 1.0, 0.1])
    a, s = trip_factors(x, 5)
    assert a[0] == 5 and a.tolist() == sorted(a.tolist(), reverse=True) and a[3] <= 1
    assert s == pytest.approx(float(x.abs().max()) / 127 / 32)


def test_log2_softmax_quantizer():
    from edgekit.quant.attention import log2_quantize_probs

    p = torch.tensor([0.5, 0.25, 0.2, 0.05, 1e-9, 0.0])
    allowed = torch.tensor([True, True, True, True, True, False])
    q = log2_quantize_probs(p, 4, allowed)
    assert q.tolist() == [0.5, 0.25, 0.25, 2.0 ** -4, 2.0 ** -15, 0.0]


def test_config_and_recipe_validation(tmp_path):
    from edgekit.recipes import load_recipe, parse_recipe

    with pytest.raises(EdgekitError, match="unknown key 'grup_size'.*allowed"):
        from_dict(AgileQuantConfig, {"weight": {"grup_size": 32}})
    with pytest.raises(EdgekitError, match="unknown key 'colour'"):
        parse_recipe({"name": "x", "colour": 1})
    with pytest.raises(EdgekitError, match="trip needs"):
        ActivationConfig(trip=True)
    with pytest.raises(EdgekitError, match="weight bits"):
        WeightConfig(bits=3)
    bad = tmp_path / "r.yaml"
    bad.write_text("weight: {bits: 4, method: magic}\n")
    with pytest.raises(EdgekitError, match="method"):
        load_recipe(str(bad))
    with pytest.raises(EdgekitError, match="recipe not found"):
        load_recipe("no-such-recipe")
    with pytest.raises(EdgekitError, match="weighted_search needs scale_search"):
        WeightConfig(method="rtn", weighted_search=True, scale_search=False)
    with pytest.raises(EdgekitError, match="granularity must be"):
        ActivationConfig(granularity="per_channel")
    with pytest.raises(EdgekitError, match="w4a4_ratio needs 8-bit per_token"):
        AgileQuantConfig(activation=ActivationConfig(granularity="per_block"), w4a4_ratio=0.5)
    for name in ("w4a8", "agile-quant", "agile-quant-trip", "agile-quant-w4a4", "rtn-w4a8", "w8a8"):
        assert load_recipe(name).config.weight.bits in (4, 8)


def test_awq_search_prefers_scaling_salient_channels():
    from edgekit.quant.awq import search_scales

    torch.manual_seed(0)
    x = torch.randn(1024, 64)
    x[:, :4] *= 50  # a few outlier channels, as LLM activations have
    w = torch.randn(32, 64) * 0.05
    s, alpha = search_scales(x, [w], 4, 32, True)
    assert alpha > 0 and s[:4].mean() > s[4:].mean()


def test_awq_search_through_the_hessian_scores_like_the_tokens():
    """Given the Hessian of the very tokens it samples, the search must pick what the token path picks:
    tr(D H D^T) is the tokens' summed squared output error for a weight error D, up to the factor 2/n."""
    from edgekit.quant.awq import search_scales

    torch.manual_seed(1)
    x = torch.randn(1024, 64) * torch.linspace(0.2, 6, 64)  # fewer rows than the search samples: it sees them all
    x[:, :3] *= 20
    ws = [torch.randn(32, 64) * 0.05, torch.randn(16, 64) * 0.05]
    acc = HessianAccumulator(64)
    acc.add(x)
    d = torch.randn(48, 64)
    torch.testing.assert_close(float((d @ acc.h * d).sum()), 2 / 1024 * float((x @ d.T).pow(2).sum()), rtol=1e-4,
                               atol=0)
    s_tok, a_tok = search_scales(x, ws, 4, 32, True)
    s_h, a_h = search_scales(x, ws, 4, 32, True, h=acc.h)
    assert a_tok == a_h > 0
    torch.testing.assert_close(s_tok, s_h)
    # and the Hessian is what it scores by: with isotropic inputs no channel is salient, so no exponent > 0 pays
    assert search_scales(x, ws, 4, 32, True, h=torch.eye(64))[1] != a_tok


def test_bf16_stats_hessian_is_a_gram_matrix():
    """stats_precision bf16: the Hessian stays symmetric positive semi-definite and close to the fp32 one."""
    from edgekit.quant.calibrate import matmul_precision
    from edgekit.quant.gptq import HessianAccumulator

    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 256, 96, generator=g) * torch.logspace(-2, 1, 96)  # outlier channels, as in real activations
    h32, h16 = HessianAccumulator(96), HessianAccumulator(96)
    for xb in x:
        h32.add(xb)
        with matmul_precision("bf16"):
            h16.add(xb)
    torch.testing.assert_close(h16.h, h16.h.T)
    assert torch.linalg.eigvalsh(h16.h.double()).min() > -1e-6 * h16.h.diagonal().max()
    assert ((h16.h - h32.h).norm() / h32.h.norm()) < 1e-2


def test_weighted_scale_search_minimizes_the_weighted_error():
    from edgekit.quant.weights import _ls_scale, _sq_error, fit_group_params

    torch.manual_seed(0)
    w = torch.randn(2048, 32)
    imp = torch.rand(32).pow(4) * 10  # a few input channels matter far more than the rest
    plain, _ = fit_group_params(w, 4, True, True)
    weighted, _ = fit_group_params(w, 4, True, True, imp)
    e_plain = _sq_error(w, plain[:, None], None, 4, imp)
    e_weighted = _sq_error(w, weighted[:, None], None, 4, imp)
    # every plain candidate is still tried, so no row gets worse, and most rows get better
    assert torch.all(e_weighted <= e_plain)
    assert (e_weighted < e_plain).float().mean() > 0.5 and e_weighted.sum() < 0.85 * e_plain.sum()
    # the least-squares scale is the optimum for its codes: nudging it either way only adds weighted error
    s = _ls_scale(w, plain, imp)
    q = (w / plain[:, None]).round().clamp(-8, 7)
    err = lambda d: (imp * (q * d[:, None] - w).pow(2)).sum(-1)  # noqa: E731
    assert torch.all(err(s) <= err(s * 1.01) + 1e-6) and torch.all(err(s) <= err(s * 0.99) + 1e-6)
    assert s.dtype == torch.float32 and torch.equal(s, s.half().float())
