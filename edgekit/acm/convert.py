"""Conversion of a model's gated FFNs into adaptive computation modules that start exact, and phases 1 and 2.

:func:`convert_` is the handler registered for :class:`edgekit.config.AcmConfig` (so ``quantize_(model,
AcmConfig(...), family=..., calib_ids=...)`` converts a model in place, the same registry as the quantizers). It walks
the blocks once with the layer-by-layer helpers of :mod:`edgekit.quant.calibrate`; for each block it

1. runs the *original* block on its calibration inputs, capturing the FFN's input ``x`` and output ``y``;
2. orders the FFN's intermediate neurons by importance ``E|h_i| * ||W_down[:, i]||`` (``h`` the SwiGLU
   intermediate, measured on ``x``) and builds an :class:`~edgekit.acm.modules.AcmFfn` from the permuted
   gate/up/down weights (:func:`convert_ffn`): at k = N it equals the FFN, whatever the split;
3. trains it with phases 1 and 2 (:mod:`edgekit.acm.phases`) on ``(x, y)`` and puts it in place of the FFN.

The next block's inputs are the original block's outputs, so every layer learns from the frozen model. Under torchrun
layer ``l`` trains on rank ``l % world`` and is then broadcast (:mod:`edgekit.acm.distributed`).
"""

from __future__ import annotations

import time

import torch
from torch import nn
from tqdm.auto import tqdm

from edgekit.acm import distributed
from edgekit.acm.modules import AcmFfn
from edgekit.acm.phases import distill_layer, gate_labels, train_gate
from edgekit.config import AcmConfig, register_handler
from edgekit.errors import EdgekitError
from edgekit.models.families import Family, get_family
from edgekit.quant.calibrate import capture_block_inputs, run_block


def check_acm_model(family: Family | str, task: str, config, cfg: AcmConfig) -> int:
    """Validate that a model can become an ACM model with ``cfg`` (cheap: config only).

    Returns:
        The learner width.

    Raises:
        EdgekitError: the family has no gated FFN (BERT/MiniLM: a plain GELU MLP), the model is not a causal LM, or
            the learner width is not a multiple of 32 dividing the FFN.
    """
    family = get_family(family) if isinstance(family, str) else family
    if family.gated_ffn is None or task != "causal-lm":
        raise EdgekitError(f"adaptive computation modules need a gated (SwiGLU) FFN; this {family.name} "
                           f"{task} model has none (supported: llama-family decoders such as smollm2-135m)")
    return cfg.learner_width(int(config.intermediate_size))


def ffn_linears(family: Family) -> tuple[str, str, str]:
    """The gate, up and down linears' names relative to the FFN module (``gate_proj``, ``up_proj``, ``down_proj``)."""
    module, *linears = family.gated_ffn
    return tuple(n.removeprefix(module + ".") for n in linears)


