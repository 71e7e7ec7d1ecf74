"""The quantized artifact (``.ekq``): one self-describing file that every later stage reads without the original model.

Layout — a safetensors file (8-byte little-endian header length, JSON header, then raw tensor bytes), so C++ can
memory-map it and validate every offset against the file size:

Tensors
    ``<linear>.qweight``  uint8 ``[N, K/2]`` packed int4 codes (group-split nibble order, :mod:`edgekit.quant.formats`)
                          or int8 ``[N, K]`` for 8-bit weights
    ``<linear>.scales``   float16 ``[N, K/G]``
    ``<linear>.mins``     float16 ``[N, K/G]`` (asymmetric weights only)
    ``<linear>.act_scale`` float32 ``[1]`` (static per-tensor activations only; TRIP factors are already folded)
    every other tensor of the model (embeddings, norms, biases, float head) under its transformers name, float32;
    a head tied to the embedding is not stored twice.

Metadata (all strings; JSON where structured)
    ``edgekit.format`` = ``"edgekit-artifact"``, ``edgekit.format_version`` = ``"1"``,
    ``edgekit.family`` (``llama``/``bert``), ``edgekit.task``, ``edgekit.source`` (the model spec it came from),
    ``edgekit.model_config`` (transformers config dict), ``edgekit.quant`` (the ``AgileQuantConfig`` dict),
    ``edgekit.linears`` (name → bits, group_size, symmetric, act_bits, act_mode, mix),
    ``edgekit.tokenizer`` (file name → base64 of each tokenizer file), ``edgekit.report`` (calibration facts);
    for a model with adaptive computation modules (:mod:`edgekit.acm`) also ``edgekit.acm`` (n_learners,
    learner_width, gate_hidden, gate_act), its gates stored as float tensors ``<layer>.mlp.gate.fc1/fc2.*``.

This module is the file format only: bytes in, bytes out, no torch. Turning a quantized torch model into these
tensors and back is :mod:`edgekit.quant.serialize`'s.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError

FORMAT = "edgekit-artifact"
FORMAT_VERSION = "1"
SUFFIX = ".ekq"


def is_artifact(path: str | os.PathLike) -> bool:
    """True if ``path`` is a file whose safetensors metadata says it is an edgekit artifact."""
    p = Path(path)
    if not p.is_file():
        return False
    try:
        with open(p, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if n <= 0 or n > 100 * 2 ** 20:
                return False
            head = json.loads(f.read(n))
        return head.get("__metadata__", {}).get("edgekit.format") == FORMAT
    except (OSError, ValueError):
        return False


def _atomic_save(tensors: dict[str, np.ndarray], metadata: dict[str, str], path: Path) -> None:
    from safetensors.numpy import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def tokenizer_files(tokenizer_dir: str | os.PathLike) -> dict[str, bytes]:
    """The files of a tokenizer saved into ``tokenizer_dir`` (``save_pretrained``) that an artifact carries."""
    files = {p.name: p for p in Path(tokenizer_dir).iterdir() if p.is_file()}
    if "tokenizer.json" in files:  # the fast tokenizer is complete; a slow one's vocab file may be the whole GGUF
        files.pop("tokenizer.model", None)
    return {n: p.read_bytes() for n, p in files.items()}


def write_artifact(path, tensors: dict[str, np.ndarray], *, family: str, task: str, source: str, model_config: dict,
                   quant: dict, linears: dict, tokenizer: dict[str, bytes], report: dict,
                   acm: dict | None = None) -> Path:
    """Write an ``.ekq`` file atomically (temp file, then rename): ``tensors`` plus the metadata described above.

    Args:
        path: Where to write.
        tensors: Every tensor by name (quantized linears as ``<linear>.qweight`` / ``.scales`` / ...).
        family, task, source: What the model is and where it came from.
        model_config: The transformers config as a dict.
        quant: The quantization config as a dict (:func:`edgekit.config.to_dict`).
        linears: Quantized linear name → its format (bits, group_size, symmetric, act_bits, act_mode, mix, ...).
        tokenizer: Tokenizer file name → bytes (:func:`tokenizer_files`).
        report: Calibration and timing facts.
        acm: For a model with adaptive computation modules, ``edgekit.acm``: ``n_learners``, ``learner_width``,
            ``gate_hidden``, ``gate_act`` (the gates' float tensors are ``<layer>.mlp.gate.fc1/fc2.*``).
    """
    path = Path(path)
    meta = {
        "edgekit.format": FORMAT,
        "edgekit.format_version": FORMAT_VERSION,
        "edgekit.family": family,
        "edgekit.task": task,
        "edgekit.source": source,
        "edgekit.model_config": json.dumps(model_config),
        "edgekit.quant": json.dumps(quant),
        "edgekit.linears": json.dumps(linears),
        "edgekit.tokenizer": json.dumps({n: base64.b64encode(b).decode("ascii") for n, b in tokenizer.items()}),
        "edgekit.report": json.dumps(report),
    }
    if acm is not None:
        meta["edgekit.acm"] = json.dumps(acm)
    _atomic_save(tensors, meta, path)
    return path


@dataclass
class Artifact:
    """An artifact read back: metadata plus a lazily opened tensor store."""

    path: Path
    meta: dict[str, str]
    family: str = ""
    task: str = ""
    source: str = ""
    quant: dict = field(default_factory=dict)
    linears: dict = field(default_factory=dict)
    model_config: dict = field(default_factory=dict)
    report: dict = field(default_factory=dict)
    acm: dict | None = None  # edgekit.acm: the model's adaptive computation modules (write_artifact)


def read_artifact(path) -> Artifact:
    """Read and validate an artifact's metadata.

    Raises:
        EdgekitError: if the file is missing, not a safetensors file, truncated, or not an edgekit artifact.
    """
    from edgekit.models.checks import check_safetensors

    p = Path(path)
    if not p.is_file():
        raise EdgekitError(f"artifact not found: {p}")
    check_safetensors(p)
    from safetensors import safe_open

    with safe_open(str(p), framework="numpy") as f:
        meta = f.metadata() or {}
    if meta.get("edgekit.format") != FORMAT:
        raise EdgekitError(f"{p} is a safetensors file but not an edgekit artifact; create one with edgekit quantize")
    if meta.get("edgekit.format_version") != FORMAT_VERSION:
        raise EdgekitError(f"{p} has artifact format version {meta.get('edgekit.format_version')}, this edgekit "
                           f"reads version {FORMAT_VERSION}; re-quantize the model")
    try:
        return Artifact(p, meta, meta["edgekit.family"], meta["edgekit.task"], meta["edgekit.source"],
                        json.loads(meta["edgekit.quant"]), json.loads(meta["edgekit.linears"]),
                        json.loads(meta["edgekit.model_config"]), json.loads(meta.get("edgekit.report", "{}")),
                        json.loads(meta["edgekit.acm"]) if "edgekit.acm" in meta else None)
    except (KeyError, ValueError) as e:
        raise EdgekitError(f"{p}: damaged edgekit metadata ({e}); re-quantize the model") from None


def write_tokenizer(art: Artifact, folder: str | os.PathLike) -> None:
    """Write the tokenizer files an artifact carries into ``folder``.

    Raises:
        EdgekitError: when the artifact carries no tokenizer.
    """
    files = json.loads(art.meta.get("edgekit.tokenizer", "{}"))
    if not files:
        raise EdgekitError(f"{art.path} carries no tokenizer; re-quantize the model")
    for name, text in files.items():
        (Path(folder) / Path(name).name).write_bytes(base64.b64decode(text))
