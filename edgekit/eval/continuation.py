"""Honest quality of token pruning: continuation perplexity, plus all-token perplexity, never kept-tokens-only.

Continuation perplexity: prefill a prefix of ``L`` tokens with pruning, then score the next ``T`` tokens with full
compute, attending to the pruned cache, exactly as a user's generation would. The prefix's own perplexity over *all*
its tokens is reported as well: a dropped token's prediction comes from its hidden state frozen where it was dropped.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from edgekit.config import PruneConfig
from edgekit.engines import PruningSession
from edgekit.errors import EdgekitError
from edgekit.eval.perplexity import token_nll
from edgekit.prune import schedule


def continuation_windows(tokens: np.ndarray, prefix_len: int, score_len: int, max_windows: int | None = None):
    """Non-overlapping windows of ``prefix_len + score_len`` tokens, ``[W, L + T]`` int32.

    Raises:
        EdgekitError: lengths below 2 / 1, or text shorter than one window.
    """
    if prefix_len < 2 or score_len < 1:
        raise EdgekitError(f"--prefix-len must be >= 2 and --score-len >= 1 (got {prefix_len}, {score_len})")
    span = prefix_len + score_len
    n = len(tokens) // span
    if max_windows:
        n = min(n, max_windows)
    if n == 0:
        raise EdgekitError(f"the evaluation text has {len(tokens)} tokens, fewer than one window of "
                           f"{prefix_len} + {score_len}; pass a longer --data file")
    return np.asarray(tokens[: n * span], dtype=np.int32).reshape(n, span)


def layer_mass(engine: PruningSession, ids: np.ndarray) -> list[float]:
    """Per-layer mean attention on the first token over one unpruned prefill of ``ids``."""
    engine.set_pruning(None)
    engine.reset()
    engine.eval(ids, all_logits=False)
    return engine.first_token_mass()


def survivors(engine: PruningSession, n: int) -> int:
    """Tokens of the last prefill (``n`` long) that passed every pruning layer."""
    kept = engine.last_kept()
    return len(kept[-1]) if kept else n


def resolve_for(engine: PruningSession, base: PruneConfig, n_layers: int, sample: np.ndarray, ratio=None,
                start_layer=None, layers=None) -> PruneConfig:
    """The artifact's pruning config with command-line overrides, its layers resolved (from ``sample``'s attention
    statistics when no start layer is known)."""
    cfg = schedule.with_overrides(base, ratio, start_layer, layers)
    if cfg.layers is None and cfg.start_layer is None:
        return schedule.resolve(cfg, n_layers, layer_mass(engine, sample))
    return schedule.resolve(cfg, n_layers)


def score_window(engine: PruningSession, w: np.ndarray, prefix_len: int, all_tokens: bool = True) -> dict:
    """Prefill ``w[:prefix_len]`` from an empty cache (pruned per the engine's schedule), then score the rest.

    With ``all_tokens`` False the prefill returns only its last logits, so ``ttft_s`` (prefill wall time, last-token
    logits included) measures what a user waits for; the prefix's own NLL is then not computed.

    Returns:
        ``{"cont_nll": [T], "prefix_nll": [L-1] or None, "ttft_s", "kept"}`` (kept: the fraction of the prefix that
        passed every pruning layer).
    """
    engine.reset()
    t0 = time.perf_counter()
    out = engine.eval(w[:prefix_len], all_logits=all_tokens)
    ttft = time.perf_counter() - t0
    pre = token_nll(out[:-1], w[1:prefix_len]) if all_tokens else None
    last = out[-1] if all_tokens else out
    kept = survivors(engine, prefix_len) / prefix_len
    rest = engine.eval(w[prefix_len:-1], all_logits=True).reshape(-1, last.shape[-1]) if len(w) - prefix_len > 1 \
        else np.zeros((0, last.shape[-1]), np.float32)
    cont = token_nll(np.vstack([last[None], rest]), w[prefix_len:])
    return {"cont_nll": cont, "prefix_nll": pre, "ttft_s": ttft, "kept": kept}


def summarize(parts: list[dict], prefix_len: int, score_len: int, ratio: float) -> dict:
    """One result row from :func:`score_window` outputs."""
    pre = [p["prefix_nll"] for p in parts if p["prefix_nll"] is not None]
    return {"prefix_len": prefix_len, "score_len": score_len, "prune_ratio": float(ratio),
            "continuation_ppl": math.exp(float(np.concatenate([p["cont_nll"] for p in parts]).mean())),
            "prefix_ppl_all_tokens": math.exp(float(np.concatenate(pre).mean())) if pre else None,
            "ttft_s": float(np.median([p["ttft_s"] for p in parts])),
            "kept_fraction": float(np.mean([p["kept"] for p in parts])), "windows": len(parts)}


def continuation_eval(engine: PruningSession, windows: np.ndarray, prefix_len: int, cfg: PruneConfig | None,
                      all_tokens: bool = True, progress: bool = True, label: str = "") -> dict:
    """Continuation (and all-token prefix) perplexity of ``engine`` with pruning ``cfg`` over ``windows``
    (:func:`score_window` per window, :func:`summarize` over them)."""
    engine.set_pruning(cfg)
    parts = [score_window(engine, w, prefix_len, all_tokens)
             for w in tqdm(windows, desc=label or "continuation", unit="window", disable=not progress)]
    ratio = cfg.ratio if cfg is not None and cfg.layers else 0.0
    return summarize(parts, prefix_len, int(windows.shape[1] - prefix_len), ratio)


def open_engine(spec: str, engine: str | None, prefix_len: int, score_len: int, max_windows: int = 8,
                data_paths=None):
    """An artifact in a :class:`~edgekit.engines.PruningSession` of ``engine`` (runtime / edgekit, also the default
    None, or the PyTorch path: fake, kernels) and the held-out windows to run on it.

    Returns:
        ``(session, the artifact's PruneConfig, n_layers, windows)``, windows ``[N, prefix_len + score_len]`` from
        :func:`continuation_windows`.

    Raises:
        EdgekitError: ``spec`` is not an artifact, a llama decoder the engine cannot run, or an engine that cannot
            prune (llama.cpp, ONNX Runtime).
    """
    from edgekit.artifact import is_artifact, read_artifact
    from edgekit.engines import open_session, pruning_engine

    engine = pruning_engine(engine)
    if not is_artifact(spec):
        if str(spec).endswith(".ekq"):
            read_artifact(spec)  # the precise error
        raise EdgekitError(f"token pruning evaluates a quantized llama artifact (.ekq); {spec} is not one "
                           f"(edgekit quantize MODEL -o model.ekq)")
    art = read_artifact(spec)
    if art.family != "llama" or art.task != "causal-lm":
        raise EdgekitError(f"token pruning runs llama-family causal LMs; {spec} is a {art.family} {art.task}")
    from edgekit import data
    from edgekit.config import from_dict

    n_layers = int(art.model_config["num_hidden_layers"])
    base = from_dict(PruneConfig, art.quant.get("prune"), "edgekit.quant.prune")
    sess = open_session(spec, engine, max_ctx=prefix_len + score_len, pruning=True)
    windows = continuation_windows(data.tokenize_docs(sess.tokenizer, data.load_texts(data_paths, "eval")),
                                   prefix_len, score_len, max_windows)
    return sess, base, n_layers, windows


def evaluate_continuation(spec: str, data_paths=None, prefix_len: int = 1024, score_len: int = 128,
                          ratio: float | None = None, start_layer: int | None = None, layers=None,
                          engine: str = "runtime", max_windows: int = 8, progress: bool = True) -> dict:
    """``edgekit eval ARTIFACT --prefix-len L --score-len T [--prune-ratio β]``: the unpruned model and the pruned
    one on the same windows of held-out text.

    Returns:
        A JSON-ready dict with ``rows`` (unpruned first) and the resolved schedule.
    """
    eng, base, n_layers, windows = open_engine(spec, engine, prefix_len, score_len, max_windows, data_paths)
    cfg = resolve_for(eng, base, n_layers, windows[0, :prefix_len], ratio, start_layer, layers)
    rows = [{"model": f"{eng.label}, no pruning",
             **continuation_eval(eng, windows, prefix_len, None, progress=progress, label="unpruned")}]
    if cfg.ratio > 0:
        rows.append({"model": f"{eng.label}, prune {cfg.ratio:g}",
                     **continuation_eval(eng, windows, prefix_len, cfg, progress=progress, label="pruned")})
    for r in rows:
        r["continuation_delta_pct"] = 100.0 * (r["continuation_ppl"] / rows[0]["continuation_ppl"] - 1.0)
    return {"model": str(spec), "engine": engine, "data": [str(p) for p in data_paths] if data_paths
            else ["/usr/share/common-licenses (default held-out text)"],
            "schedule": {"ratio": cfg.ratio, "layers": list(cfg.layers), "keep_last": cfg.keep_last,
                         "survivors": schedule.plan(cfg, prefix_len)},
            "rows": rows}


def score_seq2seq_window(sess, w: np.ndarray, prefix_len: int) -> dict:
    """An encoder-decoder's continuation NLL on one window: the encoder reads ``w[:prefix_len]``, the decoder
    predicts ``w[prefix_len:]`` from its start token (teacher forcing). ``ttft_s``: encoding plus the first decoder
    step, what a user waits for before the first token.

    Returns:
        ``{"cont_nll": [T], "prefix_nll": None, "ttft_s", "kept": 1.0}`` (:func:`summarize`'s input).
    """
    t0 = time.perf_counter()
    sess.encode(w[:prefix_len])
    first = sess.eval([sess.decoder_start])
    ttft = time.perf_counter() - t0
    rest = sess.eval(w[prefix_len:-1], all_logits=True).reshape(-1, first.shape[-1]) if len(w) - prefix_len > 1 \
        else np.zeros((0, first.shape[-1]), np.float32)
    cont = token_nll(np.vstack([first[None], rest]), w[prefix_len:])
    return {"cont_nll": cont, "prefix_nll": None, "ttft_s": ttft, "kept": 1.0}


def evaluate_seq2seq_continuation(spec: str, data_paths=None, prefix_len: int = 512, score_len: int = 128,
                                  engine: str | None = None, max_windows: int = 8, compare_reference: bool = False,
                                  progress: bool = True) -> dict:
    """``edgekit eval ENCDEC --prefix-len L --score-len T``: an encoder-decoder's (a T5 student, its artifact or
    export) continuation perplexity on the windows of :func:`continuation_windows`; with ``compare_reference`` also
    the artifact's float source directory on the same windows, and each row's change against it (the last row).

    Raises:
        EdgekitError: the engine cannot run ``spec``, the text is too short, or the reference is not at hand.
    """
    from edgekit import data
    from edgekit.engines import open_session

    specs = [str(spec)]
    if compare_reference:
        from edgekit.artifact import is_artifact, read_artifact

        src = read_artifact(spec).source if is_artifact(spec) else None
        if not src or not Path(src).is_dir():
            raise EdgekitError(f"--compare-reference needs the artifact's float source directory ({src}) on this "
                               "machine")
        specs.append(src)
    rows, windows = [], None
    for i, s in enumerate(specs):
        sess = open_session(s, engine if i == 0 else "fake", max_ctx=score_len + 1, seq2seq=True)
        try:
            if windows is None:
                toks = data.tokenize_docs(sess.tokenizer, data.load_texts(data_paths, "eval"))
                windows = continuation_windows(toks, prefix_len, score_len, max_windows)
            parts = [score_seq2seq_window(sess, w, prefix_len)
                     for w in tqdm(windows, desc=f"continuation {i}", unit="window", disable=not progress)]
        finally:
            sess.close()
        label = sess.label if i == 0 else "float reference, PyTorch"
        rows.append({"model": f"{s} ({label})", **summarize(parts, prefix_len, score_len, 0.0)})
    for r in rows:  # against the float reference when there is one
        r["continuation_delta_pct"] = 100.0 * (r["continuation_ppl"] / rows[-1]["continuation_ppl"] - 1.0)
        r["continuation_nll"] = math.log(r["continuation_ppl"])
    return {"model": str(spec), "engine": engine, "data": [str(p) for p in data_paths] if data_paths
            else ["/usr/share/common-licenses (default held-out text)"], "rows": rows}
