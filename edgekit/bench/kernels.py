"""``edgekit bench kernels``: the W4A8 matmul kernel side by side with torch fp32 and ONNX Runtime's ``MatMulNBits``.

All implementations compute the same matrix: random symmetric group-32 int4 codes and fp16 scales become edgekit's
q4x4 layout, ORT's ``MatMulNBits`` blobs and (dequantized) torch fp32 weights. The ``edgekit`` row is what the
runtime runs for the default recipe: int8 activations per block of 32 (as ORT's accuracy level 4 quantizes A), in
the runtime's layout (``_C.preferred_q4_rows``: q4x16 on AVX-512 VNNI); ``--all-impls`` adds every per-token q4x4
kernel. Each output is checked against a float64 reference before it is timed, and the implementations are timed in
interleaved rounds per shape so that machine noise hits them alike. Tables, JSON and the plot are written through
:mod:`edgekit.bench.report`.
"""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np

from edgekit.bench import report
from edgekit.bench.timing import time_calls
from edgekit.errors import EdgekitError

# Linear layers of the two reference models, as (N, K) = (out_features, in_features).
SHAPE_PRESETS = {
    "smollm2": [(576, 576), (1536, 576), (576, 1536), (49152, 576)],
    "llama7b": [(4096, 4096), (11008, 4096), (4096, 11008)],
}
GROUP = 32
MAX_REL_ERR = 0.05  # int8 activations cost ~1 %; a wrong layout costs ~100 %
GEMM_OP = "gemm_q4x4_q8"
SETTLE_S = 0.15  # idle time between two implementations' timing blocks


def parse_shapes(spec: str) -> list[tuple[int, int]]:
    """Shapes from a comma list of preset names (``smollm2``, ``llama7b``) and/or explicit ``NxK`` entries.

    Raises:
        EdgekitError: on an unknown name or a K that is not a positive multiple of 32.
    """
    shapes: list[tuple[int, int]] = []
    for item in (s.strip().lower() for s in spec.split(",")):
        if not item:
            continue
        if item in SHAPE_PRESETS:
            shapes += SHAPE_PRESETS[item]
            continue
        try:
            n, k = (int(v) for v in item.replace("×", "x").split("x"))
        except ValueError:
            raise EdgekitError(f"shape {item!r} is neither a preset ({', '.join(SHAPE_PRESETS)}) nor NxK") from None
        if n <= 0 or k <= 0 or k % GROUP:
            raise EdgekitError(f"shape {item!r}: N must be positive and K a positive multiple of {GROUP}")
        shapes.append((n, k))
    if not shapes:
        raise EdgekitError("no shapes given")
    return list(dict.fromkeys(shapes))  # keep order, drop repeats


