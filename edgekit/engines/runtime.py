"""``edgekit.Runtime``: a quantized Llama-family artifact run by the C++ engine (csrc/runtime/llama.cpp);
:class:`Seq2SeqRuntime`: a quantized T5 encoder-decoder artifact in the C++ engine (csrc/runtime/t5.cpp), a
:class:`~edgekit.engines.Seq2SeqSession`.

The whole forward pass (norms, RoPE, attention over a KV cache, SwiGLU, head) runs in C++ on the W4A8 kernels, and
the artifact is read by the C++ loader (csrc/runtime/load_llama.cpp, memory-mapped, every offset validated): no torch
in the process, Python only passes token ids. C programs load the same artifact through the C API
(csrc/include/edgekit.h, libedgekit.so, located by :mod:`edgekit.native.capi`).
"""

from __future__ import annotations

import numpy as np

from edgekit.errors import EdgekitError

class Runtime:
    """A loaded model in the C++ engine, with its KV cache.

    Args:
        engine: the ``edgekit._C.LlamaRuntime``.
        tokenizer: the artifact's tokenizer (tokenization stays in Python).
    """

    def __init__(self, engine, tokenizer=None, path=None):
        self.engine = engine
        self._tokenizer = tokenizer
        self.path = path

    @property
    def tokenizer(self):
        """The artifact's tokenizer, restored on first use (transformers is imported only then)."""
        if self._tokenizer is None and self.path is not None:
            from edgekit.artifact import read_artifact
            from edgekit.quant.serialize import artifact_tokenizer

            self._tokenizer = artifact_tokenizer(read_artifact(self.path))
        return self._tokenizer

    @classmethod
    def from_artifact(cls, path, max_ctx: int = 2048) -> "Runtime":
        """Load a Llama-family W4A8 artifact (symmetric int4 g32; int8 activations per token, per block of 32 or on a
        static per-tensor grid) with the C++ loader.

        Raises:
            EdgekitError: the file is missing, damaged, or holds something the runtime cannot run (the reason named).
        """
        from pathlib import Path

        from edgekit import _C

        if not Path(path).is_file():
            raise EdgekitError(f"artifact not found: {path}")
        try:
            engine = _C.LlamaRuntime.load(str(path), int(max_ctx))
        except ValueError as e:
            raise EdgekitError(str(e)) from None
        return cls(engine, path=Path(path))

    @property
    def n_past(self) -> int:
        return self.engine.n_past

    def reset(self) -> None:
        self.engine.reset()

    def truncate(self, n: int) -> None:
        self.engine.truncate(n)

    def eval(self, tokens, all_logits: bool = False) -> np.ndarray:
        """Append ``tokens`` to the cache; logits ``[n, vocab]`` (``all_logits``) or ``[vocab]`` of the last one."""
        try:
            return self.engine.eval(np.asarray(tokens, dtype=np.int32), all_logits)
        except ValueError as e:
            raise EdgekitError(str(e)) from None

    def set_pruning(self, cfg) -> None:
        """Prune the next prefills with ``cfg`` (a resolved :class:`~edgekit.config.PruneConfig`); None or no layers
        turns pruning off."""
        try:
            if cfg is None or not cfg.layers:
                self.engine.set_pruning(0.0, [], 4)
            else:
                self.engine.set_pruning(float(cfg.ratio), list(cfg.layers), int(cfg.keep_last))
        except ValueError as e:
            raise EdgekitError(str(e)) from None

    def first_token_mass(self) -> list[float]:
        """Per layer, the last eval's mean attention on position 0 (the pruning signal)."""
        return list(self.engine.first_token_mass())

    def last_kept(self) -> list:
        """Prompt indices that survived each pruning layer of the last pruned prefill."""
        return self.engine.last_kept()

    @property
    def acm_learners(self) -> int:
        """Learners per ACM layer (0: the artifact has no adaptive computation modules)."""
        return int(self.engine.acm_learners)

    def set_acm(self, *, gate_bias: float = 0.0, force_k: int | None = None) -> None:
        """Run every ACM's gate shifted by ``gate_bias``, or ``force_k`` learners for every token."""
        try:
            self.engine.set_acm(float(gate_bias), -1 if force_k is None else int(force_k))
        except ValueError as e:
            raise EdgekitError(str(e)) from None

    def reset_acm_stats(self) -> None:
        self.engine.reset_acm_counts()

    def acm_stats(self) -> dict:
        """Per-layer k histograms and executed fractions the C++ engine counted since :meth:`reset_acm_stats`."""
        from edgekit.acm.modules import gate_fraction, stats_from_counts
        from edgekit.artifact import read_artifact

        n = self.acm_learners
        if not n:
            return stats_from_counts([], 0, 0.0)
        art = read_artifact(self.path)
        cfg = art.model_config
        frac = gate_fraction(cfg["hidden_size"], cfg["intermediate_size"], art.acm["gate_hidden"], n)
        return stats_from_counts(self.engine.acm_counts().tolist(), n, frac)

    def close(self) -> None:
        """Nothing to free before the engine is garbage-collected (the cache goes with it)."""


