"""``init_from_teacher: [layers]``: a student's blocks start as evenly spaced blocks of the teacher (the issue's
"initialise from the teacher where shapes allow"), so that a CPU budget starts from the teacher's features rather
than from noise.

The student's blocks, encoder first, take teacher layers ``floor(i * L / n)`` for ``i < n`` (``n`` = its encoder
plus decoder blocks, ``L`` = the teacher's layers): the encoder the lower part of the teacher, the decoder the upper.
A block copies its teacher layer's norms, attention projections and gated FFN:

* T5: ``q`` is the teacher's ``q_proj`` times ``d_kv ** -0.5`` (T5 does not scale its scores; Llama divides them by
  ``sqrt(head_dim)``), ``k`` / ``v`` repeat each teacher key/value head over the query heads of its group (GQA made
  MHA, exactly), ``o`` is ``o_proj``; the decoder's cross-attention starts as the same copy. The FFN's ``wi_0`` /
  ``wi_1`` / ``wo`` are ``gate_proj`` / ``up_proj`` / ``down_proj`` (T5's tanh-GELU stands where the teacher has
  SiLU: close, not equal). What has no counterpart stays random: the relative position buckets (the teacher's RoPE
  is not carried over).
* Llama (decoder-only student): the layer's parameters as they are.
"""

from __future__ import annotations

import torch

from edgekit.errors import EdgekitError


def teacher_layers(teacher) -> list:
    """The teacher's decoder layers (llama family: ``model.layers``).

    Raises:
        EdgekitError: the teacher has none (then drop ``layers`` from ``init_from_teacher``).
    """
    layers = getattr(getattr(teacher, "model", None), "layers", None)
    if not layers:
        raise EdgekitError("init_from_teacher: layers needs a llama-family teacher (model.layers); drop 'layers' "
                           "from the student config")
    return list(layers)


def layer_map(n_student: int, n_teacher: int) -> list[int]:
    """Teacher layer of each student block: ``floor(i * n_teacher / n_student)``, evenly spaced from layer 0."""
    return [i * n_teacher // n_student for i in range(n_student)]


def check_layer_shapes(student, teacher) -> None:
    """Refuse ``layers`` when a student block cannot hold a teacher layer: other width, FFN width, heads or head width.

    Raises:
        EdgekitError: naming the first size that differs.
    """
    tc = teacher.config
    t_heads = int(tc.num_attention_heads)
    t_dim = int(getattr(tc, "head_dim", None) or tc.hidden_size // t_heads)
    sizes = [("d_model", student.d_model, int(tc.hidden_size)), ("d_ff", student.d_ff, int(tc.intermediate_size)),
             ("num_heads", student.num_heads, t_heads), ("d_kv", student.d_kv, t_dim)]
    if student.architecture == "llama":  # its key/value projections are copied as they are
        t_kv = int(getattr(tc, "num_key_value_heads", None) or t_heads)
        sizes.append(("num_kv_heads", student.num_kv_heads or student.num_heads, t_kv))
    for name, mine, theirs in sizes:
        if mine != theirs:
            raise EdgekitError(f"init_from_teacher: layers needs the teacher's block shape: {name} {mine} against the "
                               f"teacher's {theirs}; change it or drop 'layers'")


def _per_head(w: torch.Tensor, heads: int, d_kv: int) -> torch.Tensor:
    """A key or value projection of ``kv`` heads as ``heads`` heads: each repeated over the query heads of its
    group (GQA as MHA)."""
    kv = w.shape[0] // d_kv
    return w.float().view(kv, d_kv, -1).repeat_interleave(heads // kv, 0).reshape(heads * d_kv, -1)


def _attention(dst, src, heads: int, d_kv: int, scale_q: float) -> None:
    dst.q.weight.copy_(src.q_proj.weight.float() * scale_q)
    dst.k.weight.copy_(_per_head(src.k_proj.weight, heads, d_kv))
    dst.v.weight.copy_(_per_head(src.v_proj.weight, heads, d_kv))
    dst.o.weight.copy_(src.o_proj.weight.float())


def _t5_block(block, layer, heads: int, d_kv: int, decoder: bool) -> None:
    sub = block.layer
    scale = d_kv ** -0.5
    _attention(sub[0].SelfAttention, layer.self_attn, heads, d_kv, scale)
    sub[0].layer_norm.weight.copy_(layer.input_layernorm.weight.float())
    if decoder:
        _attention(sub[1].EncDecAttention, layer.self_attn, heads, d_kv, scale)
        sub[1].layer_norm.weight.copy_(layer.input_layernorm.weight.float())
    ffn = sub[-1]
    ffn.DenseReluDense.wi_0.weight.copy_(layer.mlp.gate_proj.weight.float())
    ffn.DenseReluDense.wi_1.weight.copy_(layer.mlp.up_proj.weight.float())
    ffn.DenseReluDense.wo.weight.copy_(layer.mlp.down_proj.weight.float())
    ffn.layer_norm.weight.copy_(layer.post_attention_layernorm.weight.float())


@torch.no_grad()
def init_layers(model, student, teacher) -> list[int]:
    """Copy teacher layers into ``model``'s blocks (module docstring); returns the teacher layer of each block."""
    check_layer_shapes(student, teacher)
    src = teacher_layers(teacher)
    if student.architecture == "llama":
        blocks = list(model.model.layers)
        which = layer_map(len(blocks), len(src))
        for b, i in zip(blocks, which):
            b.load_state_dict({k: v.float() for k, v in src[i].state_dict().items()})
        return which
    enc, dec = list(model.encoder.block), list(model.decoder.block)
    which = layer_map(len(enc) + len(dec), len(src))
    for j, b in enumerate(enc + dec):
        _t5_block(b, src[which[j]], student.num_heads, student.d_kv, decoder=j >= len(enc))
    return which
