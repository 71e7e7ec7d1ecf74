"""edgekit: quantize small language models (Agile-Quant W4A8) and run them fast on edge CPUs.

The public API (each name is imported on first use, so ``import edgekit`` stays light and ``edgekit --help``
instant):

* :func:`quantize_` — quantize a torch model in place with a config (torchao's shape);
  :func:`edgekit.quant.api.quantize_model` is the whole stage, model spec in, ``.ekq`` artifact out;
* :func:`load_model` — load a model spec (alias, HF directory, ``.gguf`` file, hub id) as a float torch model;
* :func:`load_recipe` — a shipped recipe by name (``w4a8``, ``agile-quant``, ...) or a YAML file;
* :func:`open_session` — run an artifact, model or export on one of the engines (token ids in, logits out);
* :class:`Runtime` — an artifact in edgekit's C++ engine (``Runtime.from_artifact(path)``);
* :class:`EdgekitError` — the one error type for bad input.

Example:
    >>> import edgekit
    >>> rt = edgekit.Runtime.from_artifact("out/smollm2-135m-w4a8.ekq")  # doctest: +SKIP
    >>> logits = rt.eval([1, 2, 3], all_logits=True)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib

from edgekit.errors import EdgekitError

__version__ = "0.1.0"

# public name → (module, attribute), imported on first access (PEP 562)
_LAZY = {
    "quantize_": ("edgekit.quant.api", "quantize_"),
    "load_model": ("edgekit.models.loader", "load_model"),
    "load_recipe": ("edgekit.recipes", "load_recipe"),
    "open_session": ("edgekit.engines", "open_session"),
    "Runtime": ("edgekit.engines.runtime", "Runtime"),
}

__all__ = ["EdgekitError", "Runtime", "__version__", "load_model", "load_recipe", "open_session", "quantize_"]


def __getattr__(name: str):
    """Import a public name's module on first access and cache the name here."""
    if name not in _LAZY:
        raise AttributeError(f"module 'edgekit' has no attribute {name!r}")
    module, attr = _LAZY[name]
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
