"""``quantize_(model, config, ...)``: apply a registered quantization scheme to a model in place (torchao's shape)."""

from __future__ import annotations

from torch import nn

import edgekit.quant.agile  # noqa: F401  (registers the Agile-Quant handler)
from edgekit.config import HANDLERS
from edgekit.errors import EdgekitError


def quantize_(model: nn.Module, config, **context) -> dict:
    """Quantize ``model`` in place with ``config``.

    Args:
        model: the float model.
        config: a registered config object, e.g. :class:`edgekit.config.AgileQuantConfig`.
        **context: what the handler needs (``family``, ``calib_ids``, ``batch_size``, ``progress``).

    Returns:
        The handler's report dict.

    Raises:
        EdgekitError: if no handler is registered for the config's type.
    """
    handler = HANDLERS.get(type(config))
    if handler is None:
        known = ", ".join(sorted(t.__name__ for t in HANDLERS))
        raise EdgekitError(f"no quantization handler for {type(config).__name__}; known configs: {known}")
    return handler(model, config, **context)
