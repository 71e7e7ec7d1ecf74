"""The Agile-Quant handler: walks the blocks once, calibrates, folds TRIP factors, GPTQ/RTN-quantizes each linear and
swaps in :class:`QLinear`, then feeds the quantized block's outputs to the next block.
"""

from __future__ import annotations

import copy
import time

import torch
from torch import nn
from tqdm.auto import tqdm

from edgekit.config import AgileQuantConfig, register_handler
from edgekit.errors import EdgekitError
from edgekit.quant import attention as attn
from edgekit.quant import e2e, tune
from edgekit.quant.awq import fold_scales, search_scales
from edgekit.quant.calibrate import capture_block_inputs, matmul_precision, run_block
from edgekit.models.families import Family
from edgekit.quant.gptq import ChannelMeanSquares, HessianAccumulator, gptq_quantize
from edgekit.quant.modules import QLinear, TokenMix, mark_q8_head
from edgekit.quant.rotate import rotate_model
from edgekit.quant.trip import TokenReservoir, fold_trip, mse_tensor_scale, trip_factors
from edgekit.quant.weights import channel_importance, rtn_quantize, split_rows


def attach_attention(model: nn.Module, family: Family, cfg: AgileQuantConfig) -> list[TokenMix | None]:
    """Give every block the attention spec and W4A4 token mix the config asks for.

    Used both when quantizing and when loading an artifact, so the two build the same model.

    Returns:
        The per-block :class:`TokenMix` (None where there is none).
    """
    mixes: list[TokenMix | None] = []
    wants = cfg.attention.qkv_bits or cfg.attention.softmax_log2_bits or cfg.w4a4_ratio > 0
    if family.attention is None:
        if wants:
            raise EdgekitError(f"attention quantization and W4A4 are not supported for the {family.name} family")
        return [None] * len(family.layers(model))
    attn.enable(model)
    for block in family.layers(model):
        mix = TokenMix(cfg.w4a4_ratio) if cfg.w4a4_ratio > 0 else None
        block.get_submodule(family.attention).ek_attn = attn.AttentionSpec(
            cfg.attention.qkv_bits, cfg.attention.softmax_log2_bits, mix)
        mixes.append(mix)
    return mixes


def _hook_inputs(block: nn.Module, family: Family, hessian: str, want_samples: bool, n_batches: int,
                 precision: str = "fp32"):
    """Forward pre-hooks on the first linear of each input group; they collect token samples and the ``hessian``
    statistics: ``"full"`` (:class:`HessianAccumulator`), ``"diagonal"`` (:class:`ChannelMeanSquares`) or ``"none"``."""
    hess: dict[int, HessianAccumulator | ChannelMeanSquares] = {}
    samples: dict[int, TokenReservoir] = {}
    handles = []
    for gi, group in enumerate(family.input_groups):
        lin = block.get_submodule(group[0])

        def hook(mod, args, gi=gi):
            x = args[0]
            if hessian == "full":
                with matmul_precision(precision):
                    hess.setdefault(gi, HessianAccumulator(x.shape[-1])).add(x)
            elif hessian == "diagonal":
                hess.setdefault(gi, ChannelMeanSquares(x.shape[-1])).add(x)
            if want_samples:
                samples.setdefault(gi, TokenReservoir(expected_batches=n_batches, seed=gi)).add(x)

        handles.append(lin.register_forward_pre_hook(hook))
    return hess, samples, handles


