"""``edgekit acm-eval``: perplexity of an ACM model at a chosen operating point, and what its gates executed.

An ACM model directory runs on the ``fake`` engine; a quantized ACM artifact on any engine that runs gates
(``fake``, ``kernels``, ``runtime``: :class:`edgekit.engines.AcmSession`), through the one perplexity loop
(:func:`edgekit.eval.perplexity.session_perplexity`) on the named evaluation sets of :mod:`edgekit.data`. The
operating point is the gates' own choice, shifted by ``gate_bias`` (> 0 runs more learners, < 0 fewer: one model
gives a curve), or a forced k for every token (the static-width point), or the dense FFN. Every row reports the mean
executed FFN fraction (learners plus the gate's own cost) and the result carries each layer's k histogram
(:func:`edgekit.acm.modules.ffn_stats`).
"""

from __future__ import annotations

from edgekit.errors import EdgekitError


def acm_info(path: str) -> dict:
    """``n_learners``, ``learner_width`` and ``budget`` (None when unknown) of an ACM directory or ACM artifact.

    Raises:
        EdgekitError: ``path`` is neither.
    """
    from edgekit.acm.store import is_acm_dir, read_info
    from edgekit.artifact import is_artifact, read_artifact

    if is_acm_dir(path) or not is_artifact(path):
        info = read_info(path)  # the error for anything else names what to make
        return {"n_learners": int(info["n_learners"]), "learner_width": info["learner_width"],
                "budget": info["acm"]["budget"]}
    art = read_artifact(path)
    if art.acm is None:
        raise EdgekitError(f"{path} has no adaptive computation modules; quantize an ACM model directory "
                           "(edgekit acm MODEL -o DIR, then edgekit quantize DIR)")
    return {"n_learners": int(art.acm["n_learners"]), "learner_width": art.acm["learner_width"],
            "budget": (art.report.get("acm") or {}).get("budget")}


def evaluate_acm(path: str, sets: list[str] | None = None, *, ctx: int = 512, max_tokens: int = 4096,
                 gate_bias: float = 0.0, k: int | None = None, dense: bool = False, threads: int | None = None,
                 engine: str | None = None, progress: bool = True) -> dict:
    """Perplexity and executed FFN fraction of the ACM directory or ACM artifact ``path`` on each named set.

    Args:
        path: an ACM model directory (``edgekit acm ... -o DIR``) or its quantized artifact.
        sets: evaluation set names (default ``["dev"]``).
        ctx, max_tokens: the windows (as ``edgekit eval``).
        gate_bias: added to logit k as ``gate_bias * k / N`` (exclusive with ``k`` and ``dense``).
        k: run exactly k learners in every FFN (0..N).
        dense: run every FFN dense (k = N, the source model's FFN up to training).
        threads: torch threads.
        engine: ``fake`` (default), or for an artifact ``kernels`` / ``runtime``.
        progress: show progress bars.

    Returns:
        ``{"model", "mode", "gate_bias", "k", "n_learners", "rows": [{"set", "set_role", "perplexity", "nll",
        "tokens", "windows", "ctx", "ffn_fraction", "learner_fraction", "gate_fraction"}], "layers": [{"layer",
        "k_hist", "fraction"}]}`` (histograms summed over all sets).

    Raises:
        EdgekitError: not an ACM directory, an unknown set, or conflicting or out-of-range operating points.
    """
    from edgekit import data
    from edgekit.engines import ENGINES, canonical, open_session
    from edgekit.eval.perplexity import session_perplexity

    info = acm_info(path)
    n = info["n_learners"]
    if engine is not None and not ENGINES[canonical(engine)].acm:
        raise EdgekitError(f"--engine {engine} does not run ACM gates; use fake, kernels or runtime")
    if sum([dense, k is not None, bool(gate_bias)]) > 1:
        raise EdgekitError("--gate-bias, --k and --dense are exclusive: pick one operating point")
    if k is not None and not 0 <= k <= n:
        raise EdgekitError(f"--k must be in 0..{n} (this model has {n} learners per FFN), got {k}")
    sets = data.parse_sets(sets or ["dev"])
    sess = open_session(str(path), engine or "fake", max_ctx=ctx, threads=threads, all_logits=True)
    sess.set_acm(gate_bias=gate_bias, force_k=n if dense else k)  # k = N is the dense FFN, bit for bit
    rows, total = [], None
    for name in sets:
        windows = data.eval_windows(sess.tokenizer, None, ctx, max_tokens, name)
        sess.reset_acm_stats()
        row = {"set": name, "set_role": data.get_eval_set(name).role,
               **session_perplexity(sess, windows, progress, desc=f"acm-eval {name}")}
        st = sess.acm_stats()
        if dense:
            st = {**st, "ffn_fraction": 1.0, "learner_fraction": 1.0, "gate_fraction": 0.0}
        row.update({key: st[key] for key in ("ffn_fraction", "learner_fraction", "gate_fraction")})
        rows.append(row)
        if total is None:
            total = [layer["k_hist"] for layer in st["layers"]]
        else:
            total = [[a + b for a, b in zip(t, layer["k_hist"])] for t, layer in zip(total, st["layers"])]
    layers = []
    for i, hist in enumerate([] if dense else total or []):  # dense: the gates are not run, nothing to count
        count = sum(hist)
        layers.append({"layer": i, "k_hist": hist,
                       "fraction": sum(j * c for j, c in enumerate(hist)) / (count * n) if count else None})
    sess.close()
    return {"model": str(path), "engine": canonical(engine or "fake"),
            "mode": "dense" if dense else ("static" if k is not None else "gated"),
            "gate_bias": gate_bias, "k": k, "n_learners": n, "learner_width": info["learner_width"],
            "budget": info["budget"], "rows": rows, "layers": layers}
