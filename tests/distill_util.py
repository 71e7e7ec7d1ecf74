"""Tiny teacher, student and pairs shared by the distillation unit tests."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from edgekit.distill.config import StudentConfig, TrainConfig
from edgekit.distill.pairs import Pairs

V = 96
TOK = SimpleNamespace(pad_token_id=0, eos_token_id=1)


def tiny_teacher(seed=0):
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=128, tie_word_embeddings=True)
    return LlamaForCausalLM(cfg).eval().requires_grad_(False)


def tiny_student_cfg(**kw):
    base = dict(encoder_layers=2, decoder_layers=1, d_model=32, d_ff=64, num_heads=4, d_kv=8, vocab_size=V)
    return StudentConfig(**{**base, **kw})


def tiny_train_cfg(**kw):
    base = dict(steps=6, batch=4, lr=3e-3, warmup_steps=2, top_k=8, prefix_len=12, cont_len=6, train_pairs=10,
                val_pairs=2, checkpoint_every=3)
    return TrainConfig(**{**base, **kw})


def random_pairs(n=10, p=12, c=6, seed=1):
    g = np.random.default_rng(seed)
    return Pairs(g.integers(2, V, (n, p)), g.integers(2, V, (n, c)))
