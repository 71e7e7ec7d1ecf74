"""The llama.cpp anchors of ``edgekit bench quality``: rows scored by llama.cpp on the same windows as edgekit's.

* ``q4_0``: llama.cpp's own Q4_0 requantization of the source GGUF (no calibration: one row per set);
* ``q4_0-imatrix``: the same with an importance matrix that ``edgekit imatrix``'s code computes on the float model
  over the calibration windows of each seed, exactly those ``edgekit quantize --seed S`` uses (one row per seed);
* ``gguf-export``: each edgekit artifact exported to GGUF (``edgekit export``) and run by llama.cpp, to check that
  the gain carries into llama.cpp (compare with the artifact's own row);
* ``autoround``, ``autoround-light``, ``autoround-opt-rtn``: Intel's AutoRound on each seed's calibration windows,
  exported by AutoRound to Q4_0 GGUF and run by llama.cpp (:mod:`edgekit.bench.autoround`; an extra package).
"""

from __future__ import annotations

import time
from pathlib import Path

from edgekit.errors import EdgekitError

ANCHORS = ("q4_0", "q4_0-imatrix", "gguf-export", "autoround", "autoround-light", "autoround-opt-rtn")
DEFAULT_ANCHORS = ("q4_0", "q4_0-imatrix")


def parse_anchors(text: str) -> tuple[str, ...]:
    """``"q4_0,gguf-export"`` → the anchor names; ``"none"`` or ``""`` → none.

    Raises:
        EdgekitError: an unknown or repeated name.
    """
    names = [a.strip() for a in text.split(",") if a.strip()]
    if names == ["none"]:
        return ()
    bad = [a for a in names if a not in ANCHORS]
    if bad or len(set(names)) != len(names):
        raise EdgekitError(f"--anchors takes distinct names among {', '.join(ANCHORS)} (or none); got {text!r}")
    return tuple(names)


def llamacpp_rows(path: str, name: str, by_set, tag, threads: int, seed=None, **extra) -> list[dict]:
    """One row per evaluation set: llama.cpp's perplexity of the GGUF ``path`` on that set's windows.

    ``tag(set, seed)`` gives the row's set fields; ``extra`` is copied into every row.
    """
    from edgekit.bench.llamacpp_baseline import perplexity_llamacpp

    rows = []
    for set_name, windows in by_set:
        r = perplexity_llamacpp(path, windows, threads=threads)
        rows.append({**tag(set_name, seed), "name": name, "engine": "llama.cpp", "perplexity": r["perplexity"],
                     "tokens": r["tokens"], **extra})
    return rows


def imatrix_rows(ref, source_gguf: str, by_set, seeds, tmp: Path, tag, threads: int,
                 calib_samples: int | None = None, calib_seqlen: int | None = None) -> list[dict]:
    """llama.cpp Q4_0 with an edgekit importance matrix, one matrix per calibration seed, on every set.

    ``ref`` is the loaded float model (``load_model``); its forward passes over the calibration windows of each seed
    (``edgekit quantize``'s defaults unless ``calib_samples``/``calib_seqlen`` say otherwise) give the statistics.
    """
    from edgekit.bench.llamacpp_baseline import requantize_gguf
    from edgekit.data import calibration_sources
    from edgekit.export.imatrix import compute_imatrix, write_imatrix
    from edgekit.models.families import get_family
    from edgekit.quant.api import calibration_ids

    if ref.family != "llama":
        raise EdgekitError(f"the q4_0-imatrix anchor needs a Llama-family model, not {ref.family}")
    rows = []
    for seed in seeds:
        t0 = time.perf_counter()
        ids = calibration_ids(ref, None, calib_samples, calib_seqlen, seed)
        im = compute_imatrix(ref.model, get_family(ref.family), ids, progress=False)
        im.datasets = calibration_sources()
        im_path = write_imatrix(tmp / f"imatrix-seed{seed}.gguf", im)
        out = tmp / f"llamacpp-q4_0-imatrix-seed{seed}.gguf"
        requantize_gguf(source_gguf, str(out), "q4_0", imatrix=str(im_path), threads=threads)
        secs = round(time.perf_counter() - t0, 1)
        rows += llamacpp_rows(str(out), "llama.cpp Q4_0 + edgekit imatrix", by_set, tag, threads, seed=seed,
                              bits_per_weight=4.5, quantize_seconds=secs,
                              calib=f"{ids.shape[0]}x{ids.shape[1]}")
    return rows


def export_rows(artifact: Path, label: str, by_set, tag, threads: int, seed=None) -> list[dict]:
    """The artifact exported to GGUF and scored by llama.cpp (the export's parity with edgekit's own rows)."""
    from edgekit.export.gguf import export_artifact_gguf

    out = artifact.with_suffix(".gguf")
    export_artifact_gguf(str(artifact), str(out))
    return llamacpp_rows(str(out), f"{label} GGUF export", by_set, tag, threads, seed=seed, bits_per_weight=4.5)
