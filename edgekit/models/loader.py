"""Load a model spec into a float32, eval-mode torch model plus its tokenizer.

Every spec goes through :func:`edgekit.models.sources.resolve_spec` and the file checks in
:mod:`edgekit.models.checks` first, so bad input is reported as one :class:`EdgekitError` line before transformers
gets to print a traceback.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from edgekit.errors import EdgekitError
from edgekit.models.checks import check_hf_dir, family_of, inspect_gguf
from edgekit.models.gguf_support import align_tokenizer_with_gguf, shared_gguf_reader
from edgekit.models.sources import ModelSource, list_aliases, resolve_spec

try:
    import torch
except ImportError:  # pragma: no cover - torch is an optional extra
    torch = None  # type: ignore[assignment]

_TASKS = {"llama": "causal-lm", "bert": "encoder", "t5": "seq2seq-lm"}


@dataclass
class LoadedModel:
    """A loaded model ready for calibration, evaluation or export.

    Attributes:
        model: The torch ``nn.Module``, in eval mode with ``requires_grad`` off on every parameter.
        tokenizer: The matching Hugging Face tokenizer.
        family: ``"llama"`` for causal decoders, ``"bert"`` for encoders, ``"t5"`` for encoder-decoders.
        task: ``"causal-lm"``, ``"encoder"`` or ``"seq2seq-lm"``.
        source: Where the model came from.
        config: The Hugging Face config of the model.
        notes: Human-readable remarks made while loading (e.g. tied embeddings), for logs and reports.
    """

    model: Any
    tokenizer: Any
    family: str
    task: str
    source: ModelSource
    config: Any
    notes: list[str] = field(default_factory=list)

    @property
    def tied_embeddings(self) -> bool:
        """Whether the output head shares its weight tensor with the input embedding."""
        return embeddings_tied(self.model)


def embeddings_tied(model: Any) -> bool:
    """Whether ``model``'s output head uses the same storage as its input embedding.

    Quantizers must know this: a tied ``lm_head`` must not be quantized separately from ``embed_tokens``.

    Args:
        model: A torch module; encoders (no output head) give ``False``.

    Returns:
        ``True`` if the output embedding and input embedding weights share storage.
    """
    get_out = getattr(model, "get_output_embeddings", None)
    out = get_out() if callable(get_out) else None
    if out is None or getattr(out, "weight", None) is None:
        return False
    inp = model.get_input_embeddings().weight
    return out.weight.data_ptr() == inp.data_ptr()


def _require_torch() -> None:
    if torch is None:
        raise EdgekitError("loading models needs torch and transformers; run `pip install edgekit[torch]`")


def _dtype_kwargs(dtype: Any) -> dict[str, Any]:
    # transformers 4.56 renamed torch_dtype= to dtype= and warns on the old name; support both ends of our range.
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return {"dtype": dtype} if (major, minor) >= (4, 56) else {"torch_dtype": dtype}


def _auto_classes(family: str) -> tuple[Any, Any]:
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    auto = {"llama": AutoModelForCausalLM, "t5": AutoModelForSeq2SeqLM}.get(family, AutoModel)
    return auto, AutoTokenizer


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _from_pretrained(source: ModelSource, family: str, dtype: Any, local: bool) -> tuple[Any, Any]:
    """Call transformers, turning its load failures into one-line errors."""
    model_cls, tok_cls = _auto_classes(family)
    kwargs: dict[str, Any] = {"local_files_only": local}
    if source.gguf_file:
        kwargs["gguf_file"] = source.gguf_file
    try:
        tokenizer = tok_cls.from_pretrained(source.path, **kwargs)
        model = model_cls.from_pretrained(source.path, **kwargs, **_dtype_kwargs(dtype))
    except EdgekitError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError, ImportError) as exc:
        raise EdgekitError(
            f"transformers could not load {source.file} ({_first_line(exc)}); check the files are complete and "
            f"from a supported architecture, or re-export the model"
        ) from exc
    return model, tokenizer


def _hub_config(source: ModelSource) -> Any:
    """Fetch the config of a hub model, with a clear message when the hub is unreachable."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source.path)
    except (OSError, ValueError) as exc:
        text = str(exc)
        if "is not a valid model identifier" in text or "404" in text:
            raise EdgekitError(
                f"no model {source.path!r} on the Hugging Face hub (or it is private); check the id, or pass a "
                f"local directory or .gguf file or an alias: {', '.join(list_aliases())}"
            ) from exc
        raise EdgekitError(
            f"could not download {source.path} from the Hugging Face hub (no network?); pass a local directory "
            f"or .gguf file or an alias: {', '.join(list_aliases())}"
        ) from exc


