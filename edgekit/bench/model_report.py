"""Tables, Markdown, plot and JSON of ``edgekit bench model`` results (see :mod:`edgekit.bench.model`).

Everything here works on plain row dicts, so results can be re-rendered from a saved JSON file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from edgekit.errors import EdgekitError

RATIO_KEY = "ratio_vs_llama.cpp"
#: (row key, header, format) of the terminal table and the Markdown table
COLUMNS = [("engine", "engine", "{}"), ("phase", "phase", "{}"), ("tokens_per_s", "tokens/s", "{:.1f}"),
           ("ttft_s", "TTFT s", "{:.3f}"), (RATIO_KEY, "vs llama.cpp", "{:.2f}×"),
           ("peak_rss_mb", "peak RSS MiB", "{:.0f}"), ("model_mb", "model MiB", "{:.0f}"),
           ("threads", "threads", "{}")]
ENGINE_LABELS = {"edgekit": "edgekit W4A8 (C++ runtime)", "llama.cpp": "llama.cpp Q4_0", "torch": "torch fp32",
                 "onnxruntime": "ONNX Runtime MatMulNBits"}


def _cell(row: dict, key: str, fmt: str) -> str:
    v = row.get(key)
    return fmt.format(v) if v is not None else "—"


def title(result: dict) -> str:
    """One line saying what was measured: model, lengths, threads and how the time was taken."""
    rows = result["rows"]
    phases = ", ".join(dict.fromkeys(r["phase"] for r in rows))
    r0 = rows[0] if rows else {}
    return (f"{result.get('model', '?')}: {phases}; {r0.get('threads', '?')} threads; "
            f"median of {r0.get('reps', '?')} rep(s) after one warm-up")


def rows_to_markdown(result: dict) -> str:
    """The rows as a Markdown table (what BENCHMARKS.md shows), one line per engine and phase."""
    head = "| " + " | ".join(h for _, h, _ in COLUMNS) + " |\n"
    head += "|" + "|".join("---" if k in ("engine", "phase") else "---:" for k, _, _ in COLUMNS) + "|\n"
    body = ""
    for r in result["rows"]:
        cells = [ENGINE_LABELS.get(r["engine"], r["engine"]) if k == "engine" else _cell(r, k, f)
                 for k, _, f in COLUMNS]
        body += "| " + " | ".join(cells) + " |\n"
    return head + body


def print_table(result: dict, console=None) -> None:
    """Print the rows as a rich table with the machine in the caption."""
    from rich.console import Console
    from rich.table import Table

    m = result.get("machine", {})
    caption = f"{m.get('cpu', '?')}, {m.get('logical_cores', '?')} logical cores"
    if m.get("edgekit_gemm_kernel"):
        caption += f"; edgekit kernel {m['edgekit_gemm_kernel']}"
    table = Table(title=title(result), caption=caption)
    for key, header, _ in COLUMNS:
        table.add_column(header, justify="left" if key in ("engine", "phase") else "right")
    for r in result["rows"]:
        table.add_row(*[ENGINE_LABELS.get(r["engine"], r["engine"]) if k == "engine" else _cell(r, k, f)
                        for k, _, f in COLUMNS])
    if console is None:
        console = Console()
        if not console.is_terminal:  # piped output defaults to 80 columns, which would cut the cells
            console = Console(width=140)
    console.print(table)
    for note in result.get("notes", []):
        console.print(f"[dim]note: {note}[/dim]", highlight=False)


def plot_rows(result: dict, path: str) -> None:
    """Bar chart of tokens/s: one panel per phase, one bar per engine.

    Raises:
        EdgekitError: when matplotlib is not installed or there are no rows.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")  # headless: only ever writes a file
        import matplotlib.pyplot as plt
    except ImportError:
        raise EdgekitError("--plot needs matplotlib: pip install matplotlib") from None
    rows = result["rows"]
    if not rows:
        raise EdgekitError("nothing to plot: no rows")
    phases = list(dict.fromkeys(r["phase"] for r in rows))
    engines = list(dict.fromkeys(r["engine"] for r in rows))
    colors = {e: c for e, c in zip(engines, ("tab:blue", "tab:orange", "tab:gray", "tab:green"))}
    fig, axes = plt.subplots(1, len(phases), figsize=(4.2 * len(phases), 4.2), squeeze=False)
    for ax, phase in zip(axes[0], phases):
        by = {r["engine"]: r["tokens_per_s"] for r in rows if r["phase"] == phase}
        names = [e for e in engines if e in by]
        bars = ax.bar(range(len(names)), [by[e] for e in names], color=[colors[e] for e in names])
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels([ENGINE_LABELS.get(e, e).replace(" (", "\n(") for e in names], fontsize=8)
        ax.set_title(phase.replace("_", " ") + " tokens", fontsize=10)
        ax.set_ylabel("tokens/s")
        ax.margins(y=0.15)
    fig.suptitle(title(result), fontsize=9)
    fig.tight_layout()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=120)
    plt.close(fig)


def save_json(result: dict, path: str, command: str | None = None) -> None:
    """Write ``{"rows", "machine", "command", ...}`` atomically (a temp file in the same folder, then rename)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    doc = {"rows": result["rows"], "machine": result.get("machine", {}), "command": command,
           **{k: v for k, v in result.items() if k not in ("rows", "machine")}}
    fd, tmp = tempfile.mkstemp(prefix=p.name + ".", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
