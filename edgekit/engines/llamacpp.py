"""llama.cpp as an engine: a GGUF file under llama-cpp-python (``pip install edgekit[bench]``), token ids in, logits
out. llama-cpp-python is imported lazily, so the rest of edgekit works without it.

The loading helpers here (:func:`import_llama_cpp`, :func:`load_llama`, :func:`fresh_context`) are also what the
llama.cpp baseline benchmark (:mod:`edgekit.bench.llamacpp_baseline`) uses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit.engines import hf_tokenizer
from edgekit.errors import EdgekitError


def import_llama_cpp():
    """Import llama-cpp-python, or raise an :class:`EdgekitError` that says how to get it."""
    try:
        import llama_cpp
    except ImportError as e:
        raise EdgekitError(f"llama-cpp-python is not installed ({e}); install it with `pip install "
                           "edgekit[bench]`") from None
    return llama_cpp


def load_llama(gguf_path: str, n_ctx: int, n_batch: int, logits_all: bool, threads: int | None):
    """Load a GGUF with llama-cpp-python on the CPU, quietly; errors become :class:`EdgekitError`."""
    llama_cpp = import_llama_cpp()
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


def fresh_context(llm) -> None:
    """Forget every previous token: reset llama-cpp-python's counters and clear llama.cpp's KV cache."""
    llama_cpp = import_llama_cpp()
    llm.reset()
    # reset() only rewinds the token counter for attention models; clearing the memory makes independence explicit
    mem = llama_cpp.llama_get_memory(llm.ctx)
    if mem:
        llama_cpp.llama_memory_clear(mem, True)


class LlamaCppSession:
    """A GGUF file under llama.cpp (llama-cpp-python), token ids in, logits out.

    Args:
        path: The ``.gguf`` file.
        max_ctx: Context (KV cache) size in tokens.
        threads: CPU threads (None: llama-cpp-python's default).
        all_logits: Keep every position's logits (needed by ``eval(..., all_logits=True)``).
        n_batch: Tokens per batch (None: ``min(max_ctx, 512)``).
    """

    def __init__(self, path, max_ctx: int = 2048, threads: int | None = None, all_logits: bool = False,
                 n_batch: int | None = None):
        self._llama_cpp = import_llama_cpp()
        self.path = Path(path)
        self.max_ctx = int(max_ctx)
        self.all_logits = all_logits
        self.llm = load_llama(str(self.path), n_ctx=self.max_ctx, n_batch=n_batch or min(self.max_ctx, 512),
                              logits_all=all_logits, threads=threads)
        self.n_vocab = self.llm.n_vocab()
        self._tokenizer = None

    @property
    def tokenizer(self):
        """The GGUF's tokenizer as transformers builds it (so token windows equal the other engines')."""
        if self._tokenizer is None:
            from edgekit.models.checks import inspect_gguf
            from edgekit.models.gguf_support import align_tokenizer_with_gguf, shared_gguf_reader

            from transformers.utils import logging as hf_logging

            _, reader = inspect_gguf(str(self.path))
            level = hf_logging.get_verbosity()
            hf_logging.set_verbosity_error()  # its "legacy behaviour" notice is about GGUF loading, which is intended
            try:
                with shared_gguf_reader(str(self.path), reader):
                    tok = hf_tokenizer(self.path.parent, gguf_file=self.path.name)
            finally:
                hf_logging.set_verbosity(level)
            align_tokenizer_with_gguf(tok, reader)
            self._tokenizer = tok
        return self._tokenizer

    @property
    def n_past(self) -> int:
        return self.llm.n_tokens

    def is_eog(self, token: int) -> bool:
        """Whether ``token`` ends a generation in this model's vocabulary (e.g. ``<|im_end|>``)."""
        vocab = self._llama_cpp.llama_model_get_vocab(self.llm.model)
        return bool(self._llama_cpp.llama_vocab_is_eog(vocab, int(token)))

    def reset(self) -> None:
        fresh_context(self.llm)

    def eval(self, tokens, all_logits: bool = False) -> np.ndarray:
        """Append ``tokens`` to the cache; logits ``[n, vocab]`` (``all_logits``) or ``[vocab]`` of the last one."""
        ids = [int(t) for t in np.asarray(tokens).reshape(-1)]
        if not ids:
            raise EdgekitError("eval needs at least one token")
        if min(ids) < 0 or max(ids) >= self.n_vocab:
            raise EdgekitError(f"token id {max(ids) if max(ids) >= self.n_vocab else min(ids)} is outside the "
                               f"vocabulary of {self.n_vocab}")
        p = self.n_past
        if p + len(ids) > self.max_ctx:
            raise EdgekitError(f"the context holds {self.max_ctx} tokens; {p} + {len(ids)} do not fit")
        if all_logits and not self.all_logits:
            raise EdgekitError("this llama.cpp session keeps only the last logits (open it with all_logits=True)")
        self.llm.eval(ids)
        return self._logits(p, len(ids), all_logits)

    def _logits(self, p: int, n: int, all_logits: bool) -> np.ndarray:
        """The logits of the ``n`` positions from ``p`` just evaluated (``all_logits``), else of the last one."""
        if all_logits:  # llm.scores holds one row per evaluated position (logits_all=True)
            return np.array(self.llm.scores[p:p + n], dtype=np.float32)
        # the last decoded position always has its logits, even with logits_all=False
        last = self._llama_cpp.llama_get_logits_ith(self.llm.ctx, -1)
        return np.ctypeslib.as_array(last, shape=(self.n_vocab,)).astype(np.float32)

    def close(self) -> None:
        self.llm.close()


def open_llamacpp(spec: str, *, max_ctx: int = 2048, threads: int | None = None, all_logits: bool = False,
                  n_batch: int | None = None, **_) -> LlamaCppSession:
    """The opener of :data:`edgekit.engines.ENGINES`: a ``.gguf`` file, or an artifact exported once."""
    from edgekit.engines import path_kind

    if path_kind(spec) == "artifact":
        from edgekit.cache import cached_export

        spec = cached_export(spec, "gguf")
    return LlamaCppSession(spec, max_ctx, threads, all_logits, n_batch)
