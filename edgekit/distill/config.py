"""The distillation configs: the student's architecture (:class:`StudentConfig`) and the training run
(:class:`TrainConfig`), shipped together as one YAML file per student under ``recipes/students/``.

A student YAML holds ``name``, ``description``, the :class:`StudentConfig` keys at the top level and a ``train:``
mapping of :class:`TrainConfig` keys; any other key is an error naming it and the allowed ones
(:func:`load_student_config`). The command line's overrides (``--steps``, ``--batch`` ...) replace train keys and
go through the same checks.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from edgekit.config import CONFIG_VERSION, from_dict, to_dict
from edgekit.errors import EdgekitError
from edgekit.recipes import RECIPES_DIR, read_named_yaml

#: the student configs' folder and the one ``edgekit distill`` uses by default
STUDENTS_DIR = RECIPES_DIR / "students"
DEFAULT_STUDENT = "default"
#: what :attr:`StudentConfig.init_from_teacher` may name
INIT_PARTS = ("embedding", "final_norm", "layers")
#: student architectures: the T5 encoder-decoder, and a decoder-only Llama (the paper's comparison at equal size)
ARCHITECTURES = ("t5", "llama")
#: what :attr:`TrainConfig.precision` may name (:mod:`edgekit.distill.precision`)
PRECISIONS = ("fp32", "bf16", "auto")


def _check(ok: bool, msg: str) -> None:
    if not ok:
        raise EdgekitError(msg)


def _positive_int(obj, *names: str) -> None:
    for n in names:
        v = getattr(obj, n)
        _check(isinstance(v, int) and not isinstance(v, bool) and v >= 1, f"{n} must be an integer >= 1, got {v!r}")


@dataclass(frozen=True)
class StudentConfig:
    """A T5 v1.1 encoder-decoder student (transformers ``T5ForConditionalGeneration``): gated-GELU FFN
    (``gelu_pytorch_tanh``), RMSNorm, relative position buckets, tied input/output embedding; or, with
    ``architecture: llama``, a decoder-only student in the teacher's own family (``LlamaForCausalLM``: SwiGLU,
    RoPE with the teacher's settings, GQA, tied embedding) that reads ``[prefix ; continuation]`` as one causal
    sequence, the paper's decoder-only baseline of equal size.

    Attributes:
        architecture: ``t5`` or ``llama``.
        encoder_layers, decoder_layers: blocks in the encoder (reads the prefix once) and in the decoder (runs per
            generated token); a ``llama`` student has ``decoder_layers`` blocks and ``encoder_layers: 0``.
        d_model: width; equal to the teacher's hidden size, the teacher's embedding can initialise the student's.
        d_ff: FFN width (each of the two gated input projections).
        num_heads, d_kv: attention heads and the width of each (``num_heads * d_kv`` need not be ``d_model``; for
            ``llama`` it must be).
        num_kv_heads: ``llama`` only: key/value heads (GQA; None: ``num_heads``).
        vocab_size: must equal the teacher's vocabulary: the student uses the teacher's tokenizer.
        relative_attention_num_buckets, relative_attention_max_distance: T5's relative position buckets (HF's
            defaults 32 and 128; llama.cpp hard-codes the distance 128).
        dropout: dropout rate while training (0: distillation on a small budget does not need it).
        layer_norm_epsilon: RMSNorm epsilon.
        init_from_teacher: which parts start as the teacher's: ``embedding`` (the shared token embedding = the
            teacher's tied embedding; needs equal width and vocabulary) and ``final_norm`` (the decoder's final
            RMSNorm = the teacher's final norm times ``sqrt(d_model)``, which cancels the ``d_model ** -0.5`` that
            HF's T5 applies before a tied output head, so the student's first logits are on the teacher's scale);
            the rest starts from T5's own random initialisation. A ``llama`` student takes the final norm as it is
            (its head has no such scale). ``layers``: every block starts as an evenly spaced teacher layer
            (:mod:`edgekit.distill.init_layers`; needs the teacher's block shape).
        version: config schema version.
    """

    architecture: str = "t5"
    encoder_layers: int = 6
    decoder_layers: int = 2
    d_model: int = 576
    d_ff: int = 1536
    num_heads: int = 9
    d_kv: int = 64
    num_kv_heads: int | None = None
    vocab_size: int = 49152
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    dropout: float = 0.0
    layer_norm_epsilon: float = 1e-6
    init_from_teacher: tuple[str, ...] = ("embedding", "final_norm")
    version: int = CONFIG_VERSION

    def __post_init__(self):
        _check(self.architecture in ARCHITECTURES, f"architecture must be one of {list(ARCHITECTURES)}, got "
                                                   f"{self.architecture!r}")
        _positive_int(self, "decoder_layers", "d_model", "d_ff", "num_heads", "d_kv", "vocab_size",
                      "relative_attention_num_buckets", "relative_attention_max_distance")
        if self.architecture == "t5":
            _positive_int(self, "encoder_layers")
            _check(self.num_kv_heads is None, "num_kv_heads is for architecture: llama (T5 has one key/value head "
                                              "per head); remove it")
        else:
            _check(self.encoder_layers == 0, f"a llama student is decoder-only: set encoder_layers: 0 (its "
                                             f"decoder_layers are all its blocks), got {self.encoder_layers!r}")
            _check(self.num_heads * self.d_kv == self.d_model, f"a llama student needs num_heads * d_kv = d_model "
                                                               f"({self.num_heads} * {self.d_kv} != {self.d_model})")
            kv = self.num_heads if self.num_kv_heads is None else self.num_kv_heads
            _check(isinstance(kv, int) and not isinstance(kv, bool) and kv >= 1 and self.num_heads % kv == 0,
                   f"num_kv_heads must divide num_heads {self.num_heads}, got {self.num_kv_heads!r}")
        _check(isinstance(self.dropout, (int, float)) and 0.0 <= self.dropout < 1.0,
               f"dropout must be in [0, 1), got {self.dropout!r}")
        _check(isinstance(self.layer_norm_epsilon, (int, float)) and self.layer_norm_epsilon > 0,
               f"layer_norm_epsilon must be positive, got {self.layer_norm_epsilon!r}")
        parts = self.init_from_teacher
        _check(isinstance(parts, (list, tuple)) and all(p in INIT_PARTS for p in parts),
               f"init_from_teacher must be a list drawn from {list(INIT_PARTS)}, got {parts!r}")
        object.__setattr__(self, "init_from_teacher", tuple(parts))  # YAML gives a list; keep the config hashable
        _check(self.version == CONFIG_VERSION, f"config version {self.version} is not supported "
                                               f"(this edgekit reads version {CONFIG_VERSION})")


@dataclass(frozen=True)
class TrainConfig:
    """One distillation run.

    Attributes:
        steps: optimizer steps.
        batch: prefix → continuation pairs per step, over all processes (the global batch; under torchrun each of
            P processes takes ``batch / P`` of them, so a run's result does not depend on P).
        lr: AdamW's peak learning rate, reached after ``warmup_steps`` of linear warm-up, then a cosine decay to
            ``lr * min_lr_ratio`` at ``steps``.
        warmup_steps, min_lr_ratio: the schedule (above).
        weight_decay: AdamW's decoupled weight decay on matrices (not on norms).
        grad_clip: the global gradient norm is clipped to this (0: no clipping).
        kd_weight: the loss is ``kd_weight * KL(teacher ‖ student) + (1 - kd_weight) * CE`` per continuation token
            (temperature 1); 0 is the CE-only baseline on the same data and steps (the teacher scores nothing).
        top_k: teacher log-probabilities cached per continuation position (the KL's tail is one bucket:
            :func:`edgekit.distill.loss.topk_kl`).
        prefix_len, cont_len: tokens the encoder reads and the decoder produces per pair.
        train_pairs: distinct training pairs cut (and scored by the teacher once); ``steps * batch`` beyond this
            cycles over them in seeded epochs.
        val_pairs: held-out pairs (from held-out pages) for the report's continuation NLL.
        checkpoint_every: steps between checkpoints (0: only at the end).
        seed: seeds the page order, the student's initialisation, the epoch order and dropout.
        precision: the arithmetic of the teacher's scoring and of the student's forward and backward passes:
            ``fp32``, ``bf16`` (autocast; weights, optimizer state and the loss stay float32) or ``auto`` (bf16
            where the device computes it natively: a CPU with AVX512_BF16 / AMX-BF16 / Arm BF16, or a GPU that
            supports it; else fp32). The held-out comparison in the report always runs in fp32.
    """

    steps: int = 300
    batch: int = 8
    lr: float = 1e-3
    warmup_steps: int = 30
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    kd_weight: float = 0.9
    top_k: int = 64
    prefix_len: int = 256
    cont_len: int = 64
    train_pairs: int = 512
    val_pairs: int = 32
    checkpoint_every: int = 50
    seed: int = 0
    precision: str = "fp32"

    def __post_init__(self):
        _positive_int(self, "steps", "batch", "top_k", "prefix_len", "cont_len", "train_pairs", "val_pairs")
        for n in ("warmup_steps", "checkpoint_every", "seed"):
            v = getattr(self, n)
            _check(isinstance(v, int) and not isinstance(v, bool) and v >= 0, f"{n} must be an integer >= 0, got "
                                                                               f"{v!r}")
        _check(isinstance(self.lr, (int, float)) and self.lr > 0, f"lr must be positive, got {self.lr!r}")
        _check(0.0 <= self.min_lr_ratio <= 1.0, f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio!r}")
        _check(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay!r}")
        _check(self.grad_clip >= 0, f"grad_clip must be >= 0 (0: no clipping), got {self.grad_clip!r}")
        _check(0.0 <= self.kd_weight <= 1.0, f"kd_weight must be in [0, 1] (0: CE only), got {self.kd_weight!r}")
        _check(self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}, got "
                                             f"{self.precision!r}")


@dataclass(frozen=True)
class DistillConfig:
    """A student YAML: the student's architecture and its training run."""

    name: str = DEFAULT_STUDENT
    student: StudentConfig = field(default_factory=StudentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def with_train(self, **overrides) -> DistillConfig:
        """This config with the given train keys replaced (None values are ignored), checked like the YAML."""
        data = to_dict(self.train)
        data.update({k: v for k, v in overrides.items() if v is not None})
        return dataclasses.replace(self, train=from_dict(TrainConfig, data, "command line"))

    def to_dict(self) -> dict:
        """Plain nested dict (JSON ready): what the report and the checkpoints' fingerprint store."""
        return {"name": self.name, "student": to_dict(self.student), "train": to_dict(self.train)}


def load_student_config(name_or_path: str | None = None) -> DistillConfig:
    """Load a shipped student config by name (``default``, ``large``) or a YAML file by path.

    Raises:
        EdgekitError: an unknown name (listing the shipped ones), an unknown key (naming it and the allowed ones),
            ``train`` not a mapping, or a bad value.
    """
    data, p = read_named_yaml(name_or_path or DEFAULT_STUDENT, STUDENTS_DIR, "student config")
    where = p.name
    if not isinstance(data, dict):
        raise EdgekitError(f"{where}: a student config must be a YAML mapping")
    top = {"name", "description", "train"}
    allowed = top | {f.name for f in dataclasses.fields(StudentConfig)} - {"version"}
    for key in data:
        if key not in allowed:
            raise EdgekitError(f"{where}: unknown key {key!r}; allowed: {', '.join(sorted(allowed))}")
    train = data.get("train") or {}
    if not isinstance(train, dict):
        raise EdgekitError(f"{where}: train must be a mapping of training keys, got {train!r}")
    student = from_dict(StudentConfig, {k: v for k, v in data.items() if k not in top}, where)
    return DistillConfig(name=str(data.get("name", p.stem)), student=student,
                         train=from_dict(TrainConfig, train, f"{where}: train"))
