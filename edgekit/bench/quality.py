"""``edgekit bench quality``: one run that quantizes a model with several recipes and puts every result, plus the
float reference and llama.cpp's own Q4_0 requantization, in one perplexity table on the same held-out windows.

Each quantization runs in its own ``edgekit quantize`` subprocess so its wall time and peak RSS are its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tqdm.auto import tqdm

from edgekit.bench.report import MISSING, markdown_table

DEFAULT_RECIPES = ("rtn-w4a8", "w4a8", "agile-quant", "agile-quant-trip", "agile-quant-w4a4", "w8a8")


def _quantize_subprocess(model: str, recipe: str, out: Path, threads: int | None) -> dict:
    cmd = [sys.executable, "-m", "edgekit.cli", "quantize", model, "--recipe", recipe, "-o", str(out), "--json"]
    if threads:
        cmd += ["--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
    if proc.returncode != 0:
        raise RuntimeError(f"edgekit quantize {model} --recipe {recipe} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout[proc.stdout.index("{"):])


def run_quality(model: str = "smollm2-135m", recipes=DEFAULT_RECIPES, data_paths=None, ctx: int = 512,
                max_tokens: int = 4096, threads: int | None = None, llamacpp: bool = True,
                workdir: str | None = None) -> list[dict]:
    """Evaluate the float model, each recipe's artifact and (for GGUF models) llama.cpp's Q4_0 on one set of windows.

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

    if threads:
        torch.set_num_threads(threads)
    ref = load_model(model)
    windows = data.eval_windows(ref.tokenizer, data_paths, ctx, max_tokens)
    rows = [{"name": "reference (float32, transformers)", "engine": "torch",
             **perplexity(ref.model, windows), **bits_per_weight(ref.model)}]
    del ref
    tmp = Path(workdir or tempfile.mkdtemp(prefix="edgekit-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    src = resolve_spec(model)
    if llamacpp and src.gguf_file:
        from edgekit.bench.llamacpp_baseline import perplexity_llamacpp, requantize_gguf

        gguf = str(Path(src.path) / src.gguf_file)
        q4 = tmp / "llamacpp-q4_0.gguf"
        requantize_gguf(gguf, str(q4), "q4_0", threads=threads or 2)
        for name, path, bpw in [("llama.cpp on the source GGUF (evaluator check)", gguf, None),
                                ("llama.cpp Q4_0 (its own requantization)", str(q4), 4.5)]:
            r = perplexity_llamacpp(path, windows, threads=threads or 2)
            rows.append({"name": name, "engine": "llama.cpp", "perplexity": r["perplexity"], "tokens": r["tokens"],
                         "bits_per_weight": bpw})
    for recipe in tqdm(list(recipes), desc="recipes", unit="recipe"):
        out = tmp / f"{recipe}.ekq"
        rep = _quantize_subprocess(model, recipe, out, threads)
        lm, _ = load_artifact_model(out)
        rows.append({"name": f"edgekit {recipe} ({rep['recipe']})", "engine": "edgekit fake-quant",
                     **perplexity(lm.model, windows), **bits_per_weight(lm.model),
                     "quantize_seconds": rep["quantize_seconds"], "total_seconds": rep["total_seconds"],
                     "peak_rss_mb": rep["peak_rss_mb"], "calib": f"{rep['calib_samples']}x{rep['calib_seqlen']}"})
        del lm
    base = rows[0]["perplexity"]
    for r in rows:
        r["delta_pct"] = 100.0 * (r["perplexity"] / base - 1.0)
        r["model"] = model
    return rows


def rows_to_markdown(rows: list[dict]) -> str:
    """The rows as a Markdown table (what BENCHMARKS.md shows)."""
    lines = [[r["name"], r["engine"], f"{r['perplexity']:.3f}", f"{r['delta_pct']:+.1f} %",
              f"{r['bits_per_weight']:.2f}" if r.get("bits_per_weight") else MISSING,
              f"{r['total_seconds']:.0f} s" if r.get("total_seconds") else MISSING,
              f"{r['peak_rss_mb']:.0f} MiB" if r.get("peak_rss_mb") else MISSING] for r in rows]
    header = ["configuration", "engine", "perplexity", "Δ vs float", "bits/weight", "quantize time", "peak RSS"]
    return markdown_table(header, lines, "llrrrrr") + "\n"
