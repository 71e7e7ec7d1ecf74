"""ONNX Runtime as an engine: an ONNX export (``edgekit export A --format onnx``) on ONNX Runtime's CPU provider.

:class:`OrtSession` runs a decoder with its KV cache in numpy, :class:`OrtSeq2Seq` a T5 encoder-decoder's three graphs,
:class:`OrtEncoder` an encoder's sentence embeddings;
:func:`session_options` is the one place ORT's options are set (also for ``edgekit bench kernels``' one-node graphs).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

from edgekit.engines import hf_tokenizer
from edgekit.errors import EdgekitError


def import_onnxruntime():
    """Import onnxruntime, or raise an :class:`EdgekitError` that says how to get it."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise EdgekitError(f"onnxruntime is not installed ({e}); install it with `pip install edgekit[export]`") \
            from None
    return ort


def session_options(threads: int | None, spin: bool = True, quiet: bool = True):
    """ORT's ``SessionOptions`` for edgekit: all graph optimizations, ``threads`` intra-op threads (0 / None = ORT's
    choice), one inter-op thread.

    ``spin=False`` stops ORT's worker threads from busy-waiting after each run: slower to wake, but they no longer
    take the cores from another engine that runs in between (on 2 cores that slows the other one several times).
    ``quiet`` drops ORT's own log: failures reach the user once, as an :class:`EdgekitError`.
    """
    ort = import_onnxruntime()
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads or 0)
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if quiet:
        so.log_severity_level = 4
    if not spin:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return so


def ort_session(model_path: Path, threads: int | None, spin: bool = True):
    """An ONNX Runtime CPU session of ``model_path`` (:func:`session_options`)."""
    ort = import_onnxruntime()
    so = session_options(threads, spin)
    try:
        return ort.InferenceSession(str(model_path), so, providers=["CPUExecutionProvider"])
    except Exception as e:  # ORT raises its own exception types (Fail, InvalidGraph, ...) for a bad model
        raise EdgekitError(f"ONNX Runtime could not load {model_path}: {str(e).strip().splitlines()[0]}") from None


def export_info(path) -> dict:
    """``edgekit_export.json`` of an ONNX export directory (empty for a directory exported by other tools)."""
    f = Path(path) / "edgekit_export.json"
    try:
        return json.loads(f.read_text()) if f.is_file() else {}
    except (OSError, ValueError):
        return {}


