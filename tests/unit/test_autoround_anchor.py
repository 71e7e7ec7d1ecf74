"""The AutoRound anchor of ``bench quality``: what edgekit hands AutoRound, and how it treats AutoRound's output.

AutoRound itself (an extra of the benchmark environment) is replaced by a recording stand-in, so these run
everywhere; the real run is ``bench_results/autoround-*.json``.
"""

import sys
import types

import pytest

from edgekit.errors import EdgekitError


class _FakeAutoRound:
    """Records its arguments; ``quantize_and_save`` writes ``files`` GGUF files the way AutoRound nests them."""

    calls: list = []
    files = 1

    def __init__(self, model, **kwargs):
        self.model, self.kwargs = model, kwargs
        _FakeAutoRound.calls.append(self)

    def quantize_and_save(self, output_dir, format):
        import json
        from pathlib import Path

        self.format = format
        hf = Path(self.model.name_or_path)
        self.hf_files = sorted(p.name for p in hf.iterdir())
        self.architectures = json.loads((hf / "config.json").read_text())["architectures"]

        sub = Path(output_dir) / "model-gguf"
        sub.mkdir(parents=True)
        for i in range(self.files):
            (sub / f"model-{i}-Q4_0.gguf").write_bytes(b"GGUF" + bytes([i]))


@pytest.fixture
def fake_autoround(monkeypatch):
    mod = types.ModuleType("auto_round")
    mod.AutoRound, mod.__version__ = _FakeAutoRound, "0.0-fake"
    _FakeAutoRound.calls, _FakeAutoRound.files = [], 1
    monkeypatch.setitem(sys.modules, "auto_round", mod)
    return _FakeAutoRound


def _ref_and_ids(tiny_llama_dir):
    from edgekit.models import load_model
    from edgekit.quant.api import calibration_ids

    ref = load_model(str(tiny_llama_dir))
    return ref, calibration_ids(ref, None, 16, 64, seed=3)


@pytest.mark.parametrize("recipe,iters", [("default", 200), ("light", 50), ("opt-rtn", 0)])
def test_autoround_gets_the_calibration_windows_and_recipe(tiny_llama_dir, tmp_path, fake_autoround, recipe, iters):
    from edgekit.bench.autoround import RECIPES, quantize_autoround

    ref, ids = _ref_and_ids(tiny_llama_dir)
    out = tmp_path / "ar.gguf"
    rep = quantize_autoround(ref, ids, out, recipe, seed=3)
    (call,) = fake_autoround.calls
    assert call.format == "gguf:q4_0" and call.kwargs["scheme"] == "gguf:q4_0"
    assert call.kwargs["iters"] == iters == RECIPES[recipe]["iters"] and call.kwargs["lr"] == RECIPES[recipe]["lr"]
    assert call.kwargs["nsamples"] == 16 and call.kwargs["seqlen"] == 64 and call.kwargs["seed"] == 3
    data = call.kwargs["dataset"]  # exactly edgekit's windows, one per sample, no hub dataset
    assert len(data) == 16 and all((d[0] == ids[i]).all() for i, d in enumerate(data))
    # AutoRound's GGUF writer reads config and vocabulary from the model's directory (removed afterwards)
    hf = call.hf_files
    assert call.model.name_or_path.endswith("hf-source") and "config.json" in hf and "tokenizer.json" in hf
    assert call.architectures == ["LlamaForCausalLM"] and "tokenizer.model" not in hf
    assert out.read_bytes() == b"GGUF\x00" and not (tmp_path / "ar.gguf.autoround-tmp").exists()
    assert rep["iters"] == iters and rep["calib"] == "16x64" and rep["autoround_version"] == "0.0-fake"


def test_autoround_output_that_is_not_one_file_is_refused(tiny_llama_dir, tmp_path, fake_autoround):
    from edgekit.bench.autoround import quantize_autoround

    ref, ids = _ref_and_ids(tiny_llama_dir)
    fake_autoround.files = 2
    with pytest.raises(EdgekitError, match="2 GGUF files"):
        quantize_autoround(ref, ids, tmp_path / "ar.gguf", "light")
    assert not (tmp_path / "ar.gguf").exists() and not (tmp_path / "ar.gguf.autoround-tmp").exists()
    with pytest.raises(EdgekitError, match="recipe must be one of"):
        quantize_autoround(ref, ids, tmp_path / "ar.gguf", "best")


def test_autoround_anchor_names_and_missing_package(monkeypatch, fake_autoround):
    from edgekit.bench import quality
    from edgekit.bench.anchors import ANCHORS, parse_anchors
    from edgekit.bench.autoround import ANCHOR_RECIPES, RECIPES

    assert set(ANCHOR_RECIPES) <= set(ANCHORS) and set(ANCHOR_RECIPES.values()) == set(RECIPES)
    assert parse_anchors("q4_0,autoround-light") == ("q4_0", "autoround-light")
    monkeypatch.setitem(sys.modules, "auto_round", None)  # not installed: one clear error, before any work

    def no_load(*a, **k):
        raise AssertionError("the model was loaded before the missing package was reported")

    monkeypatch.setattr("edgekit.models.load_model", no_load)
    with pytest.raises(EdgekitError, match=r"edgekit\[anchors\]"):
        quality.run_quality("smollm2-135m", [], sets=["dev"], seeds=[0], anchors=("q4_0", "autoround"))
