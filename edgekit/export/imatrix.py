"""Importance matrices in llama.cpp's GGUF imatrix format: computed by edgekit, read back, handed to llama.cpp.

An importance matrix holds, for every linear of every block, the sum over calibration tokens of each input
column's squared activation (``<tensor>.in_sum2``, F32 ``[columns, 1]``) and the number of tokens summed
(``<tensor>.counts``, F32 ``[1, 1]``), under GGUF tensor names (``blk.0.attn_q.weight`` ...), with the keys
``general.type = "imatrix"``, ``imatrix.datasets``, ``imatrix.chunk_count`` and ``imatrix.chunk_size`` — the layout
llama.cpp's ``llama-imatrix`` writes and ``llama-quantize --imatrix`` reads. llama.cpp divides each row of sums by
its count, so the file carries raw sums and files can be merged by adding them.

``edgekit imatrix`` computes it on the float model over exactly the calibration windows ``edgekit quantize`` uses
(same text, sampling and seed), so a llama.cpp Q4_0 with this matrix and an edgekit artifact see the same data.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError


@dataclass
class Imatrix:
    """Per-tensor sums of squared input activations and token counts, under GGUF tensor names."""

    sums: dict[str, np.ndarray] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    datasets: list[str] = field(default_factory=list)
    chunk_count: int = 0
    chunk_size: int = 0

    def means(self) -> dict[str, np.ndarray]:
        """Mean squared activation per input column (what llama.cpp's quantizer weighs each column's error by)."""
        return {k: (s / max(self.counts[k], 1)).astype(np.float32) for k, s in self.sums.items()}


def compute_imatrix(model, family, ids, batch_size: int = 8, progress: bool = True) -> Imatrix:
    """Run the float ``model`` over ``ids`` ([windows, tokens]) and collect each block linear's input statistics.

    Every linear of :meth:`Family.linears` is hooked (linears sharing an input get equal sums, as in llama.cpp);
    sums accumulate in float64.
    """
    import torch
    from tqdm.auto import tqdm

    from edgekit.export.gguf import gguf_linear_name

    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    handles = []
    for i, block in enumerate(family.layers(model)):
        for lin in family.linears():
            name = gguf_linear_name(i, lin)

            def hook(mod, args, name=name):
                x = args[0].detach().reshape(-1, args[0].shape[-1]).double()
                s = (x * x).sum(0)
                sums[name] = sums[name] + s if name in sums else s
                counts[name] = counts.get(name, 0) + x.shape[0]

            handles.append(block.get_submodule(lin).register_forward_pre_hook(hook))
    # the blocks are all that is hooked: run the decoder without the LM head (its logits would be [batch, T, vocab])
    body = model.get_decoder() if hasattr(model, "get_decoder") else model
    try:
        with torch.inference_mode():
            for b in tqdm(range(0, len(ids), batch_size), desc="imatrix", unit="batch", disable=not progress):
                body(ids[b:b + batch_size])
    finally:
        for h in handles:
            h.remove()
    return Imatrix({k: v.float().numpy() for k, v in sums.items()}, counts, chunk_count=int(ids.shape[0]),
                   chunk_size=int(ids.shape[1]))


def write_imatrix(path, imatrix: Imatrix, arch: str = "llama") -> Path:
    """Write ``imatrix`` as a llama.cpp GGUF imatrix file, atomically. Returns the path."""
    from gguf import GGUFValueType as V

    from edgekit.export.gguf import write_gguf

    path = Path(path)
    kvs = [("general.type", "imatrix", V.STRING, None),
           ("imatrix.datasets", list(imatrix.datasets) or ["unknown"], V.ARRAY, V.STRING),
           ("imatrix.chunk_count", int(imatrix.chunk_count), V.UINT32, None),
           ("imatrix.chunk_size", int(imatrix.chunk_size), V.UINT32, None)]
    tensors = []
    for name, s in imatrix.sums.items():
        # GGUF shapes are written innermost first: [columns, 1] and [1, 1] in ggml order
        tensors.append((f"{name}.in_sum2", np.ascontiguousarray(s, dtype=np.float32).reshape(1, -1), None))
        tensors.append((f"{name}.counts", np.array([[imatrix.counts[name]]], dtype=np.float32), None))
    write_gguf(path, arch, kvs, tensors)
    return path


def read_imatrix(path) -> dict[str, np.ndarray]:
    """Read an importance matrix: GGUF tensor name -> float32 mean squared activation per input column.

    Two formats are understood:

    * a GGUF imatrix (``edgekit imatrix`` or llama.cpp's ``llama-imatrix``: ``<name>.in_sum2`` and ``<name>.counts``);
      like ``llama-quantize`` each row of sums is divided by its count (rows with no count get 1);
    * a ``.npz`` whose keys are GGUF tensor names and whose values are already the means.

    Raises:
        EdgekitError: if the file is missing, in another format, or holds non-finite values.
    """
    p = Path(path)
    if not p.is_file():
        raise EdgekitError(f"imatrix file not found: {p}")
    out: dict[str, np.ndarray] = {}
    if p.suffix == ".npz":
        with np.load(p) as z:
            for k in z.files:
                out[k] = np.ascontiguousarray(z[k], dtype=np.float32).reshape(-1)
    elif p.read_bytes()[:4] == b"GGUF":
        import gguf

        reader = gguf.GGUFReader(str(p))
        sums, counts = {}, {}
        for t in reader.tensors:
            if t.name.endswith(".in_sum2"):
                sums[t.name[: -len(".in_sum2")]] = np.asarray(t.data, dtype=np.float32)
            elif t.name.endswith(".counts"):
                counts[t.name[: -len(".counts")]] = np.asarray(t.data, dtype=np.float32).reshape(-1)
        for name, s in sums.items():
            if name not in counts:
                raise EdgekitError(f"{p}: imatrix tensor {name} has sums but no counts")
            c = counts[name]
            s = s.reshape(len(c), -1)  # one row of sums per expert (a single row for dense models)
            mean = np.where(c[:, None] > 0, s / np.maximum(c[:, None], 1.0), 1.0)
            out[name] = np.ascontiguousarray(mean, dtype=np.float32).reshape(-1)
    else:
        raise EdgekitError(f"{p}: not a GGUF imatrix or .npz importance matrix (the legacy llama.cpp .dat format "
                           "is not supported; convert it with a current llama-imatrix)")
    if not out:
        raise EdgekitError(f"{p}: the importance matrix holds no tensors")
    for k, v in out.items():
        if not np.isfinite(v).all():
            raise EdgekitError(f"{p}: imatrix entry {k} has non-finite values")
    return out


def imatrix_model(spec: str, out, *, calib: list[str] | None = None, calib_samples: int | None = None,
                  calib_seqlen: int | None = None, seed: int = 0, threads: int | None = None,
                  batch_size: int = 8, progress: bool = True) -> dict:
    """``edgekit imatrix``: the importance matrix of model ``spec`` on ``edgekit quantize``'s calibration windows.

    Returns:
        A report: ``path``, ``tensors``, ``calib_samples``, ``calib_seqlen``, ``seed``, ``seconds``.

    Raises:
        EdgekitError: a non-Llama model, a bad calibration file, or an unwritable output.
    """
    from edgekit.data import calibration_sources
    from edgekit.models.families import get_family
    from edgekit.quant.api import calibration_ids, load_for_calibration

    out = Path(out)
    if not out.parent.is_dir():
        raise EdgekitError(f"output directory does not exist: {out.parent}")
    t0 = time.perf_counter()
    lm = load_for_calibration(spec, calib, threads)
    if lm.family != "llama":
        raise EdgekitError(f"edgekit imatrix writes llama.cpp's tensor names for Llama-family models; {spec} is "
                           f"{lm.family}")
    ids = calibration_ids(lm, calib, calib_samples, calib_seqlen, seed)
    im = compute_imatrix(lm.model, get_family(lm.family), ids, batch_size, progress)
    im.datasets = calibration_sources(calib)
    write_imatrix(out, im)
    return {"path": str(out), "tensors": len(im.sums), "calib_samples": int(ids.shape[0]),
            "calib_seqlen": int(ids.shape[1]), "seed": seed, "seconds": round(time.perf_counter() - t0, 2)}
