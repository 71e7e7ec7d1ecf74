"""Command-line pieces of token pruning: ``edgekit prune-stats``, ``edgekit bench prune`` and the options that
``edgekit quantize`` / ``edgekit eval`` take (registered by :mod:`edgekit.cli`)."""

from __future__ import annotations

import json

import click

from edgekit.errors import EdgekitError, friendly


def parse_layers(text: str | None) -> tuple[int, ...] | None:
    """``"12,14,16"`` → ``(12, 14, 16)``; None/empty → None.

    Raises:
        EdgekitError: anything but comma-separated non-negative integers.
    """
    if not text:
        return None
    try:
        layers = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise EdgekitError(f"--prune-layers must be comma-separated layer indices such as 12,14,16; got {text!r}") \
            from None
    if not layers or min(layers) < 0:
        raise EdgekitError(f"--prune-layers must be comma-separated layer indices >= 0; got {text!r}")
    return layers


def schedule_options(fn):
    """``--prune-ratio``, ``--prune-start-layer``, ``--prune-layers`` (shared by quantize and eval)."""
    fn = click.option("--prune-layers", default=None,
                      help="Pruning layers, comma-separated (default: every layer from the start layer on).")(fn)
    fn = click.option("--prune-start-layer", type=int, default=None,
                      help="First pruning layer (default: the first layer whose attention sinks into the first "
                           "token; see `edgekit prune-stats`).")(fn)
    fn = click.option("--prune-ratio", type=float, default=None,
                      help="Token pruning: fraction β of the prompt dropped by the last pruning layer.")(fn)
    return fn


def eval_options(fn):
    """The continuation-perplexity options of ``edgekit eval``."""
    fn = schedule_options(fn)
    fn = click.option("--max-windows", type=int, default=8, show_default=True,
                      help="Continuation mode: windows of L + T tokens evaluated at most.")(fn)
    fn = click.option("--score-len", type=int, default=128, show_default=True,
                      help="Continuation mode: tokens scored after the prefix (T).")(fn)
    fn = click.option("--prefix-len", type=int, default=None,
                      help="Continuation mode: prefill L tokens (pruned per the schedule), then score the next T "
                           "with full compute against the pruned cache.")(fn)
    return fn


def run_continuation_eval(model, data_paths, engine, as_json, prefix_len, score_len, max_windows, prune_ratio,
                          prune_start_layer, prune_layers) -> None:
    """The body of ``edgekit eval --prefix-len``: rows for the unpruned and the pruned model."""
    from edgekit.cli import _print_rows
    from edgekit.prune.evaluate import evaluate_continuation

    res = evaluate_continuation(model, data_paths, prefix_len, score_len, prune_ratio, prune_start_layer,
                                parse_layers(prune_layers), engine, max_windows, progress=not as_json)
    if as_json:
        click.echo(json.dumps(res, indent=2))
        return
    s = res["schedule"]
    _print_rows(res["rows"], [("model", "model", "{}"), ("continuation_ppl", "continuation ppl", "{:.3f}"),
                              ("continuation_delta_pct", "Δ", "{:+.2f} %"),
                              ("prefix_ppl_all_tokens", "prefix ppl (all tokens)", "{:.3f}"),
                              ("kept_fraction", "kept at last layer", "{:.2f}")],
                f"{res['rows'][0]['windows']} windows: prefix {prefix_len} + {score_len} scored; pruning layers "
                f"{s['layers'][0]}..{s['layers'][-1]} ({len(s['layers'])}), keep_last {s['keep_last']}")


def apply_to_config(cfg, prune_ratio, prune_start_layer, prune_layers):
    """The quantize config with the command line's pruning overrides."""
    import dataclasses

    p = cfg.prune
    if prune_ratio is not None:
        p = dataclasses.replace(p, ratio=prune_ratio)
    layers = parse_layers(prune_layers)
    if layers:
        p = dataclasses.replace(p, layers=layers, start_layer=None)
    elif prune_start_layer is not None:
        p = dataclasses.replace(p, start_layer=prune_start_layer, layers=None)
    return dataclasses.replace(cfg, prune=p)


@click.command(name="prune-stats")
@click.argument("artifact")
@click.option("--data", "data_paths", multiple=True, type=click.Path(dir_okay=False),
              help="Text to run (default: Debian's license texts).")
