"""``edgekit acm`` (a model in, an ACM model directory out) and ``edgekit acm-eval`` (its perplexity, executed FFN
fraction and k histograms at an operating point)."""

from __future__ import annotations

import dataclasses

import click

from edgekit.cli.common import EdgekitError, echo_json, friendly, print_rows, set_threads


def acm_config(recipe: str | None, budget, n_learners, steps1, steps2, steps3, calib_samples, seed):
    """The recipe's :class:`~edgekit.config.AcmConfig` with the command line's overrides (validated by the config)."""
    from edgekit.config import AcmConfig, from_dict, to_dict
    from edgekit.recipes import load_acm_recipe

    _, cfg = load_acm_recipe(recipe)
    data = to_dict(cfg)
    for key, value in (("budget", budget), ("n_learners", n_learners), ("calib_samples", calib_samples),
                       ("seed", seed)):
        if value is not None:
            data[key] = value
    for phase, steps in (("phase1", steps1), ("phase2", steps2), ("phase3", steps3)):
        if steps is not None:
            data[phase]["steps"] = steps
    data.pop("version")
    return from_dict(AcmConfig, data, "command line")


@click.command()
@click.argument("model")
@click.option("-o", "--output", required=True, type=click.Path(), help="The ACM model directory (new or empty).")
@click.option("--budget", type=float, default=None,
              help="Target executed fraction of the FFN learners, in (0, 1] (recipe default: 0.5).")
@click.option("--recipe", default=None, help="ACM recipe name (recipes/acm: default) or a YAML path.")
@click.option("--n-learners", type=int, default=None,
              help="Learners per FFN; the learner width FFN/N must be a multiple of 32 (recipe default: 8).")
@click.option("--steps1", type=int, default=None, help="Phase 1 (representation distillation) steps per layer.")
@click.option("--steps2", type=int, default=None, help="Phase 2 (gate pre-training) steps per layer.")
@click.option("--steps3", type=int, default=None, help="Phase 3 (end-to-end fine-tuning) steps.")
@click.option("--data", "data_paths", multiple=True, type=click.Path(dir_okay=False),
              help="Training text or JSONL file (repeatable). Default: CPython's pydoc topics.")
@click.option("--calib-samples", type=int, default=None, help="Training windows (recipe default: 16).")
@click.option("--seed", type=int, default=None, help="Seed of the windows and of training (recipe default: 0).")
@click.option("--threads", type=int, default=None, help="CPU threads (default: all).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@friendly
def acm(model, output, budget, recipe, n_learners, steps1, steps2, steps3, data_paths, calib_samples, seed, threads,
        as_json):
    """Convert MODEL's gated FFNs into adaptive computation modules and train them (three phases).

    Run under `torchrun --nproc_per_node P` for data-parallel training (gloo on CPU, nccl on GPUs)."""
    from edgekit.acm.store import check_output_dir

    cfg = acm_config(recipe, budget, n_learners, steps1, steps2, steps3, calib_samples, seed)
    check_output_dir(output)
    from edgekit.acm.api import convert_model

    res = convert_model(model, cfg, output, data=list(data_paths), threads=threads, progress=not as_json)
    if res.path is None:  # a rank other than 0 under torchrun: rank 0 reports
        return
    r = res.report
    if as_json:
        echo_json({"output": str(res.path), "acm": dataclasses.asdict(cfg), **r})
    else:
        click.echo(f"wrote {res.path}  ({cfg.n_learners} learners of {r['learner_width']} per FFN, budget "
                   f"{cfg.budget:g}; phases 1+2 {r['phase12_seconds']:.1f} s, phase 3 {r['phase3_seconds']:.1f} s, "
                   f"total {r['total_seconds']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MiB)")


@click.command(name="acm-eval")
@click.argument("path", type=click.Path())
@click.option("--set", "sets", multiple=True,
              help="Named evaluation set (repeatable or comma-separated; default dev). See edgekit.data.EVAL_SETS.")
@click.option("--gate-bias", type=float, default=0.0, show_default=True,
              help="Shift the gates: logit k += X * k / N (> 0 runs more learners, < 0 fewer).")
@click.option("--k", "k", type=int, default=None, help="Run exactly K learners in every FFN (static width).")
@click.option("--dense", is_flag=True, help="Run every FFN dense (k = N).")
@click.option("--ctx", type=int, default=512, show_default=True, help="Window length in tokens.")
@click.option("--max-tokens", type=int, default=4096, show_default=True, help="Tokens evaluated at most per set.")
@click.option("--threads", type=int, default=None, help="CPU threads (default: all).")
@click.option("--engine", default=None,
              help="fake (default), or for a quantized ACM artifact kernels / runtime (the C++ engine, which skips "
                   "the learners the gates skip).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (with per-layer k histograms).")
@friendly
def acm_eval(path, sets, gate_bias, k, dense, ctx, max_tokens, threads, engine, as_json):
    """Perplexity and executed FFN fraction of the ACM model directory or quantized ACM artifact PATH (per-layer k
    histograms with --json)."""
    from edgekit.eval.acm import acm_info

    acm_info(path)  # neither an ACM directory nor an ACM artifact: one error before loading anything
    if sum([dense, k is not None, bool(gate_bias)]) > 1:
        raise EdgekitError("--gate-bias, --k and --dense are exclusive: pick one operating point")
    set_threads(threads)
    from edgekit.eval.acm import evaluate_acm

    res = evaluate_acm(path, list(sets) or None, ctx=ctx, max_tokens=max_tokens, gate_bias=gate_bias, k=k,
                       dense=dense, threads=threads, engine=engine, progress=not as_json)
    if as_json:
        echo_json(res)
        return
    print_rows(res["rows"], [("set", "set", "{}"), ("set_role", "role", "{}"), ("perplexity", "perplexity", "{:.3f}"),
                             ("ffn_fraction", "FFN fraction", "{:.3f}"), ("learner_fraction", "learners", "{:.3f}"),
                             ("tokens", "tokens", "{}")],
               f"ACM {res['mode']} (gate bias {gate_bias:g}, k {k}); {res['n_learners']} learners of "
               f"{res['learner_width']}", left=("set", "role"))
    if res["layers"]:
        print_rows(res["layers"], [("layer", "layer", "{}"), ("k_hist", "tokens per k = 0..N", "{}"),
                                   ("fraction", "fraction", "{:.3f}")], "per-layer k histograms", left=("layer",))
