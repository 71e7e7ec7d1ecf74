"""Integrity and architecture checks run on model files *before* transformers opens them.

transformers reports a truncated file or an unknown architecture with a deep traceback (or, for a truncated memmap,
sometimes a crash much later); these checks turn each of those into one :class:`EdgekitError` line.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError

# config.model_type (and GGUF general.architecture) values loaded as llama-family causal decoders.
LLAMA_FAMILY = ("llama", "mistral", "qwen2")
# config.model_type values loaded as encoders.
ENCODER_FAMILY = ("bert",)
# config.model_type values loaded as encoder-decoders (the T5 v1.1 student of `edgekit distill`).
SEQ2SEQ_FAMILY = ("t5",)
SUPPORTED_ARCHITECTURES = LLAMA_FAMILY + ENCODER_FAMILY + SEQ2SEQ_FAMILY

GGUF_MAGIC = b"GGUF"

# Bytes per element of each safetensors dtype, for checking that a tensor's byte range matches its shape.
_ST_DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}
# A safetensors header larger than this is certainly garbage (the format itself caps it at 100 MB).
_ST_MAX_HEADER = 100 * 1024 * 1024


def family_of(model_type: str, origin: str) -> str:
    """Map an architecture name to edgekit's family, or fail with the list of supported ones.

    Args:
        model_type: ``config.model_type`` or GGUF ``general.architecture``.
        origin: Where the name came from, for the error message (a file path).

    Returns:
        ``"llama"`` for decoders in :data:`LLAMA_FAMILY`, ``"bert"`` for encoders in :data:`ENCODER_FAMILY`,
        ``"t5"`` for encoder-decoders in :data:`SEQ2SEQ_FAMILY`.

    Raises:
        EdgekitError: For any other architecture.
    """
    if model_type in LLAMA_FAMILY:
        return "llama"
    if model_type in ENCODER_FAMILY:
        return "bert"
    if model_type in SEQ2SEQ_FAMILY:
        return "t5"
    raise EdgekitError(
        f"unsupported architecture {model_type!r} in {origin}; edgekit supports "
        f"{', '.join(LLAMA_FAMILY)} (llama-family decoders), {', '.join(ENCODER_FAMILY)} (encoders) and "
        f"{', '.join(SEQ2SEQ_FAMILY)} (encoder-decoders)"
    )


def check_gguf(path: str | os.PathLike) -> str:
    """Validate a GGUF file and return its ``general.architecture``.

    Checks the magic bytes, that the ``gguf`` package parses the header, and that every tensor's data lies inside
    the file (a truncated download parses fine up to the tensor table but is short on data).

    Args:
        path: The ``.gguf`` file.

    Returns:
        The architecture string, e.g. ``"llama"``.

    Raises:
        EdgekitError: If the file is not a GGUF, is corrupt or truncated, or lacks ``general.architecture``.
    """
    return inspect_gguf(path)[0]


def inspect_gguf(path: str | os.PathLike) -> tuple[str, Any]:
    """Like :func:`check_gguf` but also return the parsed ``gguf.GGUFReader`` so callers can reuse it.

    Args:
        path: The ``.gguf`` file.

    Returns:
        ``(architecture, reader)``.

    Raises:
        EdgekitError: As :func:`check_gguf`.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic != GGUF_MAGIC:
        raise EdgekitError(
            f"{path} is not a GGUF file (magic bytes {magic!r}, expected {GGUF_MAGIC!r}); "
            f"pass a valid .gguf or re-download it"
        )
    try:
        from edgekit.models.gguf_support import open_gguf

        reader = open_gguf(path)
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise EdgekitError("reading .gguf files needs the gguf package; run `pip install gguf`") from exc
    except Exception as exc:  # the reader raises ValueError, IndexError, KeyError... on garbage
        raise EdgekitError(
            f"{path} is a corrupt or truncated GGUF ({type(exc).__name__}: {exc}); re-download or re-export it"
        ) from exc
    for tensor in reader.tensors:
        end = int(tensor.data_offset) + int(tensor.n_bytes)
        if end > size:
            raise EdgekitError(
                f"{path} is truncated: tensor {tensor.name!r} ends at byte {end} but the file has {size} bytes; "
                f"re-download or re-export it"
            )
    field = reader.get_field("general.architecture")
    if field is None:
        raise EdgekitError(f"{path} has no general.architecture key; it is not a model GGUF edgekit can load")
    arch = field.contents() if hasattr(field, "contents") else bytes(field.parts[field.data[0]]).decode("utf-8")
    return str(arch), reader


