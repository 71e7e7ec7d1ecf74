"""``edgekit bench acm``: an ACM artifact's perplexity / executed-FFN / speed curve against its baselines.

One run, one quantized ACM artifact (``edgekit acm ... -o DIR``, then ``edgekit quantize DIR``) and the dense W4A8
artifact of the same source model (``edgekit quantize MODEL``):

* ``acm``: the gates at each gate bias (one artifact gives a curve), in the C++ runtime, which runs only the chosen
  learners; ``ffn_fraction`` is what the runtime counted (gate cost included);
* ``static``: the same learners at one k for every token (same neuron order, same training), in the runtime;
* ``threshold``: magnitude thresholding of the dense artifact's SwiGLU intermediate (CATS / TEAL style, training
  free, gate_proj dense), on the kernel engine, at the ACM points' executed fractions; no sparse kernel runs it, so
  it has no speed;
* ``random``: the ACM's learners with k drawn from the ACM's own per-layer k histogram at gate bias 0, kernel engine;
* ``dense``: the dense artifact in the runtime, timed right before each ACM / static point (a pair of neighbouring
  runs gives each speedup, so drift of a shared machine hits both sides alike).

Speed is the ``bench model`` protocol (one worker process per point, same prompt ids, same threads), so every speedup
is a ratio within the run. ``decode_bound`` is the Amdahl bound from bytes: dense bytes per decoded token over the
ACM's (its FFN bytes times the executed learner fraction, plus its gates), from the artifacts' tensor sizes.
"""

from __future__ import annotations

import os
import re
import tempfile
import time

import numpy as np

from edgekit.bench.report import markdown_table, plot_file
from edgekit.errors import EdgekitError

METHODS = ("acm", "static", "threshold", "random", "dense")
_FFN = re.compile(r"\.mlp\.(gate_proj|up_proj|down_proj)\.")
_GATE = re.compile(r"\.mlp\.gate\.fc[12]\.")


def ffn_bytes(path: str) -> tuple[int, int]:
    """(bytes of the SwiGLU linears, bytes of the ACM gates) of an artifact, from its tensor sizes."""
    from edgekit.bench.roofline import DTYPE_BYTES, tensor_sizes

    ffn = gate = 0
    for name, (shape, dtype) in tensor_sizes(path).items():
        size = int(np.prod(shape)) * DTYPE_BYTES.get(dtype, 4)
        if _FFN.search(name):
            ffn += size
        elif _GATE.search(name):
            gate += size
    return ffn, gate


def decode_bound(dense_path: str, acm_path: str, learner_fraction: float, kv_positions: float,
                 gated: bool = True) -> dict:
    """Bytes per decoded token of the dense and the ACM artifact at ``learner_fraction``, and their ratio (the
    decode speedup a bandwidth-bound runtime could reach); ``gated=False`` (a forced k) reads no gate weights."""
    from edgekit.artifact import read_artifact
    from edgekit.bench.roofline import decode_bytes_per_token

    dense = decode_bytes_per_token(read_artifact(dense_path), kv_positions)
    acm_total = decode_bytes_per_token(read_artifact(acm_path), kv_positions)
    ffn, gate = ffn_bytes(acm_path)
    acm = acm_total - ffn * (1.0 - learner_fraction) - (0 if gated else gate)
    return {"dense_bytes_per_token": dense, "bytes_per_token": acm, "decode_bound": dense / acm,
            "ffn_byte_share": ffn / acm_total,
            "gate_byte_share": gate / acm_total}


def _check(acm_path: str, dense_path: str) -> int:
    from edgekit.artifact import is_artifact, read_artifact

    for p, what in ((acm_path, "ACM"), (dense_path, "dense")):
        if not is_artifact(p):
            raise EdgekitError(f"{p} is not an edgekit artifact (the {what} artifact: make it with edgekit quantize)")
    acm, dense = read_artifact(acm_path), read_artifact(dense_path)
    if acm.acm is None:
        raise EdgekitError(f"{acm_path} has no adaptive computation modules; quantize an ACM directory "
                           "(edgekit acm MODEL -o DIR, then edgekit quantize DIR)")
    if dense.acm is not None:
        raise EdgekitError(f"--dense {dense_path} is an ACM artifact; give the dense W4A8 artifact of the source")
    return int(acm.acm["n_learners"])


def _ppl_rows(sess, sets, ctx, max_tokens, progress, desc) -> list[dict]:
    from edgekit import data
    from edgekit.eval.perplexity import session_perplexity

    rows = []
    for name in sets:
        windows = data.eval_windows(sess.tokenizer, None, ctx, max_tokens, name)
        if hasattr(sess, "reset_acm_stats"):
            sess.reset_acm_stats()
        rows.append({"set": name, **session_perplexity(sess, windows, progress, desc=f"{desc} {name}")})
    return rows


