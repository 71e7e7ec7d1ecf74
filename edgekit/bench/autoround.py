"""The AutoRound anchor of ``edgekit bench quality``: Intel's ``auto-round`` quantizing to Q4_0 GGUF, scored by llama.cpp.

AutoRound (sign-gradient tuning of each weight's rounding and each group's clipping, block by block, towards the
float block's output) is run through its own Python API with the ``gguf:q4_0`` scheme and exported by its own GGUF
writer, so the row is what an AutoRound user gets. It sees exactly the calibration windows ``edgekit quantize --seed
S`` uses (128 × 512 tokens by default), as a list of token-id tensors, never a hub dataset. The iteration budget
and learning rate are AutoRound's recipes (``cli/main.py``'s ``RECIPES``): ``default`` (200 iterations, lr 1 /
iters), ``light`` (50 iterations, lr 5e-3) or ``opt-rtn`` (no tuning, only its importance-weighted scale search: what
AutoRound's log recommends for GGUF formats); its batch of 8 windows is kept. The package is an extra of the
benchmark environment (``pip install 'edgekit[anchors]'``), not a dependency of edgekit.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from edgekit.errors import EdgekitError

# AutoRound's own recipes (auto_round/cli/main.py, RECIPES), minus the calibration shape, which is edgekit's.
# "opt-rtn" is no tuning but its importance-weighted scale search, what AutoRound recommends for GGUF formats.
RECIPES = {"default": {"iters": 200, "lr": None}, "light": {"iters": 50, "lr": 5e-3},
           "opt-rtn": {"iters": 0, "lr": None, "disable_opt_rtn": False}}
# the anchor names of ``bench quality --anchors`` and the AutoRound recipe each runs
ANCHOR_RECIPES = {"autoround": "default", "autoround-light": "light", "autoround-opt-rtn": "opt-rtn"}
BATCH_SIZE = 8


def require_autoround():
    """Import ``auto_round`` or raise one clear error saying how to install it."""
    try:
        import auto_round
    except ImportError:
        raise EdgekitError("the autoround anchors need Intel's auto-round: pip install 'edgekit[anchors]' "
                           "(auto-round==0.16.1) in the environment that runs the benchmark") from None
    return auto_round


def quantize_autoround(ref, ids, out: Path, recipe: str, seed: int = 0) -> dict:
    """Quantize the float model ``ref`` (``load_model``) with AutoRound to a Q4_0 GGUF file at ``out``.

    ``ids`` are the calibration windows ``[n, seqlen]``. The model is first saved as a Hugging Face directory next to
    ``out`` (removed after) because AutoRound's GGUF writer reads the config and tokenizer from
    ``model.name_or_path``.
    ``ref.model`` is modified in place (its linears become quantized): load a fresh model for anything after.

    Returns:
        ``{"quantize_seconds", "autoround_recipe", "iters", "lr", "calib", "autoround_version"}``.
    """
    auto_round = require_autoround()
    if recipe not in RECIPES:
        raise EdgekitError(f"AutoRound recipe must be one of {', '.join(RECIPES)}, got {recipe!r}")
    cfg = RECIPES[recipe]
    n, seqlen = ids.shape
    tmp_dir = out.parent / (out.name + ".autoround-tmp")
    hf_dir = tmp_dir / "hf-source"
    try:  # AutoRound writes into a folder of its own naming; only a complete single file is moved to ``out``
        # a model loaded from GGUF has no `architectures`; AutoRound's GGUF layer rules look the architecture up there
        ref.model.config.architectures = [type(ref.model).__name__]
        ref.model.save_pretrained(hf_dir, safe_serialization=True)
        ref.tokenizer.save_pretrained(hf_dir)
        # the GGUF-built tokenizer saves a `tokenizer.model` that is no SentencePiece model (SmolLM2 is byte-level
        # BPE); without it AutoRound's writer takes the vocabulary from tokenizer.json
        (hf_dir / "tokenizer.model").unlink(missing_ok=True)
        ref.model.config._name_or_path = ref.model.name_or_path = str(hf_dir)
        t0 = time.perf_counter()
        ar = auto_round.AutoRound(ref.model, tokenizer=ref.tokenizer, scheme="gguf:q4_0",
                                  dataset=[ids[i:i + 1] for i in range(n)], nsamples=n, seqlen=seqlen,
                                  batch_size=BATCH_SIZE, seed=seed, device_map="cpu", **cfg)
        ar.quantize_and_save(str(tmp_dir / "out"), format="gguf:q4_0")
        made = sorted((tmp_dir / "out").rglob("*.gguf"))
        if len(made) != 1:
            raise EdgekitError(f"AutoRound wrote {len(made)} GGUF files in {tmp_dir / 'out'}, expected one")
        made[0].replace(out)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    secs = round(time.perf_counter() - t0, 1)
    return {"quantize_seconds": secs, "autoround_recipe": recipe, "iters": cfg["iters"], "lr": cfg["lr"],
            "calib": f"{n}x{seqlen}", "autoround_version": auto_round.__version__}


def autoround_rows(spec: str, recipe: str, by_set, seeds, tmp: Path, tag, threads: int) -> list[dict]:
    """AutoRound's Q4_0 GGUF for each calibration seed, scored by llama.cpp on every set (one row per seed and set)."""
    from edgekit.bench.anchors import llamacpp_rows
    from edgekit.models import load_model
    from edgekit.quant.api import calibration_ids

    rows = []
    for seed in seeds:
        ref = load_model(spec)  # AutoRound quantizes in place: a fresh float model per seed
        if ref.family != "llama":
            raise EdgekitError(f"the autoround anchor needs a Llama-family model, not {ref.family}")
        ids = calibration_ids(ref, None, None, None, seed)
        out = tmp / f"autoround-{recipe}-q4_0-seed{seed}.gguf"
        rep = quantize_autoround(ref, ids, out, recipe, seed=seed)
        del ref
        rows += llamacpp_rows(str(out), f"AutoRound {recipe} (Q4_0 GGUF, its own export)", by_set, tag, threads,
                              seed=seed, bits_per_weight=4.5, **rep)
    return rows
