"""``edgekit bench roofline``: this machine's limits and how close a model's prefill and decode come to them.

Two limits, measured by the native module on the runtime's own thread pool (``csrc/runtime/roofline.cpp``):

* **read bandwidth**: a streaming read of a buffer far larger than the last-level cache (8 × L3, at least 1 GiB),
  one contiguous part per pool thread, with the widest loads of the ISA; best of several passes, bytes/s;
* **int8 peak**: register-only chains of the int8 dot-product instruction of the GEMM kernel in use (``vpdpbusd``
  zmm on AVX-512 VNNI, ``vpmaddubsw`` + ``vpmaddwd`` on AVX2, ``sdot`` on dotprod), 2 ops per multiply-add, ops/s.
  It is measured, not computed from a datasheet: a core that splits 512-bit ops into two halves shows it here.

And two model counts, from an artifact's tensors (what the C++ runtime holds in memory, not the file's dtypes):

* **decode bytes per token**: every tensor read once per token — each quantized linear's int4 codes and fp16 scales
  (and zero points / static activation scales when present), the float32 norms, one fp16 embedding row, the whole
  fp16 ``vocab × hidden`` head (the tied head reads the embedding matrix; with ``lm_head_bits: 8`` one Q8_0 table,
  1 byte per weight + an fp16 scale per 32, serves both), plus the fp16 KV cache the attention
  reads at the decode position (K and V of every layer and KV head for each cached position). Small per-token
  reads (RoPE tables, activations, the new K/V write) are left out.
* **prefill int8 ops per token**: 2 × Σ N·K over the quantized linears (the work of the int8 kernels; the attention
  and the float head are not int8 work).

``bandwidth_fraction`` = bytes/token × decode tokens/s ÷ read bytes/s, ``int8_peak_fraction`` = ops/token ×
prefill tokens/s ÷ int8 ops/s; :func:`add_fractions` puts them on ``bench model`` rows.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from edgekit.errors import EdgekitError

GIB = 2 ** 30
MIN_READ_BYTES = GIB
L3_MULTIPLE = 8
READ_PASSES = 5
DOT_SECONDS = 0.2
DOT_PASSES = 5
EMBED = "model.embed_tokens.weight"
HEAD = "lm_head.weight"
FP16 = 2
#: bytes of one safetensors dtype element
DTYPE_BYTES = {"F32": 4, "F16": 2, "BF16": 2, "U8": 1, "I8": 1, "I32": 4, "U32": 4, "I64": 8, "F64": 8}


def l3_bytes() -> int | None:
    """The largest level-3 cache this Linux reports for cpu0 (sysfs), in bytes; ``None`` where it says nothing."""
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    best = None
    for idx in base.glob("index*"):
        try:
            if (idx / "level").read_text().strip() != "3":
                continue
            text = (idx / "size").read_text().strip().upper()
        except OSError:
            continue
        mult = {"K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30}.get(text[-1:], 1)
        try:
            size = int(text.rstrip("KMG")) * mult
        except ValueError:
            continue
        best = max(best or 0, size)
    return best


def read_buffer_bytes() -> int:
    """The read probe's buffer: 8 × L3, and at least 1 GiB (far beyond any cache, whatever sysfs says)."""
    return max(MIN_READ_BYTES, L3_MULTIPLE * (l3_bytes() or 0))


def measure(threads: int, read_bytes: int | None = None, dot_seconds: float = DOT_SECONDS) -> dict:
    """Measure read bandwidth and int8 peak with ``threads`` pool threads (the runtime's pool, resized).

    Returns:
        ``{"threads", "read_bytes_per_s", "read_gbps", "read_buffer_bytes", "read_impl", "l3_bytes",
        "int8_ops_per_s", "int8_tops", "dot_impl", "gemm_kernel"}``.

    Raises:
        EdgekitError: for ``threads`` < 1 or a native module that is missing.
    """
    if threads < 1:
        raise EdgekitError(f"--threads must be >= 1, got {threads}")
    try:
        from edgekit import _C
    except ImportError as e:
        raise EdgekitError(f"the roofline needs the native module edgekit._C ({e}); build it (make)") from None
    before = _C.get_num_threads()
    _C.set_num_threads(threads)
    try:
        read = _C.roofline_read_bandwidth(read_bytes or read_buffer_bytes(), READ_PASSES)
        dot = _C.roofline_int8_peak(dot_seconds, DOT_PASSES)
    finally:
        _C.set_num_threads(before)
    return {"threads": threads, "read_bytes_per_s": read["per_s"], "read_gbps": read["per_s"] / 1e9,
            "read_buffer_bytes": int(read["work"]), "read_impl": read["impl"], "l3_bytes": l3_bytes(),
            "int8_ops_per_s": dot["per_s"], "int8_tops": dot["per_s"] / 1e12, "dot_impl": dot["impl"],
            "gemm_kernel": _C.selected("gemm_q4x4_q8")}


