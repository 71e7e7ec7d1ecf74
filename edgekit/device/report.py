"""``edgekit device report``: edgekit-bench JSON lines from one or more devices (or runs) side by side.

Each file becomes a column group: one row per (file, engine, test) with the device's CPU, the W4A8 matmul kernel
it ran, the median tokens/s and its 95 % interval, TTFT, peak RSS and whether the run was verified. A file from a
bundle with llama-bench holds llama.cpp's records of the same tests beside edgekit's (:mod:`edgekit.device.llama`):
edgekit's rows then carry their ratio to llama.cpp on the same device, same run. With two or more files the first
is the baseline: a test whose interval in another file does not overlap the baseline's is flagged (``faster`` /
``REGRESSION``); overlapping intervals are ``=`` (within noise). Rows go through the one table and
plot writer (:mod:`edgekit.bench.report`).
"""

from __future__ import annotations

import os
from pathlib import Path

from edgekit.device.run import parse_records
from edgekit.errors import EdgekitError

REQUIRED = ("verified", "phase", "tokens_per_s", "peak_rss_mb", "cpu", "kernel")
COLUMNS = [("run", "run", "{}"), ("engine", "engine", "{}"), ("cpu", "CPU", "{}"), ("kernel", "kernel", "{}"),
           ("test", "test", "{}"), ("tokens_per_s", "t/s", "{:.2f}"), ("interval", "95% interval", "{}"),
           ("ttft_ms", "TTFT ms", "{:.3g}"), ("peak_rss_mb", "peak RSS MiB", "{:.1f}"), ("verified", "verified", "{}"),
           ("vs_llama", "÷ llama.cpp", "{:.2f}×"), ("flag", "vs first", "{}")]


def load_runs(paths) -> dict[str, list[dict]]:
    """{run name: records} of JSONL files; a file without records or a record without the fields every edgekit-bench
    record has is an error naming the file."""
    runs: dict[str, list[dict]] = {}
    for path in paths:
        p = Path(path)
        if not p.is_file():
            raise EdgekitError(f"{p}: no such file")
        recs = parse_records(p.read_text(encoding="utf-8"), str(p))
        if not recs:
            raise EdgekitError(f"{p} holds no records")
        for i, r in enumerate(recs, 1):
            missing = [k for k in REQUIRED if k not in r]
            if missing:
                raise EdgekitError(f"{p}: record {i} lacks {', '.join(missing)}: not edgekit-bench output")
        name = p.stem
        while name in runs:  # the same file name from two folders
            name += "'"
        runs[name] = recs
    return runs


def compare(base: dict, other: dict) -> str:
    """``=`` when the two tokens/s intervals overlap, else ``faster`` or ``REGRESSION`` for ``other``."""
    (blo, bhi), (olo, ohi) = base["tokens_per_s_ci95"], other["tokens_per_s_ci95"]
    if olo > bhi:
        return "faster"
    if ohi < blo:
        return "REGRESSION"
    return "="


def rows(runs: dict[str, list[dict]]) -> list[dict]:
    """The table's rows (see the module docstring)."""
    def key(r: dict) -> tuple:
        return r.get("engine", "edgekit"), r.get("test", r["phase"])

    names = list(runs)
    base = {key(r): r for r in runs[names[0]]} if len(names) > 1 else {}
    out = []
    for name, recs in runs.items():
        llama = {r.get("test"): r for r in recs if r.get("engine") == "llama.cpp"}
        for r in recs:
            lo, hi = r.get("tokens_per_s_ci95") or (None, None)
            ttft = r.get("ttft_ms")
            b = base.get(key(r))
            peer = llama.get(r.get("test")) if r.get("engine", "edgekit") == "edgekit" else None
            out.append({
                "run": name, "engine": r.get("engine", "edgekit"), "cpu": (r.get("cpu") or {}).get("model", "?"),
                "kernel": (r.get("kernel") or {}).get("gemm_q4x4_q8", "?"), "test": r.get("test", r["phase"]),
                "tokens_per_s": r["tokens_per_s"], "interval": f"{lo:.2f} – {hi:.2f}" if lo is not None else None,
                "ttft_ms": ttft.get("median") if isinstance(ttft, dict) else None, "peak_rss_mb": r["peak_rss_mb"],
                "verified": ("no check" if r.get("engine") == "llama.cpp" else "yes" if r["verified"] else "NO"),
                "vs_llama": r["tokens_per_s"] / peer["tokens_per_s"] if peer and peer["tokens_per_s"] else None,
                "flag": (compare(b, r) if b is not None and name != names[0] and lo is not None else None),
            })
    return out


def markdown(runs: dict[str, list[dict]]) -> str:
    """The Markdown table of :func:`rows`."""
    from edgekit.bench.report import cells, markdown_table

    return markdown_table([h for _, h, _ in COLUMNS], cells(rows(runs), COLUMNS), "lllllrrrrlrl")


def plot(runs: dict[str, list[dict]], path: str | os.PathLike) -> None:
    """Bar chart of tokens/s per test, one bar per run, with the 95 % intervals as error bars (PNG)."""
    from edgekit.bench.report import plot_file

    tests = list(dict.fromkeys(r.get("test", r["phase"]) for recs in runs.values() for r in recs))
    # one bar group per test; one bar per (run, engine)
    series = {(f"{name} {eng}" if eng != "edgekit" else name): [r for r in recs if r.get("engine", "edgekit") == eng]
              for name, recs in runs.items() for eng in dict.fromkeys(r.get("engine", "edgekit") for r in recs)}
    width = 0.8 / len(series)
    with plot_file(path, figsize=(max(5, 1.6 * len(tests) + 2), 3.6)) as (fig, ax):
        for i, (name, recs) in enumerate(series.items()):
            by_test = {r.get("test", r["phase"]): r for r in recs}
            xs, ys, err = [], [], [[], []]
            for j, t in enumerate(tests):
                if t in by_test:
                    r = by_test[t]
                    lo, hi = r.get("tokens_per_s_ci95") or (r["tokens_per_s"],) * 2
                    xs.append(j + i * width)
                    ys.append(r["tokens_per_s"])
                    err[0].append(max(0.0, r["tokens_per_s"] - lo))
                    err[1].append(max(0.0, hi - r["tokens_per_s"]))
            ax.bar(xs, ys, width, yerr=err, capsize=3, label=name)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(tests))], tests)
        ax.set_ylabel("tokens/s (median, 95% interval)")
        ax.legend(fontsize=8)
