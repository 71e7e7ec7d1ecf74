"""One model, several engines: which engine runs which file, and a common token-in / logits-out session for each.

``edgekit eval`` and ``edgekit run`` take a PATH and ``--engine``:

============  ==================================================================================================
engine        runs
============  ==================================================================================================
fake          an artifact or float model in PyTorch (fake-quant QLinears; the reference)
kernels       an artifact in PyTorch with the linears on edgekit's C++ int4 x int8 kernels
runtime       an artifact in edgekit's C++ engine (``edgekit`` is the same engine under the name of the project)
llama.cpp     a ``.gguf`` file (e.g. ``edgekit export A --format gguf``) through llama-cpp-python, or an artifact
              (exported once into ``~/.cache/edgekit/exports``, :func:`cached_export`)
onnxruntime   an ONNX export directory (``edgekit export A --format onnx``) through ONNX Runtime's CPU provider,
              or an artifact (likewise exported once)
============  ==================================================================================================

Without ``--engine`` an ONNX export runs on onnxruntime and everything else on ``fake``, as before. The last three
engines are driven through a *session*: ``reset()`` empties its KV cache, ``eval(tokens, all_logits)`` appends
tokens and returns float32 logits (``[n, vocab]`` or the last row), ``tokenizer`` is the Hugging Face tokenizer of
the file. :class:`edgekit.runtime.engine.Runtime` already is one; :class:`OrtSession` and :class:`LlamaCppSession`
are the other two, so perplexity and generation are computed by the same code for all three.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError

ENGINES = ("fake", "kernels", "runtime", "edgekit", "llama.cpp", "onnxruntime")
SESSION_ENGINES = ("runtime", "llama.cpp", "onnxruntime")
LABELS = {"runtime": "edgekit runtime (C++)", "llama.cpp": "llama.cpp (GGUF)",
          "onnxruntime": "ONNX Runtime (MatMulNBits)"}
_ALLOWED = {"artifact": ("fake", "kernels", "runtime", "llama.cpp", "onnxruntime"), "gguf": ("fake", "llama.cpp"),
            "onnx": ("onnxruntime",), "model": ("fake",)}


def path_kind(spec: str) -> str:
    """``"onnx"`` (a directory with ``model.onnx``), ``"gguf"``, ``"artifact"`` or ``"model"`` (anything else)."""
    from edgekit.artifact import is_artifact

    p = Path(spec)
    if p.is_dir() and (p / "model.onnx").is_file():
        return "onnx"
    if p.suffix == ".gguf":
        return "gguf"
    if is_artifact(p) or p.suffix == ".ekq":
        return "artifact"
    return "model"


def pick_engine(spec: str, engine: str | None) -> str:
    """The engine that will run ``spec``: ``engine`` checked against what the file is, or the default for it.

    Raises:
        EdgekitError: the engine cannot run this kind of file; the message says which command makes one it can.
    """
    kind = path_kind(spec)
    if engine in (None, "auto"):
        return "onnxruntime" if kind == "onnx" else "fake"
    if engine not in ENGINES:
        raise EdgekitError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    engine = "runtime" if engine == "edgekit" else engine
    if engine in _ALLOWED[kind]:
        return engine
    if kind == "onnx":
        raise EdgekitError(f"{spec} is an ONNX export; it runs with --engine onnxruntime")
    if engine == "onnxruntime":
        raise EdgekitError(f"--engine onnxruntime runs an ONNX export directory (edgekit export ARTIFACT --format "
                           f"onnx -o DIR); {spec} is not one")
    if engine == "llama.cpp":
        raise EdgekitError(f"--engine llama.cpp runs a .gguf file (edgekit export ARTIFACT --format gguf -o "
                           f"FILE.gguf); {spec} is not one")
    raise EdgekitError(f"--engine {engine} runs a quantized artifact (.ekq); {spec} is not one")


def cached_export(artifact: str, fmt: str) -> str:
    """The GGUF file or ONNX directory of ``artifact``, exported once and kept in ``~/.cache/edgekit/exports``.

    The cache key is the artifact's resolved path, size and modification time, so a re-quantized artifact is
    exported again. This is what lets ``--engine llama.cpp|onnxruntime`` take an artifact directly.
    """
    import hashlib
    import sys

    from edgekit.bench.model import cache_dir
    from edgekit.export import export_artifact_gguf, export_onnx

    p = Path(artifact).resolve()
    st = p.stat()
    key = hashlib.sha256(f"{p}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    out = cache_dir() / "exports" / (f"{p.stem}-{key}.gguf" if fmt == "gguf" else f"{p.stem}-{key}-onnx")
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        print(f"exporting {artifact} to {fmt} once (cached at {out})", file=sys.stderr, flush=True)
        (export_artifact_gguf if fmt == "gguf" else export_onnx)(str(p), str(out))
    return str(out)


def open_session(spec: str, engine: str, max_ctx: int = 2048, threads: int | None = None,
                 all_logits: bool = False):
    """A session of ``engine`` (one of :data:`SESSION_ENGINES`) on ``spec``.

    Args:
        spec: The artifact, ``.gguf`` file or ONNX export directory.
        engine: ``runtime``, ``llama.cpp`` or ``onnxruntime`` (as returned by :func:`pick_engine`).
        max_ctx: Tokens the KV cache must hold.
        threads: CPU threads (None: the engine's default).
        all_logits: Whether ``eval`` will be asked for every position's logits (llama.cpp keeps them only then).
    """
    if engine == "runtime":
        from edgekit.runtime.engine import Runtime

        return Runtime.from_artifact(spec, max_ctx=max_ctx)
    if engine in ("llama.cpp", "onnxruntime") and path_kind(spec) == "artifact":
        spec = cached_export(spec, "gguf" if engine == "llama.cpp" else "onnx")
    if engine == "llama.cpp":
        return LlamaCppSession(spec, max_ctx, threads, all_logits)
    if engine == "onnxruntime":
        return OrtSession(spec, threads)
    raise EdgekitError(f"engine {engine!r} has no session; use one of {', '.join(SESSION_ENGINES)}")


def _hf_tokenizer(path: Path, **kwargs):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path), **kwargs)
    except (OSError, ValueError, KeyError) as e:
        raise EdgekitError(f"could not load the tokenizer of {path}: {type(e).__name__}: "
                           f"{str(e).strip().splitlines()[0] if str(e).strip() else ''}") from None


def ort_session(model_path: Path, threads: int | None, spin: bool = True):
    """An ONNX Runtime CPU session (all graph optimizations; ``threads`` intra-op threads, 0 = ORT's choice).

    ``spin=False`` stops ORT's worker threads from busy-waiting after each run: slower to wake, but they no longer
    take the cores from another engine that runs in between (on 2 cores that slows the other one several times).
    """
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise EdgekitError(f"onnxruntime is not installed ({e}); install it with `pip install edgekit[export]`") \
            from None
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads or 0)
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 4  # failures reach the user once, as an EdgekitError, not also as ORT's log line
    if not spin:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(model_path), so, providers=["CPUExecutionProvider"])
    except Exception as e:  # ORT raises its own exception types (Fail, InvalidGraph, ...) for a bad model
        raise EdgekitError(f"ONNX Runtime could not load {model_path}: {str(e).strip().splitlines()[0]}") from None


class OrtSession:
    """An ONNX export of a decoder (optimum's ``text-generation-with-past`` graph) with its KV cache in numpy.

    Args:
        path: The export directory (``model.onnx``, ``config.json``, tokenizer files).
        threads: Intra-op threads (None: ONNX Runtime's default).
        spin: Let ORT's threads busy-wait between runs (its default; see :func:`ort_session`).
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
        self._tokenizer = None
        self.reset()

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = _hf_tokenizer(self.path)
        return self._tokenizer

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


class OrtEncoder:
    """An ONNX export of an encoder (``feature-extraction``): sentence embeddings as :func:`edgekit.evaluate.embed`
    computes them (mean over real tokens, L2-normalized)."""

    def __init__(self, path, threads: int | None = None):
        self.path = Path(path)
        self.session = ort_session(self.path / "model.onnx", threads)
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.tokenizer = _hf_tokenizer(self.path)

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


def export_info(path) -> dict:
    """``edgekit_export.json`` of an ONNX export directory (empty for a directory exported by other tools)."""
    f = Path(path) / "edgekit_export.json"
    try:
        return json.loads(f.read_text()) if f.is_file() else {}
    except (OSError, ValueError):
        return {}


class LlamaCppSession:
    """A GGUF file under llama.cpp (llama-cpp-python), token ids in, logits out.

    Args:
        path: The ``.gguf`` file.
        max_ctx: Context (KV cache) size in tokens.
        threads: CPU threads (None: llama-cpp-python's default).
        all_logits: Keep every position's logits (needed by ``eval(..., all_logits=True)``).
    """

    def __init__(self, path, max_ctx: int = 2048, threads: int | None = None, all_logits: bool = False):
        from edgekit.bench.llamacpp import _import_llama_cpp, _load_llama

        self._llama_cpp = _import_llama_cpp()
        self.path = Path(path)
        self.max_ctx = int(max_ctx)
        self.all_logits = all_logits
        self.llm = _load_llama(str(self.path), n_ctx=self.max_ctx, n_batch=min(self.max_ctx, 512),
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
                    tok = _hf_tokenizer(self.path.parent, gguf_file=self.path.name)
            finally:
                hf_logging.set_verbosity(level)
            align_tokenizer_with_gguf(tok, reader)
            self._tokenizer = tok
        return self._tokenizer

    @property
    def n_past(self) -> int:
        return self.llm.n_tokens

    def reset(self) -> None:
        from edgekit.bench.llamacpp import _fresh_context

        _fresh_context(self.llm)

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
        if all_logits:
            return np.array(self.llm.scores[p:p + len(ids)], dtype=np.float32)
        last = self._llama_cpp.llama_get_logits_ith(self.llm.ctx, -1)
        return np.ctypeslib.as_array(last, shape=(self.n_vocab,)).astype(np.float32)

    def close(self) -> None:
        self.llm.close()
