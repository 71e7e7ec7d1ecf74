"""The PyTorch engine: an artifact (fake-quant ``QLinear`` modules) or a float model in transformers, as a session.

:class:`FakeSession` runs transformers' own forward with its KV cache; opened with ``pruning=True`` it runs
:class:`PrunedLlama` instead, a Llama forward with token pruning and a per-layer KV cache (the evaluation twin of the
C++ runtime). The ``kernels`` engine (:mod:`edgekit.engines.kernels`) is this session with the linears swapped.

:class:`PrunedLlama` runs a transformers ``LlamaForCausalLM`` (float ``nn.Linear``, fake-quant ``QLinear`` or kernel
``KernelLinear`` modules alike) layer by layer, with the attention written out so that every layer's probabilities
are at hand:

* importance = :func:`edgekit.quant.attention.first_token_importance` of the layer's (possibly quantized)
  probabilities; it also feeds the layer's W4A4 token mix when the artifact has one;
* at a pruning layer the selection of :mod:`edgekit.prune.schedule` drops rows after the attention residual; dropped
  tokens skip the MLP and all later layers, and later layers cache only the survivors, at their original RoPE
  positions;
* only a prefill into an empty cache is pruned; decode steps and later batches attend to whatever each layer cached.

Every artifact is evaluated through its real fake-quant path (QLinear: int8/int4-rounded activations times
dequantized int4 codes), never through the float weights it came from.
"""

from __future__ import annotations

import numpy as np
import torch
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

from edgekit.config import PruneConfig
from edgekit.errors import EdgekitError
from edgekit.prune import schedule
from edgekit.quant.attention import fake_quant_per_head, first_token_importance, log2_quantize_probs, repeat_kv


