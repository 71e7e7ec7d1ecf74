"""One engine of ``edgekit bench model``, measured alone in its own process.

Run as ``python -m edgekit.bench.model_worker ENGINE MODEL IDS.npy --prefill P --decode D --threads T --reps R``.
Each engine gets a fresh interpreter so that the peak RSS it reports (``ru_maxrss`` of this process) is its own and
no other engine's thread pool or allocator state is around. The worker prints one JSON line per phase on stdout
(``{"engine", "phase", "tokens_per_s", "ttft_s", "peak_rss_mb", "model_mb", "threads", ...}``), or one
``{"error": ...}`` line and exit status 2 for an :class:`EdgekitError`; everything else goes to stderr.

Timing: one untimed warm-up (a full prefill and a few decode steps), then ``reps`` repetitions of "empty cache,
prefill P tokens, decode D greedy tokens one at a time"; the rows report the median over the repetitions.

Every engine is driven through the same :class:`edgekit.engines.Session` (``open_session``, then ``reset`` +
``eval(ids)`` for the prefill and ``eval([id])`` per decode step), so the timed regions hold the same work: the
engine's forward pass plus an ``argmax`` over the vocabulary.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time

import numpy as np

from edgekit.errors import EdgekitError

#: The engines this benchmark times, by the names its rows carry: aliases in :data:`edgekit.engines.ENGINES`
#: (``edgekit`` = runtime, ``torch`` = fake, here on the float source model).
ENGINES = ("edgekit", "llama.cpp", "torch", "onnxruntime")
WARMUP_DECODE = 4  # decode steps of the warm-up pass
CTX_MARGIN = 16  # context beyond prefill + decode, so no engine works at its exact limit
MIB = 2 ** 20


def _peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB.

    Linux's ``VmHWM`` is preferred over ``ru_maxrss``: a process started by ``subprocess`` (vfork + exec) inherits
    in ``ru_maxrss`` the peak of the parent it was started from, which would charge the parent's tokenizer and torch
    import to every engine. ``VmHWM`` belongs to the address space created by exec, so it is this engine's alone.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / MIB if sys.platform == "darwin" else rss / 1024


def _model_mb(sess, path: str) -> float:
    """What the engine loaded, in MiB: the float model's parameters (tied weights once) for PyTorch, the ONNX
    files of an export directory, else the file."""
    model = getattr(sess, "model", None)
    if model is not None:
        params = {p.data_ptr(): p.numel() for p in model.parameters()}
        return 4 * sum(params.values()) / MIB
    if os.path.isdir(path):
        return sum(f.stat().st_size for f in os.scandir(path) if f.name.startswith("model.onnx")) / MIB
    return os.path.getsize(path) / MIB


def load_engine(engine: str, model: str, n_ctx: int, n_batch: int, threads: int):
    """Open one engine's session (:func:`edgekit.engines.open_session`). ``model`` is the artifact (edgekit), the
    GGUF file (llama.cpp), the model spec (torch) or the ONNX export directory (onnxruntime).

    Returns:
        ``(session, model_mb)``.
    """
    from edgekit.engines import open_session

    if engine not in ENGINES:
        raise EdgekitError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    sess = open_session(model, engine, max_ctx=n_ctx, threads=threads, n_batch=n_batch)
    return sess, _model_mb(sess, model)


def _one_pass(sess, ids: np.ndarray, decode: int) -> tuple[float, float, list[int]]:
    """Prefill ``ids`` from an empty cache, then ``decode`` greedy steps; (prefill s, decode s, generated ids)."""
    t0 = time.perf_counter()
    sess.reset()
    token = int(np.argmax(sess.eval(ids)))
    t1 = time.perf_counter()
    out = [token]
    for _ in range(decode):
        token = int(np.argmax(sess.eval([token])))
        out.append(token)
    return t1 - t0, time.perf_counter() - t1, out


def measure(engine: str, model: str, ids: np.ndarray, decode: int, threads: int, reps: int,
            acm: dict | None = None) -> list[dict]:
    """Load ``engine``, warm it up, time ``reps`` prefill+decode passes; the two phase rows (medians). ``acm``
    (``gate_bias``, ``force_k``) sets an ACM artifact's operating point; its rows then carry what the gates ran in
    the timed passes (``acm_learner_fraction``)."""
    prefill = len(ids)
    t0 = time.perf_counter()
    sess, model_mb = load_engine(engine, model, n_ctx=prefill + decode + CTX_MARGIN, n_batch=max(prefill, 32),
                                 threads=threads)
    load_s = time.perf_counter() - t0
    if acm is not None:
        if not getattr(sess, "acm_learners", 0):
            raise EdgekitError(f"{model} has no adaptive computation modules to set (--acm-bias / --acm-k)")
        sess.set_acm(**acm)
    _one_pass(sess, ids, min(decode, WARMUP_DECODE))
    if acm is not None:
        sess.reset_acm_stats()
    pre, dec = [], []
    for _ in range(reps):
        p, d, generated = _one_pass(sess, ids, decode)
        pre.append(p)
        dec.append(d)
    t_pre, t_dec = statistics.median(pre), statistics.median(dec)
    common = {"engine": engine, "peak_rss_mb": _peak_rss_mb(), "model_mb": model_mb, "threads": threads,
              "load_s": load_s, "reps": reps, "timing": "median"}
    rows = [{**common, "phase": f"prefill_{prefill}", "tokens": prefill, "tokens_per_s": prefill / t_pre,
             "ttft_s": t_pre, "samples_s": pre}]
    if decode > 0:
        rows.append({**common, "phase": f"decode_{decode}", "tokens": decode, "tokens_per_s": decode / t_dec,
                     "ttft_s": t_pre, "samples_s": dec, "generated_head": generated[:8]})
    if acm is not None:
        frac = sess.acm_stats()["learner_fraction"]
        for row in rows:
            row.update(acm=acm, acm_learner_fraction=frac)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edgekit.bench.model_worker", description=__doc__.splitlines()[0])
    ap.add_argument("engine", choices=ENGINES)
    ap.add_argument("model", help="artifact (edgekit), GGUF file (llama.cpp), model spec (torch) or ONNX export "
                                  "directory (onnxruntime)")
    ap.add_argument("ids", help=".npy file of the prompt token ids (int64, 1-D); its length is the prefill")
    ap.add_argument("--decode", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--acm-bias", type=float, default=None, help="an ACM artifact's gate bias")
    ap.add_argument("--acm-k", type=int, default=None, help="an ACM artifact's forced k (static width)")
    args = ap.parse_args(argv)
    try:
        ids = np.load(args.ids).astype(np.int64).reshape(-1)
        if len(ids) < 1 or args.decode < 0 or args.threads < 1 or args.reps < 1:
            raise EdgekitError("the worker needs >= 1 prompt token, decode >= 0, threads >= 1 and reps >= 1")
        acm = None
        if args.acm_bias is not None or args.acm_k is not None:
            acm = {"gate_bias": args.acm_bias or 0.0, "force_k": args.acm_k}
        rows = measure(args.engine, args.model, ids, args.decode, args.threads, args.reps, acm)
    except EdgekitError as e:
        print(json.dumps({"error": str(e)}), flush=True)
        return 2
    for row in rows:
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
