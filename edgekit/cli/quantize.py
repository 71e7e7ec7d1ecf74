"""``edgekit quantize``: a model and a recipe in, one ``.ekq`` artifact out."""

from __future__ import annotations

import click

from edgekit.cli.common import echo_json, friendly
from edgekit.cli.prune import apply_to_config, schedule_options


def calibration_options(f):
    """The calibration windows' options, shared by ``quantize`` and ``imatrix`` so both see the same tokens."""
    for opt in reversed([
        click.option("--calib", multiple=True, type=click.Path(dir_okay=False),
                     help="Calibration text or JSONL file (repeatable). Default: CPython's pydoc topics."),
        click.option("--calib-samples", type=int, default=None, help="Calibration windows (recipe default: 128)."),
        click.option("--calib-seqlen", type=int, default=None, help="Tokens per calibration window (default: 512)."),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed of the calibration sampling."),
        click.option("--threads", type=int, default=None, help="CPU threads (default: all)."),
    ]):
        f = opt(f)
    return f


@click.command()
@click.argument("model")
@click.option("--bits", type=click.Choice(["4", "8"]), default=None, help="Weight bits (overrides the recipe).")
@click.option("--act-bits", type=click.Choice(["8", "16"]), default=None,
              help="Activation bits; 16 = weight-only (overrides the recipe).")
@click.option("--recipe", "recipe_name", default=None,
              help="Shipped recipe name (w4a8-tune, w4a8, w4a8-e2e, agile-quant, agile-quant-trip, "
                   "agile-quant-w4a4, rtn-w4a8, w8a8) or a YAML path. Default: w4a8-tune for decoders, agile-quant "
                   "for encoders, w4a8 for encoder-decoders.")
@click.option("--group-size", type=int, default=None, help="Weight group size along K; 0 = per-channel.")
@calibration_options
@click.option("-o", "--output", type=click.Path(), default=None,
              help="Artifact path (default: out/<model>-<recipe>.ekq).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@schedule_options
@friendly
def quantize(model, bits, act_bits, recipe_name, group_size, calib, calib_samples, calib_seqlen, seed, threads,
             output, as_json, prune_ratio, prune_start_layer, prune_layers):
    """Quantize MODEL (alias, HF directory, .gguf file or hub id) into one .ekq artifact."""
    from edgekit.quant.api import default_output, quantize_model
    from edgekit.recipes import default_recipe, load_recipe, with_overrides

    recipe = load_recipe(recipe_name or default_recipe(model))
    cfg = with_overrides(recipe.config, bits=int(bits) if bits else None, act_bits=int(act_bits) if act_bits else None,
                         group_size=group_size)
    cfg = apply_to_config(cfg, prune_ratio, prune_start_layer, prune_layers)
    out = output or default_output(model, recipe.name)
    res = quantize_model(model, cfg, out, calib=list(calib), calib_samples=calib_samples or recipe.calib_samples,
                         calib_seqlen=calib_seqlen or recipe.calib_seqlen, seed=seed, threads=threads,
                         progress=not as_json)
    if as_json:
        echo_json({"artifact": str(res.path), **res.report})
    else:
        r = res.report
        click.echo(f"wrote {res.path}  ({cfg.describe()}; {r['linears']} linears; "
                   f"quantize {r['quantize_seconds']:.1f} s, total {r['total_seconds']:.1f} s, "
                   f"peak RSS {r['peak_rss_mb']:.0f} MiB)")


@click.command()
@click.argument("model")
@calibration_options
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="The imatrix .gguf to write.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@friendly
def imatrix(model, calib, calib_samples, calib_seqlen, seed, threads, output, as_json):
    """Importance matrix of MODEL in llama.cpp's GGUF imatrix format, on the calibration windows of `quantize`.

    The file works with llama.cpp's quantizer (llama-quantize --imatrix F.gguf), so a llama.cpp Q4_0 and an edgekit
    artifact can be calibrated on the same tokens.
    """
    from edgekit.export.imatrix import imatrix_model

    r = imatrix_model(model, output, calib=list(calib), calib_samples=calib_samples, calib_seqlen=calib_seqlen,
                      seed=seed, threads=threads, progress=not as_json)
    if as_json:
        echo_json(r)
    else:
        click.echo(f"wrote {r['path']}  ({r['tensors']} tensors; {r['calib_samples']} x {r['calib_seqlen']} tokens, "
                   f"seed {r['seed']}; {r['seconds']:.1f} s)")
