"""``edgekit bench``: side-by-side runs that print tables and write JSON rows (kernels, model, quality, prune, acm,
distill).

Importing this module costs only click and the recipe names (:mod:`edgekit.recipes`, dataclasses); numpy, torch,
onnxruntime and the engines load when a command runs (the model benchmark's engines only in their worker
processes).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from edgekit.cli.common import EdgekitError, friendly, int_list, parse_layers, print_rows, set_threads
from edgekit.recipes import QUALITY_RECIPES


@click.group()
def bench():
    """Benchmarks: side-by-side runs that print tables and write JSON rows."""


@bench.command(name="quality")
@click.argument("model", default="smollm2-135m")
@click.option("--recipes", default=",".join(QUALITY_RECIPES), show_default=True,
              help="Comma-separated recipes to quantize and evaluate.")
@click.option("--data", "data_paths", multiple=True, type=click.Path(dir_okay=False),
              help="Held-out text (default: Debian's license texts).")
@click.option("--ctx", type=int, default=512, show_default=True)
@click.option("--max-tokens", type=int, default=4096, show_default=True)
@click.option("--threads", type=int, default=None)
@click.option("--no-llamacpp", is_flag=True, help="Skip the llama.cpp rows (same as --anchors none).")
@click.option("--anchors", default="q4_0,q4_0-imatrix", show_default=True,
              help="llama.cpp rows, comma-separated: q4_0 (its own requantization), q4_0-imatrix (with an edgekit "
                   "importance matrix per calibration seed, as `edgekit imatrix` writes it), gguf-export (each "
                   "edgekit artifact exported to GGUF and run by llama.cpp), autoround / autoround-light / "
                   "autoround-opt-rtn (Intel's auto-round at its default, light or opt-rtn recipe on the same "
                   "calibration windows, its own Q4_0 GGUF export run by llama.cpp; needs edgekit[anchors]); or none.")
@click.option("--workdir", type=click.Path(file_okay=False), default=None, help="Keep artifacts here.")
@click.option("--sets", default=None,
              help="Comma-separated evaluation sets to score every row on: dev (choose recipes on it), test-man, "
                   "test-docstrings (reported only, never selected on). Default: --data, else dev.")
@click.option("--seeds", default=None,
              help="Comma-separated calibration seeds: each recipe is quantized once per seed and reported as the "
                   "mean over seeds with its spread (min-max, std). Default: one artifact, seed 0.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None, help="Write the rows here.")
@friendly
def quality(model, recipes, data_paths, ctx, max_tokens, threads, no_llamacpp, anchors, workdir, sets, seeds,
            json_out):
    """Perplexity of the float model, llama.cpp's anchors and each edgekit recipe on the same held-out windows."""
    from edgekit.bench.anchors import parse_anchors
    from edgekit.bench.quality import rows_to_markdown, run_quality
    from edgekit.bench.report import save_json

    anchor_names = () if no_llamacpp else parse_anchors(anchors)
    if sets is not None or seeds is not None:
        return _quality_protocol(model, recipes, data_paths, ctx, max_tokens, threads, anchor_names, workdir, sets,
                                 seeds, json_out)
    rows = run_quality(model, [r.strip() for r in recipes.split(",") if r.strip()], list(data_paths), ctx,
                       max_tokens, threads, bool(anchor_names), workdir, anchors=anchor_names)
    print_rows(rows, [("name", "model", "{}"), ("engine", "engine", "{}"), ("perplexity", "perplexity", "{:.3f}"),
                      ("delta_pct", "Δ vs float", "{:+.1f} %"), ("bits_per_weight", "bits/weight", "{:.2f}"),
                      ("total_seconds", "quantize s", "{:.0f}"), ("peak_rss_mb", "peak RSS MiB", "{:.0f}")],
               f"{model}: {rows[0]['windows']} windows × {rows[0]['ctx']} held-out tokens")
    click.echo(rows_to_markdown(rows))
    if json_out:
        save_json(rows, json_out)


