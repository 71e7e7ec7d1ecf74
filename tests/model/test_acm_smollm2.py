"""ACM conversion of the real SmolLM2-135M: before any training, k = N (the fresh gates' choice, a forced k = N, and
the dense mode) gives the dense model's logits; the directory round trip keeps them."""

from __future__ import annotations

import copy

import torch

from edgekit.acm.modules import acm_modules, set_mode
from edgekit.config import AcmConfig, AcmPhaseConfig
from edgekit.quant.api import quantize_


def test_k_equal_n_is_the_dense_smollm2(smollm2, eval_ids, tmp_path):
    from edgekit import data
    from edgekit.acm.store import load_acm, save_acm

    window = eval_ids[0, :64][None]
    with torch.no_grad():
        ref = smollm2.model(input_ids=window, use_cache=False).logits
    model = copy.deepcopy(smollm2.model)  # the session's model stays dense
    cfg = AcmConfig(phase1=AcmPhaseConfig(steps=0), phase2=AcmPhaseConfig(steps=0), phase3=AcmPhaseConfig(steps=0))
    calib = data.calibration_windows(smollm2.tokenizer, None, 2, 64, 0)
    rep = quantize_(model, cfg, family=smollm2.family, calib_ids=calib, progress=False)
    acms = acm_modules(model)
    assert len(acms) == smollm2.config.num_hidden_layers and rep["learner_width"] == 192
    for mode, k in (("gated", None), ("gated", 8), ("dense", None)):
        set_mode(model, mode, force_k=k)
        with torch.no_grad():
            got = model(input_ids=window, use_cache=False).logits
        torch.testing.assert_close(got, ref, atol=2e-3, rtol=1e-4)
    # fewer learners really change the output (the comparison above can fail)
    set_mode(model, "gated", force_k=4)
    with torch.no_grad():
        assert (model(input_ids=window, use_cache=False).logits - ref).abs().max() > 1e-2
    set_mode(model, "gated")
    out = save_acm(tmp_path / "acm", model, smollm2.tokenizer, family="llama", config=cfg, source="smollm2-135m",
                   report=rep)
    back = load_acm(out)
    with torch.no_grad():
        torch.testing.assert_close(back.model(input_ids=window, use_cache=False).logits, ref, atol=2e-3, rtol=1e-4)
    assert back.tokenizer.encode("The capital of France") == smollm2.tokenizer.encode("The capital of France")