def random_weights(n: int, k: int, rng: np.random.Generator):
    """Random codes and scales in every format: (edgekit PackedQ4, ORT B, ORT scales, fp32 weights)."""
    from edgekit import _C
    from edgekit.quant import formats as F

    codes = rng.integers(0, 16, size=(n, k), dtype=np.uint8)
    scales = rng.uniform(0.002, 0.02, size=(n, k // GROUP)).astype(np.float16)
    packed = F.pack_int4(codes, GROUP)
    qs, d = F.pack_q4x4(packed, scales)
    w_ek = _C.PackedQ4(qs, d, n, k)
    # ORT blobs: byte i of a 32-block holds element 2i (low nibble) and 2i+1 (high nibble), unlike our split order.
    pairs = codes.reshape(n, k // GROUP, GROUP // 2, 2)
    b_ort = np.ascontiguousarray(pairs[..., 0] | (pairs[..., 1] << 4))
    s_ort = scales.astype(np.float32).reshape(-1)
    w_f32 = F.dequantize_int4(packed, scales, GROUP)
    return w_ek, b_ort, s_ort, w_f32


def _ort_session(b: np.ndarray, s: np.ndarray, n: int, k: int, threads: int):
    """A one-node ``MatMulNBits`` model (weights as initializers, so ORT prepacks them) and its session."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from edgekit.engines.onnxruntime import session_options

    node = helper.make_node("MatMulNBits", ["A", "B", "scales"], ["Y"], domain="com.microsoft",
                            K=k, N=n, bits=4, block_size=GROUP, accuracy_level=4)
    graph = helper.make_graph([node], "matmulnbits",
                              [helper.make_tensor_value_info("A", TensorProto.FLOAT, ["M", k])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["M", n])],
                              [numpy_helper.from_array(b, "B"), numpy_helper.from_array(s, "scales")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = min(model.ir_version, 10)  # what ORT releases accept
    so = session_options(threads, quiet=False)
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _ort_calls(session, x: np.ndarray, n: int):
    """(timed call, checked call) of an ORT session on ``x``.

    The timed call binds input and output once (IOBinding), which saves ~10 µs of Python-side conversion per
    call, so small shapes measure ORT's kernel rather than its binding layer, as edgekit's call does.
    """
    import onnxruntime as ort

    io = session.io_binding()
    a = ort.OrtValue.ortvalue_from_numpy(x)  # wraps x's memory; the closure keeps both alive
    y = ort.OrtValue.ortvalue_from_shape_and_type([x.shape[0], n], np.float32)
    io.bind_ortvalue_input("A", a)
    io.bind_ortvalue_output("Y", y)
    return (lambda keep=(a, y, x): session.run_with_iobinding(io)), (lambda: session.run(None, {"A": x})[0])


def _rel_err(y, ref: np.ndarray) -> float:
    y = np.asarray(y, dtype=np.float64)
    return float(np.linalg.norm(y - ref) / max(np.linalg.norm(ref), 1e-30))


def _runtime_layout(w_ek, selected: str):
    """The weight as the runtime holds it (``_C.preferred_q4_rows``: q4x16 on AVX-512 VNNI) and its kernel label."""
    from edgekit import _C

    w = w_ek.to_q4x16() if _C.preferred_q4_rows() == 16 else w_ek
    return w, f"{selected} q4x{w.rows}, A8 per block"


def _calls(impls, ek_impls: list[str], selected: str, x: np.ndarray, w_t, w_ek, session, n: int,
           layouts: tuple = ()):
    """The zero-argument calls to time, keyed ``(impl, kernel)`` in interleaving order, and for calls whose timed
    form returns nothing (ORT with IOBinding) the call that returns their output for the correctness check."""
    import torch

    calls, checks = {}, {}
    if "torch" in impls:
        x_t = torch.from_numpy(x)
        calls[("torch-fp32", "torch")] = lambda: torch.nn.functional.linear(x_t, w_t)
    if "ort" in impls:
        key = ("ort-matmulnbits", "MatMulNBits")
        calls[key], checks[key] = _ort_calls(session, x, n)
    if "edgekit" in impls:
        w_run, label = _runtime_layout(w_ek, selected)
        calls[("edgekit", label)] = lambda: w_run.linear(x, per_block=True)
        for ki in ek_impls:
            calls[(f"edgekit-{ki}", ki)] = lambda ki=ki: w_ek.linear(x, impl=ki)
        for rows, w_lay in layouts:  # the same dispatched per-block kernels on each int4 layout
            calls[(f"edgekit-q4x{rows}", f"{selected} q4x{rows}, A8 per block")] = (
                lambda w_lay=w_lay: w_lay.linear(x, per_block=True))
    return calls, checks


def _measure(calls: dict, checks: dict, ref: np.ndarray, what: str, warmup: int, rounds: int, min_time: float,
             min_reps: int) -> tuple[dict, dict]:
    """Check every call against ``ref``, warm it up, then time all of them in ``rounds`` interleaved rounds.

    Returns:
        ``(relative errors, per-call seconds)``, both keyed like ``calls``.

    Raises:
        EdgekitError: when an output is further than :data:`MAX_REL_ERR` from the reference.
    """
    import torch

    rounds = max(rounds, 1)
    errs = {}
    with torch.inference_mode():
        for key, fn in calls.items():
            errs[key] = _rel_err(checks.get(key, fn)(), ref)
            if errs[key] > MAX_REL_ERR:
                raise EdgekitError(f"{key[0]} on {what}: relative error {errs[key]:.3g} vs the float reference "
                                   f"exceeds {MAX_REL_ERR:.0%}; wrong weight layout?")
        samples = {key: [] for key in calls}
        for _ in range(rounds):
            for key, fn in calls.items():
                # let the previous implementation's thread pool stop spinning (ORT's and OpenMP's spin for a while
                # after each call; on 2 cores a spinning pool halves the next one's speed), then warm this one up
                time.sleep(SETTLE_S)
                for _ in range(warmup):
                    fn()
                samples[key] += time_calls(fn, min_time / rounds, -(-min_reps // rounds))
    return errs, samples


def _make_rows(samples: dict, errs: dict, nbytes: dict, m: int, n: int, k: int, t: int) -> list[dict]:
    """Result rows of one (shape, M, threads) configuration; edgekit rows get speedups over the first baselines."""
    rows, base = [], {}
    for (impl, kernel), ts in samples.items():
        med = statistics.median(ts)
        fam = impl.split("-")[0]
        base.setdefault(fam, med)
        rows.append({"impl": impl, "kernel": kernel, "m": m, "n": n, "k": k, "threads": t, "median_s": med,
                     "gops": 2 * m * n * k / med / 1e9, "weight_gbps": nbytes[fam] / med / 1e9,
                     "weight_bytes": nbytes[fam], "rel_err": errs[(impl, kernel)], "reps": len(ts)})
    for row in rows:
        if row["impl"].startswith("edgekit"):
            row["speedup_vs_ort"] = base["ort"] / row["median_s"] if "ort" in base else None
            row["speedup_vs_torch"] = base["torch"] / row["median_s"] if "torch" in base else None
    return rows


def run_kernel_bench(shapes=None, ms=(1, 16, 128), threads_list=(1, 2), impls=("torch", "ort", "edgekit"),
                     all_impls: bool = False, min_time: float = 0.2, min_reps: int = 5, rounds: int = 3,
                     warmup: int = 2, seed: int = 0, progress: bool = False, layouts: bool = False) -> list[dict]:
    """Time torch fp32, ORT ``MatMulNBits`` and edgekit's W4A8 linear on the same weights and inputs.

    Args:
        shapes: ``(N, K)`` pairs or a spec string for :func:`parse_shapes` (default: SmolLM2 and Llama-7B).
        ms: Batch sizes M (tokens per call).
        threads_list: Thread counts; each applies to torch, ORT's intra-op pool and edgekit's pool alike.
        impls: Which of ``"torch"``, ``"ort"``, ``"edgekit"`` to run.
        all_impls: Also time every edgekit implementation this CPU supports, not just the dispatched one.
        min_time: Seconds of timed calls per implementation and configuration (split over ``rounds``).
        min_reps: Timed calls at least per implementation and configuration (split over ``rounds``).
        rounds: Interleaved rounds; each times every implementation once, in turn.
        warmup: Untimed calls per implementation before each of its timing blocks (after the checked call).
        seed: Seed of the random weights and inputs.
        progress: Print one line per configuration to stderr.
        layouts: Also time the runtime's per-block kernel on both int4 layouts, q4x4 and q4x16 (rows
            ``edgekit-q4x4`` / ``edgekit-q4x16``; q4x16 only where its AVX-512 VNNI kernel runs), to check the
            layout rule ``_C.preferred_q4_rows`` on this CPU (:func:`layout_verdicts`).

    Returns:
        One dict per (implementation, shape, M, threads): ``impl``, ``kernel``, ``m``, ``n``, ``k``, ``threads``,
        ``median_s``, ``gops``, ``weight_gbps``, ``weight_bytes``, ``rel_err``, ``reps``; edgekit rows also carry
        ``speedup_vs_ort`` and ``speedup_vs_torch`` (None when that baseline did not run).

    Raises:
        EdgekitError: on bad arguments, a missing onnxruntime, or an output further than 5 % from the reference.
    """
    from edgekit import _C

    shapes = parse_shapes(shapes) if isinstance(shapes, str) else list(shapes or parse_shapes("smollm2,llama7b"))
    impls = tuple(impls)
    if unknown := set(impls) - {"torch", "ort", "edgekit"}:
        raise EdgekitError(f"unknown impls {sorted(unknown)}; use torch, ort, edgekit")
    if any(m <= 0 for m in ms) or any(t <= 0 for t in threads_list):
        raise EdgekitError("M and thread counts must be positive")
    if "ort" in impls:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            raise EdgekitError("onnxruntime is not installed: pip install onnxruntime (or drop the ORT rows)") from None
    import torch

    ek_impls = list(_C.implementations(GEMM_OP)) if all_impls else []
    selected = _C.selected(GEMM_OP)
    old_torch, old_ek = torch.get_num_threads(), _C.get_num_threads()
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    try:
        for n, k in shapes:
            w_ek, b_ort, s_ort, w_f32 = random_weights(n, k, rng)
            lay = ()
            if layouts:
                q4x16 = "avx512vnni" in _C.implementations("gemm_q4x16_q8b")
                lay = ((4, w_ek),) + (((16, w_ek.to_q4x16()),) if q4x16 else ())
            w_t = torch.from_numpy(w_f32)
            w64 = w_f32.astype(np.float64)
            sessions = {t: _ort_session(b_ort, s_ort, n, k, t) for t in threads_list} if "ort" in impls else {}
            # what each format streams from memory per call: fp32, or nibbles plus fp32 (ORT) / fp16 (ours) scales
            nbytes = {"torch": 4 * n * k, "ort": n * k // 2 + 4 * s_ort.size, "edgekit": n * k // 2 + 2 * s_ort.size}
            for m in ms:
                x = rng.standard_normal((m, k), dtype=np.float32)
                ref = x.astype(np.float64) @ w64.T
                for t in threads_list:
                    torch.set_num_threads(t)
                    _C.set_num_threads(t)
                    calls, checks = _calls(impls, ek_impls, selected, x, w_t, w_ek, sessions.get(t), n, lay)
                    errs, samples = _measure(calls, checks, ref, f"{n}x{k}, M={m}", warmup, rounds, min_time,
                                             min_reps)
                    new_rows = _make_rows(samples, errs, nbytes, m, n, k, t)
                    rows += new_rows
                    if progress:
                        print(f"{n}x{k} M={m} t={t}: " + ", ".join(f"{r['impl']} {r['median_s'] * 1e6:.0f} µs"
                                                                   for r in new_rows), file=sys.stderr, flush=True)
            del sessions, w_ek, w_t, w_f32, w64  # free this shape's copies before building the next
    finally:
        torch.set_num_threads(old_torch)
        _C.set_num_threads(old_ek)
    return rows


def layout_verdicts(rows: list[dict]) -> list[str]:
    """One line per (shape, M, threads) timed with ``layouts``: q4x4 vs q4x16 median, the faster one, and whether
    it is the layout the runtime picks here (``_C.preferred_q4_rows``)."""
    from edgekit import _C

    picked = _C.preferred_q4_rows()
    by = {(r["impl"], r["n"], r["k"], r["m"], r["threads"]): r for r in rows}
    out = []
    for (impl, n, k, m, t), r4 in by.items():
        r16 = by.get(("edgekit-q4x16", n, k, m, t))
        if impl != "edgekit-q4x4" or r16 is None:
            continue
        t4, t16 = r4["median_s"], r16["median_s"]
        faster = 16 if t16 < t4 else 4
        out.append(f"{n}x{k} M={m} t={t}: q4x4 {t4 * 1e6:.1f} µs, q4x16 {t16 * 1e6:.1f} µs"
                   f" → q4x{faster} faster by {max(t4, t16) / min(t4, t16):.2f}×"
                   f"; runtime picks q4x{picked}" + ("" if faster == picked else " (NOT the faster one)"))
    return out


def _us(row: dict | None) -> str:
    return f"{row['median_s'] * 1e6:.1f}" if row else report.MISSING


def _kernel(row: dict) -> str:
    return f"{row['kernel']} (dispatched)" if row["impl"] == "edgekit" else row["kernel"]


def _x(v) -> str:
    return f"{v:.2f}×" if v is not None else report.MISSING


def rows_to_markdown(rows: list[dict]) -> str:
    """The rows as a Markdown table: one line per edgekit implementation, shape, M and thread count."""
    header = ["shape (N×K)", "M", "threads", "torch fp32 µs", "ORT MatMulNBits µs", "edgekit kernel", "edgekit µs",
              "edgekit/ORT", "edgekit/torch"]
    index = {(r["impl"], r["n"], r["k"], r["m"], r["threads"]): r for r in rows}
    lines = []
    for r in rows:
        if not r["impl"].startswith("edgekit"):
            continue
        cfg = (r["n"], r["k"], r["m"], r["threads"])
        lines.append([f"{r['n']}×{r['k']}", str(r["m"]), str(r["threads"]), _us(index.get(("torch-fp32", *cfg))),
                      _us(index.get(("ort-matmulnbits", *cfg))), _kernel(r), _us(r), _x(r.get("speedup_vs_ort")),
                      _x(r.get("speedup_vs_torch"))])
    return report.markdown_table(header, lines, "lrrrrlrrr") + "\n"


def print_table(rows: list[dict], title: str) -> None:
    """The terminal table: one line per edgekit row, with the torch and ORT times of the same configuration."""
    index = {(r["impl"], r["n"], r["k"], r["m"], r["threads"]): r for r in rows}
    header = ["shape", "M", "thr", "torch µs", "ORT µs", "edgekit kernel", "edgekit µs", "GOPS", "weight GB/s",
              "vs ORT", "vs torch"]
    lines = []
    for r in rows:
        if not r["impl"].startswith("edgekit"):
            continue
        cfg = (r["n"], r["k"], r["m"], r["threads"])
        kernel = f"{r['kernel']}*" if r["impl"] == "edgekit" else r["kernel"]
        lines.append([f"{r['n']}×{r['k']}", str(r["m"]), str(r["threads"]), _us(index.get(("torch-fp32", *cfg))),
                      _us(index.get(("ort-matmulnbits", *cfg))), kernel, _us(r), f"{r['gops']:.1f}",
                      f"{r['weight_gbps']:.2f}", _x(r.get("speedup_vs_ort") or None),
                      _x(r.get("speedup_vs_torch") or None)])
    report.print_table(header, lines, title, left=("shape", "edgekit kernel"), width=160,
                       caption="* = the dispatched kernel; µs = median per call")


def plot_rows(rows: list[dict], path: str) -> None:
    """Bar chart of edgekit's speedup over ORT ``MatMulNBits`` per shape and M (one bar per impl and thread count).

    Raises:
        EdgekitError: when matplotlib is not installed or no edgekit row has an ORT baseline.
    """
    ek = [r for r in rows if r["impl"].startswith("edgekit") and r.get("speedup_vs_ort") is not None]
    if not ek:
        raise EdgekitError("nothing to plot: no edgekit rows with an ORT baseline")
    cats = list(dict.fromkeys(f"{r['n']}×{r['k']}\nM={r['m']}" for r in ek))
    series = list(dict.fromkeys((r["impl"], r["threads"]) for r in ek))
    width = 0.8 / len(series)
    with report.plot_file(path, figsize=(max(6.0, 0.9 * len(cats)), 4.5)) as (fig, ax):
        for i, (impl, t) in enumerate(series):
            vals = {f"{r['n']}×{r['k']}\nM={r['m']}": r["speedup_vs_ort"] for r in ek
                    if r["impl"] == impl and r["threads"] == t}
            xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(cats))]
            ax.bar(xs, [vals.get(c, 0.0) for c in cats], width, label=f"{impl}, {t} thread{'s' if t > 1 else ''}")
        ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
        ax.set_xticks(range(len(cats)))
        ax.set_xticklabels(cats, fontsize=7)
        ax.set_ylabel("speedup vs ORT MatMulNBits (×)")
        ax.set_title("edgekit W4A8 linear vs ONNX Runtime MatMulNBits\n(int4 weights, group 32, same matrices)",
                     fontsize=10)
        ax.legend(fontsize=8)