def _quality_protocol(model, recipes, data_paths, ctx, max_tokens, threads, anchor_names, workdir, sets, seeds,
                      json_out):
    """``bench quality --sets/--seeds``: every row on every set, each recipe over seeds, summarized per set."""
    from edgekit import data
    from edgekit.bench.quality import aggregate_seeds, parse_seeds, run_quality, summary_to_markdown
    from edgekit.bench.report import save_json

    if data_paths:
        raise EdgekitError("--data and --sets are exclusive: a named set is its own text")
    set_names = data.parse_sets(sets if sets is not None else "dev")
    seed_list = parse_seeds(seeds) if seeds is not None else [0]
    rows = run_quality(model, [r.strip() for r in recipes.split(",") if r.strip()], None, ctx, max_tokens, threads,
                       bool(anchor_names), workdir, sets=set_names, seeds=seed_list, anchors=anchor_names)
    summary = aggregate_seeds(rows)
    print_rows(summary, [("set", "set", "{}"), ("set_role", "role", "{}"), ("name", "model", "{}"),
                         ("perplexity_mean", "mean perplexity", "{:.3f}"), ("perplexity_min", "min", "{:.3f}"),
                         ("perplexity_max", "max", "{:.3f}"), ("perplexity_std", "std", "{:.3f}"),
                         ("delta_pct", "Δ vs float", "{:+.1f} %"), ("n", "seeds", "{}")],
               f"{model}: windows of {ctx} tokens, at most {max_tokens} per set; seeds {','.join(map(str, seed_list))}",
               left=("set", "role", "model"), width=200,
               caption="choose recipes on the dev set; test sets are reported only, never selected on")
    click.echo(summary_to_markdown(summary))
    if json_out:
        from edgekit.bench.model import machine_info

        save_json({"model": model, "machine": machine_info(threads), "ctx": ctx, "max_tokens": max_tokens,
                   "seeds": seed_list,
                   "sets": [{"name": n, "role": data.get_eval_set(n).role, "cut": data.get_eval_set(n).cut,
                             "description": data.get_eval_set(n).description} for n in set_names],
                   "rows": rows, "summary": summary}, json_out)


@bench.command(name="kernels")
@click.option("--threads", default="1,2", show_default=True, help="Comma-separated thread counts.")
@click.option("--m", "ms", default="1,16,128", show_default=True, help="Comma-separated batch sizes M (tokens).")
@click.option("--shapes", default="smollm2,llama7b", show_default=True,
              help="Presets (smollm2, llama7b) and/or explicit NxK weight shapes, comma-separated.")
@click.option("--min-time", type=float, default=0.2, show_default=True,
              help="Seconds of timed calls per implementation and configuration.")
