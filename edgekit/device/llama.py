"""llama.cpp beside edgekit in a bundle: the user's ``llama-bench`` and llama.cpp's own Q4_0 of the same model.

``edgekit bundle --llama-bench PATH`` copies a ``llama-bench`` built for the target (and the llama.cpp / ggml shared
libraries it needs, when it was not linked statically) into ``llama/``, with llama.cpp's Q4_0 requantization of
the artifact's source model (or ``--llama-gguf``). ``edgekit device run`` then runs it right after edgekit-bench on
the same device, with the same tests and threads, under ``edgekit-bench --measure`` (which adds the peak RSS that
llama-bench does not report), and turns its JSON lines into records of the device table: same fields, same median
and 95 % interval as edgekit-bench's (:func:`summarize`), ``engine: llama.cpp``, and ``verified: false`` because
llama-bench checks no output.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from pathlib import Path

from edgekit.build import ELF_MACHINE, elf_machine
from edgekit.errors import EdgekitError

LLAMA_BENCH = "llama/bin/llama-bench"
LLAMA_LIBS = "llama/lib"
LLAMA_MODEL = "llama/model-q4_0.gguf"
RESULT = "llama.jsonl"
#: edgekit-bench options that mean the same to llama-bench and are passed on (with their value, if they take one)
SHARED_FLAGS = {"--delay": True, "--no-warmup": False}


def needed_libraries(path: Path) -> list[str]:
    """The DT_NEEDED shared libraries of an ELF program (``readelf -d``; any architecture)."""
    if shutil.which("readelf") is None:
        raise EdgekitError("readelf not found; it is needed to check which libraries llama-bench needs (binutils)")
    p = subprocess.run(["readelf", "-d", str(path)], capture_output=True, text=True)
    if p.returncode != 0:
        raise EdgekitError(f"readelf could not read {path}: {p.stderr.strip()}")
    return [line.split("[", 1)[1].split("]", 1)[0] for line in p.stdout.splitlines() if "(NEEDED)" in line]


def check_llama_bench(path: str | os.PathLike, arch: str) -> tuple[Path, list[Path]]:
    """Check that ``path`` is a ``llama-bench`` for ``arch``; returns it and the shared libraries to copy with it.

    A library is copied when the program needs it and it lies next to the program (its folder, ``../lib``,
    ``../lib64``); the others (libc, libstdc++, libgomp, ...) are the device's own. A needed llama.cpp / ggml
    library that cannot be found is an error: build llama-bench with ``-DBUILD_SHARED_LIBS=OFF`` or keep its
    libraries beside it. A script (no ELF header) is taken as is: a wrapper the user wrote.
    """
    p = Path(path)
    if not p.is_file():
        raise EdgekitError(f"--llama-bench {p}: no such file (a llama-bench program built for the target)")
    if not os.access(p, os.X_OK):
        raise EdgekitError(f"--llama-bench {p} is not executable")
    machine = elf_machine(p)
    if machine is None:
        return p, []
    if machine != ELF_MACHINE.get(arch):
        names = {v: k for k, v in ELF_MACHINE.items()}
        raise EdgekitError(f"--llama-bench {p} is built for {names.get(machine, f'ELF machine {machine}')}, the "
                           f"bundle's target is {arch}: build llama.cpp for {arch} (e.g. with its cross toolchain)")
    folders = [p.resolve().parent, p.resolve().parent.parent / "lib", p.resolve().parent.parent / "lib64"]
    libs, missing = [], []
    for name in needed_libraries(p):
        found = next((d / name for d in folders if (d / name).is_file()), None)
        if found is not None:
            libs.append(found)
        elif name.startswith(("libllama", "libggml", "libmtmd")):
            missing.append(name)
    if missing:
        raise EdgekitError(f"--llama-bench {p} needs {', '.join(missing)}, found neither beside it nor in ../lib: "
                           "build llama.cpp with -DBUILD_SHARED_LIBS=OFF, or keep its libraries next to the program")
    return p, libs


def check_gguf(path: str | os.PathLike) -> Path:
    """``path`` if it is a GGUF file (magic ``GGUF``), else one clear error."""
    p = Path(path)
    if not p.is_file():
        raise EdgekitError(f"--llama-gguf {p}: no such file")
    with open(p, "rb") as f:
        if f.read(4) != b"GGUF":
            raise EdgekitError(f"--llama-gguf {p} is not a GGUF file")
    return p


def summarize(samples: list[float]) -> tuple[float, float, float]:
    """Median and 95 % interval of the median by order statistics: edgekit-bench's ``summarize`` (record.cpp),
    so both engines' intervals in a device table mean the same thing."""
    x = sorted(samples)
    n = len(x)
    if n == 0:
        return math.nan, math.nan, math.nan
    median = x[n // 2] if n % 2 else 0.5 * (x[n // 2 - 1] + x[n // 2])
    if n < 6:
        return median, x[0], x[-1]
    half = 0.98 * math.sqrt(n)
    return median, x[max(0, math.floor(n / 2 - half) - 1)], x[min(n - 1, math.ceil(n / 2 + half))]


def llama_bench_args(records: list[dict], bench_args: list[str], min_reps: int = 5) -> list[str]:
    """llama-bench options that repeat edgekit-bench's run: its tests (``-p`` / ``-n`` / ``-pg``), its threads, at
    least as many repetitions as edgekit-bench made of any test (and ``min_reps``), ``--delay`` / ``--no-warmup``."""
    tests = [r for r in records if r.get("phase") in ("prefill", "decode", "prefill+decode")]
    if not tests:
        raise EdgekitError("edgekit-bench ran no prefill or decode test, so there is nothing to repeat in llama-bench")
    p = [r["n_prompt"] for r in tests if r["phase"] == "prefill"]
    n = [r["n_gen"] for r in tests if r["phase"] == "decode"]
    args = ["-p", ",".join(map(str, p or [0])), "-n", ",".join(map(str, n or [0]))]
    for r in tests:
        if r["phase"] == "prefill+decode":
            args += ["-pg", f"{r['n_prompt']},{r['n_gen']}"]
    reps = max([min_reps] + [int(r.get("reps", 1)) for r in tests])
    args += ["-r", str(reps), "-t", str(tests[0]["threads"]), "-o", "jsonl"]
    i = 0
    while i < len(bench_args):
        a = bench_args[i]
        if a in SHARED_FLAGS:
            args.append(a)
            if SHARED_FLAGS[a] and i + 1 < len(bench_args):
                args.append(bench_args[i + 1])
                i += 1
        i += 1
    return args


def convert(records: list[dict], where: str) -> list[dict]:
    """Device-table records from the lines ``run.sh llama-bench`` wrote: llama-bench's own JSON lines, then
    edgekit-bench's ``--measure`` line (peak RSS, device facts). A run without either is an error naming ``where``."""
    measure = next((r for r in records if r.get("schema") == "edgekit-bench/measure"), None)
    tests = [r for r in records if "samples_ts" in r and "n_prompt" in r]
    if measure is None or not tests:
        raise EdgekitError(f"{where}: no llama-bench records (or no --measure line); is the bundle's llama-bench a "
                           "llama-bench that writes -o jsonl?")
    out = []
    for r in tests:
        n_p, n_g = int(r["n_prompt"]), int(r["n_gen"])
        samples = [float(v) for v in r["samples_ts"]]
        med, lo, hi = summarize(samples)
        ttft = None
        if n_p and not n_g:  # a pp test's whole time is its prefill
            ms = [float(v) / 1e6 for v in r.get("samples_ns", [])]
            if ms:
                m, a, b = summarize(ms)
                ttft = {"median": m, "ci95": [a, b], "samples": ms}
        out.append({
            "schema": "llama-bench/1", "engine": "llama.cpp",
            "phase": "prefill+decode" if n_p and n_g else "prefill" if n_p else "decode",
            "test": f"pp{n_p}+tg{n_g}" if n_p and n_g else f"pp{n_p}" if n_p else f"tg{n_g}",
            "n_prompt": n_p, "n_gen": n_g, "threads": int(r["n_threads"]), "tokens_per_s": med,
            "tokens_per_s_ci95": [lo, hi], "tokens_per_s_samples": samples, "reps": len(samples), "ttft_ms": ttft,
            "verified": False, "peak_rss_mb": measure["peak_rss_mb"], "cpu": measure["cpu"],
            "kernel": {"gemm_q4x4_q8": f"ggml {r.get('backends', 'CPU')} {r.get('model_type', '')}".strip()},
            "model": r.get("model_filename"), "build": r.get("build_commit"), "cpu_info": r.get("cpu_info"),
            "flash_attn": r.get("flash_attn"), "n_batch": r.get("n_batch"), "n_ubatch": r.get("n_ubatch"),
            "type_k": r.get("type_k"), "model_size": r.get("model_size"),
            "thermal_before": measure.get("thermal_before"), "thermal_after": measure.get("thermal_after"),
        })
    return out
