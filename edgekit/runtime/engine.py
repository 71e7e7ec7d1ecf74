"""``edgekit.Runtime``: a quantized Llama-family artifact run by the C++ engine (csrc/runtime/llama.cpp).

The whole forward pass (norms, RoPE, attention over a KV cache, SwiGLU, head) runs in C++ on the W4A8 kernels, and
the artifact is read by the C++ loader (csrc/runtime/load_llama.cpp, memory-mapped, every offset validated): no torch
in the process, Python only passes token ids. C programs load the same artifact through the C API
(csrc/include/edgekit.h, libedgekit.so, located by :mod:`edgekit.runtime.native`).
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
            from edgekit.quant.restore import _tokenizer

            self._tokenizer = _tokenizer(read_artifact(self.path))
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