def _quantize_group(lins: list[nn.Linear], cfg: AgileQuantConfig, stats, name: str):
    """Quantize the linears reading one input (``stats``: their input statistics from :func:`_hook_inputs`, or
    None). GPTQ treats every output row on its own given the shared Hessian, so the group's weights are stacked and
    solved in one pass (same result, one Cholesky, fewer column steps).

    Returns:
        ``(quantized weights, rounded weights)``: one QuantizedWeight per linear, and per linear the float weights
        whose rounding gave its codes (GPTQ's error-fed ones, RTN's own) when ``weight.tune`` is on, else None.
    """
    w = cfg.weight
    tune = w.tune.iters > 0
    sizes = [lin.weight.shape[0] for lin in lins]
    if w.method == "gptq":
        stacked = torch.cat([lin.weight.detach() for lin in lins]) if len(lins) > 1 else lins[0].weight
        out = gptq_quantize(stacked, stats.h, w.bits, w.group_size, w.symmetric, w.act_order, w.damp, w.block_size,
                            w.scale_search, name, w.weighted_search, w.hessian_shrink, return_updated=tune)
        qw, upd = out if tune else (out, None)
        return split_rows(qw, sizes), None if upd is None else list(torch.split(upd, sizes))
    upds = [lin.weight.detach().float() for lin in lins] if tune else None
    if w.weighted_search:  # each weight's error weighs as much as its input channel's mean square
        return [rtn_quantize(lin.weight, w.bits, w.group_size, w.symmetric, w.scale_search, name,
                             channel_importance(stats.diagonal(), lin.weight.shape[0])) for lin in lins], upds
    return [rtn_quantize(lin.weight, w.bits, w.group_size, w.symmetric, w.scale_search, name) for lin in lins], upds


@register_handler(AgileQuantConfig)
def apply_agile_quant(model: nn.Module, cfg: AgileQuantConfig, *, family: Family, calib_ids: torch.Tensor,
                      batch_size: int = 8, progress: bool = True, decoder_ids: torch.Tensor | None = None) -> dict:
    """Quantize ``model`` in place with Agile-Quant.

    Args:
        model: a float transformers model of ``family``.
        cfg: the scheme.
        family: the model's :class:`Family`.
        calib_ids: calibration token ids ``[n, L]`` (an encoder-decoder: what its encoder reads).
        batch_size: sequences per calibration forward pass.
        progress: show a progress bar over blocks.
        decoder_ids: an encoder-decoder's decoder inputs ``[n, T]`` (decoder start, then the continuation of
            each ``calib_ids`` row but its last token); required for a family with a decoder stack.

    Returns:
        A report dict (timings, per-linear relative output error of the last calibration batch).
    """
    t0 = time.perf_counter()
    report = {"blocks": 0, "linears": 0, "trip_channels_scaled": 0, "awq_alphas": []}
    # the one transform of the float model before calibration: exact, so the statistics below are the rotated model's
    # (a no-op for rotation: none; a clear error for families it does not fold into, e.g. T5)
    rotate_model(model, family, cfg.rotation)
    teacher = None
    if cfg.e2e.steps:  # the float model the end-to-end stage tunes towards
        if family.decoder is not None or family.head is None:
            raise EdgekitError(f"e2e tuning needs a causal LM; {family.name} is not one (set e2e steps to 0)")
        teacher = copy.deepcopy(model)
    if family.decoder is None:
        mixes = attach_attention(model, family, cfg)
        inputs, kwargs = capture_block_inputs(model, family, calib_ids, batch_size)
        quantize_stack(model, family, cfg, inputs, kwargs, mixes, report, progress, "layers")
    else:
        from edgekit.quant import calibrate

        if decoder_ids is None:
            raise EdgekitError(f"the {family.name} encoder-decoder calibrates on prefix -> continuation pairs; "
                               "pass decoder_ids")
        attach_attention(model, family, cfg)  # refuses attention quantization and W4A4 (family.attention None)
        inputs, kwargs = calibrate.t5_encoder_inputs(model, calib_ids, batch_size)
        no_mix = [None] * len(family.layers(model))
        outs = quantize_stack(model, family, cfg, inputs, kwargs, no_mix, report, progress, "encoder")
        # the decoder calibrates on what the quantized encoder gives it
        inputs, kwargs = calibrate.t5_decoder_inputs(model, outs, decoder_ids, batch_size)
        no_mix = [None] * len(family.decoder.layers(model))
        quantize_stack(model, family.decoder, cfg, inputs, kwargs, no_mix, report, progress, "decoder")
    if cfg.lm_head_bits == 8 and family.head:
        _quantize_head(model, family)
        mark_q8_head(model, family.head, cfg.lm_head_act_bits)
    if teacher is not None:
        final = model.get_submodule(family.final_norm) if family.final_norm else None
        report["e2e"] = e2e.tune_end_to_end(model, teacher, family.layers(model), final, calib_ids, cfg.e2e, progress)
        del teacher
    report["seconds"] = time.perf_counter() - t0
    return report


