"""``edgekit.Runtime``: a quantized Llama-family artifact run by the C++ engine (csrc/runtime/llama.cpp).

The whole forward pass (norms, RoPE, attention over a KV cache, SwiGLU, head) runs in C++ on the W4A8 kernels, and
the artifact is read by the C++ loader (csrc/runtime/load_llama.cpp, memory-mapped, every offset validated): no torch
in the process, Python only passes token ids. C programs load the same artifact through the C API
(csrc/include/edgekit.h, libedgekit.so, located by :mod:`edgekit.native.capi`). :meth:`Runtime.from_torch` builds
the same engine from the PyTorch loader's arrays instead; the tests use it to check the C++ loader.
"""

from __future__ import annotations

import numpy as np

from edgekit.errors import EdgekitError


def _f32(t) -> np.ndarray:
    return np.ascontiguousarray(t.detach().float().numpy())


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

    @classmethod
    def from_torch(cls, path, max_ctx: int = 2048) -> "Runtime":
        """The same engine built from the PyTorch loader's arrays (a cross-check of the C++ loader)."""
        from edgekit import _C
        from edgekit.engines.kernels import kernel_support
        from edgekit.models.families import LLAMA, short_name
        from edgekit.quant import formats
        from edgekit.quant.modules import QLinear
        from edgekit.quant.serialize import load_artifact_model

        lm, art = load_artifact_model(path)
        if art.family != "llama" or art.task != "causal-lm":
            raise EdgekitError(f"the runtime runs llama-family decoders; {path} is a {art.family} {art.task}")
        if art.quant.get("w4a4_ratio") or any(art.quant.get("attention", {}).values()):
            raise EdgekitError("the runtime does not run W4A4 or quantized attention yet; use --engine kernels")
        model, cfg = lm.model, lm.model.config
        layers = []
        for i, block in enumerate(model.model.layers):
            entry = {"attn_norm": _f32(block.input_layernorm.weight),
                     "ffn_norm": _f32(block.post_attention_layernorm.weight)}
            for name in LLAMA.linears():
                key = short_name(name)  # the C++ engine's key of the block's linear
                q = block.get_submodule(name)
                why = kernel_support(q) if isinstance(q, QLinear) else "not quantized"
                if why or q.mix is not None or q.bias is not None:
                    raise EdgekitError(f"layers.{i}.{name} cannot run in the runtime: {why or 'W4A4 mix / bias'}")
                qs, d = formats.pack_q4x4(q.qweight.storage(), q.qweight.scales)
                scale = float(q.act_scale) if q.act_mode == "per_tensor" else None
                entry[key] = (qs, d, q.out_features, q.in_features, q.act_mode == "per_block", scale)
            layers.append(entry)
        head = model.get_output_embeddings()
        if isinstance(head, QLinear):
            raise EdgekitError("the runtime keeps the LM head in float; this artifact quantized it (lm_head_bits)")
        tied = head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
        config = {"n_layers": cfg.num_hidden_layers, "hidden": cfg.hidden_size, "n_heads": cfg.num_attention_heads,
                  "n_kv_heads": cfg.num_key_value_heads,
                  "head_dim": getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads,
                  "ffn": cfg.intermediate_size, "vocab": cfg.vocab_size, "rms_eps": float(cfg.rms_norm_eps),
                  "rope_theta": float(getattr(cfg, "rope_theta", 10000.0)), "max_ctx": int(max_ctx)}
        if getattr(cfg, "rope_scaling", None):
            raise EdgekitError(f"rope_scaling {cfg.rope_scaling} is not supported by the runtime yet")
        try:
            engine = _C.LlamaRuntime(config, _f32(model.get_input_embeddings().weight), _f32(model.model.norm.weight),
                                     layers, None if tied else _f32(head.weight))
        except ValueError as e:
            raise EdgekitError(str(e)) from None
        return cls(engine, lm.tokenizer, path)

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

    def close(self) -> None:
        """Nothing to free before the engine is garbage-collected (the cache goes with it)."""


def open_runtime(spec: str, *, max_ctx: int = 2048, threads: int | None = None, **_) -> Runtime:
    """The opener of :data:`edgekit.engines.ENGINES`: an artifact in the C++ engine (``threads``: its pool)."""
    if threads:
        from edgekit import _C

        _C.set_num_threads(threads)
    return Runtime.from_artifact(spec, max_ctx=max_ctx)
