"""One model, several engines: which engine runs which file, and one token-in / logits-out session for all of them.

``edgekit eval`` and ``edgekit run`` take a PATH and ``--engine``; ``edgekit bench model`` times the same sessions:

============  ==================================================================================================
engine        runs
============  ==================================================================================================
fake          an artifact or float model in PyTorch (fake-quant QLinears; the reference), :mod:`.fake`;
              alias ``torch`` (the name ``edgekit bench model`` gives it)
kernels       an artifact in PyTorch with the linears on edgekit's C++ int4 x int8 kernels, :mod:`.kernels`
runtime       an artifact in edgekit's C++ engine (a T5 artifact as a Seq2SeqSession), :mod:`.runtime`;
              alias ``edgekit``
llama.cpp     a ``.gguf`` file (e.g. ``edgekit export A --format gguf``) through llama-cpp-python, or an artifact
              (exported once into ``~/.cache/edgekit/exports``, :func:`edgekit.cache.cached_export`), :mod:`.llamacpp`
onnxruntime   an ONNX export directory (``edgekit export A --format onnx``) through ONNX Runtime's CPU provider,
              or an artifact (likewise exported once), :mod:`.onnxruntime`
============  ==================================================================================================

Without ``--engine`` an ONNX export runs on onnxruntime and everything else on ``fake``. Every engine is driven
through a :class:`Session`, so perplexity, generation, continuation scoring and the speed benchmark are written once.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from edgekit.errors import EdgekitError


@runtime_checkable
class Session(Protocol):
    """One loaded model with a KV cache: token ids in, float32 logits out.

    Attributes:
        tokenizer: the Hugging Face tokenizer of the file (token windows are the same for every engine).
        label: how result tables name the engine (set by :func:`open_session`).
    """

    tokenizer: Any
    label: str

    @property
    def n_past(self) -> int:
        """Tokens in the cache."""

    def reset(self) -> None:
        """Empty the cache."""

    def eval(self, ids, all_logits: bool = False):
        """Append ``ids`` to the cache; float32 logits ``[n, vocab]`` (``all_logits``) or ``[vocab]`` of the last."""

    def close(self) -> None:
        """Free the engine's resources."""


@runtime_checkable
class PruningSession(Session, Protocol):
    """A :class:`Session` that can drop prompt tokens inside its forward pass (token pruning, :mod:`edgekit.prune`)."""

    def set_pruning(self, cfg) -> None:
        """Prune the next prefills with ``cfg`` (a resolved :class:`~edgekit.config.PruneConfig`); None: off."""

    def first_token_mass(self) -> list[float]:
        """Per layer, the last eval's mean attention on position 0 (the pruning signal)."""

    def last_kept(self) -> list:
        """Prompt indices that survived each pruning layer of the last pruned prefill."""


@runtime_checkable
class AcmSession(Session, Protocol):
    """A :class:`Session` that runs adaptive computation modules' gates (:mod:`edgekit.acm`) and counts their
    choices; ``acm_learners`` is 0 for a model without ACM."""

    acm_learners: int

    def set_acm(self, *, gate_bias: float = 0.0, force_k: int | None = None) -> None:
        """Run the gates shifted by ``gate_bias`` (> 0: more learners), or ``force_k`` learners for every token."""

    def reset_acm_stats(self) -> None:
        """Zero the per-layer k counts."""

    def acm_stats(self) -> dict:
        """What ran since the reset: :func:`edgekit.acm.modules.stats_from_counts`'s dict."""


@runtime_checkable
class Seq2SeqSession(Session, Protocol):
    """A :class:`Session` of an encoder-decoder (the T5 student of ``edgekit distill``): ``encode`` reads the prompt
    once, then ``eval`` appends *decoder* tokens to the decoder's cache exactly as a decoder-only Session appends
    tokens, starting from ``decoder_start``. ``reset`` empties the decoder's cache and keeps the encoded prompt.

    Attributes:
        decoder_start: the token id the decoder starts from (T5: the pad token).
    """

    decoder_start: int

    def encode(self, ids) -> None:
        """Run the encoder over the prompt ``ids`` and empty the decoder's cache."""


@dataclass(frozen=True)
class Engine:
    """One entry of :data:`ENGINES`.

    Attributes:
        kinds: the kinds of file it opens (:func:`path_kind`).
        opener: ``"module:function"`` opening a session, imported on first use so that this module stays light;
            called as ``opener(spec, max_ctx=, threads=, all_logits=, n_batch=, pruning=)``.
        label: how result tables name it.
        aliases: other names it answers to.
        pruning: its sessions are :class:`PruningSession`.
        acm: its sessions are :class:`AcmSession` (it runs ACM gates and skips the learners they skip).
        seq2seq: it runs encoder-decoder models (a T5 directory, its GGUF or ONNX export) as
            :class:`Seq2SeqSession`.
    """

    kinds: tuple[str, ...]
    opener: str
    label: str
    aliases: tuple[str, ...] = ()
    pruning: bool = False
    acm: bool = False
    seq2seq: bool = False


