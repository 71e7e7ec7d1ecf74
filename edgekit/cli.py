"""The ``edgekit`` command line.

Each command parses its options, builds a config and calls one library function. Heavy imports (torch,
transformers) happen inside the commands so that ``edgekit --help`` stays instant.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgekit.errors import EdgekitError, friendly
from edgekit.prune.cli import apply_to_config as apply_prune_options
from edgekit.prune.cli import eval_options as prune_eval_options
from edgekit.prune.cli import schedule_options as prune_schedule_options

# --engine values of eval/run (edgekit.engines.ENGINES; kept here so that --help imports nothing heavy)
ENGINES = ["fake", "kernels", "runtime", "edgekit", "llama.cpp", "onnxruntime"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="edgekit")
def main():
    """edgekit: Agile-Quant W4A8 quantization and fast CPU inference for small language models."""


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@friendly
def info(as_json):
    """Versions, CPU features and the kernel implementations compiled and chosen."""
    from edgekit.runtime.info import collect_info, render_info

    data = collect_info()
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        render_info(data)


def _set_threads(threads: int | None) -> None:
    """Apply ``--threads`` to torch and to the native kernels' pool (imported only when the option is given)."""
    if threads:
        import torch

        from edgekit import _C

        torch.set_num_threads(threads)
        _C.set_num_threads(threads)


