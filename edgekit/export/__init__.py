"""Exports of edgekit artifacts to the formats other engines read (GGUF for llama.cpp)."""

from edgekit.export.gguf import export_artifact_gguf, export_gguf, export_source_f16

__all__ = ["export_artifact_gguf", "export_gguf", "export_source_f16"]
