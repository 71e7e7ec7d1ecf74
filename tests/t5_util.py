"""A tiny random T5 v1.1 student (edgekit distill's architecture) with a trained byte-level BPE tokenizer, shared by
the export tests (tests/export/test_export_t5.py) and the T5 runtime tests (tests/engines/test_t5_runtime.py)."""

from __future__ import annotations

import torch

import tokenizer_fuzz as tf


def make_student(folder, layout: str, seed: int = 1, **cfg_kw):
    """A tiny random T5 student saved as a Hugging Face directory with a trained byte-level BPE tokenizer."""
    from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

    tok, _ = tf.train_bpe(layout, 1200)
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                                 bos_token="<|im_start|>", unk_token="<|endoftext|>")
    torch.manual_seed(seed)
    base = dict(vocab_size=1280, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_decoder_layers=1, num_heads=4,
                feed_forward_proj="gated-gelu_pytorch_tanh", tie_word_embeddings=True, dropout_rate=0.0,
                pad_token_id=hf.pad_token_id, decoder_start_token_id=hf.pad_token_id, eos_token_id=hf.eos_token_id)
    model = T5ForConditionalGeneration(T5Config(**{**base, **cfg_kw})).eval()
    with torch.no_grad():
        model.shared.weight.mul_(0.3)  # with the outputs below: greedy tokens that vary (seeds 1, 2: checked)
        for name, p in model.named_parameters():
            if name.endswith((".o.weight", ".wo.weight")):
                p.normal_(0, 1.0)  # outputs that outweigh the embedding in the residual stream
            elif name.endswith("layer_norm.weight"):
                p.uniform_(0.5, 1.5)  # norms away from 1, so a missed or doubled scaling shows
    model.save_pretrained(folder)
    hf.save_pretrained(folder)
    return folder, hf
