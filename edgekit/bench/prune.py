"""``edgekit bench prune``: time-to-first-token and continuation perplexity of the C++ runtime with token pruning.

For each prefix length L and prune ratio beta, over the same windows of held-out text: the prefill wall time (TTFT,
median over windows) and the continuation perplexity of the next T tokens (scored with full compute against the
pruned cache). The ratios are interleaved window by window, so machine noise hits them alike; speedups are ratios to
beta = 0 within the run.
"""

from __future__ import annotations

import dataclasses

from tqdm.auto import tqdm

from edgekit.bench.report import markdown_table, plot_file
from edgekit.errors import EdgekitError
from edgekit.eval.continuation import open_engine, resolve_for, score_window, summarize


def run_prune_bench(artifact: str, prefix_lens: list[int], ratios: list[float], score_len: int = 128,
                    max_windows: int = 8, data_paths=None, start_layer: int | None = None, layers=None,
                    keep_last: int | None = None, progress: bool = True) -> dict:
    """Measure every (L, beta); returns ``{"schedule": ..., "rows": [...]}`` with JSON rows carrying
    ``prefix_len``, ``prune_ratio``, ``ttft_s``, ``continuation_ppl`` (plus speedup and perplexity change)."""
    if not ratios or any(not 0 <= r < 1 for r in ratios):
        raise EdgekitError(f"--ratios must be values in [0, 1), got {ratios}")
    ratios = sorted(set([0.0] + list(ratios)))
    rows, sched = [], None
    for L in prefix_lens:
        eng, base, n_layers, windows = open_engine(artifact, "runtime", L, score_len, max_windows, data_paths)
        if sched is None:  # one schedule for every L: resolved once, from the first window's attention
            if keep_last is not None:
                base = dataclasses.replace(base, keep_last=keep_last)
            sched = resolve_for(eng, dataclasses.replace(base, ratio=0.0), n_layers, windows[0, :L], None,
                                start_layer, layers)
        parts = {r: [] for r in ratios}
        for w in tqdm(windows, desc=f"L={L}", unit="window", disable=not progress):
            for r in ratios:
                eng.set_pruning(dataclasses.replace(sched, ratio=r) if r > 0 else None)
                parts[r].append(score_window(eng, w, L, all_tokens=False))
        base_row = summarize(parts[0.0], L, score_len, 0.0)
        for r in ratios:
            row = summarize(parts[r], L, score_len, r)
            row["speedup"] = base_row["ttft_s"] / row["ttft_s"]
            row["ppl_change_pct"] = 100.0 * (row["continuation_ppl"] / base_row["continuation_ppl"] - 1.0)
            rows.append(row)
        del eng
    return {"artifact": str(artifact), "schedule": {"layers": list(sched.layers), "keep_last": sched.keep_last},
            "rows": rows}


def to_markdown(res: dict) -> str:
    """The rows as a Markdown table."""
    lines = [[str(r["prefix_len"]), f"{r['prune_ratio']:g}", f"{r['ttft_s']:.3f}", f"{r['speedup']:.2f}×",
              f"{r['continuation_ppl']:.3f}", f"{r['ppl_change_pct']:+.2f} %", f"{r['kept_fraction']:.2f}"]
             for r in res["rows"]]
    return markdown_table(["prefix L", "β", "TTFT s", "speedup", "continuation ppl", "Δ ppl", "kept at last layer"],
                          lines, "rrrrrrr")


def plot(res: dict, path: str) -> None:
    """Speedup of TTFT against continuation-perplexity change, one curve per prefix length."""
    with plot_file(path, figsize=(6.4, 4.2)) as (fig, ax):
        for L in sorted({r["prefix_len"] for r in res["rows"]}):
            rs = [r for r in res["rows"] if r["prefix_len"] == L]
            ax.plot([r["ppl_change_pct"] for r in rs], [r["speedup"] for r in rs], marker="o", label=f"L = {L}")
            for r in rs:
                ax.annotate(f"β={r['prune_ratio']:g}", (r["ppl_change_pct"], r["speedup"]), fontsize=7,
                            textcoords="offset points", xytext=(4, -8))
        ax.axhline(1.3, color="grey", lw=0.8, ls="--")
        ax.axvline(2.0, color="grey", lw=0.8, ls="--")
        ax.set_xlabel("continuation perplexity change vs β = 0 (%)")
        ax.set_ylabel("prefill (TTFT) speedup vs β = 0")
        ax.set_title("edgekit runtime, token pruning: speed vs quality")
        ax.legend()
