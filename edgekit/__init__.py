"""edgekit: quantize small language models (Agile-Quant W4A8) and run them fast on edge CPUs."""

__version__ = "0.1.0"

from edgekit.errors import EdgekitError  # noqa: E402

__all__ = ["EdgekitError", "__version__"]
