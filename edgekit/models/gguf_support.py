"""GGUF helpers around transformers: parse the file once, and fix the tokenizer it builds.

Speed: 
``from_pretrained(..., gguf_file=...)`` builds a fresh ``gguf.GGUFReader`` for the config, the tokenizer and the
weights (and the tokenizer twice). The pure-Python reader walks every metadata string, and SmolLM2 ships ~100k
vocabulary and merge strings, so each parse costs seconds on a small CPU. transformers also rebuilds
``gguf.get_tensor_name_map`` once per submodule (~400 times). Both are pure functions of their inputs, so while a load
runs we hand out one shared reader for our file and memoize the name map.

Tokenizer: transformers (4.57) converts a llama-arch GGUF tokenizer with its special tokens swapped (eos becomes the
bos string) and always prepends BOS, ignoring ``tokenizer.ggml.add_bos_token``. llama.cpp follows the metadata, so
:func:`align_tokenizer_with_gguf` makes the HF tokenizer do the same; otherwise perplexities and generation stops
would differ between the torch model and the exported GGUF.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# transformers imports these names from the gguf module at call time, so swapping the module attributes is enough;
# the lock keeps two concurrent loads from restoring each other's patches out of order.
_PATCH_LOCK = threading.RLock()


def open_gguf(path: str | os.PathLike) -> Any:
    """Parse a GGUF file with the ``gguf`` package's reader (read-only memmap).

    Args:
        path: The ``.gguf`` file.

    Returns:
        A ``gguf.GGUFReader``.
    """
    from gguf import GGUFReader

    return GGUFReader(str(path), "r")


def gguf_architecture(path: str | os.PathLike) -> str | None:
    """``general.architecture`` of a GGUF file (``llama``, ``t5``, ...); None when the file cannot be read (the
    loader that opens it next reports why)."""
    try:
        return _meta(open_gguf(path), "general.architecture")
    except Exception:  # a damaged or missing file: not ours to report here
        return None


@contextmanager
def shared_gguf_reader(path: str | os.PathLike, reader: Any) -> Iterator[None]:
    """Within the block, ``gguf.GGUFReader(path)`` returns ``reader`` and the tensor-name map is memoized.

    Other paths, and any write mode, still get a fresh reader. Everything is restored on exit.

    Args:
        path: The GGUF file that ``reader`` was opened on.
        reader: An already parsed ``gguf.GGUFReader`` of ``path``.

    Yields:
        Nothing; use as ``with shared_gguf_reader(path, reader): model = ...from_pretrained(...)``.
    """
    import gguf

    target = os.path.realpath(path)
    with _PATCH_LOCK:
        orig_reader, orig_map = gguf.GGUFReader, gguf.get_tensor_name_map

        def reader_for(p: Any, mode: str = "r") -> Any:
            if mode == "r" and os.path.realpath(p) == target:
                return reader
            return orig_reader(p, mode)

        gguf.GGUFReader = reader_for
        gguf.get_tensor_name_map = functools.lru_cache(maxsize=None)(orig_map)
        try:
            yield
        finally:
            gguf.GGUFReader, gguf.get_tensor_name_map = orig_reader, orig_map


def _meta(reader: Any, key: str) -> Any:
    field = reader.get_field(key)
    if field is None:
        return None
    try:
        return field.contents()
    except Exception:  # an odd field type is just "not set" for our purposes
        return None


def align_tokenizer_with_gguf(tokenizer: Any, reader: Any) -> list[str]:
    """Set special tokens and BOS handling of a GGUF-built tokenizer from the GGUF metadata.

    Args:
        tokenizer: The tokenizer transformers built from the GGUF file (modified in place).
        reader: The ``gguf.GGUFReader`` of that file.

    Returns:
        Notes describing each change made (empty if the tokenizer already matched).
    """
    notes: list[str] = []
    tokens_field = reader.get_field("tokenizer.ggml.tokens")
    n_tokens = len(tokens_field.data) if tokens_field is not None else 0
    for role, key in (("bos", "bos_token_id"), ("eos", "eos_token_id"), ("unk", "unknown_token_id"),
                      ("pad", "padding_token_id")):
        token_id = _meta(reader, f"tokenizer.ggml.{key}")
        if token_id is None or not 0 <= int(token_id) < n_tokens:
            continue
        text = tokens_field.contents(int(token_id))
        if getattr(tokenizer, f"{role}_token") != text:
            notes.append(f"{role} token set to {text!r} (id {int(token_id)}) from GGUF metadata")
            setattr(tokenizer, f"{role}_token", text)
    add_bos = _meta(reader, "tokenizer.ggml.add_bos_token")
    if add_bos is not None and hasattr(tokenizer, "add_bos_token") and bool(tokenizer.add_bos_token) != bool(add_bos):
        # The LlamaTokenizerFast setter rebuilds the post-processor, so encode() follows the new setting.
        tokenizer.add_bos_token = bool(add_bos)
        notes.append(f"add_bos_token={bool(add_bos)} from GGUF metadata (transformers defaulted to the opposite)")
    if notes and hasattr(tokenizer, "update_post_processor"):
        tokenizer.update_post_processor()  # bos/eos strings feed the post-processor template too
    return notes