def quantize_stack(model: nn.Module, family: Family, cfg: AgileQuantConfig, inputs: list, kwargs, mixes: list,
                   report: dict, progress: bool = True, desc: str = "layers") -> list[torch.Tensor]:
    """Quantize the blocks of one stack (``family.layers``) in place, block by block, feeding each quantized block's
    outputs to the next.

    Args:
        inputs: the first block's inputs, one ``[b, L, hidden]`` tensor per calibration batch.
        kwargs: the blocks' keyword arguments (one dict, or one per batch: :func:`calibrate.run_block`).
        mixes: each block's W4A4 token mix (None where there is none).
        report: counts added to (``blocks``, ``linears``, ``trip_channels_scaled``, ``awq_alphas``).

    Returns:
        The last block's outputs per batch (the stack's output before its final norm).
    """
    static = cfg.activation.bits == 8 and cfg.activation.granularity == "per_tensor"
    layers = family.layers(model)
    report["blocks"] += len(layers)
    tcfg = cfg.weight.tune
    if tcfg.iters:  # the tuning windows: the quantized stream's, and the float model's beside them
        picks = tune.pick_windows(inputs, tcfg.samples + tcfg.holdout)
        tune_x, tune_kw = tune.gather_windows(inputs, kwargs, picks, tcfg.seqlen)
        float_x = tune_x
        report.setdefault("tune", [])
    for bi, block in enumerate(tqdm(layers, desc=f"quantize {desc}", unit="block", disable=not progress)):
        hessian = "none"
        if cfg.weight.method == "gptq" or (cfg.weight.weighted_search and (static or cfg.weight.awq)):
            hessian = "full"  # GPTQ needs it, and the TRIP / AWQ folds rescale it
        elif cfg.weight.weighted_search:
            hessian = "diagonal"  # all the weighted RTN search reads
        hess, samples, handles = _hook_inputs(block, family, hessian, static or cfg.weight.awq,
                                               len(inputs), cfg.weight.stats_precision)
        # sequential: the float outputs are not needed, so the stats pass stops at the last hooked input
        # (the input groups are listed in execution order)
        last = block.get_submodule(family.input_groups[-1][0]) if cfg.weight.sequential else None
        try:
            float_out = run_block(block, inputs, kwargs, stop_at=last)
        finally:
            for h in handles:
                h.remove()
        if tcfg.iters:  # what the tuned block should give: the float block's output (before any fold below)
            targets = tune.block_outputs(block, float_x if tcfg.target == "float" else tune_x, tune_kw)
        if cfg.weight.awq:
            report["awq_alphas"].append(_apply_awq(model, block, family, cfg, hess, samples))
        scales: dict[int, float] = {}
        if static:
            for gi in range(len(family.input_groups)):
                x = samples[gi].tensor()
                norm = next((nm for nm, g in family.norm_feeds if g == gi), None)
                if cfg.activation.trip and norm is not None:
                    a, s = trip_factors(x, cfg.activation.trip_max_exp)
                    lins = [block.get_submodule(n) for n in family.input_groups[gi]]
                    fold_trip(block.get_submodule(norm), lins, a)
                    f = torch.exp2(a.float())
                    if gi in hess:  # the folded input is x / 2^a: rescale the Hessian the same way
                        hess[gi].h.div_(f[:, None] * f[None, :])
                    report["trip_channels_scaled"] += int((a > 0).sum())
                    scales[gi] = s
                else:
                    scales[gi] = mse_tensor_scale(x)
        tunable = {}
        for gi, group in enumerate(family.input_groups):
            lins = [block.get_submodule(name) for name in group]
            qws, upds = _quantize_group(lins, cfg, hess.get(gi), f"{desc}.{bi}." + "+".join(group))
            for li, (name, lin, qw) in enumerate(zip(group, lins, qws)):
                mix = mixes[bi] if name in family.mix_linears else None
                q = QLinear(qw, lin.bias, cfg.activation.bits, cfg.activation.granularity, scales.get(gi), mix)
                parent, _, child = name.rpartition(".")
                setattr(block.get_submodule(parent) if parent else block, child, q)
                report["linears"] += 1
                if upds is not None:
                    tunable[name] = (q, upds[li])
        del hess, samples
        if tcfg.iters:
            norms = [block.get_submodule(n) for n, _ in family.norm_feeds]
            t = tune.tune_block(block, tunable, tune_x, tune_kw, targets, tcfg, f"tune {desc}.{bi}", progress,
                                held=max(len(tune_x) - tcfg.samples, 0), norms=norms)
            report["tune"].append({k: round(v, 6) if isinstance(v, float) else v for k, v in t.items()})
            float_x = targets if tcfg.target == "float" else None
            tune_x = tune.block_outputs(block, tune_x, tune_kw)
            del targets, tunable
        # the folds above are exact, so the float outputs are still the float block's outputs
        inputs = run_block(block, inputs, kwargs) if cfg.weight.sequential else float_out
        del float_out
    return inputs


