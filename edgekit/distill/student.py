"""The student: built from a :class:`~edgekit.distill.config.StudentConfig` and the teacher, with the checks that
make the pair usable, and the parameter counts the report prints. A T5 encoder-decoder by default; a decoder-only
Llama (``architecture: llama``) for the paper's comparison at equal size, which reads ``[prefix ; continuation]`` as
one causal sequence and is trained and scored on the same continuation positions.

The student reads the teacher's tokenizer, so its vocabulary must be the teacher's; the encoder reads the prefix,
the decoder starts from ``decoder_start_token_id`` (the pad token, T5's convention) and predicts the continuation.
With ``init_from_teacher`` the shared embedding is the teacher's and the decoder's final RMSNorm is the teacher's
final norm times ``sqrt(d_model)``: HF's T5 multiplies the decoder output by ``d_model ** -0.5`` before a tied head,
so this makes the initial output head ``rms(h) * w_teacher @ E.T``, exactly the teacher's head on a normalised state.
"""

from __future__ import annotations

import math

import torch

from edgekit.distill.config import StudentConfig
from edgekit.distill.init_layers import check_layer_shapes, init_layers
from edgekit.errors import EdgekitError

#: the FFN: gated, GELU with the tanh approximation under the name llama.cpp and optimum agree on
FEED_FORWARD_PROJ = "gated-gelu_pytorch_tanh"


def check_teacher(lm, student: StudentConfig) -> None:
    """Refuse a teacher that cannot teach ``student``: not a causal LM, or a vocabulary other than the student's.

    Args:
        lm: the teacher as :func:`edgekit.models.load_model` returned it.
        student: the student's config.

    Raises:
        EdgekitError: one line naming what does not fit.
    """
    if lm.task != "causal-lm":
        raise EdgekitError(f"the teacher {lm.source.spec} is a {lm.family} {lm.task}, not a causal LM; distill from a "
                           "decoder-only language model (e.g. smollm2-135m)")
    teacher_vocab = int(lm.config.vocab_size)
    if student.vocab_size != teacher_vocab or len(lm.tokenizer) > student.vocab_size:
        raise EdgekitError(f"the student's vocab_size {student.vocab_size} is not the teacher's ({teacher_vocab} "
                           f"logits, tokenizer of {len(lm.tokenizer)} tokens); the student uses the teacher's "
                           f"tokenizer: set vocab_size: {teacher_vocab} in the student config")
    if "layers" in student.init_from_teacher:
        check_layer_shapes(student, lm.model)
    if "embedding" in student.init_from_teacher:
        width = int(lm.config.hidden_size)
        if width != student.d_model:
            raise EdgekitError(f"init_from_teacher: embedding needs d_model = the teacher's width {width}, the student "
                               f"has {student.d_model}; change d_model or drop 'embedding'")


def t5_config(student: StudentConfig, tokenizer):
    """The transformers ``T5Config`` of ``student`` with the teacher's special tokens."""
    from transformers import T5Config

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise EdgekitError("the teacher's tokenizer has neither a pad nor an EOS token; the student's decoder needs "
                           "one to start from")
    return T5Config(vocab_size=student.vocab_size, d_model=student.d_model, d_kv=student.d_kv, d_ff=student.d_ff,
                    num_layers=student.encoder_layers, num_decoder_layers=student.decoder_layers,
                    num_heads=student.num_heads,
                    relative_attention_num_buckets=student.relative_attention_num_buckets,
                    relative_attention_max_distance=student.relative_attention_max_distance,
                    dropout_rate=student.dropout, layer_norm_epsilon=student.layer_norm_epsilon,
                    feed_forward_proj=FEED_FORWARD_PROJ, tie_word_embeddings=True, is_encoder_decoder=True,
                    pad_token_id=pad, decoder_start_token_id=pad,
                    eos_token_id=tokenizer.eos_token_id if tokenizer.eos_token_id is not None else pad)


def llama_config(student: StudentConfig, teacher, tokenizer):
    """The transformers ``LlamaConfig`` of a decoder-only ``student``: its sizes, the teacher's RoPE, norm epsilon,
    context length and special tokens, a tied embedding."""
    from transformers import LlamaConfig

    tc = teacher.config
    return LlamaConfig(vocab_size=student.vocab_size, hidden_size=student.d_model, intermediate_size=student.d_ff,
                       num_hidden_layers=student.decoder_layers, num_attention_heads=student.num_heads,
                       num_key_value_heads=student.num_kv_heads or student.num_heads,
                       max_position_embeddings=int(getattr(tc, "max_position_embeddings", 2048)),
                       rms_norm_eps=float(getattr(tc, "rms_norm_eps", student.layer_norm_epsilon)),
                       rope_theta=float(getattr(tc, "rope_theta", 10000.0)),
                       rope_scaling=getattr(tc, "rope_scaling", None), hidden_act="silu",
                       tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                       eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)