class PrunedLlama:
    """Stateful pruned forward over a Llama-family causal LM.

    Args:
        model: a transformers ``LlamaForCausalLM`` (or a same-shaped family) in float32.
        prune: a resolved :class:`PruneConfig` (layers spelled out), or None for no pruning.

    Attributes:
        kept: prompt indices surviving each pruning layer of the last pruned prefill.
        mass: per layer, the last eval's mean attention on position 0 (heads averaged, position 0's own row excluded).
    """

    def __init__(self, model, prune: PruneConfig | None = None):
        self.model = model
        inner = getattr(model, "model", None)
        if inner is None or not hasattr(inner, "layers") or not hasattr(inner, "rotary_emb"):
            raise EdgekitError("token pruning runs llama-family decoders (model.model.layers with rotary embedding)")
        self.inner = inner
        self.n_layers = len(inner.layers)
        self.set_pruning(prune)
        self.reset()

    def set_pruning(self, prune: PruneConfig | None) -> None:
        """Use ``prune`` (resolved) for the next prefills; None or no layers turns pruning off."""
        if prune is not None and prune.layers and max(prune.layers) >= self.n_layers:
            raise EdgekitError(f"prune layers {list(prune.layers)} exceed the model's {self.n_layers} layers")
        self.prune = prune if prune is not None and prune.layers else None

    def reset(self) -> None:
        """Empty every layer's cache."""
        self.k = [None] * self.n_layers
        self.v = [None] * self.n_layers
        self.pos = [torch.zeros(0, dtype=torch.long) for _ in range(self.n_layers)]
        self.n_past = 0
        self.kept: list[np.ndarray] = []
        self.mass = [0.0] * self.n_layers

    def cached(self, layer: int) -> int:
        """Positions held by a layer's cache."""
        return int(self.pos[layer].numel())

    def _attention(self, li, attn, xn, pos):
        cfg = self.model.config
        n_heads, n_kv = cfg.num_attention_heads, cfg.num_key_value_heads
        hd = getattr(attn, "head_dim", None) or cfg.hidden_size // n_heads
        na = xn.shape[1]
        q = attn.q_proj(xn).view(1, na, n_heads, hd).transpose(1, 2)
        k = attn.k_proj(xn).view(1, na, n_kv, hd).transpose(1, 2)
        v = attn.v_proj(xn).view(1, na, n_kv, hd).transpose(1, 2)
        cos, sin = self.inner.rotary_emb(xn, pos[None])
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        self.k[li] = k if self.k[li] is None else torch.cat([self.k[li], k], dim=2)
        self.v[li] = v if self.v[li] is None else torch.cat([self.v[li], v], dim=2)
        self.pos[li] = torch.cat([self.pos[li], pos])
        key, value = self.k[li], self.v[li]
        spec = getattr(attn, "ek_attn", None)
        if spec is not None and spec.qkv_bits:
            q, key, value = (fake_quant_per_head(t, spec.qkv_bits) for t in (q, key, value))
        key, value = repeat_kv(key, n_heads // n_kv), repeat_kv(value, n_heads // n_kv)
        allowed = (self.pos[li][None, :] <= pos[:, None])[None, None]  # causal by position: [1, 1, na, S]
        scaling = getattr(attn, "scaling", hd ** -0.5)
        scores = torch.matmul(q, key.transpose(2, 3)) * scaling
        scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
        probs = torch.softmax(scores.float(), dim=-1)
        if spec is not None and spec.softmax_log2_bits:
            probs = log2_quantize_probs(probs, spec.softmax_log2_bits, allowed)
        imp = first_token_importance(probs)  # [1, na]
        if spec is not None and spec.mix is not None:
            spec.mix.importance = imp
        out = torch.matmul(probs.to(value.dtype), value).transpose(1, 2).reshape(1, na, n_heads * hd)
        return attn.o_proj(out), imp[0]

    @torch.no_grad()
    def eval(self, ids, all_logits: bool = False) -> torch.Tensor:
        """Append ``ids`` (1-D) at the next positions; logits ``[n, vocab]`` (all_logits) or ``[vocab]``.

        A pruned prefill's dropped tokens get logits from their hidden state frozen where they were dropped.
        """
        ids = torch.as_tensor(np.asarray(ids), dtype=torch.long).reshape(-1)
        n = int(ids.numel())
        if n == 0:
            raise EdgekitError("eval needs at least one token")
        prune = self.prune is not None and self.n_past == 0 and n > 1
        x = self.inner.embed_tokens(ids[None]).float()
        pos = torch.arange(self.n_past, self.n_past + n)
        idx = np.arange(n)
        frozen = torch.empty(n, x.shape[-1]) if prune and all_logits else None
        if prune:
            self.kept = []
        nxt = 0
        for li, layer in enumerate(self.inner.layers):
            o, imp = self._attention(li, layer.self_attn, layer.input_layernorm(x), pos)
            x = x + o
            rows = (pos != 0).numpy()
            self.mass[li] = float(imp[rows].sum() / (rows.sum() * self.model.config.num_attention_heads)) \
                if rows.any() else 0.0
            if prune and nxt < len(self.prune.layers) and self.prune.layers[nxt] == li:
                nxt += 1
                m = len(self.prune.layers)
                keep = schedule.select(imp.numpy(), idx, n, self.prune.keep_last,
                                       schedule.keep_count(n, self.prune.ratio, nxt, m, self.prune.keep_last))
                if frozen is not None:
                    gone = np.setdiff1d(np.arange(len(idx)), keep)
                    frozen[idx[gone]] = x[0, gone]
                keep_t = torch.from_numpy(keep)
                x, pos, idx = x[:, keep_t], pos[keep_t], idx[keep]
                self.kept.append(idx.copy())
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        self.n_past += n
        if all_logits:
            if frozen is not None:
                frozen[torch.from_numpy(idx)] = x[0]
                x = frozen[None]
            h = x[0]
        else:
            h = x[0, -1:]
        logits = self.model.lm_head(self.inner.norm(h)).float()
        return logits if all_logits else logits[0]


def load_any(spec: str):
    """Load an artifact (``.ekq``), an ACM model directory or a float model spec.

    Returns:
        ``(LoadedModel, Artifact | None)``.
    """
    from edgekit.acm.store import is_acm_dir
    from edgekit.artifact import is_artifact

    if is_acm_dir(spec):
        from edgekit.acm.store import load_acm

        return load_acm(spec), None
    if is_artifact(spec):
        from edgekit.quant.serialize import load_artifact_model

        return load_artifact_model(spec)
    if str(spec).endswith(".ekq"):
        from edgekit.artifact import read_artifact

        read_artifact(spec)  # raises the precise error (missing, truncated, not an artifact)
    from edgekit.models import load_model

    return load_model(spec), None


class FakeSession:
    """A model in PyTorch as a :class:`edgekit.engines.Session` (and, opened with ``pruning``, a
    :class:`edgekit.engines.PruningSession`).

    Args:
        lm: the loaded model (:class:`edgekit.models.LoadedModel`).
        artifact: the artifact it was restored from, or None for a float model.
        pruning: run :class:`PrunedLlama`'s forward (its own attention and per-layer cache) instead of transformers'.

    Attributes:
        model: the transformers model (for encoders: what :func:`edgekit.eval.evaluate.embed` runs).
    """

    def __init__(self, lm, artifact=None, pruning: bool = False):
        self.lm, self.artifact, self.model = lm, artifact, lm.model
        self._pruned = PrunedLlama(lm.model) if pruning else None
        self.reset()

    @property
    def tokenizer(self):
        return self.lm.tokenizer

    @property
    def n_past(self) -> int:
        return self._pruned.n_past if self._pruned is not None else self._n_past

    def reset(self) -> None:
        self._past, self._n_past = None, 0
        if self._pruned is not None:
            self._pruned.reset()

    def eval(self, ids, all_logits: bool = False) -> np.ndarray:
        """Append ``ids`` to the cache; float32 logits ``[n, vocab]`` (``all_logits``) or ``[vocab]`` of the last."""
        if self._pruned is not None:
            return self._pruned.eval(ids, all_logits).numpy()
        x = torch.as_tensor(np.asarray(ids), dtype=torch.long).reshape(1, -1)
        if x.shape[1] == 0:
            raise EdgekitError("eval needs at least one token")
        with torch.no_grad():  # not inference_mode: a QLinear's cached weights must stay usable in autograd code
            out = self.model(input_ids=x, past_key_values=self._past, use_cache=True,
                             logits_to_keep=0 if all_logits else 1)
        self._past = out.past_key_values
        self._n_past += x.shape[1]
        logits = out.logits[0].float()
        return logits.numpy() if all_logits else logits[-1].numpy()

    def _pruning(self) -> PrunedLlama:
        if self._pruned is None:
            raise EdgekitError("this session was opened without pruning (open_session(..., pruning=True))")
        return self._pruned

    def set_pruning(self, cfg: PruneConfig | None) -> None:
        """Prune the next prefills with ``cfg`` (resolved); None or no layers turns pruning off."""
        self._pruning().set_pruning(cfg)

    def first_token_mass(self) -> list[float]:
        return list(self._pruning().mass)

    def last_kept(self) -> list[np.ndarray]:
        return self._pruning().kept

    @property
    def acm_learners(self) -> int:
        """Learners per ACM layer (0: the model has no adaptive computation modules)."""
        from edgekit.acm.modules import acm_modules

        mods = acm_modules(self.model)
        return mods[0].n_learners if mods else 0

    def set_acm(self, *, gate_bias: float = 0.0, force_k: int | None = None) -> None:
        """Run every ACM's gate shifted by ``gate_bias``, or ``force_k`` learners for every token."""
        from edgekit.acm.modules import set_mode

        try:
            set_mode(self.model, "gated", force_k=force_k, gate_bias=gate_bias)
        except ValueError as e:
            raise EdgekitError(str(e)) from None

    def reset_acm_stats(self) -> None:
        from edgekit.acm.modules import reset_stats

        reset_stats(self.model)

    def acm_stats(self) -> dict:
        """Per-layer k histograms and executed fractions since :meth:`reset_acm_stats`."""
        from edgekit.acm.modules import ffn_stats

        return ffn_stats(self.model)

    def close(self) -> None:
        self._past = None


class TorchSeq2Seq:
    """A T5 encoder-decoder in transformers: ``edgekit distill``'s float student directory (the reference its GGUF
    and ONNX exports are checked against) or its quantized artifact (fake-quant QLinears, the reference of the C++
    runtime); a :class:`~edgekit.engines.Seq2SeqSession`.

    ``encode`` keeps the encoder's states; ``eval`` runs the decoder with transformers' own cache (self-attention
    grown per call, cross-attention K/V computed on the first call and reused).

    Args:
        model: a ``T5ForConditionalGeneration`` in eval mode.
        tokenizer: its tokenizer.
    """

    label = "PyTorch"  # open_session sets the registry's label again

    def __init__(self, model, tokenizer):
        self.model = model
        self.decoder_start = int(model.config.decoder_start_token_id or 0)
        self.n_vocab = int(model.config.vocab_size)
        self.tokenizer = tokenizer
        self._enc = None
        self.reset()

    @classmethod
    def open(cls, path, pruning: bool = False) -> "TorchSeq2Seq":
        """A T5 student directory or a T5 artifact (``edgekit quantize`` of one).

        Raises:
            EdgekitError: pruning asked for, or a file that is not a T5 encoder-decoder.
        """
        from transformers import T5ForConditionalGeneration

        from edgekit.distill.student import is_t5_dir, load_t5_config
        from edgekit.engines import hf_tokenizer

        if pruning:
            raise EdgekitError("token pruning runs on decoder-only llama models; an encoder-decoder reads its prompt "
                               "with the encoder")
        if not is_t5_dir(path):
            from edgekit.quant.serialize import load_artifact_model

            lm, _ = load_artifact_model(path)
            return cls(lm.model, lm.tokenizer)
        load_t5_config(path)
        model = T5ForConditionalGeneration.from_pretrained(str(path), dtype=torch.float32).eval()
        return cls(model, hf_tokenizer(path))

    @property
    def n_past(self) -> int:
        return self._n_past

    def _ids(self, ids) -> torch.Tensor:
        t = torch.as_tensor(np.asarray(ids, dtype=np.int64).reshape(1, -1))
        if t.shape[1] == 0:
            raise EdgekitError("at least one token is needed")
        if int(t.min()) < 0 or int(t.max()) >= self.n_vocab:
            raise EdgekitError(f"a token id is outside the vocabulary of {self.n_vocab}")
        return t

    @torch.no_grad()
    def encode(self, ids) -> None:
        """Run the encoder over ``ids`` and empty the decoder's cache."""
        self._enc = self.model.get_encoder()(input_ids=self._ids(ids))
        self.reset()

    def reset(self) -> None:
        self._cache, self._n_past = None, 0

    @torch.no_grad()
    def eval(self, ids, all_logits: bool = False) -> np.ndarray:
        """Append decoder ``ids``; logits ``[n, vocab]`` (``all_logits``) or ``[vocab]`` of the last one."""
        if self._enc is None:
            raise EdgekitError("encode(prompt) must run before the decoder")
        t = self._ids(ids)
        out = self.model(encoder_outputs=self._enc, decoder_input_ids=t, past_key_values=self._cache, use_cache=True)
        self._cache = out.past_key_values
        self._n_past += t.shape[1]
        logits = out.logits[0].float().numpy()
        return logits if all_logits else logits[-1]

    def close(self) -> None:
        self._enc, self._cache = None, None


def open_fake(spec: str, *, threads: int | None = None, pruning: bool = False, **_):
    """The opener of :data:`edgekit.engines.ENGINES`: an artifact, float model spec or ``.gguf`` in PyTorch; a T5
    directory or artifact opens as a :class:`TorchSeq2Seq`."""
    if threads:
        torch.set_num_threads(threads)
    from edgekit.engines import is_seq2seq

    if is_seq2seq(spec):
        return TorchSeq2Seq.open(spec, pruning)
    lm, art = load_any(spec)
    return FakeSession(lm, art, pruning)
