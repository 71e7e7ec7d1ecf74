"""The quantization API: :func:`quantize_` applies a registered scheme to a torch model in place (torchao's shape);
:func:`quantize_model` is the whole quantize stage: load → calibration windows → ``quantize_`` → one ``.ekq``
artifact.

Everything is validated before the (minutes-long) calibration starts, so a bad input fails fast and nothing is
written.
"""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass
from pathlib import Path

from torch import nn

import edgekit.acm.convert  # noqa: F401  (registers the ACM handler)
import edgekit.quant.agile  # noqa: F401  (registers the Agile-Quant handler)
from edgekit.config import HANDLERS, AgileQuantConfig
from edgekit.errors import EdgekitError


def quantize_(model: nn.Module, config, **context) -> dict:
    """Quantize ``model`` in place with ``config``.

    Args:
        model: the float model.
        config: a registered config object, e.g. :class:`edgekit.config.AgileQuantConfig`.
        **context: what the handler needs (``family`` (a Family or its name), ``calib_ids``, ``batch_size``,
            ``progress``).

    Returns:
        The handler's report dict.

    Raises:
        EdgekitError: if no handler is registered for the config's type.
    """
    if isinstance(context.get("family"), str):  # a LoadedModel's .family is the family's name
        from edgekit.models.families import get_family

        context["family"] = get_family(context["family"])
    handler = HANDLERS.get(type(config))
    if handler is None:
        known = ", ".join(sorted(t.__name__ for t in HANDLERS))
        raise EdgekitError(f"no quantization handler for {type(config).__name__}; known configs: {known}")
    return handler(model, config, **context)


@dataclass
class QuantizeResult:
    """What :func:`quantize_model` produced."""

    path: Path
    config: AgileQuantConfig
    report: dict


def default_output(spec: str, recipe_name: str) -> Path:
    """``out/<model>-<recipe>.ekq`` for a model spec."""
    stem = Path(spec.rstrip("/")).name.removesuffix(".gguf") or "model"
    return Path("out") / f"{stem}-{recipe_name}.ekq"


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def resolve_prune(config: AgileQuantConfig, lm, ids) -> AgileQuantConfig:
    """Spell out the pruning layers (the start layer from the float model's attention on one calibration window)."""
    p = config.prune
    if p.ratio == 0 and p.layers is None and p.start_layer is None:
        return config
    if lm.family != "llama" or lm.task != "causal-lm":
        raise EdgekitError(f"token pruning runs llama-family causal LMs; {lm.family} {lm.task} has no pruning")
    import dataclasses

    from edgekit.prune import schedule

    n_layers = int(lm.config.num_hidden_layers)
    mass = None
    if p.layers is None and p.start_layer is None:
        from edgekit.engines.fake import PrunedLlama

        fwd = PrunedLlama(lm.model)
        fwd.eval(ids[0], all_logits=False)
        mass = fwd.mass
    return dataclasses.replace(config, prune=schedule.resolve(p, n_layers, mass))


def load_for_calibration(spec: str, calib: list[str] | None = None, threads: int | None = None):
    """Check the calibration files (cheap, before anything heavy), set torch's threads, then load model ``spec``
    (an ACM model directory, :mod:`edgekit.acm.store`, loads with its gates).

    Raises:
        EdgekitError: a calibration file that cannot be read, or a model that cannot be loaded.
    """
    import torch

    from edgekit import data
    from edgekit.models import load_model

    for f in calib or ():
        data.read_text_file(f)
    if threads:
        torch.set_num_threads(threads)
    from edgekit.acm.store import is_acm_dir, load_acm

    return load_acm(spec) if is_acm_dir(spec) else load_model(spec)


def calibration_ids(lm, calib: list[str] | None = None, calib_samples: int | None = None,
                    calib_seqlen: int | None = None, seed: int = 0):
    """The calibration windows of a loaded model (``load_model``), as ``edgekit quantize`` and ``edgekit imatrix``
    use them: 128 × 512 tokens for decoders, 512 × 32 for encoders (framed by their special tokens) by default; an
    encoder-decoder's are 64 windows of a 512-token prefix and its 128-token continuation (seqlen + seqlen / 4,
    split by :func:`seq2seq_pairs`).

    Raises:
        EdgekitError: if the windows are longer than the model's positions or the text is too short.
    """
    from edgekit import data

    encoder = lm.task == "encoder"
    calib_samples = calib_samples or (512 if encoder else 64 if lm.task == "seq2seq-lm" else 128)
    seqlen = calib_seqlen or (32 if encoder else 512)
    if lm.task == "seq2seq-lm":
        seqlen += continuation_len(seqlen)  # quantize_model splits them again
    max_pos = getattr(lm.config, "max_position_embeddings", None)
    if max_pos and seqlen > max_pos:
        raise EdgekitError(f"--calib-seqlen {seqlen} exceeds the model's {max_pos} positions")
    return data.calibration_windows(lm.tokenizer, calib, calib_samples, seqlen, seed, special_tokens=encoder)


