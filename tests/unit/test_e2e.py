"""End-to-end scale / norm tuning (edgekit.quant.e2e) on a tiny random Llama: it lowers the KL to the float model,
changes only fp16 scales and norm weights (the codes stay the block quantizer's), leaves valid Q4_0 weights and a
model with nothing left trainable; the recipe key is strict and refused where it cannot run."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from tiny_llama import tiny_model

from edgekit.config import AgileQuantConfig, E2EConfig, from_dict
from edgekit.errors import EdgekitError
from edgekit.models.families import LLAMA
from edgekit.quant.api import quantize_
from edgekit.quant.e2e import kl_to_teacher
from edgekit.quant.modules import QLinear


def w4a8(**e2e):
    return from_dict(AgileQuantConfig, {
        "weight": {"bits": 4, "group_size": 32, "method": "gptq", "hessian_shrink": 0.9, "scale_search": True,
                   "weighted_search": True},
        "activation": {"bits": 8, "granularity": "per_block"}, "lm_head_bits": 8, "lm_head_act_bits": 8,
        "e2e": e2e})


@pytest.fixture(scope="module")
def ids():
    return torch.randint(0, 96, (8, 32), generator=torch.Generator().manual_seed(1))


def _kl(model, teacher, ids):
    with torch.no_grad():
        return float(kl_to_teacher(model(ids).logits, teacher(ids).logits))


def test_e2e_lowers_the_kl_and_changes_only_scales_and_norms(ids):
    float_model = tiny_model()
    base, tuned = copy.deepcopy(float_model), copy.deepcopy(float_model)
    quantize_(base, w4a8(), family=LLAMA, calib_ids=ids, batch_size=4, progress=False)
    rep = quantize_(tuned, w4a8(steps=30, lr=1e-2, batch=2, seqlen=24), family=LLAMA, calib_ids=ids, batch_size=4,
                    progress=False)
    assert rep["e2e"]["steps"] == 30 and rep["e2e"]["kl_last"] < rep["e2e"]["kl_first"]
    assert _kl(tuned, float_model, ids) < 0.8 * _kl(base, float_model, ids)
    qb = {n: m for n, m in base.named_modules() if isinstance(m, QLinear)}
    qt = {n: m for n, m in tuned.named_modules() if isinstance(m, QLinear)}
    assert qb.keys() == qt.keys() and len(qt) == 14
    scales_moved = 0
    for name, lin in qt.items():
        qw = lin.qweight
        assert np.array_equal(qw.codes, qb[name].qweight.codes)  # the codes are the block quantizer's
        assert qw.scales.dtype == np.float16 and np.isfinite(qw.scales).all() and qw.mins is None
        assert torch.equal(lin.weight, qw.dequantize())  # the fake-quant buffer is what is stored
        assert "forward" not in lin.__dict__
        scales_moved += int((qw.scales != qb[name].qweight.scales).sum())
    assert scales_moved > 0
    norms = [n for n, _ in tuned.named_parameters() if n.endswith("norm.weight")]
    assert "model.norm.weight" in norms and len(norms) == 5
    sd_b, sd_t = base.state_dict(), tuned.state_dict()
    assert any(not torch.equal(sd_b[n], sd_t[n]) for n in norms)
    assert torch.equal(sd_b["model.embed_tokens.weight"], sd_t["model.embed_tokens.weight"])  # the Q8_0 table
    assert not any(p.requires_grad for p in tuned.parameters())


def test_e2e_without_norms_keeps_them(ids):
    float_model = tiny_model()
    tuned = copy.deepcopy(float_model)
    base = copy.deepcopy(float_model)
    quantize_(base, w4a8(), family=LLAMA, calib_ids=ids, batch_size=4, progress=False)
    quantize_(tuned, w4a8(steps=5, lr=1e-2, seqlen=24, norms=False), family=LLAMA, calib_ids=ids, batch_size=4,
              progress=False)
    for n, p in tuned.named_parameters():
        if n.endswith("norm.weight"):
            assert torch.equal(p, dict(base.named_parameters())[n])


def test_e2e_off_is_the_default():
    assert AgileQuantConfig().e2e == E2EConfig() and E2EConfig().steps == 0
    assert "+e2e" in w4a8(steps=1).describe() and "+e2e" not in w4a8().describe()


def test_e2e_config_is_strict():
    with pytest.raises(EdgekitError, match="e2e steps"):
        w4a8(steps=-1)
    with pytest.raises(EdgekitError, match="e2e lr"):
        w4a8(steps=1, lr=0)
    with pytest.raises(EdgekitError, match="seqlen"):
        w4a8(steps=1, seqlen=1)
    with pytest.raises(EdgekitError, match="stepz"):
        w4a8(stepz=1)
    with pytest.raises(EdgekitError, match="Q4_0"):
        from_dict(AgileQuantConfig, {"weight": {"bits": 8}, "e2e": {"steps": 1}})


def test_e2e_refuses_an_encoder(ids):
    from edgekit.models.families import BERT
    with pytest.raises(EdgekitError, match="causal LM"):
        quantize_(torch.nn.Module(), w4a8(steps=1), family=BERT, calib_ids=ids, progress=False)
