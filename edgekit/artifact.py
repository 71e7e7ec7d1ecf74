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
    ``edgekit.model_config`` (transformers config dict), ``edgekit.quant`` (the :class:`AgileQuantConfig` dict),
    ``edgekit.linears`` (name → bits, group_size, symmetric, act_bits, act_mode, mix),
    ``edgekit.tokenizer`` (file name → base64 of each tokenizer file), ``edgekit.report`` (calibration facts).
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


def save_artifact(path, model, tokenizer, *, family, task: str, source: str, quant_cfg, report: dict) -> Path:
    """Write a quantized model as one ``.ekq`` file (atomically: temp file, then rename)."""
    from edgekit.config import to_dict
    from edgekit.quant.modules import QLinear

    path = Path(path)
    tensors: dict[str, np.ndarray] = {}
    linears: dict[str, dict] = {}
    skip: set[str] = set()
    for name, mod in model.named_modules():
        if not isinstance(mod, QLinear):
            continue
        q = mod.qweight
        tensors[f"{name}.qweight"] = np.ascontiguousarray(q.storage())
        tensors[f"{name}.scales"] = np.ascontiguousarray(q.scales)
        if q.mins is not None:
            tensors[f"{name}.mins"] = np.ascontiguousarray(q.mins)
        if mod.act_scale is not None:
            tensors[f"{name}.act_scale"] = np.asarray([float(mod.act_scale)], np.float32)
        linears[name] = {"bits": q.bits, "group_size": q.group_size, "symmetric": q.mins is None,
                         "act_bits": mod.act_bits, "act_mode": mod.act_mode, "mix": mod.mix is not None,
                         "shape": list(q.shape), "bias": mod.bias is not None}
        skip.add(f"{name}.weight")
    seen: dict[int, str] = {}
    for key, t in model.state_dict(keep_vars=False).items():
        if key in skip:
            continue
        ptr = t.data_ptr()
        if ptr in seen:  # tied weights (e.g. lm_head = embed_tokens): store once
            continue
        seen[ptr] = key
        tensors[key] = t.detach().float().contiguous().numpy() if t.is_floating_point() else t.numpy()
    with tempfile.TemporaryDirectory() as td:
        tokenizer.save_pretrained(td)
        files = {p.name: p for p in Path(td).iterdir() if p.is_file()}
        if "tokenizer.json" in files:  # the fast tokenizer is complete; a slow one's vocab file may be the whole GGUF
            files.pop("tokenizer.model", None)
        tok_files = {n: base64.b64encode(p.read_bytes()).decode("ascii") for n, p in files.items()}
    meta = {
        "edgekit.format": FORMAT,
        "edgekit.format_version": FORMAT_VERSION,
        "edgekit.family": family.name,
        "edgekit.task": task,
        "edgekit.source": source,
        "edgekit.model_config": json.dumps(model.config.to_dict()),
        "edgekit.quant": json.dumps(to_dict(quant_cfg)),
        "edgekit.linears": json.dumps(linears),
        "edgekit.tokenizer": json.dumps(tok_files),
        "edgekit.report": json.dumps(report),
    }
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
                        json.loads(meta["edgekit.model_config"]), json.loads(meta.get("edgekit.report", "{}")))
    except (KeyError, ValueError) as e:
        raise EdgekitError(f"{p}: damaged edgekit metadata ({e}); re-quantize the model") from None
