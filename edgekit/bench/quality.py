"""``edgekit bench quality``: one run that quantizes a model with several recipes and puts every result, plus the
float reference and llama.cpp's own Q4_0 requantization, in one perplexity table on the same held-out windows.

Each quantization runs in its own ``edgekit quantize`` subprocess so its wall time and peak RSS are its own.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from tqdm.auto import tqdm

from edgekit.bench.anchors import DEFAULT_ANCHORS
from edgekit.bench.report import MISSING, markdown_table
from edgekit.errors import EdgekitError
from edgekit.recipes import QUALITY_RECIPES


def _quantize_subprocess(model: str, recipe: str, out: Path, threads: int | None, seed: int | None = None) -> dict:
    cmd = [sys.executable, "-m", "edgekit.cli", "quantize", model, "--recipe", recipe, "-o", str(out), "--json"]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    if threads:
        cmd += ["--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
    if proc.returncode != 0:
        raise RuntimeError(f"edgekit quantize {model} --recipe {recipe} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout[proc.stdout.index("{"):])


def run_quality(model: str = "smollm2-135m", recipes=QUALITY_RECIPES, data_paths=None, ctx: int = 512,
                max_tokens: int = 4096, threads: int | None = None, llamacpp: bool = True,
                workdir: str | None = None, sets: list[str] | None = None,
                seeds: list[int] | None = None, anchors=DEFAULT_ANCHORS) -> list[dict]:
    """Evaluate the float model, each recipe's artifact and (GGUF models) llama.cpp's anchors on the same windows.

    ``anchors`` (see :mod:`edgekit.bench.anchors`): llama.cpp's Q4_0, its Q4_0 with an edgekit importance matrix per
    calibration seed, and each artifact's GGUF export run by llama.cpp; ``llamacpp=False`` drops them all.

    With ``sets`` (names from :data:`edgekit.data.EVAL_SETS`) and/or ``seeds`` (calibration seeds; default
    ``[0]``), every recipe is quantized once per seed and every row is evaluated on every set (default ``["dev"]``);
    the rows then also carry ``set``, ``set_role`` and (edgekit rows) ``seed``, and ``delta_pct`` is against the
    float reference on the same set. :func:`aggregate_seeds` turns them into the per-recipe, per-set summary.

    Returns:
        JSON rows: ``name``, ``engine``, ``perplexity``, ``delta_pct`` (vs the float reference), ``bits_per_weight``,
        and for edgekit rows ``quantize_seconds``/``peak_rss_mb`` of the quantize subprocess.
    """
    import torch

    from edgekit import data
    from edgekit.eval.evaluate import bits_per_weight
    from edgekit.eval.perplexity import perplexity
    from edgekit.models import load_model, resolve_spec
    from edgekit.quant.serialize import load_artifact_model

    protocol = sets is not None or seeds is not None
    if protocol:
        if data_paths:
            raise EdgekitError("--data and --sets are exclusive: a named set is its own text")
        sets = data.parse_sets(sets or ["dev"])
        seeds = list(seeds) if seeds is not None else [0]
        if not seeds or len(set(seeds)) != len(seeds):
            raise EdgekitError(f"--seeds needs distinct seeds, got {seeds}")
    from edgekit.bench.autoround import ANCHOR_RECIPES, autoround_rows, require_autoround

    if any(a in ANCHOR_RECIPES for a in anchors or ()):
        require_autoround()  # before hours of work, not after
    if threads:
        torch.set_num_threads(threads)
    ref = load_model(model)
    if protocol:
        by_set = [(name, data.eval_windows(ref.tokenizer, None, ctx, max_tokens, name)) for name in sets]
    else:
        by_set = [(None, data.eval_windows(ref.tokenizer, data_paths, ctx, max_tokens))]

    def tag(name, seed=None) -> dict:
        if name is None:
            return {}
        return {"set": name, "set_role": data.get_eval_set(name).role, **({} if seed is None else {"seed": seed})}

    rows = [{**tag(name), "name": "reference (float32, transformers)", "engine": "torch",
             **perplexity(ref.model, windows), **bits_per_weight(ref.model)} for name, windows in by_set]
    tmp = Path(workdir or tempfile.mkdtemp(prefix="edgekit-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    src = resolve_spec(model)
    anchors = tuple(anchors) if llamacpp and src.gguf_file else ()
    if anchors:
        from edgekit.bench.anchors import imatrix_rows, llamacpp_rows
        from edgekit.bench.llamacpp_baseline import requantize_gguf

        gguf = str(Path(src.path) / src.gguf_file)
        rows += llamacpp_rows(gguf, "llama.cpp on the source GGUF (evaluator check)", by_set, tag, threads or 2,
                              bits_per_weight=None)
        if "q4_0" in anchors:
            q4 = tmp / "llamacpp-q4_0.gguf"
            requantize_gguf(gguf, str(q4), "q4_0", threads=threads or 2)
            rows += llamacpp_rows(str(q4), "llama.cpp Q4_0 (its own requantization)", by_set, tag, threads or 2,
                                  bits_per_weight=4.5)
        if "q4_0-imatrix" in anchors:
            rows += imatrix_rows(ref, gguf, by_set, seeds if protocol else [0], tmp, tag, threads or 2)
    del ref
    for name in anchors:
        if name in ANCHOR_RECIPES:
            rows += autoround_rows(model, ANCHOR_RECIPES[name], by_set, seeds if protocol else [0], tmp, tag,
                                   threads or 2)
    runs = [(recipe, seed) for recipe in recipes for seed in (seeds if protocol else [None])]
    for recipe, seed in tqdm(runs, desc="recipes", unit="recipe"):
        out = tmp / (f"{recipe}.ekq" if seed is None else f"{recipe}-seed{seed}.ekq")
        rep = _quantize_subprocess(model, recipe, out, threads, seed)
        lm, _ = load_artifact_model(out)
        for set_name, windows in by_set:
            rows.append({**tag(set_name, seed), "name": f"edgekit {recipe} ({rep['recipe']})",
                         "engine": "edgekit fake-quant", **perplexity(lm.model, windows), **bits_per_weight(lm.model),
                         "quantize_seconds": rep["quantize_seconds"], "total_seconds": rep["total_seconds"],
                         "peak_rss_mb": rep["peak_rss_mb"], "calib": f"{rep['calib_samples']}x{rep['calib_seqlen']}"})
        del lm
        if "gguf-export" in anchors:
            from edgekit.bench.anchors import export_rows

            rows += export_rows(out, f"edgekit {recipe}", by_set, tag, threads or 2, seed=seed)
    base = {r.get("set"): r["perplexity"] for r in rows[:len(by_set)]}
    for r in rows:
        r["delta_pct"] = 100.0 * (r["perplexity"] / base[r.get("set")] - 1.0)
        r["model"] = model
    return rows


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` → ``[0, 1, 2]``: distinct non-negative calibration seeds.

    Raises:
        EdgekitError: anything else.
    """
    try:
        seeds = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise EdgekitError(f"--seeds must be comma-separated integers, got {text!r}") from None
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise EdgekitError(f"--seeds needs distinct non-negative integers, got {text!r}")
    return seeds


