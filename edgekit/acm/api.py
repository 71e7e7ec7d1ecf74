"""The ACM stage, model spec in, ACM directory out: :func:`convert_model` (what ``edgekit acm`` runs).

Order of work: every cheap check first (output directory, text files, the config), then load the model and check
its architecture and learner width, then the calibration windows, the frozen teacher copy, phases 1 and 2
(:func:`edgekit.acm.convert.convert_` through the config registry's ``quantize_`` shape), phase 3
(:func:`edgekit.acm.finetune.finetune`), and the directory written by rank 0 (:func:`edgekit.acm.store.save_acm`).
Run under ``torchrun --nproc_per_node P`` the same call is data-parallel (:mod:`edgekit.acm.distributed`).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path

from edgekit.acm import distributed
from edgekit.acm.store import check_output_dir, is_acm_dir
from edgekit.config import AcmConfig
from edgekit.errors import EdgekitError


@dataclass
class AcmResult:
    """What :func:`convert_model` produced (``path`` is None on ranks other than 0)."""

    path: Path | None
    config: AcmConfig
    report: dict


def convert_model(spec: str, config: AcmConfig, out, *, data: list[str] | None = None, batch_size: int = 4,
                  threads: int | None = None, progress: bool = True) -> AcmResult:
    """Convert model ``spec`` into an ACM model with ``config`` and write the directory ``out``.

    Args:
        spec: a model spec (alias, HF directory, .gguf, hub id) of a llama-family decoder.
        config: the ACM config (budget, learners, phases).
        out: a new or empty directory.
        data: training text files (plain text or JSONL); default the calibration text (CPython's pydoc topics).
        batch_size: windows per forward pass of the frozen model in phases 1 and 2.
        threads: torch intra-op threads (default: torch's choice).
        progress: show progress bars.

    Raises:
        EdgekitError: the output exists and is not empty, a text file is unreadable, the spec is an ACM directory
            already, the architecture has no gated FFN, or the learner width does not fit the FFN; each before any
            training.
    """
    import torch

    from edgekit import data as textdata
    from edgekit.acm.convert import check_acm_model
    from edgekit.acm.finetune import finetune
    from edgekit.acm.store import save_acm
    from edgekit.models import load_model
    from edgekit.models.families import get_family
    from edgekit.quant.api import peak_rss_mb, quantize_

    out = check_output_dir(out)
    if is_acm_dir(spec):
        raise EdgekitError(f"{spec} is an ACM model already; convert its source model instead")
    for f in data or ():
        textdata.read_text_file(f)
    dist = distributed.init()
    if threads:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    lm = load_model(spec)
    family = get_family(lm.family)
    width = check_acm_model(family, lm.task, lm.config, config)
    max_pos = getattr(lm.config, "max_position_embeddings", None)
    if max_pos and config.calib_seqlen > max_pos:
        raise EdgekitError(f"calib_seqlen {config.calib_seqlen} exceeds the model's {max_pos} positions")
    ids = textdata.calibration_windows(lm.tokenizer, data, config.calib_samples, config.calib_seqlen, config.seed)
    teacher = None
    if config.phase3.steps and "kl" in config.distill:
        teacher = copy.deepcopy(lm.model)  # the dense original, frozen: phase 3's KL target
    t_load = time.perf_counter() - t0
    report = quantize_(lm.model, config, family=family, calib_ids=ids, batch_size=batch_size,
                       progress=progress and dist.main, dist=dist)
    if dist.device != "cpu":
        lm.model.to(dist.device)
        if teacher is not None:
            teacher.to(dist.device)
    report.update(finetune(lm.model, teacher, ids, config, progress=progress, dist=dist))
    lm.model.to("cpu")
    report.update({"load_seconds": round(t_load, 2), "learner_width": width, "calib_samples": config.calib_samples,
                   "calib_seqlen": config.calib_seqlen, "world_size": dist.world,
                   "data": textdata.calibration_sources(data),
                   "peak_rss_mb": round(peak_rss_mb(), 1), "torch_threads": torch.get_num_threads()})
    path = None
    if dist.main:
        source = str(Path(spec).resolve()) if Path(spec).exists() else spec
        path = save_acm(out, lm.model, lm.tokenizer, family=family.name, config=config, source=source,
                        report=report)
    report["total_seconds"] = round(time.perf_counter() - t0, 2)
    distributed.finish(dist)
    return AcmResult(path, config, report)