def _finish(model: Any, tokenizer: Any, family: str, config: Any, notes: list[str]) -> None:
    """Freeze the model for inference and record anything a downstream quantizer must know."""
    model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    if family == "llama" and getattr(config, "tie_word_embeddings", False):
        if not embeddings_tied(model):
            # GGUF exports of tied models carry no separate output tensor; make sure the head really shares it.
            model.tie_weights()
        if embeddings_tied(model):
            notes.append("lm_head shares its weight with embed_tokens (tied embeddings): quantize them once")
        else:
            notes.append("config says tie_word_embeddings but lm_head has its own weight tensor")
    if family == "llama" and tokenizer.pad_token is None and tokenizer.eos_token is not None:
        # Batched calibration needs a pad token; padding with EOS is the usual choice for decoders without one.
        tokenizer.pad_token = tokenizer.eos_token
        notes.append(f"tokenizer has no pad token; using EOS {tokenizer.eos_token!r} for padding")


_DEFAULT_DTYPE = torch.float32 if torch is not None else None


def load_model(spec: str | ModelSource, *, dtype: Any = _DEFAULT_DTYPE) -> LoadedModel:
    """Load a model from an alias, a Hugging Face directory, a ``.gguf`` file or a hub id.

    GGUF weights are dequantized by transformers; the result is always a plain torch model in ``dtype``.

    Args:
        spec: A spec string (see :func:`edgekit.models.resolve_spec`) or an already resolved ``ModelSource``.
        dtype: Torch dtype of the loaded weights (default ``torch.float32``; ``None`` also means float32).

    Returns:
        The model in eval mode with gradients off, its tokenizer, family, task, source and config.

    Raises:
        EdgekitError: For a missing path, unknown alias, unsupported architecture, damaged GGUF or safetensors
            file, directory without config.json, or an unreachable hub.
    """
    _require_torch()
    dtype = torch.float32 if dtype is None else dtype
    source = spec if isinstance(spec, ModelSource) else resolve_spec(spec)
    notes: list[str] = []
    if source.gguf_file:
        arch, reader = inspect_gguf(source.file)
        family = family_of(arch, source.file)
        if family != "llama":
            raise EdgekitError(
                f"{source.file} holds a {arch!r} model; only llama-family decoders are loaded from GGUF, pass the "
                f"model's Hugging Face directory instead"
            )
        notes.append(f"dequantized from GGUF ({arch}) to {dtype}")
        with shared_gguf_reader(source.file, reader):
            model, tokenizer = _from_pretrained(source, family, dtype, local=True)
        notes.extend(align_tokenizer_with_gguf(tokenizer, reader))
    elif source.kind == "hub":
        config = _hub_config(source)
        family = family_of(str(config.model_type), source.path)
        model, tokenizer = _from_pretrained(source, family, dtype, local=False)
    else:
        family = family_of(check_hf_dir(source.path), os.path.join(source.path, "config.json"))
        model, tokenizer = _from_pretrained(source, family, dtype, local=True)
    config = model.config
    _finish(model, tokenizer, family, config, notes)
    return LoadedModel(
        model=model, tokenizer=tokenizer, family=family, task=_TASKS[family], source=source, config=config, notes=notes
    )