def aggregate_seeds(rows: list[dict]) -> list[dict]:
    """One summary row per configuration and set: the mean perplexity over its seeds and their spread.

    Rows without a ``seed`` (the float reference, llama.cpp) are deterministic and summarize to themselves (spread
    0). ``std`` is the sample standard deviation (n - 1; 0 for one seed); ``delta_pct`` is the mean against the
    float reference's perplexity on the same set. Order: sets in first-seen order, configurations likewise.
    """
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r.get("set"), r["name"]), []).append(r)
    ref = {k[0]: g[0]["perplexity"] for k, g in groups.items() if g[0]["engine"] == "torch"}
    sets = list(dict.fromkeys(k[0] for k in groups))
    out = []
    for s in sets:
        for (set_name, name), g in groups.items():
            if set_name != s:
                continue
            p = [r["perplexity"] for r in g]
            mean = statistics.fmean(p)
            first = g[0]
            row = {"set": set_name, "set_role": first.get("set_role"), "name": name, "engine": first["engine"],
                   "seeds": [r["seed"] for r in g if "seed" in r], "n": len(p), "perplexity_mean": mean,
                   "perplexity_min": min(p), "perplexity_max": max(p),
                   "perplexity_std": statistics.stdev(p) if len(p) > 1 else 0.0,
                   "delta_pct": 100.0 * (mean / ref[set_name] - 1.0) if set_name in ref else None,
                   "bits_per_weight": first.get("bits_per_weight"), "model": first.get("model")}
            for k in ("quantize_seconds", "total_seconds", "peak_rss_mb"):
                if k in first:
                    row[k] = statistics.fmean(r[k] for r in g)
            out.append(row)
    return out


def summary_to_markdown(summary: list[dict]) -> str:
    """The per-set summary as a Markdown table; test sets are marked (reported only, never selected on)."""
    lines = [[f"{r['set']} ({r['set_role']})", r["name"], r["engine"], f"{r['perplexity_mean']:.3f}",
              f"{r['perplexity_min']:.3f}–{r['perplexity_max']:.3f}", f"{r['perplexity_std']:.3f}",
              f"{r['delta_pct']:+.1f} %" if r.get("delta_pct") is not None else MISSING,
              ",".join(map(str, r["seeds"])) if r["seeds"] else MISSING] for r in summary]
    header = ["set (role)", "configuration", "engine", "mean perplexity", "min–max", "std", "Δ vs float", "seeds"]
    return markdown_table(header, lines, "lllrrrrl") + "\n"


def rows_to_markdown(rows: list[dict]) -> str:
    """The rows as a Markdown table (what BENCHMARKS.md shows)."""
    lines = [[r["name"], r["engine"], f"{r['perplexity']:.3f}", f"{r['delta_pct']:+.1f} %",
              f"{r['bits_per_weight']:.2f}" if r.get("bits_per_weight") else MISSING,
              f"{r['total_seconds']:.0f} s" if r.get("total_seconds") else MISSING,
              f"{r['peak_rss_mb']:.0f} MiB" if r.get("peak_rss_mb") else MISSING] for r in rows]
    header = ["configuration", "engine", "perplexity", "Δ vs float", "bits/weight", "quantize time", "peak RSS"]
    return markdown_table(header, lines, "llrrrrr") + "\n"
