"""Adaptive computation modules on tiny random Llamas: the conversion is exact at k = N, k = 0 adds nothing, the gates
and losses behave, the config and its YAML are strict, and the command line refuses bad input before any work."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from click.testing import CliRunner
from tiny_llama import tiny_model
from transformers import LlamaConfig

from edgekit.acm.convert import check_acm_model, convert_ffn, neuron_importance
from edgekit.acm.finetune import budget_terms, finetune, task_loss
from edgekit.acm.modules import AcmFfn, acm_modules, ffn_stats, reset_stats, set_mode
from edgekit.acm.phases import distill_loss, gate_labels
from edgekit.cli import main
from edgekit.config import AcmConfig, AcmPhaseConfig, from_dict
from edgekit.errors import EdgekitError
from edgekit.models.families import BERT, LLAMA
from edgekit.quant.api import quantize_
from edgekit.recipes import load_acm_recipe

N = 4


def small_cfg(steps1=0, steps2=0, steps3=0, **kw):
    return AcmConfig(n_learners=N, gate_hidden=16, calib_samples=4, calib_seqlen=32,
                     phase1=AcmPhaseConfig(steps=steps1, lr=1e-3, batch=64),
                     phase2=AcmPhaseConfig(steps=steps2, lr=1e-2, batch=64),
                     phase3=AcmPhaseConfig(steps=steps3, lr=1e-3, batch=2), **kw)


@pytest.fixture(scope="module")
def ids():
    return torch.randint(0, 96, (6, 32), generator=torch.Generator().manual_seed(1))


def test_conversion_is_exact_at_k_equal_n_and_zero_at_k_0(ids):
    m = tiny_model()
    ref = m(input_ids=ids).logits
    ffn_in = torch.randn(5, 7, 64)
    ffn_ref = [layer.mlp(ffn_in) for layer in m.model.layers]
    quantize_(m, small_cfg(), family="llama", calib_ids=ids, progress=False)
    acms = acm_modules(m)
    assert len(acms) == 2 and all(isinstance(layer.mlp, AcmFfn) for layer in m.model.layers)
    assert acms[0].width == 32 and acms[0].n_learners == N
    # a fresh gate chooses k = N, so gated, dense and forced k = N are all the original model
    for mode, k in (("gated", None), ("dense", None), ("gated", N)):
        set_mode(m, mode, force_k=k)
        torch.testing.assert_close(m(input_ids=ids).logits, ref, atol=1e-5, rtol=1e-5)
    for acm, y in zip(acms, ffn_ref):
        torch.testing.assert_close(acm(ffn_in), y, atol=1e-6, rtol=1e-5)
        cum = acm.all_k(ffn_in)
        assert cum.shape == (5, 7, N + 1, 64)
        torch.testing.assert_close(cum[..., -1, :], y, atol=1e-5, rtol=1e-5)
        assert torch.count_nonzero(cum[..., 0, :]) == 0
    set_mode(m, "gated", force_k=0)
    assert all(torch.count_nonzero(acm(ffn_in)) == 0 for acm in acms)  # k = 0: the FFN adds exactly nothing
    set_mode(m, "gated", force_k=2)
    torch.testing.assert_close(acms[0](ffn_in), acms[0].all_k(ffn_in)[..., 2, :], atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="force_k"):
        set_mode(m, "gated", force_k=N + 1)


def test_importance_orders_learners_and_the_first_learner_carries_the_most():
    m = tiny_model()
    mlp = m.model.layers[0].mlp
    with torch.no_grad():  # make neurons 100..127 (the last ones) by far the most important
        mlp.down_proj.weight[:, 100:] *= 50
    x = torch.randn(256, 64)
    imp = neuron_importance(mlp, LLAMA, x)
    assert imp.shape == (128,) and int(imp.argmax()) >= 100
    acm = convert_ffn(mlp, LLAMA, imp, N, 16)
    torch.testing.assert_close(acm.down_proj.weight[:, :28], mlp.down_proj.weight[:, 100:][:, imp[100:].argsort(
        descending=True, stable=True)])
    y = mlp(x)
    err = torch.linalg.vector_norm(acm.all_k(x) - y[:, None], dim=-1).mean(0)
    assert err[1] < 0.5 * err[0] and err[-1] < 1e-4  # learner 1 alone already removes most of the error


def test_gate_shapes_stats_and_gate_bias():
    acm = convert_ffn(tiny_model().model.layers[0].mlp, LLAMA, torch.arange(128.0), N, 16)
    x = torch.randn(3, 5, 64)
    assert acm.gate(x).shape == (3, 5, N + 1)
    torch.nn.init.normal_(acm.gate.fc2.weight)
    base = acm.choose_k(x)
    acm.gate_bias = 100.0
    assert bool((acm.choose_k(x) == N).all())  # a large positive bias runs every learner
    acm.gate_bias = -100.0
    assert bool((acm.choose_k(x) == 0).all())
    acm.gate_bias = 0.0
    assert torch.equal(acm.choose_k(x), base) and base.dtype == torch.long and base.shape == (3, 5)
    acm.k_counts.zero_()
    acm(x)
    assert int(acm.k_counts.sum()) == 15 and torch.equal(acm.k_counts, torch.bincount(base.reshape(-1),
                                                                                       minlength=N + 1))
    holder = torch.nn.ModuleList([acm])
    st = ffn_stats(holder)
    want = float((base.float() / N).mean())
    assert st["learner_fraction"] == pytest.approx(want) and 0 < st["gate_fraction"] < 0.2
    assert st["ffn_fraction"] == pytest.approx(want + st["gate_fraction"])
    reset_stats(holder)
    assert int(acm.k_counts.sum()) == 0


def test_phase_losses_and_labels_behave(ids):
    m = tiny_model()
    mlp = m.model.layers[0].mlp
    x = torch.randn(512, 64)
    y = mlp(x)
    cfg = small_cfg(steps1=30, steps2=40)
    acm = convert_ffn(mlp, LLAMA, neuron_importance(mlp, LLAMA, x), N, 16)
    labels = gate_labels(acm, x, y, cfg.tau)
    assert labels.shape == (512,) and 0 <= int(labels.min()) and int(labels.max()) <= N
    assert bool((gate_labels(acm, x, y, 1e9) == 0).all())  # any improvement is "too small": stop at 0
    # the rule on hand-made errors: e = (4, 2, 1.9, 0.1, 0): 4/2 >= 1.5, 2/1.9 < 1.5 -> k = 1
    fake = AcmFfn.empty(64, 128, N, 16, mlp.act_fn)
    fake.all_k = lambda xs: torch.tensor([4.0, 2.0, 1.9, 0.1, 0.0])[None, :, None].expand(xs.shape[0], N + 1, 1)
    assert gate_labels(fake, torch.zeros(3, 64), torch.zeros(3, 1), 1.5).tolist() == [1, 1, 1]
    # phase 1 lowers the loss summed over k, and training the gate fits the labels better than chance
    from edgekit.acm.phases import distill_layer, train_gate

    gen = torch.Generator().manual_seed(0)
    before = float(distill_loss(acm, x, y))
    rep = distill_layer(acm, x, y, cfg.phase1, gen)
    assert float(distill_loss(acm, x, y)) < before and rep["loss_last"] < rep["loss_first"]
    assert all(not p.requires_grad for p in acm.parameters())
    labels = gate_labels(acm, x, y, cfg.tau)
    rep = train_gate(acm, x, labels, cfg.phase2, gen)
    majority = float(torch.bincount(labels).max()) / len(labels)
    assert rep["ce_last"] < rep["ce_first"] and rep["accuracy"] >= majority - 1e-6


def test_budget_entropy_and_diversity_terms():
    n = N + 1
    static = torch.nn.functional.one_hot(torch.full((2, 8, 3), 2), n).float()  # every token k = 2
    t = budget_terms(static, 0.5)
    assert float(t["fraction"]) == pytest.approx(0.5) and float(t["budget"]) == pytest.approx(0.0)
    assert float(t["entropy"]) == pytest.approx(0.0, abs=1e-6) and float(t["diversity"]) == pytest.approx(0.0)
    varied = torch.nn.functional.one_hot(torch.arange(16).remainder(n).reshape(2, 8, 1).expand(2, 8, 3), n).float()
    assert float(budget_terms(varied, 0.5)["entropy"]) < -0.5  # many k per sequence: high entropy (negated)
    split = torch.nn.functional.one_hot(torch.tensor([0, N]).reshape(2, 1, 1).expand(2, 8, 3), n).float()
    assert float(budget_terms(split, 0.5)["diversity"]) == pytest.approx(-1.0)  # |0 - 1| averaged over pairs, x2
    assert float(budget_terms(split, 0.9)["budget"]) == pytest.approx(0.4)
    logits = torch.randn(2, 6, 96)
    idx = torch.randint(0, 96, (2, 6))
    assert float(task_loss(logits, logits, idx, "kl")) == pytest.approx(0.0, abs=1e-6)
    assert float(task_loss(logits, logits, idx, "kl+ce")) == pytest.approx(float(task_loss(logits, None, idx, "ce")))


def test_phase3_moves_the_executed_fraction_towards_the_budget(ids):
    m = tiny_model()
    teacher = copy.deepcopy(m)
    cfg = small_cfg(steps1=5, steps2=5, steps3=12, budget=0.25, budget_weight=5.0)
    cfg = AcmConfig(**{**cfg.__dict__, "phase3": AcmPhaseConfig(steps=12, lr=3e-2, batch=2)})
    quantize_(m, cfg, family="llama", calib_ids=ids, progress=False)
    before = [p.clone() for p in acm_modules(m)[0].gate.parameters()]
    rep = finetune(m, teacher, ids, cfg, progress=False)
    assert rep["phase3_steps"] == 12 and rep["fraction_last"] < rep["fraction_first"]
    assert any(not torch.equal(a, b) for a, b in zip(before, acm_modules(m)[0].gate.parameters()))
    assert all(not p.requires_grad for p in m.parameters()) and not m.training
    assert acm_modules(m)[0].mode == "gated"
    frozen = dict(teacher.named_parameters())
    for name, p in m.named_parameters():  # only the ACMs train
        if ".mlp." not in name:
            assert torch.equal(p, frozen[name]), name


def test_config_and_recipe_are_strict(tmp_path):
    name, cfg = load_acm_recipe()
    assert name == "default" and cfg.n_learners == 8 and cfg.learner_width(1536) == 192
    assert cfg.phase1.lr == 1e-4 and cfg.phase3.batch == 2  # the recipe's values, not AcmPhaseConfig's defaults
    # a partial phase mapping keeps AcmConfig's own phase defaults for the rest
    assert from_dict(AcmConfig, {"phase3": {"steps": 3}}).phase3 == AcmPhaseConfig(steps=3, lr=1e-4, batch=2)
    for bad, match in (({"budget": 0}, "budget"), ({"budget": 1.5}, "budget"), ({"tau": 1.0}, "tau"),
                       ({"distill": "mse"}, "distill"), ({"phase1": {"steps": -1}}, "steps"),
                       ({"phase2": {"speed": 1}}, "unknown key 'speed' in phase2"), ({"budgett": 0.5}, "budgett")):
        with pytest.raises(EdgekitError, match=match):
            from_dict(AcmConfig, bad)
    assert AcmConfig(budget=1.0).budget == 1.0
    with pytest.raises(EdgekitError, match="not a multiple of 32"):
        AcmConfig(n_learners=16).learner_width(1536 // 2)
    with pytest.raises(EdgekitError, match="does not divide"):
        AcmConfig(n_learners=5).learner_width(1536)
    y = tmp_path / "r.yaml"
    y.write_text("name: mine\nbudget: 0.3\nphase1: {steps: 3}\n")
    assert load_acm_recipe(str(y))[1].budget == 0.3
    y.write_text("name: mine\nlearners: 4\n")
    with pytest.raises(EdgekitError, match="unknown key 'learners'"):
        load_acm_recipe(str(y))
    with pytest.raises(EdgekitError, match="ACM recipe not found"):
        load_acm_recipe("no-such-recipe")


def test_non_gated_architectures_are_refused_with_one_error():
    cfg = LlamaConfig(intermediate_size=1536)
    with pytest.raises(EdgekitError, match="gated \\(SwiGLU\\) FFN; this bert encoder model has none"):
        check_acm_model(BERT, "encoder", cfg, AcmConfig())
    assert check_acm_model("llama", "causal-lm", cfg, AcmConfig()) == 192


def _cli(*args):
    return CliRunner().invoke(main, list(args))


def test_cli_bad_input_is_one_error_before_any_work(tmp_path, tiny_llama_dir):
    out = tmp_path / "acm"
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("x")
    cases = [
        (["acm", str(tiny_llama_dir), "--budget", "0", "-o", str(out)], "budget must be in (0, 1]"),
        (["acm", str(tiny_llama_dir), "--budget", "1.5", "-o", str(out)], "budget must be in (0, 1]"),
        (["acm", str(tiny_llama_dir), "-o", str(full)], "exists and is not an empty directory"),
        (["acm", str(tiny_llama_dir), "--n-learners", "3", "-o", str(out)], "does not divide the FFN width 128"),
        (["acm", str(tiny_llama_dir), "--n-learners", "8", "-o", str(out)], "learner width 16"),
        (["acm", "minilm-l6", "-o", str(out)], "need a gated (SwiGLU) FFN"),
        (["acm", str(tiny_llama_dir), "--data", str(tmp_path / "nope.txt"), "-o", str(out)], "nope.txt"),
        (["acm-eval", str(tmp_path)], "not an ACM model directory"),
    ]
    for args, msg in cases:
        res = _cli(*args)
        assert res.exit_code == 2, (args, res.output)
        assert res.output.count("error:") == 1 and msg in res.output, (args, res.output)
        assert not out.exists()
    assert (full / "x").read_text() == "x"


def test_cli_end_to_end_on_a_tiny_model(tmp_path, tiny_llama_dir):
    out = tmp_path / "acm"
    res = _cli("acm", str(tiny_llama_dir), "--n-learners", "4", "--steps1", "2", "--steps2", "2", "--steps3", "1",
               "--calib-samples", "4", "--budget", "0.5", "-o", str(out), "--json")
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output[res.output.index("{"):])
    assert rep["learner_width"] == 32 and rep["phase3_steps"] == 1 and len(rep["layers"]) == 2
    info = json.loads((out / "acm.json").read_text())
    assert info["format"] == "edgekit-acm" and info["acm"]["budget"] == 0.5
    assert not list(tmp_path.glob(".acm.tmp-*"))
    # k = N is the source model's FFN up to phase 1's training: the dense point differs little from gated-at-N
    rows = {}
    for flags in ((), ("--k", "4"), ("--k", "0"), ("--dense",)):
        r = _cli("acm-eval", str(out), "--ctx", "64", "--max-tokens", "128", "--json", *flags)
        assert r.exit_code == 0, r.output
        rows[flags] = json.loads(r.output[r.output.index("{"):])
    assert rows[("--k", "4")]["rows"][0]["perplexity"] == pytest.approx(rows[("--dense",)]["rows"][0]["perplexity"])
    assert rows[("--k", "0")]["rows"][0]["learner_fraction"] == 0.0
    assert rows[("--k", "0")]["layers"][0]["k_hist"][0] == sum(rows[("--k", "0")]["layers"][0]["k_hist"]) > 0
    assert len(rows[()]["layers"]) == 2 and 0.0 <= rows[()]["rows"][0]["learner_fraction"] <= 1.0
    bad = _cli("acm-eval", str(out), "--k", "9")
    assert bad.exit_code == 2 and "--k must be in 0..4" in bad.output
    bad = _cli("acm-eval", str(out), "--k", "1", "--dense")
    assert bad.exit_code == 2 and "exclusive" in bad.output
    # the engines of artifacts refuse an ACM directory with one clear error naming the way (quantize it first)
    bad = _cli("eval", str(out), "--engine", "runtime")
    assert bad.exit_code == 2 and "ACM model directory" in bad.output and "edgekit quantize" in bad.output
    # and a second run into the now non-empty directory is refused
    again = _cli("acm", str(tiny_llama_dir), "-o", str(out))
    assert again.exit_code == 2 and "not an empty directory" in again.output
