"""Tables, Markdown, plot and the JSON document of ``edgekit bench model`` results (see :mod:`edgekit.bench.model`).

Everything here works on plain row dicts, so results can be re-rendered from a saved JSON file; the writing itself
is :mod:`edgekit.bench.report`'s.
"""

from __future__ import annotations

from edgekit.bench import report
from edgekit.errors import EdgekitError

RATIO_KEY = "ratio_vs_llama.cpp"
SCALING_KEY = "thread_scaling"  # tokens/s over the same engine's and phase's at the run's smallest thread count
#: (row key, header, format) of the terminal table and the Markdown table
COLUMNS = [("engine", "engine", "{}"), ("phase", "phase", "{}"), ("tokens_per_s", "tokens/s", "{:.1f}"),
           ("ttft_s", "TTFT s", "{:.3f}"), (RATIO_KEY, "vs llama.cpp", "{:.2f}×"),
           ("peak_rss_mb", "peak RSS MiB", "{:.0f}"), ("model_mb", "model MiB", "{:.0f}"),
           ("threads", "threads", "{}")]
#: columns shown only when some row has the key: thread scaling (several thread counts) and the roofline fractions
OPTIONAL_COLUMNS = [(SCALING_KEY, "vs fewest threads", "{:.2f}×"),
                    ("bandwidth_fraction", "of read bandwidth", "{:.1%}"),
                    ("int8_peak_fraction", "of int8 peak", "{:.1%}")]


def columns(result: dict) -> list[tuple[str, str, str]]:
    """:data:`COLUMNS` plus the optional ones some row has."""
    rows = result["rows"]
    return COLUMNS + [c for c in OPTIONAL_COLUMNS if any(r.get(c[0]) is not None for r in rows)]
ENGINE_LABELS = {"edgekit": "edgekit W4A8 (C++ runtime)", "llama.cpp": "llama.cpp Q4_0", "torch": "torch fp32",
                 "onnxruntime": "ONNX Runtime MatMulNBits"}


def _lines(result: dict) -> list[list[str]]:
    """The table cells, one list per row, with each engine's label."""
    return [[ENGINE_LABELS.get(r["engine"], r["engine"]) if k == "engine" else report.cell(r, k, f)
             for k, _, f in columns(result)] for r in result["rows"]]


def title(result: dict) -> str:
    """One line saying what was measured: model, lengths, threads and how the time was taken."""
    rows = result["rows"]
    phases = ", ".join(dict.fromkeys(r["phase"] for r in rows))
    r0 = rows[0] if rows else {}
    threads = ",".join(str(t) for t in dict.fromkeys(r["threads"] for r in rows)) or "?"
    return (f"{result.get('model', '?')}: {phases}; {threads} threads; "
            f"median of {r0.get('reps', '?')} rep(s) after one warm-up")


def rows_to_markdown(result: dict) -> str:
    """The rows as a Markdown table (what BENCHMARKS.md shows), one line per engine and phase."""
    cols = columns(result)
    align = "".join("l" if k in ("engine", "phase") else "r" for k, _, _ in cols)
    return report.markdown_table([h for _, h, _ in cols], _lines(result), align) + "\n"


def print_table(result: dict, console=None) -> None:
    """Print the rows as a rich table with the machine in the caption."""
    m = result.get("machine", {})
    caption = f"{m.get('cpu', '?')}, {m.get('logical_cores', '?')} logical cores"
    if m.get("edgekit_gemm_kernel"):
        caption += f"; edgekit kernel {m['edgekit_gemm_kernel']}"
    report.print_table([h for _, h, _ in columns(result)], _lines(result), title(result), left=("engine", "phase"),
                       caption=caption, width=200, notes=result.get("notes", []), console=console)


def plot_rows(result: dict, path: str) -> None:
    """Bar chart of tokens/s: one panel per phase, one bar per engine (per engine and thread count when the run has
    several).

    Raises:
        EdgekitError: when matplotlib is not installed or there are no rows.
    """
    rows = result["rows"]
    if not rows:
        raise EdgekitError("nothing to plot: no rows")
    phases = list(dict.fromkeys(r["phase"] for r in rows))
    engines = list(dict.fromkeys(r["engine"] for r in rows))
    colors = {e: c for e, c in zip(engines, ("tab:blue", "tab:orange", "tab:gray", "tab:green"))}
    multi = len({r["threads"] for r in rows}) > 1
    with report.plot_file(path, ncols=len(phases), figsize=(4.2 * len(phases), 4.2), squeeze=False) as (fig, axes):
        for ax, phase in zip(axes[0], phases):
            bars_of = [r for r in rows if r["phase"] == phase]
            bars = ax.bar(range(len(bars_of)), [r["tokens_per_s"] for r in bars_of],
                          color=[colors[r["engine"]] for r in bars_of])
            ax.bar_label(bars, fmt="%.1f", fontsize=8)
            ax.set_xticks(range(len(bars_of)))
            ax.set_xticklabels([ENGINE_LABELS.get(r["engine"], r["engine"]).replace(" (", "\n(")
                                + (f"\n{r['threads']} thr" if multi else "") for r in bars_of], fontsize=8)
            ax.set_title(phase.replace("_", " ") + " tokens", fontsize=10)
            ax.set_ylabel("tokens/s")
            ax.margins(y=0.15)
        fig.suptitle(title(result), fontsize=9)


def document(result: dict, command: str | None = None) -> dict:
    """What ``--json`` writes: ``{"rows", "machine", "command", ...}`` (the rest of ``result`` after them)."""
    return {"rows": result["rows"], "machine": result.get("machine", {}), "command": command,
            **{k: v for k, v in result.items() if k not in ("rows", "machine")}}