#: The engines: name -> what it opens and how.
ENGINES: dict[str, Engine] = {
    "fake": Engine(("artifact", "gguf", "model", "acm"), "edgekit.engines.fake:open_fake", "PyTorch fake-quant",
                   aliases=("torch",), pruning=True, acm=True, seq2seq=True),
    "kernels": Engine(("artifact",), "edgekit.engines.kernels:open_kernels", "PyTorch + edgekit kernels",
                      pruning=True, acm=True),
    "runtime": Engine(("artifact",), "edgekit.engines.runtime:open_runtime", "edgekit runtime (C++)",
                      aliases=("edgekit",), pruning=True, acm=True, seq2seq=True),
    "llama.cpp": Engine(("artifact", "gguf"), "edgekit.engines.llamacpp:open_llamacpp", "llama.cpp (GGUF)",
                        seq2seq=True),
    "onnxruntime": Engine(("artifact", "onnx"), "edgekit.engines.onnxruntime:open_onnxruntime",
                          "ONNX Runtime (MatMulNBits)", seq2seq=True),
}

#: Every name ``--engine`` accepts, each engine followed by its aliases.
NAMES: tuple[str, ...] = tuple(n for name, e in ENGINES.items() for n in (name, *e.aliases))


def canonical(name: str) -> str:
    """The registry name of an engine name or alias.

    Raises:
        EdgekitError: an unknown name.
    """
    for key, e in ENGINES.items():
        if name == key or name in e.aliases:
            return key
    raise EdgekitError(f"unknown engine {name!r}; choose one of {', '.join(NAMES)}")


def path_kind(spec: str) -> str:
    """``"onnx"`` (a directory with ``model.onnx``), ``"acm"`` (an ACM model directory, :mod:`edgekit.acm.store`),
    ``"gguf"``, ``"artifact"`` or ``"model"`` (anything else)."""
    from edgekit.acm.store import is_acm_dir
    from edgekit.artifact import is_artifact

    p = Path(spec)
    if p.is_dir() and ((p / "model.onnx").is_file() or (p / "encoder_model.onnx").is_file()):
        return "onnx"
    if is_acm_dir(p):
        return "acm"
    if p.suffix == ".gguf":
        return "gguf"
    if is_artifact(p) or p.suffix == ".ekq":
        return "artifact"
    return "model"


def pick_engine(spec: str, engine: str | None) -> str:
    """The engine (registry name) that will run ``spec``: ``engine`` checked against what the file is, or the default.

    Raises:
        EdgekitError: the engine cannot run this kind of file; the message says which command makes one it can.
    """
    kind = path_kind(spec)
    if engine in (None, "auto"):
        return "onnxruntime" if kind == "onnx" else "fake"
    engine = canonical(engine)
    if kind == "artifact" and not ENGINES[engine].acm and is_acm_artifact(spec):
        able = ", ".join(n for n, e in ENGINES.items() if e.acm and "artifact" in e.kinds)
        raise EdgekitError(f"{spec} has adaptive computation modules (per-token gates), which {engine} cannot run; "
                           f"run it with --engine {able.split(', ')[-1]} (or {able}); its GGUF / ONNX export is "
                           "the dense FFN (k = N)")
    if kind in ENGINES[engine].kinds:
        return engine
    if kind == "onnx":
        raise EdgekitError(f"{spec} is an ONNX export; it runs with --engine onnxruntime")
    if kind == "acm":
        raise EdgekitError(f"{spec} is an ACM model directory, which --engine fake runs; for --engine {engine} "
                           f"quantize it first (edgekit quantize {spec} -o FILE.ekq)")
    if engine == "onnxruntime":
        raise EdgekitError(f"--engine onnxruntime runs an ONNX export directory (edgekit export ARTIFACT --format "
                           f"onnx -o DIR); {spec} is not one")
    if engine == "llama.cpp":
        raise EdgekitError(f"--engine llama.cpp runs a .gguf file (edgekit export ARTIFACT --format gguf -o "
                           f"FILE.gguf); {spec} is not one")
    raise EdgekitError(f"--engine {engine} runs a quantized artifact (.ekq); {spec} is not one")


def is_acm_artifact(spec: str) -> bool:
    """Whether the artifact ``spec`` carries adaptive computation modules (metadata ``edgekit.acm``)."""
    from edgekit.artifact import read_artifact

    try:
        return read_artifact(spec).acm is not None
    except EdgekitError:
        return False  # not readable: the engine's own loader reports why


