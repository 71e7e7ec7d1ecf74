"""The ``edgekit bench model`` command (registered in :mod:`edgekit.cli` with ``bench.add_command(model)``).

Kept apart from :mod:`edgekit.bench.model` so that importing the command costs only click; numpy, transformers and
the engines load when it runs (the engines only in their worker processes).
"""

from __future__ import annotations

import shlex
import sys

import click

from edgekit.errors import friendly


@click.command(name="model")
@click.argument("model_or_artifact")
@click.option("--threads", type=int, default=2, show_default=True, help="CPU threads for every engine.")
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
@friendly
def model(model_or_artifact, threads, prefill, decode, reps, engines, gguf, onnx_dir, data_paths, json_out,
          plot_out, markdown):
    """Prefill and decode speed of one model: edgekit's C++ runtime vs llama.cpp Q4_0 vs torch fp32.

    MODEL_OR_ARTIFACT is a .ekq artifact (the edgekit engine runs it; llama.cpp and torch use the model it was
    quantized from) or a model spec (then only llama.cpp and torch run). Each engine runs in its own process, so its
    peak RSS is its own.
    """
    from edgekit.bench.model import parse_engines, run_model_bench
    from edgekit.bench.model_report import plot_rows, print_table, rows_to_markdown, save_json

    result = run_model_bench(model_or_artifact, parse_engines(engines), threads=threads, prefill=prefill,
                             decode=decode, reps=reps, gguf=gguf, data_paths=list(data_paths), onnx=onnx_dir)
    if json_out:  # first, so a plotting problem cannot lose the measurements
        save_json(result, json_out, command=shlex.join(["edgekit", *sys.argv[1:]]))
    print_table(result)
    if markdown:
        click.echo(rows_to_markdown(result))
    if plot_out:
        plot_rows(result, plot_out)
        click.echo(f"wrote {plot_out}")