def build_student(student: StudentConfig, teacher, tokenizer, seed: int = 0):
    """A float32 student in train mode, initialised from ``seed`` and from ``teacher`` where the config says.

    Args:
        student: the student's config (checked against the teacher by :func:`check_teacher` first).
        teacher: the teacher's torch model (``LlamaForCausalLM``-like: ``get_input_embeddings``, ``model.norm``).
        tokenizer: the teacher's tokenizer (special token ids).
        seed: seeds T5's random initialisation.
    """
    from transformers import LlamaForCausalLM, T5ForConditionalGeneration

    torch.manual_seed(seed)
    if student.architecture == "llama":
        model = LlamaForCausalLM(llama_config(student, teacher, tokenizer)).float()
        with torch.no_grad():
            if "embedding" in student.init_from_teacher:
                model.get_input_embeddings().weight.copy_(teacher.get_input_embeddings().weight.float())
            if "final_norm" in student.init_from_teacher:
                model.model.norm.weight.copy_(teacher_final_norm(teacher).float())
            if "layers" in student.init_from_teacher:
                init_layers(model, student, teacher)
        model.tie_weights()
        model.train()
        return model
    model = T5ForConditionalGeneration(t5_config(student, tokenizer)).float()
    with torch.no_grad():
        if "embedding" in student.init_from_teacher:
            model.shared.weight.copy_(teacher.get_input_embeddings().weight.float())
        if "final_norm" in student.init_from_teacher:
            norm = teacher_final_norm(teacher)
            model.decoder.final_layer_norm.weight.copy_(norm.float() * math.sqrt(student.d_model))
        if "layers" in student.init_from_teacher:
            init_layers(model, student, teacher)
    model.tie_weights()
    model.train()
    return model


def teacher_final_norm(teacher) -> torch.Tensor:
    """The weight of the teacher's final RMSNorm (llama-family: ``model.norm``).

    Raises:
        EdgekitError: the teacher has no such norm (then drop ``final_norm`` from ``init_from_teacher``).
    """
    norm = getattr(getattr(teacher, "model", None), "norm", None)
    if norm is None or getattr(norm, "weight", None) is None:
        raise EdgekitError("init_from_teacher: final_norm needs a llama-family teacher (model.norm); drop "
                           "'final_norm' from the student config")
    return norm.weight.detach()


def parameter_counts(model) -> dict[str, int]:
    """Parameters of a student: ``embedding`` (the shared table, counted once), ``encoder`` and ``decoder``
    (their blocks and norms, without the embedding; a decoder-only student's are all ``decoder``),
    ``non_embedding`` and ``total``."""
    if not model.config.is_encoder_decoder:
        emb = model.get_input_embeddings().weight
        body = sum(p.numel() for p in model.parameters() if p is not emb)  # parameters() yields a tied one once
        return {"embedding": emb.numel(), "encoder": 0, "decoder": body, "non_embedding": body,
                "total": emb.numel() + body}
    emb = model.shared.weight
    enc = sum(p.numel() for p in model.encoder.parameters() if p is not emb)
    dec = sum(p.numel() for p in model.decoder.parameters() if p is not emb)
    head = model.lm_head.weight
    extra = 0 if head is emb or head.data_ptr() == emb.data_ptr() else head.numel()
    return {"embedding": emb.numel(), "encoder": enc, "decoder": dec, "non_embedding": enc + dec + extra,
            "total": emb.numel() + enc + dec + extra}


def teacher_parameter_counts(teacher) -> dict[str, int]:
    """``embedding``, ``non_embedding`` and ``total`` parameters of a causal-LM teacher (a tied head counted once)."""
    emb = teacher.get_input_embeddings().weight
    seen, total = set(), 0
    for p in teacher.parameters():
        if p.data_ptr() not in seen:
            seen.add(p.data_ptr())
            total += p.numel()
    return {"embedding": emb.numel(), "non_embedding": total - emb.numel(), "total": total}


def student_logits(model, prefix: torch.Tensor, cont: torch.Tensor) -> torch.Tensor:
    """The student's logits ``[B, C, V]`` for the continuation: the encoder reads ``prefix``, the decoder reads
    ``[decoder_start ; cont[:, :-1]]`` (teacher forcing), so output ``j`` predicts ``cont[:, j]``. A decoder-only
    student reads ``[prefix ; cont[:, :-1]]`` and its last C positions predict the continuation, as the teacher's
    do."""
    if not model.config.is_encoder_decoder:
        ids = torch.cat([prefix, cont[:, :-1]], dim=1)
        return model(input_ids=ids, use_cache=False, logits_to_keep=cont.shape[1]).logits
    start = torch.full_like(cont[:, :1], model.config.decoder_start_token_id)
    dec_in = torch.cat([start, cont[:, :-1]], dim=1)
    return model(input_ids=prefix, decoder_input_ids=dec_in, use_cache=False).logits


def is_t5_dir(path) -> bool:
    """Whether ``path`` is a Hugging Face directory of a T5 encoder-decoder (``config.json`` with model_type t5)."""
    import json
    from pathlib import Path

    f = Path(path) / "config.json"
    try:
        return f.is_file() and json.loads(f.read_text()).get("model_type") == "t5"
    except (OSError, ValueError):
        return False


def load_t5_config(path) -> dict:
    """``config.json`` of a T5 encoder-decoder directory (``edgekit distill``'s ``DIR/student``), checked.

    Raises:
        EdgekitError: ``path`` is not a directory with ``config.json`` and weights, or the model is not a T5.
    """
    import json
    from pathlib import Path

    p = Path(path)
    f = p / "config.json"
    if not f.is_file():
        raise EdgekitError(f"{path} is not a Hugging Face model directory (no config.json); give the student "
                           "directory edgekit distill wrote (DIR/student)")
    try:
        cfg = json.loads(f.read_text())
    except ValueError as e:
        raise EdgekitError(f"{f} is not valid JSON: {e}") from None
    if cfg.get("model_type") != "t5" or not cfg.get("is_encoder_decoder", True):
        raise EdgekitError(f"{path} holds a {cfg.get('model_type')!r} model, not a T5 encoder-decoder; the "
                           "encoder-decoder exports and engines take the student directory of edgekit distill")
    if not any(p.glob("*.safetensors")):
        raise EdgekitError(f"{path} has no .safetensors weights; save the model with save_pretrained")
    return cfg
