"""``edgekit bench model``: prefill and decode speed of one model in edgekit's C++ runtime, llama.cpp and torch.

One run puts the three engines side by side on the same model and the same prompt ids:

* ``edgekit``: the W4A8 artifact in :class:`edgekit.engines.runtime.Runtime`;
* ``llama.cpp``: llama-cpp-python on the Q4_0 GGUF that llama.cpp itself requantizes from the source GGUF (cached
  under ``~/.cache/edgekit/llamacpp``), or on the GGUF given with ``--gguf``;
* ``torch``: the float32 transformers model of the source, with its KV cache;
* ``onnxruntime`` (only with ``--onnx DIR``): ONNX Runtime on an ONNX export of the artifact
  (``edgekit export A --format onnx -o DIR``; MatMulNBits int4 weights, int8 activations per block).

Each engine runs in its own ``python -m edgekit.bench.model_worker`` process (see there for what is timed), one after
the other with a pause between them, so its peak RSS and its threads are its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgekit.bench.kernels import SETTLE_S
from edgekit.bench.model_report import RATIO_KEY, SCALING_KEY
from edgekit.bench.model_worker import ENGINES
from edgekit.bench.roofline import add_fractions
from edgekit.bench.roofline import measure as measure_roofline
from edgekit.cache import cache_dir, file_key
from edgekit.errors import EdgekitError

DEFAULT_ENGINES = ("edgekit", "llama.cpp", "torch")  # onnxruntime joins when an ONNX export is given (--onnx)

@dataclass
class Plan:
    """What each engine loads.

    Attributes:
        spec: The model spec of the float source (the artifact's ``source``, or the spec given).
        artifact: The ``.ekq`` file for the edgekit engine, or ``None`` when a plain model was given.
        engines: The engines to run, in order.
        notes: Remarks for the user (e.g. an engine skipped and why).
    """

    spec: str
    artifact: str | None
    engines: list[str]
    notes: list[str] = field(default_factory=list)


def parse_engines(value: str | None) -> list[str] | None:
    """A comma list of engine names, validated; ``None`` stays ``None`` (= all engines, skipping what cannot run)."""
    if value is None:
        return None
    names = [v.strip().lower() for v in value.split(",") if v.strip()]
    names = ["llama.cpp" if n in ("llamacpp", "llama-cpp", "llama_cpp") else n for n in names]
    if bad := [n for n in names if n not in ENGINES]:
        raise EdgekitError(f"unknown engine(s) {', '.join(bad)}; choose from {', '.join(ENGINES)}")
    if not names:
        raise EdgekitError(f"--engines needs at least one of {', '.join(ENGINES)}")
    return list(dict.fromkeys(names))


def make_plan(model: str, engines: list[str] | None) -> Plan:
    """Work out the artifact and the float source of ``model`` and which engines can run on it.

    Raises:
        EdgekitError: for a missing artifact, a file that is not one, an encoder, or ``--engines edgekit`` given
            explicitly for a model that is not an artifact.
    """
    from edgekit.artifact import SUFFIX, is_artifact, read_artifact

    explicit = engines is not None
    engines = list(engines or DEFAULT_ENGINES)
    p = Path(model).expanduser()
    if p.suffix == SUFFIX or is_artifact(p) or (p.is_file() and p.suffix.lower() not in (".gguf",)):
        art = read_artifact(p)  # raises "artifact not found" / "not an edgekit artifact"
        if art.task != "causal-lm":
            raise EdgekitError(f"{p} is a {art.family} {art.task}; edgekit bench model measures text generation "
                               "(llama-family decoders)")
        return Plan(art.source, str(p), engines)
    notes = []
    if "edgekit" in engines:
        if explicit:
            raise EdgekitError(f"the edgekit engine runs a quantized artifact (.ekq) and {model} is not one; "
                               f"create it with `edgekit quantize {model} -o out/model.ekq` and pass that")
        engines.remove("edgekit")
        notes.append(f"{model} is not an artifact, so the edgekit engine is skipped; run `edgekit quantize {model}` "
                     "and pass the .ekq to include it")
    return Plan(model, None, engines, notes)


def cached_q4_0(src: str, threads: int = 2) -> tuple[Path, bool]:
    """llama.cpp's own Q4_0 requantization of ``src``, made once and reused.

    The cache key is the source's resolved path, size and mtime, so a replaced source gets a new file.

    Returns:
        ``(path of the Q4_0 GGUF, whether it was already cached)``.

    Raises:
        EdgekitError: if the source is missing, llama-cpp-python is not installed or llama.cpp fails.
    """
    from edgekit.bench.llamacpp_baseline import requantize_gguf

    sp = Path(src).resolve()
    if not sp.is_file():
        raise EdgekitError(f"GGUF source file not found: {sp}")
    dst = cache_dir() / "llamacpp" / f"{sp.stem}.{file_key(sp)}.q4_0.gguf"
    if dst.is_file():
        return dst, True
    dst.parent.mkdir(parents=True, exist_ok=True)
    requantize_gguf(str(sp), str(dst), "q4_0", threads=threads)  # writes a temp file and renames: never half-done
    return dst, False


def source_gguf(spec: str) -> str:
    """The GGUF file behind a model spec, for llama.cpp to requantize.

    Raises:
        EdgekitError: when the source is not a GGUF (pass ``--gguf`` or leave llama.cpp out).
    """
    from edgekit.models import resolve_spec

    src = resolve_spec(spec)
    if not src.gguf_file:
        raise EdgekitError(f"the source {spec} is not a GGUF file, so llama.cpp has nothing to requantize; pass "
                           "--gguf PATH (a GGUF of the same model) or drop llama.cpp from --engines")
    return src.file


def prompt_ids(plan: Plan, prefill: int, data_paths=None) -> np.ndarray:
    """The first ``prefill`` tokens of the held-out evaluation text (not the calibration text), as int64.

    The tokenizer is the artifact's own (a copy of the source's) or, for a plain model, the source's.

    Raises:
        EdgekitError: when the text is shorter than ``prefill`` tokens or the model is not a decoder.
    """
    from edgekit import data

    if plan.artifact:
        from edgekit.artifact import read_artifact
        from edgekit.quant.serialize import artifact_tokenizer

        tok = artifact_tokenizer(read_artifact(plan.artifact))
    else:
        from edgekit.models import load_model

        lm = load_model(plan.spec)  # the float model too; freed before any engine is timed
        if lm.task != "causal-lm":
            raise EdgekitError(f"{plan.spec} is a {lm.family} {lm.task}; edgekit bench model measures text "
                               "generation (llama-family decoders)")
        tok = lm.tokenizer
        del lm
    stream = data.tokenize_docs(tok, data.load_texts(data_paths, "eval"))
    if len(stream) < prefill:
        raise EdgekitError(f"the held-out text has {len(stream)} tokens, fewer than --prefill {prefill}")
    return np.ascontiguousarray(stream[:prefill], dtype=np.int64)


def machine_info(threads) -> dict:
    """CPU model, cores and the versions that matter for the numbers (the JSON's ``machine`` header)."""
    from edgekit.native.info import cpu_model, native_info, package_version

    info = native_info()
    gemm = info.get("kernels", {}).get("gemm_q4x4_q8", {}).get("selected") if info.get("native") else None
    return {"cpu": cpu_model(), "machine": platform.machine(), "logical_cores": os.cpu_count(), "threads": threads,
            "platform": platform.platform(), "python": platform.python_version(), "edgekit_gemm_kernel": gemm,
            "versions": {n: package_version(d) for n, d in (("edgekit", "edgekit"), ("torch", "torch"),
                                                     ("transformers", "transformers"),
                                                     ("llama_cpp", "llama_cpp_python"))}}


def run_worker(engine: str, model: str, ids_path: str, decode: int, threads: int, reps: int,
               extra: list[str] = ()) -> list[dict]:
    """Run one engine's worker process and return its phase rows (``extra``: more worker flags, e.g. an ACM
    artifact's ``--acm-bias B``).

    Raises:
        EdgekitError: what the worker reported as bad input (e.g. an artifact the runtime cannot run).
        RuntimeError: when the worker crashed (with the end of its stderr).
    """
    cmd = [sys.executable, "-m", "edgekit.bench.model_worker", engine, model, ids_path, "--decode", str(decode),
           "--threads", str(threads), "--reps", str(reps), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false", "TQDM_DISABLE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [json.loads(s) for s in proc.stdout.splitlines() if s.startswith("{")]
    if errors := [x["error"] for x in lines if "error" in x]:
        raise EdgekitError(f"{engine}: {errors[0]}")
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"the {engine} worker failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return lines


def add_ratios(rows: list[dict]) -> list[dict]:
    """Give each edgekit row ``ratio_vs_llama.cpp`` = its tokens/s over llama.cpp's in that phase at the same thread
    count (None without)."""
    base = {(r["phase"], r["threads"]): r["tokens_per_s"] for r in rows if r["engine"] == "llama.cpp"}
    for r in rows:
        if r["engine"] == "edgekit":
            key = (r["phase"], r["threads"])
            r[RATIO_KEY] = r["tokens_per_s"] / base[key] if key in base else None
    return rows


def add_scaling(rows: list[dict]) -> list[dict]:
    """With more than one thread count, give every row ``thread_scaling`` = its tokens/s over the same engine's and
    phase's at the smallest thread count of the run (1.0 on those rows); a single thread count adds nothing."""
    counts = sorted({r["threads"] for r in rows})
    if len(counts) < 2:
        return rows
    base = {(r["engine"], r["phase"]): r["tokens_per_s"] for r in rows if r["threads"] == counts[0]}
    for r in rows:
        b = base.get((r["engine"], r["phase"]))
        r[SCALING_KEY] = r["tokens_per_s"] / b if b else None
    return rows


def thread_counts(threads) -> list[int]:
    """``threads`` as a list of distinct positive counts (an int, or a list from ``--threads 1,2``).

    Raises:
        EdgekitError: for an empty list or a count below 1.
    """
    counts = [threads] if isinstance(threads, int) else list(dict.fromkeys(threads))
    if not counts or any(not isinstance(t, int) or t < 1 for t in counts):
        raise EdgekitError(f"--threads must be one or more integers >= 1, got {threads!r}")
    return counts


def run_model_bench(model: str, engines: list[str] | None = None, threads: int | list[int] = 2, prefill: int = 512,
                    decode: int = 128, reps: int = 3, gguf: str | None = None, data_paths=None,
                    progress: bool = True, onnx: str | None = None, roofline: bool = True) -> dict:
    """Measure prefill and decode speed of each engine on one model.

    Args:
        model: A ``.ekq`` artifact (all engines) or a model spec (llama.cpp and torch only).
        engines: Subset of :data:`ENGINES`; ``None`` = all that can run.
        threads: Threads for every engine, or a list of thread counts: every engine runs at each.
        prefill: Prompt length in tokens (held-out text).
        decode: Greedy tokens generated after the prompt.
        reps: Timed repetitions per engine after one warm-up; rows report the median.
        gguf: The GGUF llama.cpp runs, instead of its Q4_0 requantization of the source.
        onnx: The ONNX export directory ONNX Runtime runs (the onnxruntime engine runs only with one).
        data_paths: Held-out text files for the prompt (default: the evaluation corpus).
        progress: Show a status line per engine on stderr.
        roofline: Measure the read bandwidth and int8 peak at each thread count first (:mod:`edgekit.bench.roofline`)
            and give the edgekit rows (and llama.cpp's decode row) their fractions of them.

    Returns:
        ``{"rows": [...], "machine": {...}, "notes": [...], "model": ..., "source": ...}``; each row has ``engine``,
        ``phase``, ``tokens_per_s``, ``ttft_s``, ``peak_rss_mb``, ``model_mb``, ``threads`` (edgekit rows also
        ``ratio_vs_llama.cpp``; with the roofline, edgekit's and llama.cpp's decode rows ``bytes_per_token`` and
        ``bandwidth_fraction``, edgekit's prefill rows ``ops_per_token`` and ``int8_peak_fraction``; with several
        thread counts every row ``thread_scaling``); with the roofline also ``"roofline": {threads: limits}``.

    Raises:
        EdgekitError: on bad arguments or input an engine cannot run.
    """
    counts = thread_counts(threads)
    if prefill < 1 or decode < 0 or reps < 1:
        raise EdgekitError("--prefill must be >= 1, --decode >= 0, --reps >= 1")
    plan = make_plan(model, engines)
    targets = {"edgekit": plan.artifact, "torch": plan.spec}
    if onnx and engines is None:
        plan.engines.append("onnxruntime")
    if "onnxruntime" in plan.engines:
        if not onnx:
            raise EdgekitError("the onnxruntime engine runs an ONNX export; make one with `edgekit export ARTIFACT "
                               "--format onnx -o DIR` and pass --onnx DIR")
        if not (Path(onnx) / "model.onnx").is_file():
            raise EdgekitError(f"--onnx {onnx} is not an ONNX export directory (no model.onnx)")
        targets["onnxruntime"] = str(Path(onnx).resolve())
    if "llama.cpp" in plan.engines:  # resolved before anything slow, so a setup problem fails fast
        from edgekit.engines.llamacpp import import_llama_cpp

        import_llama_cpp()
        if gguf:
            if not Path(gguf).is_file():
                raise EdgekitError(f"--gguf file not found: {gguf}")
            targets["llama.cpp"] = str(Path(gguf).resolve())
        else:
            src = source_gguf(plan.spec)
            with _status(progress, f"llama.cpp: requantizing {Path(src).name} to Q4_0 (cached)"):
                q4, hit = cached_q4_0(src, max(counts))
            targets["llama.cpp"] = str(q4)
            plan.notes.append(f"llama.cpp runs {q4}" + (" (cached)" if hit else " (requantized now)"))
    ids = prompt_ids(plan, prefill, data_paths)
    rows: list[dict] = []
    limits: dict[int, dict] = {}
    with tempfile.TemporaryDirectory(prefix="edgekit-bench-model-") as td:
        ids_path = os.path.join(td, "prompt.npy")
        np.save(ids_path, ids)
        for t in counts:
            if roofline:
                with _status(progress, f"roofline: read bandwidth and int8 peak, {t} threads"):
                    limits[t] = measure_roofline(t)
                if progress:
                    print(f"roofline, {t} threads: read {limits[t]['read_gbps']:.1f} GB/s, int8 peak "
                          f"{limits[t]['int8_tops']:.3f} TOPS ({limits[t]['dot_impl']})", file=sys.stderr, flush=True)
            for engine in plan.engines:
                if rows or limits:
                    time.sleep(SETTLE_S)  # let the previous process's (or probe's) threads and page cache settle
                with _status(progress, f"{engine}: prefill {prefill}, decode {decode}, {reps} reps, {t} threads"):
                    new = run_worker(engine, targets[engine], ids_path, decode, t, reps)
                for r in new:
                    r["model"] = plan.spec
                rows += new
                if progress:
                    print(f"{engine}, {t} threads: " + ", ".join(f"{r['phase']} {r['tokens_per_s']:.1f} tok/s"
                                                               for r in new)
                          + f", peak RSS {new[0]['peak_rss_mb']:.0f} MiB", file=sys.stderr, flush=True)
    if roofline and plan.artifact:
        from edgekit.artifact import read_artifact

        add_fractions(rows, limits, read_artifact(plan.artifact), targets.get("llama.cpp"), prefill, decode)
    out = {"model": model, "source": plan.spec, "rows": add_scaling(add_ratios(rows)),
           "machine": machine_info(counts[0] if len(counts) == 1 else counts), "notes": plan.notes,
           "targets": {e: targets[e] for e in plan.engines}}
    if roofline:
        out["roofline"] = {str(t): lim for t, lim in limits.items()}
    return out


def _status(progress: bool, text: str):
    """A rich spinner on stderr while a step runs, or nothing when ``progress`` is off."""
    if not progress:
        return contextlib.nullcontext()
    from rich.console import Console

    return Console(stderr=True).status(text)
