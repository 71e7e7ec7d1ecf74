"""The ``edgekit bench kernels`` command (registered in :mod:`edgekit.cli` with ``bench.add_command(kernels)``).

Kept apart from :mod:`edgekit.bench.kernels` so that importing the command costs only click; numpy, torch and
onnxruntime load when it runs.
"""

from __future__ import annotations


import click

from edgekit.errors import EdgekitError, friendly




def _int_list(value: str, what: str) -> list[int]:
    try:
        out = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise EdgekitError(f"--{what} must be a comma-separated list of integers, got {value!r}") from None
    if not out or any(v <= 0 for v in out):
        raise EdgekitError(f"--{what} needs at least one positive integer, got {value!r}")
    return out


def _print_table(rows: list[dict], title: str) -> None:
    """One line per edgekit row; rich when installed, plain text otherwise."""
    index = {(r["impl"], r["n"], r["k"], r["m"], r["threads"]): r for r in rows}
    headers = ["shape", "M", "thr", "torch µs", "ORT µs", "edgekit kernel", "edgekit µs", "GOPS", "weight GB/s",
               "vs ORT", "vs torch"]
    lines = []
    for r in rows:
        if not r["impl"].startswith("edgekit"):
            continue
        cfg = (r["n"], r["k"], r["m"], r["threads"])
        t, o = index.get(("torch-fp32", *cfg)), index.get(("ort-matmulnbits", *cfg))
        kernel = f"{r['kernel']}*" if r["impl"] == "edgekit" else r["kernel"]
        lines.append([f"{r['n']}×{r['k']}", str(r["m"]), str(r["threads"]),
                      f"{t['median_s'] * 1e6:.1f}" if t else "—", f"{o['median_s'] * 1e6:.1f}" if o else "—",
                      kernel, f"{r['median_s'] * 1e6:.1f}", f"{r['gops']:.1f}", f"{r['weight_gbps']:.2f}",
                      f"{r['speedup_vs_ort']:.2f}×" if r.get("speedup_vs_ort") else "—",
                      f"{r['speedup_vs_torch']:.2f}×" if r.get("speedup_vs_torch") else "—"])
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(headers)]
        click.echo(title)
        for line in [headers] + lines:
            click.echo("  ".join(c.rjust(w) for c, w in zip(line, widths)))
    else:
        table = Table(title=title, caption="* = the dispatched kernel; µs = median per call")
        for h in headers:
            table.add_column(h, justify="left" if h in ("shape", "edgekit kernel") else "right")
        for line in lines:
            table.add_row(*line)
        console = Console()
        if not console.is_terminal:  # piped output defaults to 80 columns, which would cut the cells
            console = Console(width=160)
        console.print(table)


@click.command(name="kernels")
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
@friendly
def kernels(threads, ms, shapes, min_time, min_reps, all_impls, no_ort, no_torch, seed, json_out, plot_out,
            markdown, w4a4):
    """W4A8 linear: edgekit's kernels vs torch fp32 and ONNX Runtime MatMulNBits (int4, group 32), same weights."""
    from edgekit.bench.kernels import parse_shapes, plot_rows, rows_to_markdown, run_kernel_bench, save_json

    if min_time < 0 or min_reps < 1:
        raise EdgekitError("--min-time must be >= 0 and --min-reps >= 1")
    if w4a4:
        from edgekit.bench.w4a4 import run_w4a4_bench, w4a4_markdown

        rows = run_w4a4_bench(parse_shapes(shapes), _int_list(ms, "m"), _int_list(threads, "threads"),
                              min_time=min_time, min_reps=min_reps, seed=seed)
        if json_out:
            save_json(rows, json_out)
        click.echo(w4a4_markdown(rows))
        return
    impls = [i for i, skip in (("torch", no_torch), ("ort", no_ort), ("edgekit", False)) if not skip]
    thread_list = _int_list(threads, "threads")
    rows = run_kernel_bench(parse_shapes(shapes), _int_list(ms, "m"), thread_list, impls, all_impls=all_impls,
                            min_time=min_time, min_reps=min_reps, seed=seed, progress=True)
    if json_out:  # first, so a plotting problem cannot lose the measurements
        save_json(rows, json_out)
    _print_table(rows, f"W4A8 linear, int4 group 32: median per call, threads {','.join(map(str, thread_list))}")
    if markdown:
        click.echo(rows_to_markdown(rows))
    if plot_out:
        plot_rows(rows, plot_out)
        click.echo(f"wrote {plot_out}")
