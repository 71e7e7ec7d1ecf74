"""Quantization configs: small frozen dataclasses, strict dict round trips, and the config → handler registry.

A scheme is a config object; :func:`edgekit.quant.api.quantize_` looks its type up in :data:`HANDLERS` and applies
it (torchao's shape). Recipes (YAML files, read by :mod:`edgekit.recipes`) map onto these configs through
:func:`from_dict`, which rejects unknown keys by name, so a typo in a recipe is an error and never a silently ignored
setting. No file I/O here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

from edgekit.errors import EdgekitError

CONFIG_VERSION = 1


@dataclass(frozen=True)
class TuneConfig:
    """Block-wise output reconstruction after GPTQ/RTN (AutoRound / SignRound style, :mod:`edgekit.quant.tune`).

    For each decoder block, once its linears are quantized, a rounding offset ``v`` in [-0.5, 0.5] per weight and a
    scale multiplier per group are learned by signed gradient descent (straight-through rounding, the runtime's
    activation fake-quant in the loop) so that the quantized block's output on calibration windows matches the
    float block's. Only codes and fp16 scales change: the format stays the same.

    Attributes:
        iters: optimisation steps per block; 0 turns tuning off.
        lr: the signed step, decayed linearly to 0; None is ``1 / iters`` (AutoRound's default).
        samples: calibration windows (evenly spaced over the calibration set) tuned on.
        batch: windows per step, drawn afresh from the ``samples`` every step (seeded); 0 for all of them.
        holdout: more windows, not trained on: the iterate kept is the one with the least error on them (0: the
            least error on the training windows).
        seqlen: the first ``seqlen`` tokens of each of those windows (exact for a causal block: its outputs there do
            not depend on later tokens); 0 for the whole windows. Encoder stacks (bidirectional) need 0.
        scale_range: each group's scale multiplier stays in ``[1 - scale_range, 1 + scale_range]`` and moves by
            ``2 * scale_range`` times the offsets' step (it crosses its range at their pace); 0 tunes the rounding
            alone.
        norm_range: also tune the weights of the block's norms that feed its quantized linears (the family's
            ``norm_feeds``; float32 in the artifact and in GGUF, so the format is unchanged), each within
            ``[1 - norm_range, 1 + norm_range]`` times its float value, at the scales' pace; 0 leaves them.
        target: ``"float"``: the float model's block output (the float stream carried beside the quantized one,
            so a block also learns to undo the error of the blocks before it; AutoRound's choice); ``"local"``: the
            float block on the quantized stream's input (GPTQ's objective).
        loss: ``"mse"`` (AutoRound's) or ``"relative"``: each token's squared error over its target's squared norm
            (from SmolLM2's block 11 on, the first token's massive residual is most of the plain MSE).
    """

    iters: int = 0
    lr: float | None = None
    samples: int = 4
    batch: int = 0
    seqlen: int = 0
    holdout: int = 0
    scale_range: float = 0.2
    norm_range: float = 0.0
    target: str = "float"
    loss: str = "mse"

    def __post_init__(self):
        _check(isinstance(self.iters, int) and self.iters >= 0,
               f"tune iters must be an integer >= 0, got {self.iters!r}")
        _check(self.lr is None or self.lr > 0, f"tune lr must be positive or null, got {self.lr!r}")
        _check(isinstance(self.samples, int) and self.samples >= 1,
               f"tune samples must be an integer >= 1, got {self.samples!r}")
        _check(isinstance(self.batch, int) and self.batch >= 0,
               f"tune batch must be an integer >= 0, got {self.batch!r}")
        _check(isinstance(self.holdout, int) and self.holdout >= 0,
               f"tune holdout must be an integer >= 0, got {self.holdout!r}")
        _check(isinstance(self.seqlen, int) and self.seqlen >= 0,
               f"tune seqlen must be an integer >= 0, got {self.seqlen!r}")
        _check(0 <= self.scale_range < 1, f"tune scale_range must be in [0, 1), got {self.scale_range}")
        _check(0 <= self.norm_range < 1, f"tune norm_range must be in [0, 1), got {self.norm_range}")
        _check(self.target in ("float", "local"), f"tune target must be 'float' or 'local', got {self.target!r}")
        _check(self.loss in ("mse", "relative"), f"tune loss must be 'mse' or 'relative', got {self.loss!r}")

    @property
    def step(self) -> float:
        """The initial signed step."""
        return self.lr if self.lr is not None else 1.0 / max(self.iters, 1)


@dataclass(frozen=True)
class E2EConfig:
    """End-to-end tuning after every block is quantized (:mod:`edgekit.quant.e2e`): each group scale of the block
    linears gets a trainable multiplier, and the RMSNorm weights train too, towards the float model's logits
    (KL, Adam with warm-up and cosine decay, straight-through fp16 / int8 rounding). Codes stay fixed, so the
    format is unchanged. Causal LMs only.

    Attributes:
        steps: optimizer steps; 0 turns it off.
        lr: Adam's peak learning rate (on the log scale multipliers and on the norm weights).
        batch: calibration crops per step.
        seqlen: tokens per crop (random crops of the calibration windows).
        norms: also tune the blocks' norms and the final norm.
    """

    steps: int = 0
    lr: float = 3e-3
    batch: int = 2
    seqlen: int = 256
    norms: bool = True

    def __post_init__(self):
        _check(isinstance(self.steps, int) and self.steps >= 0, f"e2e steps must be an integer >= 0, got {self.steps!r}")
        _check(self.lr > 0, f"e2e lr must be positive, got {self.lr!r}")
        _check(isinstance(self.batch, int) and self.batch >= 1, f"e2e batch must be an integer >= 1, got {self.batch!r}")
        _check(isinstance(self.seqlen, int) and self.seqlen >= 2,
               f"e2e seqlen must be an integer >= 2, got {self.seqlen!r}")
        _check(isinstance(self.norms, bool), f"e2e norms must be true or false, got {self.norms!r}")


@dataclass(frozen=True)
class WeightConfig:
    """How linear weights are quantized.

    Attributes:
        bits: 4 (packed nibbles) or 8.
        group_size: group length along K; 0 means one group per output channel (per-channel).
        symmetric: ``(q-8)*d`` (GGUF Q4_0 for G=32) if True, ``q*d+m`` (Q4_1) if False.
        method: ``"gptq"`` (Hessian-aware error feedback) or ``"rtn"`` (round to nearest).
        act_order: GPTQ processes columns by decreasing Hessian diagonal.
        damp: GPTQ dampening, as a fraction of the mean Hessian diagonal.
        block_size: GPTQ lazy-update block width.
        hessian_shrink: GPTQ solves with ``(1-s) H + s diag(H)`` (0: plain GPTQ; 1: no cross-channel error
            feedback, i.e. importance-weighted rounding); see :func:`edgekit.quant.gptq.gptq_quantize`.
        scale_search: search each group's scale for the least squared error instead of taking max/8.
        weighted_search: the scale search weighs each weight's squared error by its input channel's mean square
            (the Hessian diagonal: llama.cpp's importance matrix), tries each candidate's weighted least-squares
            scale, and a finer grid of scales, some above the group's peak. ``rtn`` then collects only the diagonal,
            not the whole Hessian.
        awq: activation-aware per-channel scaling folded into the float model before quantizing (see
            :mod:`edgekit.quant.awq`).
        sequential: feed each block the *quantized* previous block's outputs (one more forward pass per block), so
            GPTQ compensates the error accumulated so far; False reuses the float outputs of the statistics pass.
        stats_precision: matmul precision of the GPTQ Hessian accumulation: ``"bf16"`` rounds the activations to
            bf16 and accumulates in fp32 (AMX / bf16 dot units where the CPU has them, about 2x faster; a Hessian
            stays an exact Gram matrix, so positive semi-definite); ``"fp32"`` is full IEEE. The block forward
            passes are always fp32.
        tune: block-wise tuning of the codes and scales after quantizing (:class:`TuneConfig`; off by default).
    """

    bits: int = 4
    group_size: int = 32
    symmetric: bool = True
    method: str = "gptq"
    act_order: bool = True
    damp: float = 0.01
    block_size: int = 128
    hessian_shrink: float = 0.0
    scale_search: bool = True
    weighted_search: bool = False
    awq: bool = False
    sequential: bool = True
    stats_precision: str = "bf16"
    tune: TuneConfig = field(default_factory=TuneConfig)

    def __post_init__(self):
        _check(self.bits in (4, 8), f"weight bits must be 4 or 8, got {self.bits}")
        _check(self.group_size == 0 or (self.group_size > 0 and self.group_size % 2 == 0),
               f"group_size must be 0 (per-channel) or a positive even number, got {self.group_size}")
        _check(self.method in ("gptq", "rtn"), f"weight method must be 'gptq' or 'rtn', got {self.method!r}")
        _check(0 <= self.damp < 1, f"damp must be in [0, 1), got {self.damp}")
        _check(not self.weighted_search or self.scale_search,
               "weighted_search needs scale_search: true (it weighs the scale search)")
        _check(0 <= self.hessian_shrink <= 1, f"hessian_shrink must be in [0, 1], got {self.hessian_shrink}")
        _check(self.block_size > 0, f"block_size must be positive, got {self.block_size}")
        _check(self.stats_precision in ("bf16", "fp32"),
               f"stats_precision must be 'bf16' or 'fp32', got {self.stats_precision!r}")
        _check(not self.tune.iters or self.tunable(self.bits, self.symmetric, self.group_size),
               "weight tune supports 4-bit symmetric group quantization (Q4_0) only")

    @staticmethod
    def tunable(bits: int, symmetric: bool, group_size: int) -> bool:
        """Whether block-wise tuning (``tune``) is defined for this format: Q4_0's (4-bit, symmetric, groups)."""
        return bits == 4 and symmetric and group_size > 0


@dataclass(frozen=True)
class ActivationConfig:
    """How the inputs of quantized linears are quantized.

    Attributes:
        bits: 8, or 16 for weight-only (no activation quantization).
        granularity: ``"per_token"`` (dynamic, one scale per row), ``"per_block"`` (dynamic, one scale per 32
            consecutive values of a row: GGUF Q8_0's and ONNX Runtime's accuracy-level-4 blocking) or
            ``"per_tensor"`` (static, calibrated).
        trip: with ``per_tensor``, Agile-Quant's power-of-two per-channel factors 2^a_c on normalized inputs, folded
            into the RMSNorm weight and the consuming linears.
        trip_max_exp: the largest exponent K of the factors (a_c in 0..K).
    """

    bits: int = 8
    granularity: str = "per_token"
    trip: bool = False
    trip_max_exp: int = 5

    def __post_init__(self):
        _check(self.bits in (8, 16), f"activation bits must be 8 (or 16 = not quantized), got {self.bits}")
        _check(self.granularity in ("per_token", "per_block", "per_tensor"),
               f"activation granularity must be 'per_token', 'per_block' or 'per_tensor', got {self.granularity!r}")
        _check(not self.trip or self.granularity == "per_tensor", "trip needs granularity: per_tensor")
        _check(0 <= self.trip_max_exp <= 15, f"trip_max_exp must be in 0..15, got {self.trip_max_exp}")


@dataclass(frozen=True)
class AttentionConfig:
    """Quantization inside attention (both optional).

    Attributes:
        qkv_bits: 8 to fake-quantize Q, K and V per head (dynamic), or None.
        softmax_log2_bits: 4 for the log2 softmax quantizer ``q = clamp(round(-log2 p), 0, 15)``, or None.
    """

    qkv_bits: int | None = None
    softmax_log2_bits: int | None = None

    def __post_init__(self):
        _check(self.qkv_bits in (None, 8), f"qkv_bits must be 8 or null, got {self.qkv_bits}")
        _check(self.softmax_log2_bits in (None, 3, 4, 5, 6, 7, 8),
               f"softmax_log2_bits must be 3..8 or null, got {self.softmax_log2_bits}")


@dataclass(frozen=True)
class PruneConfig:
    """Activation-aware token pruning of prompt prefills (:mod:`edgekit.prune`).

    At each pruning layer the prompt tokens that attend least to the first token are dropped after the attention
    residual; they skip that layer's MLP and every later layer. ``ratio`` of the prompt is gone after the last pruning
    layer (per-layer ratio ``1 - (1 - ratio)^(1/m)`` for ``m`` layers). Decode is never pruned.

    Attributes:
        ratio: beta, the fraction of the prompt dropped by the last pruning layer; 0 turns pruning off.
        start_layer: the first pruning layer; None picks it from calibration data (the first layer whose attention
            sinks into the first token, :func:`edgekit.prune.schedule.auto_start_layer`).
        layers: explicit pruning layers (strictly increasing); None = every layer from ``start_layer`` on.
        keep_last: the last prompt positions that are never dropped.
    """

    ratio: float = 0.0
    start_layer: int | None = None
    layers: tuple[int, ...] | None = None
    keep_last: int = 4

    def __post_init__(self):
        _check(0.0 <= self.ratio < 1.0, f"prune ratio must be in [0, 1), got {self.ratio}")
        _check(self.start_layer is None or (isinstance(self.start_layer, int) and self.start_layer >= 0),
               f"prune start_layer must be a layer index >= 0 or null, got {self.start_layer!r}")
        _check(isinstance(self.keep_last, int) and self.keep_last >= 1,
               f"prune keep_last must be an integer >= 1, got {self.keep_last!r}")
        if self.layers is not None:
            layers = tuple(self.layers) if isinstance(self.layers, (list, tuple)) else None
            _check(layers is not None and len(layers) > 0 and all(isinstance(i, int) and i >= 0 for i in layers)
                   and all(b > a for a, b in zip(layers, layers[1:])),
                   f"prune layers must be a non-empty, strictly increasing list of layer indices, got {self.layers!r}")
            object.__setattr__(self, "layers", layers)


@dataclass(frozen=True)
class AgileQuantConfig:
    """Agile-Quant: GPTQ int4 weights, int8 (or per-token int4/int8 mixed) activations.

    Attributes:
        weight: weight quantization.
        activation: activation quantization of linear inputs.
        attention: Q/K/V and softmax quantization.
        w4a4_ratio: fraction of tokens (lowest attention to the first token) whose o_proj, gate/up and down inputs are
            quantized to int4 instead of int8; 0 disables the W4A4 mix.
        lm_head_bits: None keeps the LM head in float (fp16 in the runtime); 8 makes the tied embedding / LM head
            one Q8_0 table (int8 per 32 values with an fp16 scale, GGUF's Q8_0; float activations); an untied head (a
            rotated model's) is a second Q8_0 table.
        lm_head_act_bits: None keeps the Q8_0 head's input in float; 8 rounds it per block of 32 to int8 as well
            (GGUF Q8_0's rule, as llama.cpp runs a Q8_0 head) so that the runtime's head is integer dot products
            (kernels.h: ek_gemm_q8_0_q8b). Needs ``lm_head_bits: 8``.
        prune: token pruning of prompt prefills, stored with the artifact for the runtimes to apply.
        rotation: ``"none"``, or a rotation of the residual stream folded into the weights before calibration
            (:mod:`edgekit.quant.rotate`): ``"hadamard"`` (randomized Hadamard) or ``"random"`` (seeded random
            orthogonal). The model stays a plain Llama with an untied head and norm weights of 1.
        e2e: end-to-end tuning of the scales and norms towards the float logits after quantizing
            (:class:`E2EConfig`; off by default). Needs 4-bit symmetric group weights.
        version: config schema version.
    """

    weight: WeightConfig = field(default_factory=WeightConfig)
    activation: ActivationConfig = field(default_factory=ActivationConfig)
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    w4a4_ratio: float = 0.0
    lm_head_bits: int | None = None
    lm_head_act_bits: int | None = None
    prune: PruneConfig = field(default_factory=PruneConfig)
    rotation: str = "none"
    e2e: E2EConfig = field(default_factory=E2EConfig)
    version: int = CONFIG_VERSION

    def __post_init__(self):
        _check(self.rotation in ("none", "hadamard", "random"),
               f"rotation must be 'none', 'hadamard' or 'random', got {self.rotation!r}")
        _check(0.0 <= self.w4a4_ratio <= 1.0, f"w4a4_ratio must be in [0, 1], got {self.w4a4_ratio}")
        _check(self.lm_head_bits in (None, 8), f"lm_head_bits must be 8 or null, got {self.lm_head_bits}")
        _check(self.lm_head_act_bits in (None, 8), f"lm_head_act_bits must be 8 or null, got {self.lm_head_act_bits}")
        _check(self.lm_head_act_bits is None or self.lm_head_bits == 8,
               "lm_head_act_bits 8 needs lm_head_bits 8 (integer activations meet the Q8_0 table's codes)")
        _check(self.version == CONFIG_VERSION, f"config version {self.version} is not supported "
                                               f"(this edgekit reads version {CONFIG_VERSION})")
        _check(not self.e2e.steps or (self.weight.bits == 4 and self.weight.symmetric and self.weight.group_size > 0),
               "e2e tuning supports 4-bit symmetric group weights (Q4_0) only")
        _check(self.w4a4_ratio == 0 or (self.activation.bits == 8 and self.activation.granularity == "per_token"),
               "w4a4_ratio needs 8-bit per_token activations (the int4/int8 choice is made per token)")

    def describe(self) -> str:
        """Short human name, e.g. ``W4A8 g32 sym gptq per_token``."""
        w, a = self.weight, self.activation
        act = "A16" if a.bits == 16 else ("A4/8" if self.w4a4_ratio else f"A{a.bits}")
        g = "per-channel" if w.group_size == 0 else f"g{w.group_size}"
        trip = "+trip" if a.trip else ""
        prune = f" prune {self.prune.ratio:g}" if self.prune.ratio else ""
        rot = f" rot-{self.rotation}" if self.rotation != "none" else ""
        e2e = " +e2e" if self.e2e.steps else ""
        return (f"W{w.bits}{act} {g} {'sym' if w.symmetric else 'asym'} {w.method} {a.granularity}{trip}{prune}"
                f"{rot}{e2e}")


@dataclass(frozen=True)
class AcmPhaseConfig:
    """The optimisation budget of one ACM training phase (:mod:`edgekit.acm.phases`).

    Attributes:
        steps: optimizer steps (phases 1 and 2: per layer, each a batch of ``batch`` token rows of that layer's
            captured FFN inputs; phase 3: whole-model steps, each ``batch`` calibration windows per process).
        lr: Adam learning rate.
        batch: token rows (phases 1, 2) or windows (phase 3) per step.
    """

    steps: int = 100
    lr: float = 1e-3
    batch: int = 1024

    def __post_init__(self):
        _check(isinstance(self.steps, int) and self.steps >= 0, f"phase steps must be an integer >= 0, got "
                                                                 f"{self.steps!r}")
        _check(self.lr > 0, f"phase lr must be positive, got {self.lr}")
        _check(isinstance(self.batch, int) and self.batch >= 1, f"phase batch must be an integer >= 1, got "
                                                                 f"{self.batch!r}")


@dataclass(frozen=True)
class AcmConfig:
    """Adaptive computation modules (Wójcik et al., arXiv 2312.10193): each gated FFN split into ``n_learners``
    learners, a per-token gate choosing how many run (:mod:`edgekit.acm`).

    Attributes:
        budget: the target executed fraction of the FFN learners, in (0, 1] (phase 3's budget loss).
        n_learners: learners per FFN; the FFN width divided by it (a multiple of 32) is the learner width.
        gate_hidden: hidden width of the gate MLP (FFN input → hidden → n_learners + 1 logits).
        calib_samples: calibration windows: the neuron importance and every phase's training text.
        calib_seqlen: tokens per calibration window.
        tau: the gate label rule (phase 2): the label is the smallest k whose next learner improves the output error
            by a factor below ``tau`` (``err_k / err_{k+1} < tau``), else ``n_learners``.
        gumbel_tau: Gumbel-softmax temperature of the gates in phase 3 (hard, straight-through).
        budget_weight: weight of the L1 distance between the executed fraction and ``budget``.
        entropy_weight: weight of the paper's per-sequence gate entropy term (against static choices).
        diversity_weight: weight of the paper's compute-diversity term (samples differ in cost).
        distill: phase 3's task loss: ``kl`` to the dense model's logits, ``ce`` on the next token, or ``kl+ce``.
        phase1, phase2, phase3: representation distillation, gate pre-training, end-to-end fine-tuning.
        seed: seeds the calibration windows and every random draw of training.
        version: config schema version.
    """

    budget: float = 0.5
    n_learners: int = 8
    gate_hidden: int = 64
    calib_samples: int = 16
    calib_seqlen: int = 256
    tau: float = 1.2
    gumbel_tau: float = 0.8
    budget_weight: float = 0.1
    entropy_weight: float = 0.05
    diversity_weight: float = 0.05
    distill: str = "kl"
    phase1: AcmPhaseConfig = field(default_factory=lambda: AcmPhaseConfig(steps=30, lr=1e-4, batch=1024))
    phase2: AcmPhaseConfig = field(default_factory=lambda: AcmPhaseConfig(steps=50, lr=1e-2, batch=1024))
    phase3: AcmPhaseConfig = field(default_factory=lambda: AcmPhaseConfig(steps=30, lr=1e-4, batch=2))
    seed: int = 0
    version: int = CONFIG_VERSION

    def __post_init__(self):
        _check(isinstance(self.budget, (int, float)) and 0.0 < self.budget <= 1.0,
               f"ACM budget must be in (0, 1] (the executed fraction of the FFN), got {self.budget!r}")
        _check(isinstance(self.n_learners, int) and self.n_learners >= 1,
               f"n_learners must be an integer >= 1, got {self.n_learners!r}")
        _check(isinstance(self.gate_hidden, int) and self.gate_hidden >= 1,
               f"gate_hidden must be an integer >= 1, got {self.gate_hidden!r}")
        _check(isinstance(self.calib_samples, int) and self.calib_samples >= 1,
               f"calib_samples must be an integer >= 1, got {self.calib_samples!r}")
        _check(isinstance(self.calib_seqlen, int) and self.calib_seqlen >= 2,
               f"calib_seqlen must be an integer >= 2, got {self.calib_seqlen!r}")
        _check(self.tau > 1.0, f"tau must be > 1 (a ratio of errors), got {self.tau}")
        _check(self.gumbel_tau > 0, f"gumbel_tau must be positive, got {self.gumbel_tau}")
        for name in ("budget_weight", "entropy_weight", "diversity_weight"):
            _check(getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)}")
        _check(self.distill in ("kl", "ce", "kl+ce"), f"distill must be 'kl', 'ce' or 'kl+ce', got {self.distill!r}")
        _check(self.version == CONFIG_VERSION, f"config version {self.version} is not supported "
                                               f"(this edgekit reads version {CONFIG_VERSION})")

    def learner_width(self, ffn: int) -> int:
        """The learner width for an FFN of ``ffn`` neurons.

        Raises:
            EdgekitError: ``n_learners`` does not divide ``ffn`` or the width is not a multiple of 32 (the int4
                group and the kernels' block).
        """
        if ffn % self.n_learners:
            raise EdgekitError(f"n_learners {self.n_learners} does not divide the FFN width {ffn}; pick a divisor "
                               f"whose learner width is a multiple of 32 (e.g. {_divisors32(ffn)})")
        width = ffn // self.n_learners
        if width % 32:
            raise EdgekitError(f"learner width {width} (= {ffn} / {self.n_learners}) is not a multiple of 32; pick "
                               f"n_learners from {_divisors32(ffn)}")
        return width


def _divisors32(ffn: int) -> str:
    return ", ".join(str(n) for n in range(1, ffn // 32 + 1) if ffn % n == 0 and (ffn // n) % 32 == 0) or "none"


def _check(ok: bool, msg: str) -> None:
    if not ok:
        raise EdgekitError(msg)


def to_dict(cfg) -> dict[str, Any]:
    """Plain nested dict of a config dataclass (JSON/YAML ready)."""
    return dataclasses.asdict(cfg)


def from_dict(cls, data: dict[str, Any] | None, where: str = ""):
    """Build config ``cls`` from a nested dict, rejecting unknown keys by name.

    Raises:
        EdgekitError: for an unknown key (naming it and the allowed ones) or a value of the wrong shape.
    """
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        at = f" in {where}" if where else ""
        raise EdgekitError(f"unknown key {unknown[0]!r}{at}; allowed: {', '.join(sorted(fields))}")
    kwargs = {}
    for name, value in data.items():
        sub = _NESTED.get((cls, name))
        if sub is not None:
            if not isinstance(value, dict):
                raise EdgekitError(f"{where + '.' if where else ''}{name} must be a mapping, got {value!r}")
            # a partial mapping overrides the parent's own default of that field (AcmConfig's phases differ)
            f = fields[name]
            base = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
            value = from_dict(sub, {**(dataclasses.asdict(base) if base is not None else {}), **value},
                              f"{where + '.' if where else ''}{name}")
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise EdgekitError(f"bad config{' in ' + where if where else ''}: {e}") from None


_NESTED = {
    (AgileQuantConfig, "weight"): WeightConfig,
    (WeightConfig, "tune"): TuneConfig,
    (AgileQuantConfig, "activation"): ActivationConfig,
    (AgileQuantConfig, "attention"): AttentionConfig,
    (AgileQuantConfig, "prune"): PruneConfig,
    (AgileQuantConfig, "e2e"): E2EConfig,
    (AcmConfig, "phase1"): AcmPhaseConfig,
    (AcmConfig, "phase2"): AcmPhaseConfig,
    (AcmConfig, "phase3"): AcmPhaseConfig,
}

#: config type → handler(model, config, **context); filled by ``@register_handler``.
HANDLERS: dict[type, Callable] = {}


def register_handler(config_type: type):
    """Decorator registering the function that applies ``config_type`` to a model."""

    def deco(fn):
        HANDLERS[config_type] = fn
        return fn

    return deco