def neuron_importance(mlp: nn.Module, family: Family, x: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """``E|h_i| * ||W_down[:, i]||`` of every intermediate neuron over the FFN inputs ``x`` ``[tokens, d]``."""
    gate, up, down = ffn_linears(family)
    g, u, dn = mlp.get_submodule(gate), mlp.get_submodule(up), mlp.get_submodule(down)
    total = torch.zeros(g.out_features, dtype=torch.float64)
    with torch.no_grad():
        for s in range(0, x.shape[0], chunk):
            xs = x[s:s + chunk]
            total += (mlp.act_fn(g(xs)) * u(xs)).abs().sum(0, dtype=torch.float64)
        return (total / x.shape[0]).float() * torch.linalg.vector_norm(dn.weight, dim=0)


def convert_ffn(mlp: nn.Module, family: Family, importance: torch.Tensor, n_learners: int,
                gate_hidden: int) -> AcmFfn:
    """An :class:`AcmFfn` equal to ``mlp`` at k = N: neurons sorted by decreasing ``importance``, then split."""
    gate, up, down = ffn_linears(family)
    order = torch.argsort(importance, descending=True, stable=True)
    w = mlp.get_submodule(down).weight
    acm = AcmFfn(mlp.get_submodule(gate).weight[order], mlp.get_submodule(up).weight[order], w[:, order],
                 n_learners, gate_hidden, mlp.act_fn)
    return acm.to(w.device)


class _FfnCapture:
    """Forward hook on an FFN module collecting its input rows and output rows (flattened to ``[tokens, d]``)."""

    def __init__(self, module: nn.Module):
        self.x: list[torch.Tensor] = []
        self.y: list[torch.Tensor] = []
        self.handle = module.register_forward_hook(self._hook)

    def _hook(self, module, args, out):
        self.x.append(args[0].detach().reshape(-1, args[0].shape[-1]))
        self.y.append(out.detach().reshape(-1, out.shape[-1]))

    def take(self) -> tuple[torch.Tensor, torch.Tensor]:
        self.handle.remove()
        return torch.cat(self.x), torch.cat(self.y)


@register_handler(AcmConfig)
def convert_(model: nn.Module, config: AcmConfig, *, family: Family, calib_ids: torch.Tensor, batch_size: int = 4,
             progress: bool = True, dist: distributed.Dist | None = None, **_) -> dict:
    """Replace every gated FFN of ``model`` by an ACM and train it with phases 1 and 2 (in place).

    Args:
        model: the float causal LM (a transformers Llama-family model).
        config: the ACM config (learners, gate width, phase budgets, tau, seed).
        family: its :class:`Family` (must have ``gated_ffn``).
        calib_ids: calibration windows ``[n, L]``: the neuron importance and phases 1 and 2 read their tokens.
        batch_size: windows per forward pass of the frozen model.
        progress: show a progress bar over the layers.
        dist: the torchrun job (None: one process).

    Returns:
        A report: per layer the phase 1 and 2 losses, the label histogram and the gate's accuracy; timings.
    """
    dist = dist or distributed.Dist()
    check_acm_model(family, "causal-lm", model.config, config)
    ffn_name = family.gated_ffn[0]
    t0 = time.perf_counter()
    layers = family.layers(model)
    inputs, kwargs = capture_block_inputs(model, family, calib_ids, batch_size)
    gen = torch.Generator().manual_seed(config.seed)
    rows, t1, t2 = [], 0.0, 0.0
    for i, block in enumerate(tqdm(layers, desc="acm phases 1+2", unit="layer", disable=not progress)):
        mlp = block.get_submodule(ffn_name)
        cap = _FfnCapture(mlp)
        outputs = run_block(block, inputs, kwargs)
        x, y = cap.take()
        acm = convert_ffn(mlp, family, neuron_importance(mlp, family, x), config.n_learners, config.gate_hidden)
        acm.gumbel_tau = config.gumbel_tau
        row = {"layer": i, "rank": i % dist.world}  # the rank that trains it (its losses are in its report)
        gen.manual_seed(config.seed * 100003 + i)  # per layer, so the owner rank draws what one process would
        if i % dist.world == dist.rank:
            ta = time.perf_counter()
            row.update(distill_layer(acm, x, y, config.phase1, gen))
            tb = time.perf_counter()
            labels = gate_labels(acm, x, y, config.tau) if config.phase2.steps else None
            row.update(train_gate(acm, x, labels, config.phase2, gen))
            if labels is not None:
                row["label_hist"] = torch.bincount(labels, minlength=config.n_learners + 1).tolist()
            t1, t2 = t1 + tb - ta, t2 + time.perf_counter() - tb
        setattr(block, ffn_name, acm)
        rows.append(row)
        inputs = outputs
    for i, block in enumerate(layers):  # each layer (and its report row) from the rank that trained it
        distributed.broadcast_module(block.get_submodule(ffn_name), dist, i % dist.world)
        rows[i] = distributed.broadcast_object(rows[i], dist, i % dist.world)
    steps1 = max(1, config.phase1.steps * len(layers))
    steps2 = max(1, config.phase2.steps * len(layers))
    return {"layers": rows, "n_learners": config.n_learners, "learner_width": layers[0].get_submodule(ffn_name).width,
            "phase12_seconds": round(time.perf_counter() - t0, 2), "phase1_seconds": round(t1, 2),
            "phase2_seconds": round(t2, 2), "phase1_step_seconds": round(t1 / steps1 * dist.world, 4),
            "phase2_step_seconds": round(t2 / steps2 * dist.world, 4)}