@click.option("--prefix-len", type=int, default=512, show_default=True, help="Tokens of the prefill measured.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@friendly
def prune_stats(artifact, data_paths, prefix_len, as_json):
    """Each layer's attention mass on the first token (the pruning signal), to choose --prune-start-layer."""
    from edgekit.prune.evaluate import layer_mass, open_engine
    from edgekit.prune.schedule import SINK_FRACTION, auto_start_layer

    eng, _, _, windows = open_engine(artifact, "runtime", prefix_len, 1, 1, list(data_paths))
    w = windows[0]
    mass = layer_mass(eng, w[:prefix_len])
    start = auto_start_layer(mass)
    if as_json:
        click.echo(json.dumps({"mass": mass, "auto_start_layer": start, "threshold": SINK_FRACTION * max(mass[1:])},
                              indent=2))
        return
    from edgekit.cli import _print_rows

    rows = [{"layer": i, "mass": m, "bar": "█" * int(round(m * 40)) + (" ← auto start" if i == start else "")}
            for i, m in enumerate(mass)]
    _print_rows(rows, [("layer", "layer", "{}"), ("mass", "attention on token 0", "{:.3f}"), ("bar", "", "{}")],
                f"{artifact}: mean attention on the first token, {prefix_len}-token prefill "
                f"(auto start = first layer >= {SINK_FRACTION:g} × the largest)")


@click.command(name="prune")
@click.argument("artifact", default="out/smollm2-w4a8.ekq")
@click.option("--prefix-lens", default="512,1024,2048", show_default=True, help="Prefix lengths L.")
@click.option("--ratios", default="0,0.1,0.25,0.5", show_default=True, help="Prune ratios β.")
@click.option("--score-len", type=int, default=128, show_default=True, help="Continuation tokens scored (T).")
@click.option("--max-windows", type=int, default=8, show_default=True, help="Windows per prefix length.")
@click.option("--data", "data_paths", multiple=True, type=click.Path(dir_okay=False),
              help="Held-out text (default: Debian's license texts).")
@click.option("--prune-start-layer", type=int, default=None, help="First pruning layer (default: the artifact's, "
                                                                  "else the first attention-sink layer).")
@click.option("--prune-layers", default=None, help="Explicit pruning layers, comma-separated.")
@click.option("--keep-last", type=int, default=None,
              help="Last prompt positions never dropped (default: the artifact's, else 4).")
@click.option("--threads", type=int, default=None, help="Runtime threads (default: all cores).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None, help="Write the rows here.")
@click.option("--plot", "plot_out", type=click.Path(dir_okay=False), default=None, help="Write a PNG curve here.")
@friendly
def bench_prune(artifact, prefix_lens, ratios, score_len, max_windows, data_paths, prune_start_layer, prune_layers,
                keep_last, threads, json_out, plot_out):
    """Time-to-first-token and continuation perplexity with token pruning, per prefix length and ratio."""
    from edgekit.bench.prune import plot, run_prune_bench, save_json, to_markdown
    from edgekit.cli import _print_rows, _set_threads

    try:
        lens = [int(x) for x in prefix_lens.split(",") if x.strip()]
        rs = [float(x) for x in ratios.split(",") if x.strip()]
    except ValueError:
        raise EdgekitError("--prefix-lens and --ratios must be comma-separated numbers") from None
    _set_threads(threads)
    res = run_prune_bench(artifact, lens, rs, score_len, max_windows, list(data_paths), prune_start_layer,
                          parse_layers(prune_layers), keep_last)
    _print_rows(res["rows"], [("prefix_len", "prefix L", "{}"), ("prune_ratio", "β", "{:g}"),
                              ("ttft_s", "TTFT s", "{:.3f}"), ("speedup", "speedup", "{:.2f}×"),
                              ("continuation_ppl", "continuation ppl", "{:.3f}"),
                              ("ppl_change_pct", "Δ ppl", "{:+.2f} %"), ("kept_fraction", "kept", "{:.2f}")],
                f"token pruning, layers {res['schedule']['layers'][0]}..{res['schedule']['layers'][-1]}, "
                f"keep_last {res['schedule']['keep_last']}")
    click.echo(to_markdown(res))
    if json_out:
        save_json(res, json_out)
    if plot_out:
        plot(res, plot_out)
