"""edgekit's cache folder and what is kept in it: exports of artifacts for other engines, made once.

A cached file is keyed by its source's resolved path, size and modification time (:func:`file_key`), so a replaced
or re-quantized source gets a new entry instead of a stale one.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path


def cache_dir() -> Path:
    """edgekit's cache folder: ``$XDG_CACHE_HOME/edgekit`` (default ``~/.cache/edgekit``)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgekit"


def file_key(path: str | os.PathLike) -> str:
    """16 hex digits naming ``path``'s current version: a hash of its resolved path, size and modification time.

    Raises:
        OSError: when the file does not exist.
    """
    p = Path(path).resolve()
    st = p.stat()
    return hashlib.sha256(f"{p}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]


def cached_export(artifact: str, fmt: str) -> str:
    """The GGUF file (``fmt="gguf"``) or ONNX directory (``fmt="onnx"``) of ``artifact``, exported once and kept in
    ``<cache>/exports``.

    This is what lets ``--engine llama.cpp|onnxruntime`` take an artifact directly; a re-quantized artifact is
    exported again (see :func:`file_key`).
    """
    from edgekit.export import export_artifact_gguf, export_onnx

    p = Path(artifact).resolve()
    key = file_key(p)
    out = cache_dir() / "exports" / (f"{p.stem}-{key}.gguf" if fmt == "gguf" else f"{p.stem}-{key}-onnx")
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        print(f"exporting {artifact} to {fmt} once (cached at {out})", file=sys.stderr, flush=True)
        (export_artifact_gguf if fmt == "gguf" else export_onnx)(str(p), str(out))
    return str(out)
