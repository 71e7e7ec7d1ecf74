"""Recipe names: the shipped names, the old names as aliases with a one-line notice, and errors for unknown names."""

from __future__ import annotations

import pytest

from edgekit import recipes
from edgekit.errors import EdgekitError
from edgekit.recipes import RECIPE_ALIASES, default_recipe, list_recipes, load_recipe

SHIPPED = ["agile-quant", "agile-quant-trip", "agile-quant-w4a4", "rtn-w4a8", "w4a8", "w4a8-e2e", "w4a8-tune", "w8a8"]


def test_shipped_names_and_defaults():
    assert list_recipes() == SHIPPED
    for name in SHIPPED:
        assert load_recipe(name).name == name  # each file says its own name
    assert load_recipe(None).name == "w4a8-tune" == default_recipe(None)
    w4a8 = load_recipe("w4a8").config
    assert w4a8.weight.method == "gptq" and w4a8.weight.weighted_search and not w4a8.weight.awq
    assert 0 < w4a8.weight.hessian_shrink < 1 and w4a8.lm_head_bits == 8 and w4a8.lm_head_act_bits == 8
    assert w4a8.weight.tune.iters == 0  # block-wise tuning is the w4a8-tune recipe's (the default's)
    tuned = load_recipe("w4a8-tune").config
    assert tuned.weight.tune.iters > 0 and tuned.weight.tune.loss == "relative"
    assert tuned.weight.__class__(**{**tuned.weight.__dict__, "tune": w4a8.weight.tune}) == w4a8.weight
    assert w4a8.e2e.steps == 0  # end-to-end tuning is the w4a8-e2e recipe's
    e2e = load_recipe("w4a8-e2e").config
    assert e2e.e2e.steps > 0 and e2e.__class__(**{**e2e.__dict__, "e2e": w4a8.e2e}) == w4a8
    assert load_recipe("agile-quant").config.weight.method == "gptq"
    assert load_recipe("agile-quant").config.activation.granularity == "per_token"


@pytest.mark.parametrize("old", sorted(RECIPE_ALIASES))
def test_old_names_load_the_new_recipe_with_a_notice_once(old, capsys, monkeypatch):
    monkeypatch.setattr(recipes, "_noticed", set())
    new = RECIPE_ALIASES[old]
    assert new in SHIPPED
    got = load_recipe(old)
    assert got == load_recipe(new) and got.name == new
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"'{old}' is now called '{new}'" in err
    load_recipe(old)
    assert capsys.readouterr().err == ""  # once per process


def test_a_yaml_path_is_not_an_alias(tmp_path, capsys):
    path = tmp_path / "agile-w4a8"
    path.write_text((recipes.RECIPES_DIR / "rtn-w4a8.yaml").read_text())
    assert load_recipe(str(path)).name == "rtn-w4a8"
    assert capsys.readouterr().err == ""


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(EdgekitError, match="recipe not found: agile-w4a9") as e:
        load_recipe("agile-w4a9")
    assert all(name in str(e.value) for name in SHIPPED)


def test_head_activation_bits_need_the_q8_0_head(tmp_path):
    """lm_head_act_bits 8 rounds the head's input to meet the Q8_0 table's codes: without that table, or with other
    bits, one error that names the key."""
    text = (recipes.RECIPES_DIR / "w4a8.yaml").read_text()
    for bad, match in [("lm_head_bits: null\nlm_head_act_bits: 8", "needs lm_head_bits 8"),
                       ("lm_head_bits: 8\nlm_head_act_bits: 4", "lm_head_act_bits must be 8 or null")]:
        path = tmp_path / "bad.yaml"
        lines = [ln for ln in text.splitlines() if not ln.startswith("lm_head")]
        path.write_text("\n".join(lines + bad.splitlines()) + "\n")
        with pytest.raises(EdgekitError, match=match):
            load_recipe(str(path))


def test_default_recipe_by_family(tmp_path):
    """Decoders get the tuned recipe; an encoder-decoder keeps w4a8 (the tuning's short windows are exact only for
    causal blocks); an encoder keeps agile-quant."""
    import json

    for model_type, want in (("llama", "w4a8-tune"), ("t5", "w4a8"), ("bert", "agile-quant")):
        d = tmp_path / model_type
        d.mkdir()
        (d / "config.json").write_text(json.dumps({"model_type": model_type}))
        assert default_recipe(str(d)) == want, model_type


def test_overrides_leaving_q4_0_turn_the_tuning_off(capsys):
    from edgekit.recipes import with_overrides

    tuned = load_recipe("w4a8-tune").config
    assert with_overrides(tuned, bits=4).weight.tune == tuned.weight.tune  # still Q4_0: kept, quietly
    assert capsys.readouterr().err == ""
    for kw in ({"bits": 8}, {"group_size": 0}):
        cfg = with_overrides(tuned, **kw)
        assert cfg.weight.tune.iters == 0 and all(getattr(cfg.weight, k) == v for k, v in kw.items())
        assert "block-wise tuning needs 4-bit group weights" in capsys.readouterr().err
    assert with_overrides(load_recipe("w4a8").config, bits=8).weight.bits == 8
    assert capsys.readouterr().err == ""  # nothing to turn off, nothing said
