"""One engine of ``edgekit bench model``, measured alone in its own process.

Run as ``python -m edgekit.bench.model_worker ENGINE MODEL IDS.npy --prefill P --decode D --threads T --reps R``.
Each engine gets a fresh interpreter so that the peak RSS it reports (``ru_maxrss`` of this process) is its own and
no other engine's thread pool or allocator state is around. The worker prints one JSON line per phase on stdout
(``{"engine", "phase", "tokens_per_s", "ttft_s", "peak_rss_mb", "model_mb", "threads", ...}``), or one
``{"error": ...}`` line and exit status 2 for an :class:`EdgekitError`; everything else goes to stderr.

Timing: one untimed warm-up (a full prefill and a few decode steps), then ``reps`` repetitions of "empty cache,
prefill P tokens, decode D greedy tokens one at a time"; the rows report the median over the repetitions.

Every engine is driven through the same three calls (load, ``prefill(ids) -> last logits``, ``step(id) -> logits``),
so the timed regions hold the same work: the engine's forward pass plus an ``argmax`` over the vocabulary.
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


class _EdgekitEngine:
    """The C++ runtime on a W4A8 artifact, loaded by the C++ loader behind ``Runtime.from_artifact`` (no torch in
    this process, so the RSS is the engine's)."""

    def __init__(self, path: str, n_ctx: int, threads: int):
        from edgekit import _C
        from edgekit.runtime.engine import Runtime

        _C.set_num_threads(threads)
        self.rt = Runtime.from_artifact(path, max_ctx=n_ctx)
        self.model_mb = os.path.getsize(path) / MIB

    def prefill(self, ids: np.ndarray) -> np.ndarray:
        self.rt.reset()
        return self.rt.eval(ids)

    def step(self, token: int) -> np.ndarray:
        return self.rt.eval([token])


class _LlamaCppEngine:
    """llama-cpp-python on a GGUF file: one batch for the prompt, logits of the last position only."""

    def __init__(self, path: str, n_ctx: int, n_batch: int, threads: int):
        from edgekit.bench.llamacpp import _import_llama_cpp, _load_llama

        self.llama_cpp = _import_llama_cpp()
        self.llm = _load_llama(path, n_ctx=n_ctx, n_batch=n_batch, logits_all=False, threads=threads)
        self.n_vocab = self.llm.n_vocab()
        self.model_mb = os.path.getsize(path) / MIB

    def _logits(self) -> np.ndarray:
        # the last decoded position always has its logits, even with logits_all=False
        return np.ctypeslib.as_array(self.llama_cpp.llama_get_logits_ith(self.llm.ctx, -1), shape=(self.n_vocab,))

    def prefill(self, ids: np.ndarray) -> np.ndarray:
        from edgekit.bench.llamacpp import _fresh_context

        _fresh_context(self.llm)
        self.llm.eval(ids.tolist())
        return self._logits()

    def step(self, token: int) -> np.ndarray:
        self.llm.eval([token])
        return self._logits()


class _OrtEngine:
    """ONNX Runtime (CPU provider) on an ONNX export directory (``edgekit export A --format onnx``): the prompt in
    one run, then one token per run, the KV cache passed back as numpy arrays (:class:`edgekit.engines.OrtSession`)."""

    def __init__(self, path: str, threads: int):
        from edgekit.engines import OrtSession

        self.sess = OrtSession(path, threads=threads)
        self.model_mb = sum(f.stat().st_size for f in os.scandir(path) if f.name.startswith("model.onnx")) / MIB

    def prefill(self, ids: np.ndarray) -> np.ndarray:
        self.sess.reset()
        return self.sess.eval(ids)

    def step(self, token: int) -> np.ndarray:
        return self.sess.eval([token])


class _TorchEngine:
    """The float32 transformers model of the source: prefill with ``use_cache=True``, then one token per call
    against ``past_key_values``; only the last position's logits are computed (``logits_to_keep=1``)."""

    def __init__(self, spec: str, threads: int):
        import torch

        from edgekit.models import load_model

        torch.set_num_threads(threads)
        self.torch = torch
        self.model = load_model(spec).model
        params = {p.data_ptr(): p.numel() for p in self.model.parameters()}  # tied weights count once
        self.model_mb = 4 * sum(params.values()) / MIB
        self.past = None

    def _run(self, ids) -> np.ndarray:
        with self.torch.inference_mode():
            out = self.model(input_ids=ids, past_key_values=self.past, use_cache=True, logits_to_keep=1)
        self.past = out.past_key_values
        return out.logits[0, -1].numpy()

    def prefill(self, ids: np.ndarray) -> np.ndarray:
        self.past = None  # a new cache: nothing of the previous repetition is reused
        return self._run(self.torch.from_numpy(ids.astype(np.int64))[None])

    def step(self, token: int) -> np.ndarray:
        return self._run(self.torch.tensor([[token]]))


def load_engine(engine: str, model: str, n_ctx: int, n_batch: int, threads: int):
    """Load one engine. ``model`` is the artifact (edgekit), the GGUF file (llama.cpp), the model spec (torch) or the
    ONNX export directory (onnxruntime)."""
    if engine == "edgekit":
        return _EdgekitEngine(model, n_ctx, threads)
    if engine == "llama.cpp":
        return _LlamaCppEngine(model, n_ctx, n_batch, threads)
    if engine == "torch":
        return _TorchEngine(model, threads)
    if engine == "onnxruntime":
        return _OrtEngine(model, threads)
    raise EdgekitError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")


def _one_pass(eng, ids: np.ndarray, decode: int) -> tuple[float, float, list[int]]:
    """Prefill ``ids`` from an empty cache, then ``decode`` greedy steps; (prefill s, decode s, generated ids)."""
    t0 = time.perf_counter()
    token = int(np.argmax(eng.prefill(ids)))
    t1 = time.perf_counter()
    out = [token]
    for _ in range(decode):
        token = int(np.argmax(eng.step(token)))
        out.append(token)
    return t1 - t0, time.perf_counter() - t1, out


def measure(engine: str, model: str, ids: np.ndarray, decode: int, threads: int, reps: int) -> list[dict]:
    """Load ``engine``, warm it up, time ``reps`` prefill+decode passes; the two phase rows (medians)."""
    prefill = len(ids)
    t0 = time.perf_counter()
    eng = load_engine(engine, model, n_ctx=prefill + decode + CTX_MARGIN, n_batch=max(prefill, 32), threads=threads)
    load_s = time.perf_counter() - t0
    _one_pass(eng, ids, min(decode, WARMUP_DECODE))
    pre, dec = [], []
    for _ in range(reps):
        p, d, generated = _one_pass(eng, ids, decode)
        pre.append(p)
        dec.append(d)
    t_pre, t_dec = statistics.median(pre), statistics.median(dec)
    common = {"engine": engine, "peak_rss_mb": _peak_rss_mb(), "model_mb": eng.model_mb, "threads": threads,
              "load_s": load_s, "reps": reps, "timing": "median"}
    rows = [{**common, "phase": f"prefill_{prefill}", "tokens": prefill, "tokens_per_s": prefill / t_pre,
             "ttft_s": t_pre, "samples_s": pre}]
    if decode > 0:
        rows.append({**common, "phase": f"decode_{decode}", "tokens": decode, "tokens_per_s": decode / t_dec,
                     "ttft_s": t_pre, "samples_s": dec, "generated_head": generated[:8]})
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
    args = ap.parse_args(argv)
    try:
        ids = np.load(args.ids).astype(np.int64).reshape(-1)
        if len(ids) < 1 or args.decode < 0 or args.threads < 1 or args.reps < 1:
            raise EdgekitError("the worker needs >= 1 prompt token, decode >= 0, threads >= 1 and reps >= 1")
        rows = measure(args.engine, args.model, ids, args.decode, args.threads, args.reps)
    except EdgekitError as e:
        print(json.dumps({"error": str(e)}), flush=True)
        return 2
    for row in rows:
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
