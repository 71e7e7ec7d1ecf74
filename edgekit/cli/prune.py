"""Token pruning on the command line: ``edgekit prune-stats``, the pruning options of ``edgekit quantize`` and
``edgekit eval``, and the body of ``edgekit eval --prefix-len`` (``edgekit bench prune`` is in :mod:`.bench`)."""

from __future__ import annotations

import click

from edgekit.cli.common import echo_json, friendly, parse_layers, print_rows


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
    from edgekit.eval.continuation import evaluate_continuation

    res = evaluate_continuation(model, data_paths, prefix_len, score_len, prune_ratio, prune_start_layer,
                                parse_layers(prune_layers), engine, max_windows, progress=not as_json)
    if as_json:
        echo_json(res)
        return
    s = res["schedule"]
    print_rows(res["rows"], [("model", "model", "{}"), ("continuation_ppl", "continuation ppl", "{:.3f}"),
                             ("continuation_delta_pct", "Δ", "{:+.2f} %"),
                             ("prefix_ppl_all_tokens", "prefix ppl (all tokens)", "{:.3f}"),
                             ("kept_fraction", "kept at last layer", "{:.2f}")],
               f"{res['rows'][0]['windows']} windows: prefix {prefix_len} + {score_len} scored; pruning layers "
               f"{s['layers'][0]}..{s['layers'][-1]} ({len(s['layers'])}), keep_last {s['keep_last']}")


def apply_to_config(cfg, prune_ratio, prune_start_layer, prune_layers):
    """The quantize config with the command line's pruning overrides (:func:`edgekit.prune.schedule.with_overrides`)."""
    import dataclasses

    from edgekit.prune.schedule import with_overrides

    p = with_overrides(cfg.prune, prune_ratio, prune_start_layer, parse_layers(prune_layers))
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
    from edgekit.eval.continuation import layer_mass, open_engine
    from edgekit.prune.schedule import SINK_FRACTION, auto_start_layer

    eng, _, _, windows = open_engine(artifact, "runtime", prefix_len, 1, 1, list(data_paths))
    w = windows[0]
    mass = layer_mass(eng, w[:prefix_len])
    start = auto_start_layer(mass)
    if as_json:
        echo_json({"mass": mass, "auto_start_layer": start, "threshold": SINK_FRACTION * max(mass[1:])})
        return
    rows = [{"layer": i, "mass": m, "bar": "█" * int(round(m * 40)) + (" ← auto start" if i == start else "")}
            for i, m in enumerate(mass)]
    print_rows(rows, [("layer", "layer", "{}"), ("mass", "attention on token 0", "{:.3f}"), ("bar", "", "{}")],
               f"{artifact}: mean attention on the first token, {prefix_len}-token prefill "
               f"(auto start = first layer >= {SINK_FRACTION:g} × the largest)")