@click.option("--min-reps", type=int, default=5, show_default=True, help="Timed calls at least, likewise.")
@click.option("--all-impls", is_flag=True, help="Also time every edgekit kernel this CPU supports (scalar, avx2, ...).")
@click.option("--no-ort", is_flag=True, help="Skip ONNX Runtime.")
@click.option("--no-torch", is_flag=True, help="Skip torch fp32.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random weights and inputs.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None, help="Write the rows here.")
@click.option("--plot", "plot_out", type=click.Path(dir_okay=False), default=None,
              help="Write a PNG of the speedups vs ORT here (needs matplotlib).")
@click.option("--markdown", is_flag=True, help="Also print the Markdown table (as BENCHMARKS.md shows it).")
@click.option("--w4a4", is_flag=True,
              help="Instead: Agile-Quant's packed-multiplier W4A4 kernels vs the int8 kernels on int4 activations.")
@click.option("--layouts", is_flag=True,
              help="Also time the runtime's kernel on both int4 layouts (q4x4, q4x16) and say which is faster here "
                   "and whether the runtime picks it.")
@friendly
def kernels(threads, ms, shapes, min_time, min_reps, all_impls, no_ort, no_torch, seed, json_out, plot_out,
            markdown, w4a4, layouts):
    """W4A8 linear: edgekit's kernels vs torch fp32 and ONNX Runtime MatMulNBits (int4, group 32), same weights."""
    from edgekit.bench.kernels import parse_shapes, plot_rows, print_table, rows_to_markdown, run_kernel_bench
    from edgekit.bench.report import save_json

    if min_time < 0 or min_reps < 1:
        raise EdgekitError("--min-time must be >= 0 and --min-reps >= 1")
    if w4a4:
        from edgekit.bench.w4a4 import run_w4a4_bench, w4a4_markdown

        rows = run_w4a4_bench(parse_shapes(shapes), int_list(ms, "m"), int_list(threads, "threads"),
                              min_time=min_time, min_reps=min_reps, seed=seed)
        if json_out:
            save_json(rows, json_out)
        click.echo(w4a4_markdown(rows))
        return
    impls = [i for i, skip in (("torch", no_torch), ("ort", no_ort), ("edgekit", False)) if not skip]
    thread_list = int_list(threads, "threads")
    rows = run_kernel_bench(parse_shapes(shapes), int_list(ms, "m"), thread_list, impls, all_impls=all_impls,
                            min_time=min_time, min_reps=min_reps, seed=seed, progress=True, layouts=layouts)
    if json_out:  # first, so a plotting problem cannot lose the measurements
        save_json(rows, json_out)
    print_table(rows, f"W4A8 linear, int4 group 32: median per call, threads {','.join(map(str, thread_list))}")
    if markdown:
        click.echo(rows_to_markdown(rows))
    if layouts:
        from edgekit.bench.kernels import layout_verdicts

        lines = layout_verdicts(rows)
        click.echo("\n".join(lines) if lines else "only the q4x4 layout runs on this CPU (q4x16 needs AVX-512 VNNI)")
    if plot_out:
        plot_rows(rows, plot_out)
        click.echo(f"wrote {plot_out}")


@bench.command(name="model")
@click.argument("model_or_artifact")
@click.option("--threads", default="2", show_default=True,
              help="CPU threads for every engine, or a comma list (1,2): every engine runs at each count and the "
                   "table shows each engine's scaling from the smallest count.")
@click.option("--prefill", type=int, default=512, show_default=True, help="Prompt tokens (held-out text).")
@click.option("--decode", type=int, default=128, show_default=True, help="Greedy tokens generated after the prompt.")
@click.option("--reps", type=int, default=3, show_default=True,
              help="Timed repetitions per engine after one warm-up; the median is reported.")
@click.option("--engines", default=None,
              help="Comma-separated subset of edgekit,llama.cpp,torch,onnxruntime (default: all that can run on "
                   "the model; onnxruntime with --onnx).")
@click.option("--gguf", type=click.Path(dir_okay=False), default=None,
              help="GGUF for llama.cpp (default: llama.cpp's own Q4_0 requantization of the source, cached under "
                   "~/.cache/edgekit).")
@click.option("--onnx", "onnx_dir", type=click.Path(file_okay=False), default=None,
              help="ONNX export directory (edgekit export ARTIFACT --format onnx) for the onnxruntime engine, which "
                   "runs only when this is given.")
@click.option("--data", "data_paths", multiple=True, type=click.Path(dir_okay=False),
              help="Held-out text for the prompt (default: Debian's license texts, as edgekit eval).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None,
              help="Write {rows, machine, command} here.")
@click.option("--plot", "plot_out", type=click.Path(dir_okay=False), default=None,
              help="Write a PNG bar chart of tokens/s per engine and phase (needs matplotlib).")
@click.option("--markdown", is_flag=True, help="Also print the Markdown table (as BENCHMARKS.md shows it).")
@click.option("--no-roofline", is_flag=True,
              help="Skip measuring read bandwidth and int8 peak (a few seconds per thread count) and the rows' "
                   "bandwidth_fraction / int8_peak_fraction.")
@friendly
def model(model_or_artifact, threads, prefill, decode, reps, engines, gguf, onnx_dir, data_paths, json_out,
          plot_out, markdown, no_roofline):
    """Prefill and decode speed of one model: edgekit's C++ runtime vs llama.cpp Q4_0 vs torch fp32.

    MODEL_OR_ARTIFACT is a .ekq artifact (the edgekit engine runs it; llama.cpp and torch use the model it was
    quantized from) or a model spec (then only llama.cpp and torch run). Each engine runs in its own process, so its
    peak RSS is its own.
    """
    from edgekit.bench.model import parse_engines, run_model_bench
    from edgekit.bench.model_report import document, plot_rows, print_table, rows_to_markdown
    from edgekit.bench.report import save_json
    from edgekit.bench.roofline import summary_markdown as roofline_markdown

    counts = int_list(threads, "threads")
    result = run_model_bench(model_or_artifact, parse_engines(engines),
                             threads=counts[0] if len(counts) == 1 else counts, prefill=prefill, decode=decode,
                             reps=reps, gguf=gguf, data_paths=list(data_paths), onnx=onnx_dir,
                             roofline=not no_roofline)
    if json_out:  # first, so a plotting problem cannot lose the measurements
        save_json(document(result, command=shlex.join(["edgekit", *sys.argv[1:]])), json_out)
    print_table(result)
    if result.get("roofline"):
        _print_roofline(result)
    if markdown:
        click.echo(rows_to_markdown(result))
        if result.get("roofline"):
            click.echo(roofline_markdown(result))
    if plot_out:
        plot_rows(result, plot_out)
        click.echo(f"wrote {plot_out}")


def _print_roofline(result: dict) -> None:
    """The roofline table of a result (limits per thread count, edgekit's decode and prefill against them)."""
    from edgekit.bench.report import print_rows
    from edgekit.bench.roofline import SUMMARY_COLUMNS, cpu_caption, summary_rows

    print_rows(summary_rows(result), SUMMARY_COLUMNS, "roofline: measured limits and the edgekit runtime against them",
               left=(), caption=cpu_caption(result), width=200)


@bench.command(name="roofline")
@click.argument("artifact", required=False)
@click.option("--threads", default="2", show_default=True, help="Pool threads, or a comma list (1,2).")
@click.option("--prefill", type=int, default=512, show_default=True, help="Prompt tokens (with an artifact).")
@click.option("--decode", type=int, default=128, show_default=True, help="Decode tokens (with an artifact).")
@click.option("--reps", type=int, default=3, show_default=True, help="Timed repetitions (with an artifact).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None,
              help="Write {rows, roofline, machine, command} here.")
@click.option("--markdown", is_flag=True, help="Also print the Markdown table (as BENCHMARKS.md shows it).")
@friendly
def roofline(artifact, threads, prefill, decode, reps, json_out, markdown):
    """This machine's read bandwidth and int8 dot-product peak on the runtime's thread pool; with an ARTIFACT, the
    edgekit runtime's decode (bytes/token x tok/s) and prefill (int8 ops/token x tok/s) as fractions of them.

    The model numbers are `edgekit bench model ARTIFACT --engines edgekit`'s own run (same worker, same timing).
    """
    from edgekit.bench.model import machine_info, run_model_bench
    from edgekit.bench.model_report import document
    from edgekit.bench.report import save_json
    from edgekit.bench.roofline import measure, summary_markdown

    counts = int_list(threads, "threads")
    if artifact:
        from edgekit.artifact import is_artifact, read_artifact

        if not is_artifact(artifact):
            read_artifact(artifact)  # raises the clear "not found" / "not an edgekit artifact" error
        result = run_model_bench(artifact, ["edgekit"], threads=counts[0] if len(counts) == 1 else counts,
                                 prefill=prefill, decode=decode, reps=reps)
    else:
        result = {"rows": [], "roofline": {str(t): measure(t) for t in counts},
                  "machine": machine_info(counts[0] if len(counts) == 1 else counts)}
    if json_out:
        save_json(document(result, command=shlex.join(["edgekit", *sys.argv[1:]])), json_out)
    _print_roofline(result)
    if markdown:
        click.echo(summary_markdown(result))


@bench.command(name="prune")
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
def prune(artifact, prefix_lens, ratios, score_len, max_windows, data_paths, prune_start_layer, prune_layers, keep_last,
          threads, json_out, plot_out):
    """Time-to-first-token and continuation perplexity with token pruning, per prefix length and ratio."""
    from edgekit.bench.prune import plot, run_prune_bench, to_markdown
    from edgekit.bench.report import save_json

    try:
        lens = [int(x) for x in prefix_lens.split(",") if x.strip()]
        rs = [float(x) for x in ratios.split(",") if x.strip()]
    except ValueError:
        raise EdgekitError("--prefix-lens and --ratios must be comma-separated numbers") from None
    set_threads(threads)
    res = run_prune_bench(artifact, lens, rs, score_len, max_windows, list(data_paths), prune_start_layer,
                          parse_layers(prune_layers), keep_last)
    print_rows(res["rows"], [("prefix_len", "prefix L", "{}"), ("prune_ratio", "β", "{:g}"),
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


@bench.command(name="acm")
@click.argument("acm_artifact")
@click.option("--dense", "dense_artifact", required=True,
              help="The dense W4A8 artifact of the same source model (edgekit quantize MODEL), the reference.")
@click.option("--sets", default="dev,test-man,test-docstrings", show_default=True,
              help="Evaluation sets, comma-separated (dev: choose on it; test-*: report only).")
@click.option("--gate-biases", default="-2,0,2,4", show_default=True,
              help="ACM operating points: the gates' logit k shifted by X * k / N (0 = as trained).")
@click.option("--ks", default=None, help="Static widths, comma-separated (default 1..N-1).")
@click.option("--ctx", type=int, default=512, show_default=True)
@click.option("--max-tokens", type=int, default=4096, show_default=True, help="Tokens evaluated per set.")
@click.option("--prefill", type=int, default=512, show_default=True, help="Prompt tokens of the speed runs.")
@click.option("--decode", type=int, default=128, show_default=True, help="Decode tokens of the speed runs.")
@click.option("--threads", type=int, default=2, show_default=True)
@click.option("--reps", type=int, default=3, show_default=True, help="Timed repetitions per speed point.")
@click.option("--no-random", is_flag=True, help="Skip the random-gate rows.")
@click.option("--no-speed", is_flag=True, help="Perplexity and executed fraction only.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None, help="Write the rows here.")
@click.option("--plot", "plot_out", type=click.Path(dir_okay=False), default=None, help="Write the Pareto PNG here.")
@friendly
def acm(acm_artifact, dense_artifact, sets, gate_biases, ks, ctx, max_tokens, prefill, decode, threads, reps,
        no_random, no_speed, json_out, plot_out):
    """Perplexity, executed FFN fraction and runtime speed of a quantized ACM artifact at several gate biases,
    against static width, magnitude thresholding, a random gate and the dense artifact (same run)."""
    from edgekit.bench.acm import plot, run_acm_bench, to_markdown
    from edgekit.bench.model import machine_info
    from edgekit.bench.report import save_json

    try:
        biases = [float(x) for x in gate_biases.split(",") if x.strip()]
        k_list = None if ks is None else [int(x) for x in ks.split(",") if x.strip()]
    except ValueError:
        raise EdgekitError("--gate-biases and --ks must be comma-separated numbers") from None
    if not biases:
        raise EdgekitError("--gate-biases needs at least one value")
    if prefill < 1 or decode < 1 or reps < 1 or threads < 1:
        raise EdgekitError("--prefill, --decode, --reps and --threads must be >= 1")
    if plot_out:
        from edgekit.bench.report import pyplot

        pyplot()  # a missing matplotlib fails before the long run
    res = run_acm_bench(acm_artifact, dense_artifact, sets=[s for s in sets.split(",") if s.strip()],
                        biases=biases, ks=k_list, ctx=ctx, max_tokens=max_tokens, prefill=prefill, decode=decode,
                        threads=threads, reps=reps, random=not no_random, speed=not no_speed)
    res["machine"] = machine_info(threads)
    res["command"] = shlex.join(["edgekit", *sys.argv[1:]])
    click.echo(to_markdown(res))
    for note in res["notes"]:
        click.echo(f"note: {note}")
    if json_out:
        save_json(res, json_out)
    if plot_out:
        plot(res, plot_out)


@bench.command(name="distill")
@click.option("--reports", default=None, metavar="LABEL=PATH,...",
              help="The quality part: distillation runs (each edgekit distill output or its distill.json) side by "
                   "side: held-out continuation NLL against the teacher's, KL, params, steps, times.")
@click.option("--plot", "plot_out", type=click.Path(dir_okay=False), default=None,
              help="With --reports: write the runs' loss curves (CE, and KL where trained with KD) to this PNG.")
@click.option("--quantized", default=None, metavar="LABEL=FILE,...",
              help="With --reports: the W4A8 artifact of run LABEL's student (LABEL=a run directory), scored on that "
                   "run's held-out pairs by the fake-quant and runtime engines against its float student.")
@click.option("--speed", is_flag=True,
              help="The speed part: TTFT and decode tok/s of the student, the teacher and llama.cpp on the "
                   "student's GGUF, interleaved repeats (needs --student and --teacher).")
@click.option("--student", type=click.Path(dir_okay=False),
              help="--speed: the encoder-decoder student's W4A8 artifact (edgekit quantize of edgekit distill's "
                   "student).")
@click.option("--teacher", type=click.Path(dir_okay=False),
              help="--speed: the teacher's W4A8 artifact (e.g. edgekit quantize smollm2-135m).")
@click.option("--decoder-student", "decoder", type=click.Path(dir_okay=False), default=None,
              help="--speed: a decoder-only student's W4A8 artifact (edgekit distill --student decoder, quantized), "
                   "timed like the teacher: the paper's comparison at equal size.")
@click.option("--gguf", type=click.Path(dir_okay=False), default=None,
              help="The student's GGUF (edgekit export STUDENT_DIR --format gguf) for llama.cpp's decode; omitted: "
                   "no llama.cpp rows.")
@click.option("--input-lens", default="512,1024", show_default=True, help="Prompt lengths (comma list).")
@click.option("--output-len", type=int, default=128, show_default=True, help="Decoded tokens per run.")
@click.option("--llamacpp-output-len", type=int, default=32, show_default=True,
              help="Decoded tokens per llama.cpp run (it recomputes cross-attention per token: slow).")
@click.option("--repeats", type=int, default=3, show_default=True, help="Interleaved repeats (medians of >= 3).")
@click.option("--threads", type=int, default=2, show_default=True, help="CPU threads of every engine.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None,
              help="Write {rows, ratios, settings, machine, command} here.")
@friendly
def distill(reports, plot_out, quantized, speed, student, teacher, decoder, gguf, input_lens, output_len,
            llamacpp_output_len, repeats, threads, json_out):
    """The encoder-decoder student against its teacher (issue #19): --reports compares distillation runs' quality
    (rows with model, params, continuation_nll, engine) and draws their loss curves; --speed times the student
    and the teacher, both W4A8 in edgekit's runtime, and the student's GGUF in llama.cpp (rows with model, params,
    engine, input_len, ttft_s, decode_tok_s)."""
    from edgekit.bench.model_report import document
    from edgekit.bench.report import save_json

    if not reports and not speed:
        raise EdgekitError("say what to run: --reports LABEL=PATH,... (quality, loss curves) and/or --speed")
    if plot_out and not reports:
        raise EdgekitError("--plot draws the loss curves of --reports; give --reports")
    if quantized and not reports:
        raise EdgekitError("--quantized scores a run's quantized student on the run's held-out pairs; give the run "
                           "in --reports LABEL=RUN_DIR")
    if speed and not (student and teacher):
        raise EdgekitError("--speed needs --student STUDENT.ekq and --teacher TEACHER.ekq")
    out = {"rows": []}  # the quality rows, then the speed rows: one list, as the JSON wants
    if reports:
        quality = _distill_quality(reports, plot_out, quantized)
        out["rows"] += quality.pop("rows")
        out.update(quality)
    if speed:
        res = _distill_speed(student, teacher, gguf, input_lens, output_len, llamacpp_output_len, repeats, threads,
                             decoder)
        out["rows"] += res.pop("rows")
        out.update(res)
    if json_out:
        save_json(document(out, command=shlex.join(["edgekit", *sys.argv[1:]])), json_out)


def _distill_quality(reports, plot_out, quantized=None) -> dict:
    from edgekit.bench.distill_report import parse_labels, parse_reports, plot_curves, quality_rows, quantized_rows

    labels = parse_labels(reports)
    runs = parse_reports(labels)
    artifacts = parse_labels(quantized, "--quantized") if quantized else {}
    for label, art in artifacts.items():  # cheap checks before any scoring
        if not Path(art).is_file():
            raise EdgekitError(f"--quantized {label}={art}: no such artifact file")
    rows = quality_rows(runs)
    if plot_out:
        plot_curves(runs, plot_out)
    print_rows(rows, [("model", "model", "{}"), ("params", "params", "{:,}"),
                      ("continuation_nll", "held-out NLL", "{:.3f}"), ("gap_to_teacher", "gap", "{:+.3f}"),
                      ("kl_full", "KL to teacher", "{:.3f}"), ("steps", "steps", "{}"),
                      ("train_ce_last", "train CE, last 50", "{:.3f}")],
               f"held-out continuation NLL (nats/token), {rows[0]['val_pairs']} pairs", left=("model",))
    if artifacts:
        paths = {k: Path(v) for k, v in labels.items() if Path(v).is_dir()}
        qrows = quantized_rows(runs, paths, artifacts)
        print_rows(qrows, [("model", "model", "{}"), ("engine", "engine", "{}"),
                           ("continuation_nll", "held-out NLL", "{:.4f}"), ("float_nll", "float", "{:.4f}"),
                           ("ppl_vs_float_pct", "ppl vs float", "{:+.2f} %")],
                   "quantized students on their runs' held-out pairs", left=("model", "engine"))
        rows += qrows
    return {"rows": rows, "loss_plot": plot_out}


def _distill_speed(student, teacher, gguf, input_lens, output_len, llamacpp_output_len, repeats, threads,
                   decoder=None) -> dict:
    from edgekit.bench.distill_speed import run_speed
    from edgekit.bench.model import machine_info

    if repeats < 3:
        raise EdgekitError("--repeats must be >= 3: each ratio is the median of interleaved repeats")
    set_threads(threads)
    res = run_speed(student, teacher, gguf, int_list(input_lens, "input-lens"), output_len, llamacpp_output_len,
                    repeats, threads, decoder=decoder)
    res["machine"] = machine_info(threads)
    print_rows(res["rows"], [("model", "model", "{}"), ("engine", "engine", "{}"), ("input_len", "input", "{}"),
                             ("ttft_s", "TTFT (s)", "{:.3f}"), ("decode_tok_s", "decode tok/s", "{:.2f}")],
               f"medians of {repeats} interleaved repeats, {threads} threads", left=("model", "engine"))
    print_rows(res["ratios"], [("ratio", "ratio", "{}"), ("input_len", "input", "{}"), ("median", "median", "{:.3f}")],
               "per-repeat ratios, median", left=("ratio",))
    return res