def is_seq2seq(spec: str) -> bool:
    """Whether ``spec`` is an encoder-decoder model: a T5 directory, its artifact (task ``seq2seq-lm``), a ``t5``
    GGUF or a seq2seq ONNX export."""
    from edgekit.distill.student import is_t5_dir

    kind = path_kind(spec)
    if kind == "artifact":
        from edgekit.artifact import read_artifact

        try:
            return read_artifact(spec).task == "seq2seq-lm"
        except EdgekitError:
            return False  # not readable: the engine's own loader reports why
    if kind == "onnx":
        return (Path(spec) / "encoder_model.onnx").is_file()
    if kind == "gguf":
        from edgekit.models.gguf_support import gguf_architecture

        return gguf_architecture(spec) == "t5"
    return kind == "model" and is_t5_dir(spec)


def pruning_engine(engine: str | None) -> str:
    """The registry name of an engine that can prune tokens (None: ``runtime``).

    Raises:
        EdgekitError: the engine cannot drop tokens inside its forward pass.
    """
    name = canonical(engine or "runtime")
    if not ENGINES[name].pruning:
        able = ", ".join(sorted((n for n, e in ENGINES.items() if e.pruning), key=lambda n: n != "runtime"))
        raise EdgekitError(f"token pruning runs in edgekit's engines ({able}); {engine} cannot drop tokens inside "
                           "its forward pass")
    return name


def open_session(spec: str, engine: str | None = None, *, max_ctx: int = 2048, threads: int | None = None,
                 all_logits: bool = False, n_batch: int | None = None, pruning: bool = False,
                 seq2seq: bool = False) -> Session:
    """A :class:`Session` of ``engine`` (a name or alias; None: the default for the file) on ``spec``.

    Args:
        spec: The artifact, float model spec, ``.gguf`` file or ONNX export directory.
        engine: See :data:`ENGINES`.
        max_ctx: Tokens the KV cache must hold.
        threads: CPU threads (None: the engine's default).
        all_logits: Whether ``eval`` will be asked for every position's logits (llama.cpp keeps them only then).
        n_batch: Tokens per forward batch where the engine has one (llama.cpp; None: ``min(max_ctx, 512)``).
        pruning: Open a :class:`PruningSession` (engines with ``pruning`` only).
        seq2seq: Open a :class:`Seq2SeqSession` of an encoder-decoder ``spec`` (engines with ``seq2seq`` only);
            without it an encoder-decoder is refused, so decoder-only loops (perplexity, ``run``) never get one.

    Raises:
        EdgekitError: the engine cannot run ``spec`` (or cannot prune), or the file cannot be loaded.
    """
    name = pick_engine(spec, engine)
    if pruning:
        pruning_engine(name)
    enc_dec = is_seq2seq(spec)
    if enc_dec and not seq2seq:
        raise EdgekitError(f"{spec} is an encoder-decoder model (T5); this command runs decoder-only models (an "
                           "encoder-decoder runs as open_session(..., seq2seq=True) with eval.generate.generate_greedy)")
    if seq2seq and not enc_dec:
        raise EdgekitError(f"{spec} is not an encoder-decoder model (a T5 directory, its GGUF or ONNX export)")
    if seq2seq and not ENGINES[name].seq2seq:
        able = ", ".join(n for n, e in ENGINES.items() if e.seq2seq)
        raise EdgekitError(f"{spec} is an encoder-decoder model, which {name} cannot run; use --engine {able}")
    if seq2seq and name in ("llama.cpp", "onnxruntime") and path_kind(spec) == "artifact":
        # their exports of an encoder-decoder are the float student's (export/gguf.py, export/onnx.py)
        raise EdgekitError(f"{spec} is a quantized encoder-decoder, which runs with --engine runtime or fake; "
                           f"{name} runs the float student's export (edgekit export STUDENT_DIR --format ...)")
    entry = ENGINES[name]
    module, func = entry.opener.split(":")
    sess = getattr(importlib.import_module(module), func)(spec, max_ctx=max_ctx, threads=threads,
                                                          all_logits=all_logits, n_batch=n_batch, pruning=pruning)
    sess.label = entry.label
    return sess


def hf_tokenizer(path: Path, **kwargs):
    """``AutoTokenizer.from_pretrained(path)``, its failure as an :class:`EdgekitError`."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path), **kwargs)
    except (OSError, ValueError, KeyError) as e:
        raise EdgekitError(f"could not load the tokenizer of {path}: {type(e).__name__}: "
                           f"{str(e).strip().splitlines()[0] if str(e).strip() else ''}") from None