def _points(acm_path, dense_path, n, sets, biases, ks, ctx, max_tokens, random, progress) -> list[dict]:
    """Perplexity of every point on every set: rows without speed."""
    from edgekit.acm.baselines import random_gates, threshold_ffn, threshold_fraction
    from edgekit.eval.acm import evaluate_acm
    from edgekit.eval.evaluate import evaluate
    from edgekit.engines import open_session
    from edgekit.models.families import get_family

    dense = {r["set"]: r["perplexity"] for r in evaluate(dense_path, ctx=ctx, max_tokens=max_tokens,
                                                          progress=progress, engine="runtime", sets=sets)["rows"]}
    out = [{"method": "dense", "gate_bias": None, "k": None, "set": s, "perplexity": p, "ffn_fraction": 1.0,
            "learner_fraction": 1.0} for s, p in dense.items()]
    hist0, fracs = None, []
    for b in biases:
        res = evaluate_acm(acm_path, sets, ctx=ctx, max_tokens=max_tokens, gate_bias=b, engine="runtime",
                           progress=progress)
        if b == 0:
            hist0 = [layer["k_hist"] for layer in res["layers"]]
        for r in res["rows"]:
            out.append({"method": "acm", "gate_bias": b, "k": None, "set": r["set"], "perplexity": r["perplexity"],
                        "ffn_fraction": r["ffn_fraction"], "learner_fraction": r["learner_fraction"],
                        "k_hist": [layer["k_hist"] for layer in res["layers"]]})
        fracs.append(sum(r["ffn_fraction"] for r in res["rows"]) / len(res["rows"]))
    for k in ks:
        res = evaluate_acm(acm_path, sets, ctx=ctx, max_tokens=max_tokens, k=k, engine="runtime", progress=progress)
        out += [{"method": "static", "gate_bias": None, "k": k, "set": r["set"], "perplexity": r["perplexity"],
                 "ffn_fraction": r["ffn_fraction"], "learner_fraction": k / n} for r in res["rows"]]
    for frac in fracs:  # thresholding at each ACM point's executed fraction, where it can get there
        keep = (3.0 * frac - 1.0) / 2.0
        if not 0.0 < keep <= 1.0:
            continue
        sess = open_session(dense_path, "kernels", max_ctx=ctx, all_logits=True)
        threshold_ffn(sess.model, get_family(sess.lm.family), keep)
        out += [{"method": "threshold", "gate_bias": None, "k": None, "keep": keep, "ffn_fraction":
                 threshold_fraction(keep), "learner_fraction": keep, **r}
                for r in _ppl_rows(sess, sets, ctx, max_tokens, progress, f"threshold {keep:.2f}")]
        sess.close()
    if random and hist0 is not None:
        sess = open_session(acm_path, "kernels", max_ctx=ctx, all_logits=True)
        sess.set_acm(gate_bias=0.0)
        random_gates(sess.model, hist0, seed=0)
        for r in _ppl_rows(sess, sets, ctx, max_tokens, progress, "random gate"):
            st = sess.acm_stats()
            out.append({"method": "random", "gate_bias": 0.0, "k": None, **r, "ffn_fraction": st["ffn_fraction"],
                        "learner_fraction": st["learner_fraction"]})
        sess.close()
    for r in out:
        r["dense_perplexity"] = dense[r["set"]]
        r["ppl_ratio"] = r["perplexity"] / dense[r["set"]]
    return out


