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


class LlamaCppSeq2Seq:
    """A T5 GGUF (``edgekit export STUDENT --format gguf``) under llama.cpp's low-level API: a
    :class:`~edgekit.engines.Seq2SeqSession`.

    llama-cpp-python's ``Llama`` class only decodes, so this drives the C functions itself: ``llama_encode`` runs
    the encoder over the prompt (llama.cpp keeps its output in the context), ``llama_decode`` the decoder tokens
    after it, their self-attention in the KV cache (llama.cpp recomputes the cross-attention K/V every call).
    The batch is the whole context (llama.cpp encodes a prompt in one micro-batch), so ``n_batch`` is not used.
    """

    label = "llama.cpp (GGUF)"  # open_session sets the registry's label again

    def __init__(self, path, max_ctx: int = 2048, threads: int | None = None, n_batch: int | None = None):
        lc = self._lc = import_llama_cpp()
        from llama_cpp import _logger

        _logger.set_verbose(False)  # llama.cpp's load log; failures are reported as EdgekitError below
        self.path = Path(path)
        if not self.path.is_file():
            raise EdgekitError(f"GGUF file not found: {self.path}")
        mp = lc.llama_model_default_params()
        mp.n_gpu_layers = 0
        self.model = lc.llama_model_load_from_file(str(self.path).encode(), mp)
        if not self.model:
            raise EdgekitError(f"llama.cpp could not load {self.path}")
        if not lc.llama_model_has_encoder(self.model):
            lc.llama_model_free(self.model)
            raise EdgekitError(f"{self.path} has no encoder; it is a decoder-only GGUF (open it as a Session)")
        self.max_ctx = int(max_ctx)
        cp = lc.llama_context_default_params()
        cp.n_ctx = cp.n_batch = cp.n_ubatch = self.max_ctx  # the encoder reads the whole prompt in one batch
        if threads:
            cp.n_threads = cp.n_threads_batch = int(threads)
        self.ctx = lc.llama_init_from_model(self.model, cp)
        if not self.ctx:
            lc.llama_model_free(self.model)
            raise EdgekitError(f"llama.cpp could not make a context of {self.max_ctx} tokens for {self.path}")
        vocab = lc.llama_model_get_vocab(self.model)
        self._vocab = vocab
        self.n_vocab = lc.llama_vocab_n_tokens(vocab)
        start = lc.llama_model_decoder_start_token(self.model)
        self.decoder_start = int(start if start >= 0 else lc.llama_vocab_bos(vocab))
        self._n_past, self._encoded, self._tokenizer = 0, False, None

    @property
    def tokenizer(self):
        """The GGUF's tokenizer as a Hugging Face fast tokenizer (:func:`edgekit.export.gguf_vocab.tokenizer_from_gguf`;
        transformers' GGUF loader has no byte-level BPE for the t5 architecture)."""
        if self._tokenizer is None:
            from gguf import GGUFReader

            from edgekit.export.gguf_vocab import tokenizer_from_gguf

            self._tokenizer = tokenizer_from_gguf(GGUFReader(str(self.path)))
        return self._tokenizer

    @property
    def n_past(self) -> int:
        return self._n_past

    def tokenize(self, text: str, add_special: bool = False) -> list[int]:
        """``text`` as llama.cpp's own tokenizer splits it (special tokens as plain text)."""
        raw = text.encode("utf-8")
        cap = len(raw) + 8
        buf = (self._lc.llama_token * cap)()
        n = self._lc.llama_tokenize(self._vocab, raw, len(raw), buf, cap, add_special, False)
        if n < 0:
            raise EdgekitError(f"llama.cpp needs {-n} tokens for {len(raw)} bytes, more than {cap}")
        return list(buf[:n])

    def _check(self, ids: list[int]) -> None:
        if not ids:
            raise EdgekitError("eval needs at least one token")
        bad = [t for t in ids if not 0 <= t < self.n_vocab]
        if bad:
            raise EdgekitError(f"token id {bad[0]} is outside the vocabulary of {self.n_vocab}")

    def encode(self, ids) -> None:
        """Run the encoder over ``ids`` and empty the decoder's cache."""
        ids = [int(t) for t in np.asarray(ids).reshape(-1)]
        self._check(ids)
        if len(ids) > self.max_ctx:
            raise EdgekitError(f"the context holds {self.max_ctx} tokens; a prompt of {len(ids)} does not fit")
        self.reset()
        rc = self._run(self._lc.llama_encode, ids, 0, True)  # every position an output: the encoder's states
        if rc != 0:
            raise EdgekitError(f"llama.cpp's encoder failed ({rc}) on {len(ids)} tokens")
        self._encoded = True

    def _run(self, fn, ids: list[int], p: int, all_outputs: bool) -> int:
        """``fn`` (llama_encode or llama_decode) on one batch of ``ids`` at positions ``p...``, sequence 0."""
        lc, n = self._lc, len(ids)
        batch = lc.llama_batch_init(n, 0, 1)
        try:
            for j, t in enumerate(ids):
                batch.token[j], batch.pos[j], batch.n_seq_id[j] = t, p + j, 1
                batch.seq_id[j][0] = 0
                batch.logits[j] = all_outputs or j == n - 1
            batch.n_tokens = n
            return fn(self.ctx, batch)
        finally:
            lc.llama_batch_free(batch)

    def reset(self) -> None:
        mem = self._lc.llama_get_memory(self.ctx)
        if mem:
            self._lc.llama_memory_clear(mem, True)
        self._n_past = 0

    def eval(self, tokens, all_logits: bool = False) -> np.ndarray:
        """Append decoder ``tokens``; logits ``[n, vocab]`` (``all_logits``) or ``[vocab]`` of the last one."""
        lc = self._lc
        ids = [int(t) for t in np.asarray(tokens).reshape(-1)]
        self._check(ids)
        if not self._encoded:
            raise EdgekitError("encode(prompt) must run before the decoder")
        p, n = self._n_past, len(ids)
        if p + n > self.max_ctx:
            raise EdgekitError(f"the context holds {self.max_ctx} tokens; {p} + {n} do not fit")
        rc = self._run(lc.llama_decode, ids, p, all_logits)
        if rc != 0:
            raise EdgekitError(f"llama.cpp's decoder failed ({rc}) on {n} token(s)")
        self._n_past += n
        rows = range(n) if all_logits else [n - 1]
        out = np.stack([np.ctypeslib.as_array(lc.llama_get_logits_ith(self.ctx, j), shape=(self.n_vocab,))
                        for j in rows]).astype(np.float32)
        return out if all_logits else out[0]

    def close(self) -> None:
        if self.ctx:
            self._lc.llama_free(self.ctx)
            self.ctx = None
        if self.model:
            self._lc.llama_model_free(self.model)
            self.model = None


def open_llamacpp(spec: str, *, max_ctx: int = 2048, threads: int | None = None, all_logits: bool = False,
                  n_batch: int | None = None, **_):
    """The opener of :data:`edgekit.engines.ENGINES`: a ``.gguf`` file, or an artifact exported once; a T5 GGUF
    opens as a :class:`LlamaCppSeq2Seq`."""
    from edgekit.engines import path_kind
    from edgekit.models.gguf_support import gguf_architecture

    if path_kind(spec) == "artifact":
        from edgekit.cache import cached_export

        spec = cached_export(spec, "gguf")
    if gguf_architecture(spec) == "t5":
        return LlamaCppSeq2Seq(spec, max_ctx, threads, n_batch)
    return LlamaCppSession(spec, max_ctx, threads, all_logits, n_batch)
