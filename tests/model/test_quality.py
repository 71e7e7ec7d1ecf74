"""Model-level quality on the real shipped models (held-out text, never the calibration text)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def ppl(smollm2, smollm2_artifacts, eval_ids):
    from edgekit.eval.perplexity import perplexity
    from edgekit.quant.serialize import load_artifact_model

    out = {"reference": perplexity(smollm2.model, eval_ids, progress=False)["perplexity"]}
    for name, res in smollm2_artifacts.items():
        lm, _ = load_artifact_model(res.path)
        out[name] = perplexity(lm.model, eval_ids, progress=False)["perplexity"]
    return out


def test_edgekit_w4a8_beats_rtn_w4a8_on_smollm2(ppl):
    print(ppl)
    assert ppl["reference"] < ppl["w4a8"] < ppl["rtn-w4a8"]
    # the default recipe must recover a real share of plain RTN's loss, not merely tie it
    gap_rtn = ppl["rtn-w4a8"] - ppl["reference"]
    gap_edgekit = ppl["w4a8"] - ppl["reference"]
    assert gap_edgekit < 0.7 * gap_rtn, ppl


def test_artifact_is_self_describing(smollm2_artifacts):
    from edgekit.artifact import read_artifact
    from edgekit.config import to_dict
    from edgekit.recipes import load_recipe

    art = read_artifact(smollm2_artifacts["w4a8"].path)
    assert art.family == "llama" and art.task == "causal-lm" and art.source == "smollm2-135m"
    assert len(art.linears) == 30 * 7
    assert art.quant["weight"] == to_dict(load_recipe("w4a8").config)["weight"]  # the recipe's, with defaults
    assert art.quant["activation"]["granularity"] == "per_block"
    assert {s["act_mode"] for s in art.linears.values()} == {"per_block"}
    assert art.report["calib_source"] == ["pydoc_data.topics"]
    assert art.model_config["num_hidden_layers"] == 30


def test_minilm_w4a8_embeddings_match_fp32(tmp_path):
    from edgekit.eval.evaluate import evaluate
    from edgekit.quant.api import quantize_model
    from edgekit.recipes import default_recipe, load_recipe

    out = tmp_path / "minilm.ekq"
    # the encoder calibration defaults (512 windows x 32 tokens, framed as [CLS] ... [SEP]) are part of what is
    # tested, and so is the default recipe for encoders
    assert default_recipe("minilm-l6") == "agile-quant" and default_recipe("smollm2-135m") == "w4a8-tune"
    quantize_model("minilm-l6", load_recipe(default_recipe("minilm-l6")).config, out, progress=False)
    res = evaluate(str(out), progress=False)
    print(res["rows"])
    assert res["sentences"] >= 64
    assert res["cosine_mean"] >= 0.98, res


def test_kernel_engine_matches_fake_quant_on_smollm2(smollm2_artifacts, eval_ids, ppl):
    """The real integer path (C++ int4 x int8 kernels) scores the held-out text like the fake-quant reference."""
    from edgekit.eval.perplexity import perplexity
    from edgekit.engines.kernels import KernelLinear, use_kernels
    from edgekit.quant.serialize import load_artifact_model

    lm, _ = load_artifact_model(smollm2_artifacts["w4a8"].path)
    assert use_kernels(lm.model) == 30 * 7
    assert sum(isinstance(m, KernelLinear) for m in lm.model.modules()) == 30 * 7
    got = perplexity(lm.model, eval_ids, progress=False)["perplexity"]
    assert abs(got / ppl["w4a8"] - 1) < 0.005, (got, ppl["w4a8"])