def _speed(acm_path, dense_path, biases, ks, prefill, decode, threads, reps, progress) -> dict:
    """Decode / prefill tok/s per runtime point, each timed right after a run of the dense artifact (its pair), so a
    speedup compares two neighbouring runs: ``{(method, value): {"decode", "prefill", "dense_decode",
    "dense_prefill", "learner_fraction"}}``, and ``("dense", None)`` with every dense run's numbers as lists."""
    from tqdm.auto import tqdm

    from edgekit.bench.kernels import SETTLE_S
    from edgekit.bench.model import make_plan, prompt_ids, run_worker

    def rates(rows):
        got = {("decode" if r["phase"].startswith("decode") else "prefill"): r for r in rows}
        return got["decode"]["tokens_per_s"], got["prefill"]["tokens_per_s"], got["decode"].get("acm_learner_fraction")

    ids = prompt_ids(make_plan(dense_path, ["edgekit"]), prefill)
    points = [("acm", b, ["--acm-bias", str(b)]) for b in biases] + [("static", k, ["--acm-k", str(k)]) for k in ks]
    out: dict = {("dense", None): {"decode": [], "prefill": []}}
    with tempfile.TemporaryDirectory(prefix="edgekit-bench-acm-") as td:
        ids_path = os.path.join(td, "prompt.npy")
        np.save(ids_path, ids)
        for method, value, extra in tqdm(points, desc="speed (dense, point) pairs", unit="pair",
                                         disable=not progress):
            time.sleep(SETTLE_S)
            dd, dp, _ = rates(run_worker("edgekit", dense_path, ids_path, decode, threads, reps))
            time.sleep(SETTLE_S)
            d, p, frac = rates(run_worker("edgekit", acm_path, ids_path, decode, threads, reps, extra))
            out[("dense", None)]["decode"].append(dd)
            out[("dense", None)]["prefill"].append(dp)
            out[(method, value)] = {"decode": d, "prefill": p, "dense_decode": dd, "dense_prefill": dp,
                                    "learner_fraction": frac}
    return out


def run_acm_bench(acm_path: str, dense_path: str, *, sets: list[str] | None = None, biases=(-2.0, 0.0, 2.0, 4.0),
                  ks=None, ctx: int = 512, max_tokens: int = 4096, prefill: int = 512, decode: int = 128,
                  threads: int = 2, reps: int = 3, random: bool = True, speed: bool = True,
                  progress: bool = True) -> dict:
    """Every method's rows (see the module docstring).

    Args:
        acm_path: the quantized ACM artifact.
        dense_path: the dense W4A8 artifact of the same source (same recipe).
        sets: evaluation sets (default dev, test-man, test-docstrings).
        biases: gate biases of the ACM points (0 = the trained gates).
        ks: static widths (default 1 .. N-1).
        prefill, decode, threads, reps: the ``bench model`` speed protocol; ``speed=False`` skips it.
        random: add the random-gate rows.

    Returns:
        ``{"acm", "dense", "n_learners", "sets", "rows": [...], "notes": [...]}``; each row carries ``method``,
        ``budget`` (the ACM's trained target), ``gate_bias``, ``k``, ``set``, ``ffn_fraction``, ``perplexity``,
        ``dense_perplexity``, ``decode_tok_s``, ``dense_decode_tok_s``, ``prefill_tok_s``, ``dense_prefill_tok_s``,
        the speedups and, for runtime ACM / static rows, ``decode_bound`` and ``bound_fraction``.

    Raises:
        EdgekitError: a path that is not the right kind of artifact, or a k outside 0..N.
    """
    from edgekit import data
    from edgekit.bench.roofline import decode_kv_positions
    from edgekit.eval.acm import acm_info

    n = _check(acm_path, dense_path)
    sets = data.parse_sets(sets or ["dev", "test-man", "test-docstrings"])
    ks = list(range(1, n)) if ks is None else list(ks)
    if any(not 0 <= k <= n for k in ks):
        raise EdgekitError(f"static widths must be in 0..{n}, got {ks}")
    biases = list(biases)
    budget = acm_info(acm_path)["budget"]
    rows = _points(acm_path, dense_path, n, sets, biases, ks, ctx, max_tokens, random, progress)
    sp = _speed(acm_path, dense_path, biases, ks, prefill, decode, threads, reps, progress) if speed else {}
    dense_sp = sp.get(("dense", None))
    notes = ["threshold and random rows have no speed: no sparse-neuron or random-gate kernel runs them"]
    if dense_sp:
        notes.append(f"dense runtime timed before every point: decode {min(dense_sp['decode']):.1f}–"
                     f"{max(dense_sp['decode']):.1f} tok/s, prefill {min(dense_sp['prefill']):.1f}–"
                     f"{max(dense_sp['prefill']):.1f} tok/s; each speedup is over the run just before it, the dense "
                     "rows show the median")
    kv = decode_kv_positions(prefill, decode)
    for r in rows:
        r["budget"] = budget
        r.update(decode_tok_s=None, prefill_tok_s=None, dense_decode_tok_s=None, dense_prefill_tok_s=None)
        if not dense_sp:
            continue
        if r["method"] == "dense":
            dd, dp = float(np.median(dense_sp["decode"])), float(np.median(dense_sp["prefill"]))
            r.update(decode_tok_s=dd, prefill_tok_s=dp, dense_decode_tok_s=dd, dense_prefill_tok_s=dp,
                     decode_speedup=1.0, prefill_speedup=1.0)
            continue
        point = sp.get((r["method"], r["gate_bias"] if r["method"] == "acm" else r["k"]))
        if point is None:
            continue
        r.update(decode_tok_s=point["decode"], prefill_tok_s=point["prefill"],
                 dense_decode_tok_s=point["dense_decode"], dense_prefill_tok_s=point["dense_prefill"],
                 decode_speedup=point["decode"] / point["dense_decode"],
                 prefill_speedup=point["prefill"] / point["dense_prefill"],
                 timed_learner_fraction=point["learner_fraction"])
        if "bound" not in point:  # once per point, not per set: it reads both artifacts' headers
            point["bound"] = decode_bound(dense_path, acm_path, point["learner_fraction"], kv, r["method"] == "acm")
        r.update(point["bound"])
        r["bound_fraction"] = r["decode_speedup"] / r["decode_bound"]
    return {"acm": str(acm_path), "dense": str(dense_path), "n_learners": n, "budget": budget, "sets": sets,
            "protocol": {"prefill": prefill, "decode": decode, "threads": threads, "reps": reps, "ctx": ctx,
                         "max_tokens": max_tokens}, "rows": rows, "notes": notes}