def continuation_len(prefix_len: int) -> int:
    """Tokens of continuation an encoder-decoder calibrates on after a prefix of ``prefix_len`` (a quarter)."""
    return max(1, prefix_len // 4)


def seq2seq_pairs(ids, decoder_start: int, cont: int):
    """Calibration windows ``[n, L + T]`` as an encoder-decoder's pairs: the encoder reads the prefix of ``L``, the
    decoder ``[decoder_start ; continuation[:-1]]`` of ``T = cont`` (teacher forcing, as the student was trained).

    Returns:
        ``(encoder ids [n, L], decoder ids [n, T])``.
    """
    import torch

    prefix, target = ids[:, :-cont], ids[:, -cont:]
    start = torch.full_like(target[:, :1], decoder_start)
    return prefix, torch.cat([start, target[:, :-1]], dim=1)


def quantize_model(spec: str, config: AgileQuantConfig, out: str | Path, *, calib: list[str] | None = None,
                   calib_samples: int | None = None, calib_seqlen: int | None = None, seed: int = 0,
                   batch_size: int = 8, threads: int | None = None, progress: bool = True) -> QuantizeResult:
    """Quantize the model ``spec`` with ``config`` and write the artifact to ``out``.

    Args:
        spec: a model spec (alias, HF directory, .gguf, hub id).
        config: the scheme.
        out: artifact path (``.ekq``); written atomically.
        calib: calibration files (text or JSONL), default CPython's pydoc topics.
        calib_samples, calib_seqlen, seed: the calibration windows. Defaults: 128 × 512 tokens for decoders;
            512 × 32 for encoders, which serve sentences (short windows measured best on MiniLM).
        batch_size: sequences per calibration forward pass.
        threads: torch intra-op threads (default: torch's choice).
        progress: show progress bars.

    Returns:
        The :class:`QuantizeResult` (artifact path, config, report with timings and peak RSS).
    """
    import torch

    from edgekit import data
    from edgekit.acm.modules import acm_modules, set_mode
    from edgekit.models.families import get_family
    from edgekit.quant.serialize import save_artifact

    out = Path(out)
    if out.exists() and out.is_dir():
        raise EdgekitError(f"output {out} is a directory; give a file path such as {out / 'model.ekq'}")
    t0 = time.perf_counter()
    lm = load_for_calibration(spec, calib, threads)
    family = get_family(lm.family)
    ids = calibration_ids(lm, calib, calib_samples, calib_seqlen, seed)
    calib_samples, seqlen = ids.shape
    t_load = time.perf_counter() - t0
    config = resolve_prune(config, lm, ids)
    # an ACM model's learners are ordinary linears: calibrated with every learner running (the statistics of the
    # dense FFN they concatenate to, so a rarely chosen learner is not quantized from few tokens); gates stay float
    acm = bool(acm_modules(lm.model))
    if acm:
        set_mode(lm.model, "dense")
    pairs = {}
    if family.decoder is not None:  # an encoder-decoder: prefix -> continuation pairs
        cont = continuation_len(calib_seqlen or 512)
        ids, pairs["decoder_ids"] = seq2seq_pairs(ids, int(lm.config.decoder_start_token_id), cont)
        seqlen = ids.shape[1]
        pairs_report = {"calib_continuation": int(pairs["decoder_ids"].shape[1])}
    else:
        pairs_report = {}
    report = quantize_(lm.model, config, family=family, calib_ids=ids, batch_size=batch_size, progress=progress,
                       **pairs)
    report.update(pairs_report)
    if acm:
        set_mode(lm.model, "gated")
        from edgekit.acm.store import read_info

        report["acm"] = {"n_learners": acm_modules(lm.model)[0].n_learners, "budget": read_info(spec)["acm"]["budget"],
                         "calibrated": "dense (k = N)"}
    report.update({"load_seconds": round(t_load, 2), "quantize_seconds": round(report.pop("seconds"), 2),
                   "calib_samples": calib_samples, "calib_seqlen": seqlen, "seed": seed,
                   "calib_source": data.calibration_sources(calib),
                   "recipe": config.describe(), "peak_rss_mb": round(peak_rss_mb(), 1),
                   "torch_threads": torch.get_num_threads()})
    path = save_artifact(out, lm.model, lm.tokenizer, family=family, task=lm.task,
                         source=str(Path(spec).resolve()) if Path(spec).exists() else spec, quant_cfg=config,
                         report=report)
    report["total_seconds"] = round(time.perf_counter() - t0, 2)
    return QuantizeResult(path, config, report)