def tensor_sizes(path) -> dict[str, tuple[list[int], str]]:
    """name → (shape, safetensors dtype) of every tensor of a safetensors file, from its header alone."""
    import json

    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    return {k: (v["shape"], v["dtype"]) for k, v in header.items() if k != "__metadata__"}


def _config(art) -> tuple[int, int, int, int, int]:
    """(vocab, hidden, layers, kv heads, head_dim) of an artifact's model config."""
    c = art.model_config
    try:
        h, heads = int(c["hidden_size"]), int(c["num_attention_heads"])
        return (int(c["vocab_size"]), h, int(c["num_hidden_layers"]), int(c.get("num_key_value_heads") or heads),
                int(c.get("head_dim") or h // heads))
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        raise EdgekitError(f"{art.path}: the model config lacks the llama sizes the roofline counts with") from None


def kv_bytes_per_position(art) -> int:
    """fp16 K and V of every layer and KV head for one cached position: what attention reads per position."""
    _, _, layers, kv_heads, head_dim = _config(art)
    return 2 * layers * kv_heads * head_dim * FP16


def decode_bytes_per_token(art, kv_positions: float) -> float:
    """Bytes one decode step reads (see the module docstring), with ``kv_positions`` cached positions attended.

    Raises:
        EdgekitError: for an artifact without the llama embedding.
    """
    vocab, hidden, _, _, _ = _config(art)
    sizes = tensor_sizes(art.path)
    if EMBED not in sizes:
        raise EdgekitError(f"{art.path} has no {EMBED}: the roofline counts llama-family decoders")
    if (art.quant or {}).get("lm_head_bits") == 8:  # the tied Q8_0 table: codes + an fp16 scale per 32
        row = hidden + hidden // 32 * FP16
    else:
        row = hidden * FP16
    total = row + vocab * row  # one embedding row + the whole head (tied or its own)
    for name, (shape, dtype) in sizes.items():
        if name in (EMBED, HEAD):
            continue
        total += math.prod(shape) * DTYPE_BYTES.get(dtype, 4)
    return total + kv_positions * kv_bytes_per_position(art)


def prefill_ops_per_token(art) -> int:
    """2 × Σ N·K over the artifact's quantized linears: the int8 ops of one prompt token."""
    try:
        return sum(2 * int(s["shape"][0]) * int(s["shape"][1]) for s in art.linears.values())
    except (KeyError, TypeError, IndexError, ValueError):
        raise EdgekitError(f"{art.path}: a linear without its [N, K] shape in the artifact metadata") from None


def gguf_decode_bytes_per_token(path: str, kv_bytes_per_pos: int, kv_positions: float) -> float:
    """Bytes one llama.cpp decode step reads from a GGUF: each tensor's size from its ggml type (Q4_0: 18 bytes per
    32 weights, Q8_0: 34 per 32, F16 2 per weight, ...: ``gguf.GGML_QUANT_SIZES``), one ``token_embd`` row, the
    whole ``output`` head (``token_embd`` again when the head is tied), plus the KV cache (fp16, llama.cpp's
    default, the same bytes per position as the runtime's).

    Raises:
        EdgekitError: when the gguf package is missing or the file has no ``token_embd.weight``.
    """
    try:
        import gguf
    except ImportError:
        raise EdgekitError("counting a GGUF's bytes needs the gguf package: pip install gguf") from None
    reader = gguf.GGUFReader(path)
    sizes = {}
    for t in reader.tensors:
        block, type_size = gguf.GGML_QUANT_SIZES[t.tensor_type]
        sizes[t.name] = (int(t.n_elements) // block * type_size, [int(x) for x in t.shape])
    if "token_embd.weight" not in sizes:
        raise EdgekitError(f"{path} has no token_embd.weight: not a llama-family GGUF")
    embd_bytes, embd_shape = sizes.pop("token_embd.weight")
    rows = embd_shape[-1]  # the vocabulary: ggml lists dimensions fastest first, [hidden, vocab]
    total = embd_bytes / rows + sum(b for b, _ in sizes.values())
    if "output.weight" not in sizes:
        total += embd_bytes  # tied head: the whole embedding matrix per token
    return total + kv_positions * kv_bytes_per_pos


def decode_kv_positions(prefill: int, decode: int) -> float:
    """Mean number of cached positions a decode step attends to over ``decode`` steps after ``prefill`` tokens."""
    return prefill + (decode + 1) / 2


def add_fractions(rows: list[dict], limits: dict[int, dict], art=None, gguf_path: str | None = None,
                  prefill: int = 0, decode: int = 0) -> list[dict]:
    """Put ``bytes_per_token`` / ``bandwidth_fraction`` on decode rows and ``ops_per_token`` / ``int8_peak_fraction``
    on prefill rows of the edgekit engine (and ``llama.cpp``'s decode row when ``gguf_path`` is given), each from the
    limits measured at that row's thread count (``limits``: threads → :func:`measure`'s dict)."""
    if art is None:
        return rows
    kv_pos = decode_kv_positions(prefill, decode)
    ek_bytes = decode_bytes_per_token(art, kv_pos)
    ops = prefill_ops_per_token(art)
    llama_bytes = (gguf_decode_bytes_per_token(gguf_path, kv_bytes_per_position(art), kv_pos)
                   if gguf_path else None)
    for r in rows:
        lim = limits.get(r["threads"])
        if lim is None:
            continue
        decode_row = r["phase"].startswith("decode")
        if decode_row and (r["engine"] == "edgekit" or (r["engine"] == "llama.cpp" and llama_bytes)):
            r["bytes_per_token"] = ek_bytes if r["engine"] == "edgekit" else llama_bytes
            r["bandwidth_fraction"] = r["bytes_per_token"] * r["tokens_per_s"] / lim["read_bytes_per_s"]
        elif not decode_row and r["engine"] == "edgekit":
            r["ops_per_token"] = ops
            r["int8_peak_fraction"] = ops * r["tokens_per_s"] / lim["int8_ops_per_s"]
    return rows


def summary_rows(result: dict) -> list[dict]:
    """One row per thread count: the limits and the edgekit engine's decode and prefill against them."""
    out = []
    for t, lim in sorted(((int(k), v) for k, v in result.get("roofline", {}).items())):
        row = {"threads": t, "read_gbps": lim["read_gbps"], "int8_tops": lim["int8_tops"], "dot_impl": lim["dot_impl"]}
        for r in result.get("rows", []):
            if r["engine"] != "edgekit" or r["threads"] != t:
                continue
            if "bandwidth_fraction" in r:
                row.update(decode_mb_per_token=r["bytes_per_token"] / 1e6, decode_tok_s=r["tokens_per_s"],
                           bandwidth_fraction=r["bandwidth_fraction"])
            if "int8_peak_fraction" in r:
                row.update(prefill_mops_per_token=r["ops_per_token"] / 1e6, prefill_tok_s=r["tokens_per_s"],
                           int8_peak_fraction=r["int8_peak_fraction"])
        out.append(row)
    return out


#: (key, header, format) of the roofline table
SUMMARY_COLUMNS = [("threads", "threads", "{}"), ("read_gbps", "read GB/s", "{:.1f}"),
                   ("int8_tops", "int8 peak TOPS", "{:.3f}"), ("dot_impl", "dot ISA", "{}"),
                   ("decode_mb_per_token", "decode MB/token", "{:.1f}"), ("decode_tok_s", "decode tok/s", "{:.1f}"),
                   ("bandwidth_fraction", "of bandwidth", "{:.1%}"),
                   ("prefill_mops_per_token", "prefill Mops/token", "{:.1f}"),
                   ("prefill_tok_s", "prefill tok/s", "{:.1f}"), ("int8_peak_fraction", "of int8 peak", "{:.1%}")]


def summary_markdown(result: dict) -> str:
    """The roofline table in Markdown (what BENCHMARKS.md shows)."""
    from edgekit.bench import report

    rows = summary_rows(result)
    return report.markdown_table([h for _, h, _ in SUMMARY_COLUMNS], report.cells(rows, SUMMARY_COLUMNS),
                                 "r" * len(SUMMARY_COLUMNS)) + "\n"


def cpu_caption(result: dict) -> str:
    """The CPU and buffer the limits were measured on, for the table caption."""
    m = result.get("machine", {})
    lims = list(result.get("roofline", {}).values())
    buf = f"; read buffer {lims[0]['read_buffer_bytes'] / GIB:.2f} GiB" if lims else ""
    l3 = f", L3 {lims[0]['l3_bytes'] / 2 ** 20:.0f} MiB" if lims and lims[0].get("l3_bytes") else ""
    return f"{m.get('cpu', '?')}, {m.get('logical_cores', os.cpu_count())} logical cores{l3}{buf}"
