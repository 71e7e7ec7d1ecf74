"""Shared, session-scoped fixtures: the expensive things (real models, one quantized SmolLM2) are built once.

The tests live in tiers, one folder each; every test gets its folder's marker (registered in pyproject.toml), so that
``pytest -m "not model and not cross"`` (``make test-fast``) runs all but the real-model and C++ build tiers.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

# Small but real calibration for the session's quantized SmolLM2 (the benchmark uses 128 × 512).
CALIB_SAMPLES = 32
CALIB_SEQLEN = 256

TESTS_DIR = Path(__file__).resolve().parent
# the tier folders under tests/, each also a marker (described in pyproject.toml's [tool.pytest.ini_options])
TIERS = ("unit", "kernels", "engines", "export", "model", "cross")
# the fixtures below that load a real model: only tests of the model tier may use them
REAL_MODEL_FIXTURES = {"smollm2", "eval_ids", "smollm2_artifacts", "artifact"}


@pytest.hookimpl(tryfirst=True)  # before -m deselects by these markers
def pytest_collection_modifyitems(config, items):
    """Mark every test with its tier (its folder under tests/); refuse a test outside a tier, or a real-model fixture
    used outside tests/model, so that ``-m "not model and not cross"`` stays fast."""
    misplaced = []
    for item in items:
        parts = Path(item.path).resolve().relative_to(TESTS_DIR).parts
        tier = parts[0] if len(parts) > 1 else None
        if tier not in TIERS:
            misplaced.append(f"{item.nodeid}: not in a tier folder ({', '.join(TIERS)})")
            continue
        item.add_marker(getattr(pytest.mark, tier))
        real = REAL_MODEL_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if real and tier != "model":
            misplaced.append(f"{item.nodeid}: uses the real-model fixture(s) {', '.join(sorted(real))} outside "
                             "tests/model")
    if misplaced:
        raise pytest.UsageError("tests in the wrong tier:\n  " + "\n  ".join(misplaced))


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory):
    """A 2-block random-init llama saved as a Hugging Face directory, with MiniLM's (real) tokenizer."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from edgekit.models import resolve_spec

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(resolve_spec("minilm-l6").path)
    cfg = LlamaConfig(vocab_size=tok.vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      tie_word_embeddings=True, rms_norm_eps=1e-5)
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():  # give the norms some spread so TRIP has channels to scale
        for layer in model.model.layers:
            layer.input_layernorm.weight.uniform_(0.2, 4.0)
            layer.post_attention_layernorm.weight.uniform_(0.2, 4.0)
    d = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


@pytest.fixture(scope="session")
def tiny_w4a8(tiny_llama_dir, tmp_path_factory):
    """The tiny llama as a ``w4a8`` artifact (4 calibration windows of 64 tokens), shared by the engine tests."""
    from edgekit.quant.api import quantize_model
    from edgekit.recipes import load_recipe

    out = tmp_path_factory.mktemp("tiny-w4a8") / "tiny.ekq"
    quantize_model(str(tiny_llama_dir), load_recipe("w4a8").config, out, calib_samples=4, calib_seqlen=64,
                   progress=False)
    return out


@pytest.fixture(scope="session")
def smollm2():
    """The real SmolLM2-135M (float32, dequantized from the shipped Q4_1 GGUF), loaded once."""
    from edgekit.models import load_model

    return load_model("smollm2-135m")


@pytest.fixture(scope="session")
def eval_ids(smollm2):
    """Held-out evaluation windows (Debian license texts): 4 × 512 tokens."""
    from edgekit import data

    return data.eval_windows(smollm2.tokenizer, ctx=512, max_tokens=2048)


@pytest.fixture(scope="session")
def smollm2_artifacts(tmp_path_factory):
    """SmolLM2 quantized once per session with edgekit W4A8 (GPTQ) and the RTN W4A8 baseline."""
    from edgekit.quant.api import quantize_model
    from edgekit.recipes import load_recipe

    from types import SimpleNamespace
    from pathlib import Path

    # developer shortcut: EDGEKIT_TEST_ARTIFACTS=DIR reuses DIR/w4a8.ekq and DIR/rtn-w4a8.ekq of an earlier
    # session (pytest's tmp dir) instead of quantizing again; CI never sets it
    reuse = os.environ.get("EDGEKIT_TEST_ARTIFACTS")
    if reuse:
        return {name: SimpleNamespace(path=Path(reuse) / f"{name}.ekq", report={}, config=load_recipe(name).config)
                for name in ("w4a8", "rtn-w4a8")}
    d = tmp_path_factory.mktemp("smollm2-q")
    out = {}
    for name in ("w4a8", "rtn-w4a8"):
        res = quantize_model("smollm2-135m", load_recipe(name).config, d / f"{name}.ekq",
                             calib_samples=CALIB_SAMPLES, calib_seqlen=CALIB_SEQLEN, progress=False)
        out[name] = res
    return out


@pytest.fixture(scope="session")
def artifact(smollm2_artifacts):
    """Path of the session's SmolLM2 w4a8 artifact."""
    from pathlib import Path

    return Path(smollm2_artifacts["w4a8"].path)


@pytest.fixture(scope="session")
def rpi5_build(tmp_path_factory):
    """(target, build dir): the ``rpi5`` profile built by edgekit.build.build_target with its own flags (kernels, their
    C++ tests, libedgekit.so, the C example) into this session's tmp dir, once for tests/test_kernels_arm.py and
    tests/test_capi_arm.py. Skipped when the aarch64 cross compiler or qemu-aarch64 is missing."""
    import capi_util as cu

    cu.need_cross_tools()
    build = cu.source_module("edgekit.build")
    target = cu.source_module("edgekit.targets").load_target("rpi5")
    return target, build.build_target(target, tmp_path_factory.mktemp("rpi5"), jobs=2)


@pytest.fixture(scope="session")
def arm_build(tmp_path_factory):
    """The generic aarch64 cross build (cmake/aarch64-linux-gnu.cmake, no device flags: every Arm kernel compiled in,
    dispatch decides) of the kernel tests, once per session; tests/cross/test_bundle.py builds the device programs
    into the same directory (the portable build bundles use). Skipped without the cross compiler or qemu-aarch64."""
    import capi_util as cu

    cu.need_cross_tools()
    build = cu.source_module("edgekit.build")
    return build.configure_and_build(tmp_path_factory.mktemp("aarch64"), toolchain="cmake/aarch64-linux-gnu.cmake",
                                     jobs=2, targets=(build.TEST_PROGRAM,))


@pytest.fixture(scope="session")
def host_build(tmp_path_factory):
    """The native build of the kernel tests, once per session (the x86-64 bundles' build dir as well)."""
    import shutil

    import capi_util as cu

    if shutil.which("cmake") is None:
        pytest.fail("cmake is not on PATH")
    build = cu.source_module("edgekit.build")
    return build.configure_and_build(tmp_path_factory.mktemp("host-tests"), jobs=2, targets=(build.TEST_PROGRAM,))
