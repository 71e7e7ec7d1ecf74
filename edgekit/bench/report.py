"""How benchmark results leave the process: one JSON writer, one Markdown table, one terminal table, one plot helper.

Every ``edgekit bench`` command and the tables of ``edgekit eval`` / ``prune-stats`` go through these, so a result
file, a table in BENCHMARKS.md and what the terminal shows are written the same way everywhere. Only the standard
library is imported at module level; rich and matplotlib load when a table is printed or a plot is drawn.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from edgekit.errors import EdgekitError

#: a table column: (row key, header, format string such as ``"{:.3f}"``)
Column = tuple[str, str, str]
MISSING = "—"  # what a cell shows for a value that is absent or None


def _replace_atomically(path: str | os.PathLike, write) -> None:
    """Create ``path``'s folder, call ``write(temp path)`` on a temp file beside it, then rename it into place, so a
    reader never sees a half-written file and a failure leaves no temp file behind."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=p.name + ".", suffix=".tmp", dir=p.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_json(data, path: str | os.PathLike) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically (a temp file in the same folder, then rename)."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
            f.write("\n")

    _replace_atomically(path, write)


def save_jsonl(records: list[dict], path: str | os.PathLike) -> None:
    """Write ``records`` as JSON lines (one object per line) to ``path`` atomically."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in records)

    _replace_atomically(path, write)


def cell(row: dict, key: str, fmt: str) -> str:
    """``fmt`` applied to ``row[key]``, or :data:`MISSING` when the value is absent or None."""
    v = row.get(key)
    return fmt.format(v) if v is not None else MISSING


def cells(rows: list[dict], columns: list[Column]) -> list[list[str]]:
    """The formatted cells of ``rows``, one list per row, in the order of ``columns``."""
    return [[cell(r, key, fmt) for key, _, fmt in columns] for r in rows]


def markdown_table(header: list[str], lines: list[list[str]], align: str) -> str:
    """A Markdown table (no trailing newline); ``align`` has one letter per column: ``l`` left, ``r`` right."""
    if len(align) != len(header):
        raise ValueError(f"align {align!r} needs one letter per column ({len(header)})")
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    return "\n".join(out)


def print_table(header: list[str], lines: list[list[str]], title: str, *, left=(), caption: str | None = None,
                width: int | None = None, notes=(), console=None) -> None:
    """Print a table with rich: columns right-aligned except the headers in ``left``.

    Args:
        header: Column headers.
        lines: Formatted cells, one list per row (see :func:`cells`).
        title: The line above the table.
        left: Headers of left-aligned columns.
        caption: The line below the table.
        width: Console width when the output is not a terminal (piped output defaults to 80 columns, which cuts
            wide tables); None keeps rich's default.
        notes: Lines printed dimmed after the table.
        console: A rich console to print on (default: a new one on stdout).
    """
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, caption=caption)
    for h in header:
        table.add_column(h, justify="left" if h in left else "right")
    for line in lines:
        table.add_row(*line)
    if console is None:
        console = Console()
        if width and not console.is_terminal:
            console = Console(width=width)
    console.print(table)
    for note in notes:
        console.print(f"[dim]note: {note}[/dim]", highlight=False)


def print_rows(rows: list[dict], columns: list[Column], title: str, left=("model",), **kwargs) -> None:
    """Print result dicts as a table of ``columns`` (see :func:`print_table` for the keyword arguments)."""
    print_table([h for _, h, _ in columns], cells(rows, columns), title, left=left, **kwargs)


def pyplot():
    """matplotlib's pyplot on the headless Agg backend (plots are only ever written to files).

    Raises:
        EdgekitError: when matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise EdgekitError("--plot needs matplotlib: pip install matplotlib") from None
    return plt


@contextmanager
def plot_file(path: str | os.PathLike, **subplots):
    """``with plot_file(path, figsize=...) as (fig, ax):`` draw, and the figure is laid out and written to ``path``
    atomically when the block ends (the format follows the suffix, PNG by default, at 120 dpi).

    ``subplots`` are passed to ``plt.subplots`` (``nrows``, ``ncols``, ``figsize``, ``squeeze``).

    Raises:
        EdgekitError: when matplotlib is not installed.
    """
    plt = pyplot()
    fig, axes = plt.subplots(**subplots)
    try:
        yield fig, axes
        fig.tight_layout()
        fmt = Path(path).suffix[1:] or plt.rcParams["savefig.format"]
        _replace_atomically(path, lambda tmp: fig.savefig(tmp, dpi=120, format=fmt))
    finally:
        plt.close(fig)
