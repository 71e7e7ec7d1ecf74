"""The decoder-only student of `edgekit distill` (``architecture: llama``, the paper's comparison at equal size):
its config checks, its size against the default T5's, its logits aligned with the teacher's continuation positions,
its start from the teacher, and the whole stage on a tiny teacher; and ``init_from_teacher: [layers]`` for both
architectures."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from edgekit.distill.config import StudentConfig, load_student_config
from edgekit.distill.pairs import Pairs
from edgekit.distill.student import build_student, parameter_counts, student_logits
from edgekit.distill.teacher import teacher_logprobs
from edgekit.errors import EdgekitError

V = 96
TOK = SimpleNamespace(pad_token_id=0, eos_token_id=1, bos_token_id=1)


def tiny_teacher(seed=0):
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=128, tie_word_embeddings=True,
                      rope_theta=5000.0)
    return LlamaForCausalLM(cfg).eval().requires_grad_(False)


def decoder_cfg(**kw):
    base = dict(architecture="llama", encoder_layers=0, decoder_layers=2, d_model=32, d_ff=64, num_heads=4, d_kv=8,
                num_kv_heads=2, vocab_size=V)
    return StudentConfig(**{**base, **kw})


@pytest.mark.parametrize("kw, needle", [
    (dict(architecture="gpt"), "architecture must be one of"),
    (dict(encoder_layers=2), "a llama student is decoder-only: set encoder_layers: 0"),
    (dict(d_kv=16), "needs num_heads * d_kv = d_model"),
    (dict(num_kv_heads=3), "num_kv_heads must divide num_heads 4"),
    (dict(architecture="t5", encoder_layers=2), "num_kv_heads is for architecture: llama"),
])
def test_decoder_student_config_is_checked(kw, needle):
    with pytest.raises(EdgekitError) as e:
        decoder_cfg(**kw)
    assert needle in str(e.value)


def test_shipped_decoder_student_matches_the_default_t5_size():
    dec, t5 = load_student_config("decoder"), load_student_config("default")
    assert dec.student.architecture == "llama" and dec.train == t5.train  # same pairs, steps and loss
    teacher = SimpleNamespace(config=SimpleNamespace(rope_theta=100000.0, rms_norm_eps=1e-5))
    from transformers import T5ForConditionalGeneration

    from edgekit.distill.student import llama_config, t5_config

    with torch.device("meta"):
        a = parameter_counts(LlamaForCausalLM(llama_config(dec.student, teacher, TOK)))

    with torch.device("meta"):
        b = parameter_counts(T5ForConditionalGeneration(t5_config(t5.student, TOK)))
    assert a["embedding"] == b["embedding"] == 49152 * 576
    assert abs(a["non_embedding"] / b["non_embedding"] - 1) < 0.01  # equal size within 1 %


def test_decoder_student_output_j_is_the_causal_lm_after_prefix_and_j_tokens():
    teacher = tiny_teacher()
    student = build_student(decoder_cfg(init_from_teacher=[]), teacher, TOK).eval()
    g = np.random.default_rng(1)
    pairs = Pairs(g.integers(2, V, (2, 12)), g.integers(2, V, (2, 6)))
    pre, con = torch.from_numpy(pairs.prefix), torch.from_numpy(pairs.cont)
    got = student_logits(student, pre, con)
    assert got.shape == (2, 6, V)
    for j in range(con.shape[1]):  # the positions teacher_logprobs uses: after prefix + cont[:j]
        want = student(input_ids=torch.cat([pre, con[:, :j]], 1)).logits[:, -1]
        assert torch.allclose(got[:, j], want, atol=1e-5), j
    # the same alignment as the teacher's: the teacher as its own "student" gives teacher_logprobs
    assert torch.allclose(torch.log_softmax(student_logits(teacher, pre, con), -1), teacher_logprobs(teacher, pre, con),
                          atol=1e-5)


def test_decoder_student_starts_from_the_teachers_embedding_norm_and_rope():
    teacher = tiny_teacher()
    with torch.no_grad():
        teacher.model.norm.weight.uniform_(0.5, 2.0)
    student = build_student(decoder_cfg(), teacher, TOK)
    assert torch.equal(student.get_input_embeddings().weight, teacher.get_input_embeddings().weight)
    assert student.lm_head.weight.data_ptr() == student.get_input_embeddings().weight.data_ptr()  # tied
    assert torch.equal(student.model.norm.weight, teacher.model.norm.weight)
    assert student.config.rope_theta == 5000.0 and student.config.num_key_value_heads == 2
    h = torch.randn(3, 32)
    assert torch.allclose(student.lm_head(student.model.norm(h)), teacher.lm_head(teacher.model.norm(h)))


def test_decoder_student_distills_end_to_end_on_a_tiny_teacher(tiny_llama_dir, tmp_path):
    from transformers import AutoConfig

    from edgekit.distill.api import distill_model
    from edgekit.distill.pairs import build_pairs
    from edgekit.distill.teacher import compare
    from edgekit.models import load_model

    tc = AutoConfig.from_pretrained(tiny_llama_dir)
    heads = tc.num_attention_heads
    cfg_yaml = {"architecture": "llama", "encoder_layers": 0, "decoder_layers": 2, "d_model": tc.hidden_size,
                "d_ff": 64, "num_heads": heads, "d_kv": tc.hidden_size // heads, "vocab_size": tc.vocab_size,
                "train": {"steps": 4, "batch": 2, "warmup_steps": 1, "top_k": 8, "prefix_len": 24, "cont_len": 8,
                          "train_pairs": 8, "val_pairs": 2, "checkpoint_every": 2}}
    p = tmp_path / "dec.yaml"
    p.write_text(json.dumps(cfg_yaml))
    text = tmp_path / "text.txt"
    text.write_text(" ".join(f"word{i % 97} and more words number {i}." for i in range(400)))
    cfg = load_student_config(str(p))
    out = tmp_path / "run"
    distill_model(str(tiny_llama_dir), cfg, out, data=[str(text)], progress=False)
    r = json.loads((out / "distill.json").read_text())
    assert r["params"]["student"]["encoder"] == 0 and len(r["loss_curve"]) == 4
    loaded = LlamaForCausalLM.from_pretrained(out / "student").eval()
    lm = load_model(str(tiny_llama_dir))
    fresh = build_student(cfg.student, lm.model, lm.tokenizer, seed=cfg.train.seed)
    w = "model.layers.0.mlp.down_proj.weight"
    assert not torch.equal(loaded.state_dict()[w], fresh.state_dict()[w])  # trained, not the initial weights
    _, val, _ = build_pairs(lm.tokenizer, cfg.train, [str(text)])
    again = compare(loaded, lm.model, val, 8)  # the saved weights are the trained ones
    assert again["student_nll"] == pytest.approx(r["held_out"]["student_nll"], abs=1e-4)


# --- init_from_teacher: layers ----------------------------------------------------------------------------------------

def test_layer_map_spreads_student_blocks_over_the_teacher():
    from edgekit.distill.init_layers import layer_map

    assert layer_map(8, 30) == [0, 3, 7, 11, 15, 18, 22, 26]
    assert layer_map(2, 2) == [0, 1] and layer_map(3, 2) == [0, 0, 1]


def test_t5_blocks_start_as_teacher_layers():
    """q scaled by d_kv^-0.5 (T5 does not scale scores), each teacher key/value head repeated over its query heads:
    a T5 head's scores are the teacher's (RoPE aside); norms and the gated FFN copied; cross-attention alike."""
    from edgekit.distill.init_layers import layer_map

    teacher = tiny_teacher()
    with torch.no_grad():
        for layer in teacher.model.layers:
            layer.input_layernorm.weight.uniform_(0.5, 2.0)
    cfg = StudentConfig(encoder_layers=1, decoder_layers=1, d_model=32, d_ff=64, num_heads=4, d_kv=8, vocab_size=V,
                        init_from_teacher=["embedding", "layers"])
    student = build_student(cfg, teacher, TOK)
    which = layer_map(2, 2)
    x = torch.randn(5, 32)
    for j, block in enumerate([student.encoder.block[0], student.decoder.block[0]]):
        src = teacher.model.layers[which[j]]
        attns = [block.layer[0].SelfAttention] + ([block.layer[1].EncDecAttention] if j else [])
        for att in attns:
            q, k = att.q(x).view(5, 4, 8), att.k(x).view(5, 4, 8)
            tq, tk = src.self_attn.q_proj(x).view(5, 4, 8), src.self_attn.k_proj(x).view(5, 2, 8)
            s5 = torch.einsum("ihd,jhd->hij", q, k)
            st = torch.einsum("ihd,jhd->hij", tq, tk.repeat_interleave(2, 1)) / 8 ** 0.5
            assert torch.allclose(s5, st, atol=1e-5)
            assert torch.equal(att.o.weight, src.self_attn.o_proj.weight)
        ffn = block.layer[-1]
        assert torch.equal(ffn.DenseReluDense.wi_0.weight, src.mlp.gate_proj.weight)
        assert torch.equal(ffn.DenseReluDense.wo.weight, src.mlp.down_proj.weight)
        assert torch.equal(ffn.layer_norm.weight, src.post_attention_layernorm.weight)
        assert torch.equal(block.layer[0].layer_norm.weight, src.input_layernorm.weight)


def test_layer_init_refuses_another_block_shape_and_copies_llama_layers():
    teacher = tiny_teacher()
    with pytest.raises(EdgekitError, match="d_ff 48 against the teacher's 64"):
        build_student(StudentConfig(encoder_layers=1, decoder_layers=1, d_model=32, d_ff=48, num_heads=4, d_kv=8,
                                    vocab_size=V, init_from_teacher=["layers"]), teacher, TOK)
    with pytest.raises(EdgekitError, match="num_kv_heads 4 against the teacher's 2"):
        build_student(decoder_cfg(num_kv_heads=4, init_from_teacher=["layers"]), teacher, TOK)
    student = build_student(decoder_cfg(init_from_teacher=["embedding", "layers"]), teacher, TOK)
    for b, t in zip(student.model.layers, teacher.model.layers):
        assert torch.equal(b.mlp.up_proj.weight, t.mlp.up_proj.weight)
        assert torch.equal(b.self_attn.k_proj.weight, t.self_attn.k_proj.weight)
