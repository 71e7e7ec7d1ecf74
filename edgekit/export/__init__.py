"""Exports of edgekit artifacts to the formats other engines read: GGUF for llama.cpp, an ONNX directory for ONNX
Runtime."""

from edgekit.export.gguf import export_artifact_gguf, export_gguf, export_source_f16
from edgekit.export.onnx import export_onnx

__all__ = ["export_artifact_gguf", "export_gguf", "export_onnx", "export_source_f16"]
