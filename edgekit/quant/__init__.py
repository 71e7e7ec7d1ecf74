"""Quantization: byte formats, weight/activation quantizers, GPTQ, TRIP, and the ``quantize_`` entry point."""