class OrtSession:
    """An ONNX export of a decoder (optimum's ``text-generation-with-past`` graph) with its KV cache in numpy.

    Args:
        path: The export directory (``model.onnx``, ``config.json``, tokenizer files).
        threads: Intra-op threads (None: ONNX Runtime's default).
        spin: Let ORT's threads busy-wait between runs (its default; see :func:`session_options`).
    """

    def __init__(self, path, threads: int | None = None, spin: bool = True):
        self.path = Path(path)
        if not (self.path / "model.onnx").is_file():
            raise EdgekitError(f"{path} is not an ONNX export directory (no model.onnx); make one with edgekit "
                               "export ARTIFACT --format onnx -o DIR")
        self.session = ort_session(self.path / "model.onnx", threads, spin)
        names = [i.name for i in self.session.get_inputs()]
        if "input_ids" not in names or "past_key_values.0.key" not in names:
            raise EdgekitError(f"{path} is not a decoder exported with past key/values (inputs: "
                               f"{', '.join(names[:4])}); --engine onnxruntime generates with decoders only")
        past = [i for i in self.session.get_inputs() if i.name.startswith("past_key_values.")]
        self.n_layers = len(past) // 2
        shape = past[0].shape  # [batch, kv_heads, past_len, head_dim]
        if not (isinstance(shape[1], int) and isinstance(shape[3], int)):
            raise EdgekitError(f"{path}: the KV inputs have no fixed head count / head size ({shape})")
        self._kv_shape = (1, shape[1], 0, shape[3])
        self._dtype = np.float16 if "float16" in past[0].type else np.float32
        self._outputs = ["logits"] + [f"present.{i}.{kv}" for i in range(self.n_layers) for kv in ("key", "value")]
        self._has_pos = "position_ids" in names
        self.reset()

    @functools.cached_property
    def tokenizer(self):
        """The export's tokenizer, loaded on first use."""
        return hf_tokenizer(self.path)

    @property
    def n_past(self) -> int:
        return self._past[0].shape[2]

    def reset(self) -> None:
        empty = np.zeros(self._kv_shape, self._dtype)
        self._past = [empty] * (2 * self.n_layers)

    def eval(self, tokens, all_logits: bool = False) -> np.ndarray:
        """Append ``tokens`` to the cache; logits ``[n, vocab]`` (``all_logits``) or ``[vocab]`` of the last one."""
        ids = np.asarray(tokens, dtype=np.int64).reshape(1, -1)
        n, p = ids.shape[1], self.n_past
        feed = {"input_ids": ids, "attention_mask": np.ones((1, p + n), np.int64)}
        if self._has_pos:
            feed["position_ids"] = np.arange(p, p + n, dtype=np.int64)[None]
        for i in range(self.n_layers):
            feed[f"past_key_values.{i}.key"] = self._past[2 * i]
            feed[f"past_key_values.{i}.value"] = self._past[2 * i + 1]
        try:
            out = self.session.run(self._outputs, feed)
        except Exception as e:  # e.g. an id outside the vocabulary: ORT's Gather fails with its own exception type
            raise EdgekitError(f"ONNX Runtime failed on {n} token(s): {str(e).strip().splitlines()[0]}") from None
        self._past = out[1:]
        logits = out[0][0].astype(np.float32, copy=False)
        return logits if all_logits else logits[-1]

    def close(self) -> None:
        self._past = []


class OrtEncoder:
    """An ONNX export of an encoder (``feature-extraction``): sentence embeddings as
    :func:`edgekit.eval.evaluate.embed` computes them (mean over real tokens, L2-normalized)."""

    def __init__(self, path, threads: int | None = None):
        self.path = Path(path)
        self.session = ort_session(self.path / "model.onnx", threads)
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.tokenizer = hf_tokenizer(self.path)

    def embed(self, texts: list[str], batch: int = 32):
        import torch

        outs = []
        for i in range(0, len(texts), batch):
            enc = self.tokenizer(texts[i:i + batch], padding=True, truncation=True, max_length=256,
                                 return_tensors="np")
            feed = {k: np.asarray(v, dtype=np.int64) for k, v in enc.items() if k in self.inputs}
            h = torch.from_numpy(self.session.run(["last_hidden_state"], feed)[0])
            m = torch.from_numpy(enc["attention_mask"])[..., None].float()
            e = (h * m).sum(1) / m.sum(1).clamp_min(1e-9)
            outs.append(torch.nn.functional.normalize(e, dim=-1))
        return torch.cat(outs)