def _point_name(r: dict) -> str:
    if r["method"] == "acm":
        return f"acm, bias {r['gate_bias']:+g}"
    if r["method"] == "static":
        return f"static k={r['k']}"
    if r["method"] == "threshold":
        return f"threshold keep {r['keep']:.3f}"
    return r["method"]


def _fmt(v, f: str) -> str:
    return "—" if v is None else f.format(v)


def to_markdown(res: dict) -> str:
    """One line per point: perplexity / dense on each set, executed fraction, speedups and the decode bound."""
    sets = res["sets"]
    points: dict = {}
    for r in res["rows"]:
        points.setdefault(_point_name(r), {})[r["set"]] = r
    lines = []
    for name, by_set in points.items():
        r0 = by_set[sets[0]]
        lines.append([name, f"{np.mean([r['ffn_fraction'] for r in by_set.values()]):.3f}"]
                     + [f"{by_set[s]['perplexity']:.2f} ({by_set[s]['ppl_ratio']:.3f}×)" for s in sets]
                     + [_fmt(r0.get("decode_tok_s"), "{:.1f}"), _fmt(r0.get("decode_speedup"), "{:.3f}×"),
                        _fmt(r0.get("decode_bound"), "{:.3f}×"), _fmt(r0.get("prefill_tok_s"), "{:.0f}"),
                        _fmt(r0.get("prefill_speedup"), "{:.3f}×")])
    return markdown_table(["point", "FFN fraction"] + [f"ppl {s} (÷ dense)" for s in sets]
                          + ["decode tok/s", "decode ×", "decode bound ×", "prefill tok/s", "prefill ×"],
                          lines, "l" + "r" * (6 + len(sets)))


def plot(res: dict, path: str) -> None:
    """Pareto PNG: perplexity ÷ dense against executed fraction (first test set, else dev), and decode speedup."""
    sets = res["sets"]
    shown = next((s for s in sets if s != "dev"), sets[0])
    with plot_file(path, figsize=(11, 4.2), ncols=2) as (fig, axes):
        ax1, ax2 = axes
        for m, marker in zip(METHODS, "osx^D"):
            rs = sorted((r for r in res["rows"] if r["method"] == m and r["set"] == shown),
                        key=lambda r: r["ffn_fraction"])
            if rs:
                ax1.plot([r["ffn_fraction"] for r in rs], [r["ppl_ratio"] for r in rs], marker=marker, label=m)
            ts = [r for r in rs if r.get("decode_speedup")]
            if ts:
                ax2.plot([r["ffn_fraction"] for r in ts], [r["decode_speedup"] for r in ts], marker=marker, label=m)
        bs = sorted((r for r in res["rows"] if r.get("decode_bound") and r["set"] == shown),
                    key=lambda r: r["ffn_fraction"])
        if bs:
            ax2.plot([r["ffn_fraction"] for r in bs], [r["decode_bound"] for r in bs], ls="--", color="grey",
                     label="bytes bound")
        ax1.set_yscale("log")
        ax1.axhline(1.03, color="grey", lw=0.8, ls="--")
        ax1.set_xlabel("executed FFN fraction")
        ax1.set_ylabel(f"perplexity ÷ dense W4A8 ({shown})")
        ax2.set_xlabel("executed FFN fraction")
        ax2.set_ylabel("decode tok/s ÷ dense (same run)")
        for ax in axes:
            ax.legend(fontsize=8)
        fig.suptitle("edgekit ACM: quality and speed vs executed FFN fraction")