class Seq2SeqRuntime:
    """A T5 artifact in the C++ engine: :meth:`encode` runs the encoder once and computes every decoder layer's
    cross-attention K/V, :meth:`eval` appends decoder tokens (self-attention KV cache), as
    :class:`~edgekit.engines.Seq2SeqSession` says.

    Args:
        engine: the ``edgekit._C.T5Runtime``.
        path: the artifact (its tokenizer is read on first use).
    """

    label = "edgekit runtime (C++)"  # open_session sets the registry's label again

    def __init__(self, engine, path):
        self.engine = engine
        self.path = path
        self.decoder_start = int(engine.decoder_start)
        self._tokenizer = None

    @property
    def tokenizer(self):
        """The artifact's tokenizer, restored on first use."""
        if self._tokenizer is None:
            from edgekit.artifact import read_artifact
            from edgekit.quant.serialize import artifact_tokenizer

            self._tokenizer = artifact_tokenizer(read_artifact(self.path))
        return self._tokenizer

    @classmethod
    def from_artifact(cls, path, max_ctx: int = 2048) -> "Seq2SeqRuntime":
        """Load a T5 W4A8 artifact with the C++ loader (``max_ctx``: decoder positions).

        Raises:
            EdgekitError: the file is missing, damaged, or holds something the runtime cannot run.
        """
        from pathlib import Path

        from edgekit import _C

        if not Path(path).is_file():
            raise EdgekitError(f"artifact not found: {path}")
        try:
            return cls(_C.T5Runtime.load(str(path), int(max_ctx)), Path(path))
        except ValueError as e:
            raise EdgekitError(str(e)) from None

    @property
    def n_past(self) -> int:
        return self.engine.n_past

    @property
    def cross_kv_computations(self) -> int:
        """How many times the engine computed the cross-attention K/V (one per :meth:`encode`)."""
        return int(self.engine.cross_kv_computations)

    def encode(self, ids) -> None:
        """Run the encoder over the prompt ``ids`` and empty the decoder's cache."""
        try:
            self.engine.encode(np.asarray(ids, dtype=np.int32).reshape(-1))
        except ValueError as e:
            raise EdgekitError(str(e)) from None

    def reset(self) -> None:
        self.engine.reset()

    def eval(self, ids, all_logits: bool = False) -> np.ndarray:
        """Append decoder ``ids``; logits ``[n, vocab]`` (``all_logits``) or ``[vocab]`` of the last one."""
        try:
            return self.engine.eval(np.asarray(ids, dtype=np.int32).reshape(-1), all_logits)
        except ValueError as e:
            raise EdgekitError(str(e)) from None

    def close(self) -> None:
        """Nothing to free before the engine is garbage-collected."""


def open_runtime(spec: str, *, max_ctx: int = 2048, threads: int | None = None, pruning: bool = False, **_):
    """The opener of :data:`edgekit.engines.ENGINES`: an artifact in the C++ engine (``threads``: its pool); a T5
    artifact opens as a :class:`Seq2SeqRuntime`."""
    from edgekit.engines import is_seq2seq

    if threads:
        from edgekit import _C

        _C.set_num_threads(threads)
    if is_seq2seq(spec):
        if pruning:
            raise EdgekitError("token pruning runs on decoder-only llama models; an encoder-decoder reads its prompt "
                               "with the encoder")
        return Seq2SeqRuntime.from_artifact(spec, max_ctx=max_ctx)
    return Runtime.from_artifact(spec, max_ctx=max_ctx)