def _print_rows(rows: list[dict], columns: list[tuple[str, str, str]], title: str) -> None:
    """Print result rows as a rich table; ``columns`` are (key, header, format)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for _, header, _ in columns:
        table.add_column(header, justify="right" if header != "model" else "left")
    for r in rows:
        table.add_row(*[(fmt.format(r[k]) if r.get(k) is not None else "—") for k, _, fmt in columns])
    Console().print(table)


@main.command()
@click.argument("model")
@click.option("--bits", type=click.Choice(["4", "8"]), default=None, help="Weight bits (overrides the recipe).")
@click.option("--act-bits", type=click.Choice(["8", "16"]), default=None,
              help="Activation bits; 16 = weight-only (overrides the recipe).")
@click.option("--recipe", "recipe_name", default=None,
              help="Shipped recipe name (agile-w4a8, agile-w4a8-gptq, agile-w4a8-trip, agile-w4a4, rtn-w4a8, w8a8) "
                   "or a YAML path. Default: agile-w4a8 for decoders, agile-w4a8-gptq for encoders.")
@click.option("--group-size", type=int, default=None, help="Weight group size along K; 0 = per-channel.")
@click.option("--calib", multiple=True, type=click.Path(dir_okay=False),
              help="Calibration text or JSONL file (repeatable). Default: CPython's pydoc topics.")
@click.option("--calib-samples", type=int, default=None, help="Calibration windows (recipe default: 128).")
@click.option("--calib-seqlen", type=int, default=None, help="Tokens per calibration window (default: 512).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the calibration sampling.")
@click.option("--threads", type=int, default=None, help="CPU threads (default: all).")
@click.option("-o", "--output", type=click.Path(), default=None, help="Artifact path (default: out/<model>-<recipe>.ekq).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@prune_schedule_options
@friendly
def quantize(model, bits, act_bits, recipe_name, group_size, calib, calib_samples, calib_seqlen, seed, threads,
             output, as_json, prune_ratio, prune_start_layer, prune_layers):
    """Quantize MODEL (alias, HF directory, .gguf file or hub id) into one .ekq artifact."""
    from edgekit.quantize import default_output, quantize_model
    from edgekit.recipes import default_recipe, load_recipe, with_overrides

    recipe = load_recipe(recipe_name or default_recipe(model))
    cfg = with_overrides(recipe.config, bits=int(bits) if bits else None, act_bits=int(act_bits) if act_bits else None,
                         group_size=group_size)
    cfg = apply_prune_options(cfg, prune_ratio, prune_start_layer, prune_layers)
    out = output or default_output(model, recipe.name)
    res = quantize_model(model, cfg, out, calib=list(calib), calib_samples=calib_samples or recipe.calib_samples,
                         calib_seqlen=calib_seqlen or recipe.calib_seqlen, seed=seed, threads=threads,
                         progress=not as_json)
    if as_json:
        click.echo(json.dumps({"artifact": str(res.path), **res.report}, indent=2))
    else:
        r = res.report
        click.echo(f"wrote {res.path}  ({cfg.describe()}; {r['linears']} linears; "
                   f"quantize {r['quantize_seconds']:.1f} s, total {r['total_seconds']:.1f} s, "
                   f"peak RSS {r['peak_rss_mb']:.0f} MiB)")


@main.command(name="eval")
@click.argument("model")
@click.option("--data", "data_paths", multiple=True, type=click.Path(dir_okay=False),
              help="Held-out text/JSONL file (repeatable). Default: Debian's license texts.")
@click.option("--ctx", type=int, default=512, show_default=True, help="Window length in tokens.")
@click.option("--max-tokens", type=int, default=4096, show_default=True, help="Tokens evaluated at most.")
@click.option("--compare-reference", is_flag=True, help="Also evaluate the artifact's float source model.")
@click.option("--engine", type=click.Choice(ENGINES), default=None,
              help="fake: PyTorch fake-quant reference; kernels: edgekit's C++ int4 x int8 kernels under PyTorch; "
                   "runtime (= edgekit): the whole forward pass in edgekit's C++ engine; llama.cpp: a .gguf "
                   "export; onnxruntime: an ONNX export directory. Default: onnxruntime for an ONNX export, "
                   "else fake.")
@click.option("--threads", type=int, default=None, help="CPU threads (default: all).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@prune_eval_options
@friendly
def eval_cmd(model, data_paths, ctx, max_tokens, compare_reference, engine, threads, as_json, prefix_len, score_len,
             max_windows, prune_ratio, prune_start_layer, prune_layers):
    """Perplexity of MODEL, an artifact or an export on held-out text (cosine vs float for encoders).

    With --prefix-len: continuation perplexity of a pruned prefill (token pruning), next to the unpruned model."""
    from edgekit.evaluate import evaluate

    _set_threads(threads)
    if prefix_len is not None:
        from edgekit.prune.cli import run_continuation_eval

        return run_continuation_eval(model, list(data_paths), engine, as_json, prefix_len, score_len, max_windows,
                                     prune_ratio, prune_start_layer, prune_layers)
    if prune_ratio is not None or prune_start_layer is not None or prune_layers:
        raise EdgekitError("--prune-ratio/--prune-start-layer/--prune-layers apply to continuation perplexity: "
                           "add --prefix-len L")
    res = evaluate(model, list(data_paths), ctx, max_tokens, compare_reference, progress=not as_json, engine=engine,
                   threads=threads)
    if as_json:
        click.echo(json.dumps(res, indent=2))
    elif res["task"] == "encoder":
        _print_rows(res["rows"], [("model", "model", "{}"), ("cosine_mean", "mean cosine vs fp32", "{:.4f}"),
                                  ("cosine_min", "min cosine", "{:.4f}"), ("bits_per_weight", "bits/weight", "{:.2f}")],
                    f"{res['sentences']} held-out sentences")
    else:
        _print_rows(res["rows"], [("model", "model", "{}"), ("perplexity", "perplexity", "{:.3f}"),
                                  ("delta_pct", "Δ vs ref", "{:+.2f} %"), ("bits_per_weight", "bits/weight", "{:.2f}"),
                                  ("tokens", "tokens", "{}")],
                    f"{res['windows']} windows × {res['ctx']} tokens of held-out text")


@main.command()
@click.argument("model")
@click.option("--prompt", required=True, help="Text to continue.")
@click.option("--max-tokens", type=int, default=64, show_default=True)
@click.option("--temperature", type=float, default=0.0, show_default=True, help="0 = greedy (reproducible).")
@click.option("--top-k", type=int, default=0, show_default=True)
@click.option("--top-p", type=float, default=1.0, show_default=True)
@click.option("--chat", is_flag=True, help="Wrap the prompt in the model's chat template.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--engine", type=click.Choice(ENGINES), default=None,
              help="fake: PyTorch fake-quant; kernels: C++ int4 kernels under PyTorch; runtime (= edgekit): the C++ "
                   "engine; llama.cpp: a .gguf export; onnxruntime: an ONNX export directory. Default: onnxruntime "
                   "for an ONNX export, else fake.")
@click.option("--threads", type=int, default=None, help="CPU threads (default: all).")
@friendly
def run(model, prompt, max_tokens, temperature, top_k, top_p, chat, seed, engine, threads):
    """Generate text from MODEL, an artifact or an export, streamed as it is produced."""
    from edgekit.engines import pick_engine
    from edgekit.generate import generate

    pick_engine(model, engine)  # a wrong engine is reported before the prompt is echoed
    _set_threads(threads)
    click.echo(prompt, nl=False)
    generate(model, prompt, max_tokens, temperature, top_k, top_p, chat, seed, stream=True, engine=engine,
             threads=threads)


@main.command()
@click.option("--target", "target_name", required=True,
              help="Device profile: a name from targets/ (rpi4, rpi5, android-arm64, x86-avx2, x86-avx512-vnni) "
                   "or a YAML path.")
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Build directory (default: build/targets/<target>).")
@click.option("--jobs", type=int, default=2, show_default=True, help="Parallel compile jobs.")
@click.option("--no-test", is_flag=True, help="Only build; do not run the kernel tests on the target CPU.")
@friendly
def build(target_name, out_dir, jobs, no_test):
    """Cross-compile the kernels, their C++ tests, libedgekit.so and the C example for a device profile, then run the
    kernel tests (under qemu for Arm)."""
    from edgekit.build import C_LIBRARY, EXAMPLE_PROGRAM, SOURCE_DIR, build_target, run_target_tests
    from edgekit.targets import load_target

    target = load_target(target_name)
    out = Path(out_dir) if out_dir else SOURCE_DIR / "build" / "targets" / target.name
    build_dir = build_target(target, out, jobs=jobs)
    click.echo(f"built {target.name} ({target.arch}) in {build_dir}: {C_LIBRARY}, {EXAMPLE_PROGRAM}")
    if not no_test:
        run = run_target_tests(target, build_dir)
        click.echo(f"{run.summary}; dispatch picks {run.selected_gemm}")


@main.command()
@click.argument("model")
@click.option("--format", "fmt", type=click.Choice(["gguf", "onnx"]), default="gguf", show_default=True,
              help="Output format (gguf: a file llama.cpp loads unchanged; onnx: a directory ONNX Runtime loads, "
                   "quantized linears as com.microsoft.MatMulNBits).")
@click.option("-o", "--output", type=click.Path(), required=True, help="File (gguf) or directory (onnx) to write.")
@click.option("--bits", type=click.Choice(["16"]), default=None,
              help="gguf only. 16: write the unquantized MODEL (alias or .gguf) as an F16 GGUF instead of exporting "
                   "an artifact.")
@click.option("--embed-type", type=click.Choice(["q8_0", "f16"]), default=None,
              help="gguf only: type of the token embedding (and an untied head) in an artifact's export [q8_0].")
@click.option("--accuracy-level", type=click.Choice(["4", "1"]), default=None,
              help="onnx only: MatMulNBits compute, 4 = int8 activations per block [default], 1 = fp32 (the "
                   "weight-only model; slower).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@friendly
def export(model, fmt, output, bits, embed_type, accuracy_level, as_json):
    """Export an artifact (or, with --bits 16, a float MODEL) for another engine: MODEL -> OUTPUT."""
    if fmt == "onnx":
        from edgekit.errors import EdgekitError
        from edgekit.export.onnx import export_onnx

        if bits or embed_type:
            raise EdgekitError(f"{'--bits' if bits else '--embed-type'} applies to --format gguf only; the ONNX "
                               "export keeps the artifact's bits and its float embedding")
        res = export_onnx(model, output, accuracy_level=int(accuracy_level or 4))
        if as_json:
            click.echo(json.dumps(res, indent=2))
        else:
            click.echo(f"wrote {res['path']}/ ({res['bytes'] / 2 ** 20:.1f} MiB; {res['task']}; "
                       f"{res['matmulnbits']} MatMulNBits; {res['seconds']:.1f} s)")
        return
    from edgekit.export.gguf import export_gguf

    if accuracy_level:
        from edgekit.errors import EdgekitError

        raise EdgekitError("--accuracy-level applies to --format onnx only")
    res = export_gguf(model, output, bits=int(bits) if bits else None, embed_type=embed_type or "q8_0")
    if as_json:
        click.echo(json.dumps(res, indent=2))
    else:
        types = ", ".join(f"{n} {k}" for k, n in sorted(res["types"].items()))
        click.echo(f"wrote {res['path']} ({res['bytes'] / 2 ** 20:.1f} MiB; {res['tensors']} tensors: {types}; "
                   f"{res['seconds']:.1f} s)")


@main.group()
def bench():
    """Benchmarks: side-by-side runs that print tables and write JSON rows."""


@bench.command(name="quality")
@click.argument("model", default="smollm2-135m")
@click.option("--recipes", default="rtn-w4a8,agile-w4a8,agile-w4a8-gptq,agile-w4a8-trip,agile-w4a4,w8a8",
              show_default=True,
              help="Comma-separated recipes to quantize and evaluate.")
@click.option("--data", "data_paths", multiple=True, type=click.Path(dir_okay=False),
              help="Held-out text (default: Debian's license texts).")
@click.option("--ctx", type=int, default=512, show_default=True)
@click.option("--max-tokens", type=int, default=4096, show_default=True)
@click.option("--threads", type=int, default=None)
@click.option("--no-llamacpp", is_flag=True, help="Skip the llama.cpp rows.")
@click.option("--workdir", type=click.Path(file_okay=False), default=None, help="Keep artifacts here.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None, help="Write the rows here.")
@friendly
def bench_quality(model, recipes, data_paths, ctx, max_tokens, threads, no_llamacpp, workdir, json_out):
    """Perplexity of the float model, llama.cpp Q4_0 and each edgekit recipe on the same held-out windows."""
    from edgekit.bench.quality import rows_to_markdown, run_quality, save_json

    rows = run_quality(model, [r.strip() for r in recipes.split(",") if r.strip()], list(data_paths), ctx,
                       max_tokens, threads, not no_llamacpp, workdir)
    _print_rows(rows, [("name", "model", "{}"), ("engine", "engine", "{}"), ("perplexity", "perplexity", "{:.3f}"),
                       ("delta_pct", "Δ vs float", "{:+.1f} %"), ("bits_per_weight", "bits/weight", "{:.2f}"),
                       ("total_seconds", "quantize s", "{:.0f}"), ("peak_rss_mb", "peak RSS MiB", "{:.0f}")],
                f"{model}: {rows[0]['windows']} windows × {rows[0]['ctx']} held-out tokens")
    click.echo(rows_to_markdown(rows))
    if json_out:
        save_json(rows, json_out)




from edgekit.bench.kernels_cli import kernels as _bench_kernels  # noqa: E402  (its heavy imports are lazy)
from edgekit.bench.model_cli import model as _bench_model  # noqa: E402  (likewise)
from edgekit.prune.cli import bench_prune as _bench_prune  # noqa: E402  (likewise)
from edgekit.prune.cli import prune_stats as _prune_stats  # noqa: E402  (likewise)

bench.add_command(_bench_kernels)
bench.add_command(_bench_model)
bench.add_command(_bench_prune)
main.add_command(_prune_stats)


if __name__ == "__main__":  # after every command is registered: `python -m edgekit.cli` sees them all
    main()