def check_safetensors(path: str | os.PathLike) -> None:
    """Validate a ``.safetensors`` file's header and that all tensor data fits in the file.

    Layout: 8-byte little-endian header length ``N``, ``N`` bytes of JSON, then the data block; each tensor's
    ``data_offsets`` are relative to the data block.

    Args:
        path: The ``.safetensors`` file.

    Raises:
        EdgekitError: If the header is short, not JSON, or any tensor's byte range runs past the end of the file or
            disagrees with its dtype and shape.
    """
    path = Path(path)
    size = path.stat().st_size
    fix = "re-download or re-export the model"
    if size < 8:
        raise EdgekitError(f"{path} is truncated ({size} bytes, shorter than the 8-byte header length); {fix}")
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        if n > _ST_MAX_HEADER or 8 + n > size:
            raise EdgekitError(
                f"{path} is corrupt or truncated: header claims {n} bytes but the file has {size}; {fix}"
            )
        raw = fh.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
    except (UnicodeDecodeError, ValueError) as exc:
        raise EdgekitError(f"{path} is corrupt: its JSON header does not parse ({exc}); {fix}") from exc
    data_size = size - 8 - n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, end = (int(x) for x in info["data_offsets"])
            shape, dtype = info["shape"], info["dtype"]
        except (KeyError, TypeError, ValueError) as exc:
            raise EdgekitError(f"{path} is corrupt: bad header entry for tensor {name!r}; {fix}") from exc
        if end > data_size or begin > end:
            raise EdgekitError(
                f"{path} is truncated: tensor {name!r} needs data up to byte {8 + n + end} "
                f"but the file has {size} bytes; {fix}"
            )
        count = 1
        for dim in shape:
            count *= int(dim)
        width = _ST_DTYPE_BYTES.get(dtype)
        if width is not None and count * width != end - begin:
            raise EdgekitError(
                f"{path} is corrupt: tensor {name!r} ({dtype} {shape}) should take {count * width} bytes "
                f"but its offsets span {end - begin}; {fix}"
            )


def check_hf_dir(path: str | os.PathLike) -> str:
    """Validate a Hugging Face model directory and return its ``model_type``.

    Args:
        path: Directory expected to hold ``config.json`` and weight files.

    Returns:
        ``config.model_type`` (already checked against :data:`SUPPORTED_ARCHITECTURES`).

    Raises:
        EdgekitError: If ``config.json`` is missing or unreadable, the architecture is unsupported, a safetensors
            file is damaged, or there are no weights at all.
    """
    path = Path(path)
    cfg_path = path / "config.json"
    if not cfg_path.is_file():
        ggufs = sorted(path.glob("*.gguf"))
        hint = f" (it holds {ggufs[0].name}: pass that file instead)" if ggufs else ""
        raise EdgekitError(
            f"{path} has no config.json, so it is not a Hugging Face model directory{hint}; "
            f"pass a directory with config.json and weights, or a .gguf file"
        )
    try:
        config = json.loads(cfg_path.read_text(encoding="utf-8"))
        model_type = config["model_type"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise EdgekitError(f"{cfg_path} is unreadable or has no model_type ({exc}); fix or re-download it") from exc
    family_of(str(model_type), str(cfg_path))
    shards = sorted(path.glob("*.safetensors"))
    for shard in shards:
        check_safetensors(shard)
    if not shards and not any(path.glob("pytorch_model*.bin")):
        raise EdgekitError(f"{path} has a config.json but no weights (*.safetensors or pytorch_model*.bin)")
    return str(model_type)