class OrtSeq2Seq:
    """An ONNX export of a T5 encoder-decoder (optimum's ``text2text-generation-with-past`` graphs,
    :func:`edgekit.export.onnx.export_seq2seq_onnx`): a :class:`~edgekit.engines.Seq2SeqSession`.

    ``encode`` runs ``encoder_model.onnx`` once; the first ``eval`` runs ``decoder_model.onnx``, which also returns
    the cross-attention K/V, and every later one ``decoder_with_past_model.onnx`` with those K/V fed back unchanged
    (computed once per prompt) and the self-attention cache grown in numpy.
    """

    label = "ONNX Runtime"  # open_session sets the registry's label again

    def __init__(self, path, threads: int | None = None, spin: bool = True):
        from edgekit.export.onnx import SEQ2SEQ_FILES

        self.path = Path(path)
        missing = [f for f in SEQ2SEQ_FILES if not (self.path / f).is_file()]
        if missing:
            raise EdgekitError(f"{path} is not an encoder-decoder ONNX export (no {missing[0]}); make one with "
                               "edgekit export STUDENT --format onnx -o DIR")
        self.encoder, self.first, self.step = (ort_session(self.path / f, threads, spin) for f in SEQ2SEQ_FILES)
        self._first_out = [o.name for o in self.first.get_outputs()]
        self._step_out = [o.name for o in self.step.get_outputs()]
        self.n_layers = sum(n.endswith(".decoder.key") for n in self._step_out)
        cfg = json.loads((self.path / "config.json").read_text()) if (self.path / "config.json").is_file() else {}
        start = export_info(self.path).get("decoder_start_token_id", cfg.get("decoder_start_token_id"))
        if start is None:
            raise EdgekitError(f"{path}: neither edgekit_export.json nor config.json names the decoder start token")
        self.decoder_start = int(start)
        self._enc = None
        self.reset()

    @functools.cached_property
    def tokenizer(self):
        """The export's tokenizer, loaded on first use."""
        return hf_tokenizer(self.path)

    @property
    def n_past(self) -> int:
        return self._n_past

    def _run(self, sess, outputs: list[str], feed: dict, what: str) -> list:
        try:
            return sess.run(outputs, feed)
        except Exception as e:  # ORT's own exception types, e.g. an id outside the vocabulary
            raise EdgekitError(f"ONNX Runtime's {what} failed: {str(e).strip().splitlines()[0]}") from None

    def encode(self, ids) -> None:
        """Run the encoder over ``ids`` and empty the decoder's caches."""
        ids = np.asarray(ids, dtype=np.int64).reshape(1, -1)
        if ids.shape[1] == 0:
            raise EdgekitError("encode needs at least one token")
        mask = np.ones_like(ids)
        h = self._run(self.encoder, ["last_hidden_state"], {"input_ids": ids, "attention_mask": mask}, "encoder")[0]
        self._enc = (h, mask)
        self.reset()

    def reset(self) -> None:
        self._self_kv: list = []
        self._cross_kv: list = []
        self._n_past = 0

    def eval(self, tokens, all_logits: bool = False) -> np.ndarray:
        """Append decoder ``tokens``; logits ``[n, vocab]`` (``all_logits``) or ``[vocab]`` of the last one."""
        if self._enc is None:
            raise EdgekitError("encode(prompt) must run before the decoder")
        ids = np.asarray(tokens, dtype=np.int64).reshape(1, -1)
        if ids.shape[1] == 0:
            raise EdgekitError("eval needs at least one token")
        h, mask = self._enc
        feed = {"input_ids": ids, "encoder_attention_mask": mask}
        if not self._self_kv:
            out = self._run(self.first, self._first_out, {**feed, "encoder_hidden_states": h}, "decoder")
            named = dict(zip(self._first_out, out))
            self._cross_kv = [named[f"present.{i}.encoder.{kv}"] for i in range(self.n_layers)
                              for kv in ("key", "value")]
        else:
            for i in range(self.n_layers):
                for j, kv in enumerate(("key", "value")):
                    feed[f"past_key_values.{i}.decoder.{kv}"] = self._self_kv[2 * i + j]
                    feed[f"past_key_values.{i}.encoder.{kv}"] = self._cross_kv[2 * i + j]
            named = dict(zip(self._step_out, self._run(self.step, self._step_out, feed, "decoder")))
        self._self_kv = [named[f"present.{i}.decoder.{kv}"] for i in range(self.n_layers) for kv in ("key", "value")]
        self._n_past += ids.shape[1]
        logits = named["logits"][0].astype(np.float32, copy=False)
        return logits if all_logits else logits[-1]

    def close(self) -> None:
        self._enc, self._self_kv, self._cross_kv = None, [], []


def open_onnxruntime(spec: str, *, threads: int | None = None, **_):
    """The opener of :data:`edgekit.engines.ENGINES`: an export directory, or an artifact exported once; an
    encoder-decoder export opens as an :class:`OrtSeq2Seq`."""
    from edgekit.engines import path_kind

    if path_kind(spec) == "artifact":
        from edgekit.cache import cached_export

        spec = cached_export(spec, "onnx")
    if export_info(spec).get("task") == "seq2seq":
        return OrtSeq2Seq(spec, threads)
    return OrtSession(spec, threads)
