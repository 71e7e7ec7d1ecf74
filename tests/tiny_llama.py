"""A tiny random Llama (2 layers, width 64, GQA 4/2, frozen) for the unit tests that quantize or convert a model
in memory (tests/unit/test_acm.py, tests/unit/test_tune.py)."""

from __future__ import annotations

import torch


def tiny_model(seed: int = 0, layers: int = 2):
    """A ``LlamaForCausalLM`` of 96 tokens, width 64, FFN 128, ``layers`` blocks, every parameter frozen."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    m = LlamaForCausalLM(cfg).eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m