def _apply_awq(model, block, family: Family, cfg: AgileQuantConfig, hess: dict, samples: dict) -> list[float]:
    """Search and fold activation-aware scales for every foldable input group of one block; keep the samples and
    Hessians consistent with the folded (divided) inputs. Returns the chosen alphas."""
    w = cfg.weight
    n_heads, n_kv, head_dim = family.heads(model.config)
    alphas = []
    for gi, producer, kind in family.scale_folds:
        x = samples[gi].tensor()
        lins = [block.get_submodule(n) for n in family.input_groups[gi]]
        gqa = (n_heads, n_kv) if kind == "rows_gqa" else None
        h = hess[gi].h if gi in hess else None  # GPTQ's Hessian: the exact error over every calibration token
        s, alpha = search_scales(x, [lin.weight for lin in lins], w.bits, w.group_size, w.symmetric, gqa, h)
        alphas.append(alpha)
        if alpha == 0:
            continue
        fold_scales(block.get_submodule(producer), "norm" if kind == "norm" else "rows", lins, s, head_dim)
        samples[gi].rows = [x / s]
        if gi in hess:
            hess[gi].h.div_(s[:, None] * s[None, :])
    return alphas


def _quantize_head(model: nn.Module, family: Family) -> None:
    """The embedding and LM head tables snapped to the Q8_0 grid (formats.quantize_q8_0): one table when they are
    tied, two when the head is untied (a rotation unties it). Every engine then reads the same values, the runtime and the GGUF export
    recover the exact codes and scales, and the fake-quant head is that table times the activations (float, or
    rounded per block of 32 with lm_head_act_bits 8: :func:`mark_q8_head`)."""
    from edgekit.quant.formats import dequantize_q8_0, quantize_q8_0

    head, emb = model.get_submodule(family.head), model.get_input_embeddings()
    tied = head.weight.data_ptr() == emb.weight.data_ptr()
    with torch.no_grad():
        for table in (emb.weight,) if tied else (emb.weight, head.weight):
            q, d = quantize_q8_0(table.detach().float().numpy())
            table.copy_(torch.from_numpy(dequantize_q8_0(q, d)))
