"""Evaluation: perplexity of causal LMs over non-overlapping windows of held-out text, and embedding cosine of
quantized encoders against their float source.

A quantized artifact is evaluated through its real fake-quant path (QLinear: int8/int4-rounded activations times
dequantized int4 codes), never through the float weights it came from.
"""

from __future__ import annotations

import re

import torch

from edgekit.errors import EdgekitError
from edgekit.eval.perplexity import session_perplexity


def bits_per_weight(model) -> dict:
    """Storage bits per weight of the quantized linears, and of every parameter of the model."""
    from edgekit.quant.modules import QLinear

    qbits = qn = 0.0
    seen: set[int] = set()  # storage already counted; QLinear's dequantized weight cache is not stored
    for m in model.modules():
        if isinstance(m, QLinear):
            n = m.in_features * m.out_features
            qbits += n * m.qweight.bits_per_weight()
            qn += n
            seen.add(m.weight.data_ptr())
    fbits = fn = 0.0
    for p in list(model.parameters()) + list(model.buffers()):
        if p.data_ptr() in seen or not p.is_floating_point():
            continue
        seen.add(p.data_ptr())
        fbits += p.numel() * p.element_size() * 8
        fn += p.numel()
    return {"bits_per_weight": qbits / qn if qn else 32.0,
            "model_bits_per_weight": (qbits + fbits) / (qn + fn) if (qn + fn) else 32.0}


def sentences(text: str, limit: int = 256, min_words: int = 6, max_words: int = 60) -> list[str]:
    """Split text into real sentences (between ``min_words`` and ``max_words`` words), at most ``limit``."""
    parts = re.split(r"(?<=[.!?;:])\s+|\n\s*\n", text)
    out = []
    for s in parts:
        s = " ".join(s.split())
        if min_words <= len(s.split()) <= max_words:
            out.append(s)
        if len(out) >= limit:
            break
    return out


@torch.no_grad()
def embed(model, tokenizer, texts: list[str], batch: int = 32) -> torch.Tensor:
    """Mean-pooled, L2-normalized sentence embeddings (sentence-transformers' recipe for MiniLM)."""
    outs = []
    for i in range(0, len(texts), batch):
        enc = tokenizer(texts[i:i + batch], padding=True, truncation=True, max_length=256, return_tensors="pt")
        h = model(**enc).last_hidden_state
        m = enc["attention_mask"][..., None].float()
        e = (h * m).sum(1) / m.sum(1).clamp_min(1e-9)
        outs.append(torch.nn.functional.normalize(e, dim=-1))
    return torch.cat(outs)


def evaluate(spec: str, data_paths=None, ctx: int = 512, max_tokens: int = 4096, compare_reference: bool = False,
             progress: bool = True, engine: str | None = "fake", threads: int | None = None,
             sets: list[str] | None = None) -> dict:
    """Evaluate a model or artifact on held-out text.

    Causal LMs: perplexity (and, with ``compare_reference``, the float source's perplexity on the same windows).
    ``engine="kernels"`` runs the artifact's linears on the native integer kernels instead of the fake-quant path;
    ``runtime`` (alias ``edgekit``), ``llama.cpp`` and ``onnxruntime`` run an artifact, a ``.gguf`` file or an ONNX
    export in that engine (:mod:`edgekit.engines`; ``None`` picks onnxruntime for an ONNX export, else fake).
    Encoders: mean cosine similarity between the artifact's (or its ONNX export's) sentence embeddings and its
    float source's.

    ``sets`` names evaluation sets (:data:`edgekit.data.EVAL_SETS`) to score a causal LM on instead of
    ``data_paths``: every row then carries its ``set`` (and ``set_role``), one group of rows per set.

    Returns:
        A JSON-ready dict; its ``rows`` list holds one entry per evaluated model (and set).
    """
    from edgekit import data
    from edgekit.engines import open_session, pick_engine
    from edgekit.engines.fake import FakeSession

    engine = pick_engine(spec, engine)
    if sets is not None:
        sets = data.parse_sets(sets)
        if data_paths:
            raise EdgekitError("--data and --set are exclusive: a named set is its own text")
    if engine == "onnxruntime":
        from edgekit.engines.onnxruntime import export_info

        if export_info(spec).get("task") == "encoder":
            if sets is not None:
                raise EdgekitError("--set scores perplexity of causal LMs; an encoder is compared on --data "
                                   "sentences")
            return _evaluate_ort_encoder(spec, data_paths, threads)
    sess = open_session(spec, engine, max_ctx=ctx, threads=threads, all_logits=True)
    if not isinstance(sess, FakeSession):
        if sets is not None:
            rows = [{**_set_keys(name), "model": sess.label, **session_perplexity(sess, w, progress)}
                    for name, w in _set_windows(sess.tokenizer, sets, ctx, max_tokens)]
            return {"model": str(spec), "task": "causal-lm", "engine": engine, "sets": sets, "rows": rows}
        windows = data.eval_windows(sess.tokenizer, data_paths, ctx, max_tokens)
        row = {"model": sess.label, **session_perplexity(sess, windows, progress)}
        return {"model": str(spec), "task": "causal-lm", "engine": engine, **row, "rows": [row]}
    lm, art = sess.lm, sess.artifact
    label = "edgekit " + lm.notes[0].split(": ", 1)[1] if art is not None else "reference (float32)"
    if art is None and lm.notes and lm.notes[0].startswith("acm: "):
        label = "edgekit ACM (" + lm.notes[0].split(": ", 1)[1] + ")"
    if engine == "kernels":
        label += " [kernels]"
    result: dict = {"model": str(spec), "task": lm.task, "data": [str(p) for p in data_paths] if data_paths
                    else ["/usr/share/common-licenses (default held-out text)"]}
    if lm.task == "encoder":
        if sets is not None:
            raise EdgekitError("--set scores perplexity of causal LMs; an encoder is compared on --data sentences")
        if art is None:
            raise EdgekitError(f"{spec} is a float encoder: evaluate a quantized artifact of it (edgekit quantize "
                               f"{spec} -o out.ekq; edgekit eval out.ekq) to compare embeddings with the original")
        from edgekit.models import load_model

        texts = sentences("\n\n".join(data.load_texts(data_paths, "eval")))
        if len(texts) < 8:
            raise EdgekitError("the evaluation text has fewer than 8 usable sentences; pass a longer --data file")
        ref = load_model(art.source)
        cos = (embed(lm.model, lm.tokenizer, texts) * embed(ref.model, ref.tokenizer, texts)).sum(-1)
        result.update({"cosine_mean": float(cos.mean()), "cosine_min": float(cos.min()), "sentences": len(texts),
                       "reference": art.source, **bits_per_weight(lm.model)})
        result["rows"] = [{"model": label, "cosine_mean": result["cosine_mean"], "cosine_min": result["cosine_min"],
                           "bits_per_weight": result["bits_per_weight"]}]
        return result
    if compare_reference and art is None:
        raise EdgekitError("--compare-reference needs a quantized artifact to compare with its source model")
    if sets is not None:
        result.pop("data")
        result["sets"] = sets
        result["rows"] = _fake_set_rows(sess, label, art, lm, sets, ctx, max_tokens, compare_reference, progress)
        return result
    windows = data.eval_windows(lm.tokenizer, data_paths, ctx, max_tokens)
    row = {"model": label, **session_perplexity(sess, windows, progress), **bits_per_weight(lm.model)}
    rows = [row]
    if compare_reference:
        from edgekit.engines.fake import open_fake

        ref = open_fake(art.source)
        rows.insert(0, {"model": "reference (float32)", **session_perplexity(ref, windows, progress),
                        **bits_per_weight(ref.model)})
        for r in rows:
            r["delta_pct"] = 100.0 * (r["perplexity"] / rows[0]["perplexity"] - 1.0)
    result.update({k: row[k] for k in ("perplexity", "nll", "tokens", "windows", "ctx", "bits_per_weight",
                                       "model_bits_per_weight")})
    result["rows"] = rows
    return result


def _set_keys(name: str) -> dict:
    from edgekit.data import get_eval_set

    return {"set": name, "set_role": get_eval_set(name).role}


def _set_windows(tokenizer, sets: list[str], ctx: int, max_tokens: int):
    """``(set name, windows)`` for each named evaluation set."""
    from edgekit import data

    return [(name, data.eval_windows(tokenizer, None, ctx, max_tokens, name)) for name in sets]


def _fake_set_rows(sess, label, art, lm, sets, ctx, max_tokens, compare_reference, progress) -> list[dict]:
    """Rows of a fake-quant (or kernels) session on each set, each after its float reference when asked for."""
    ref = None
    if compare_reference:
        from edgekit.engines.fake import open_fake

        ref = open_fake(art.source)
    rows = []
    for name, windows in _set_windows(lm.tokenizer, sets, ctx, max_tokens):
        group = [{**_set_keys(name), "model": label, **session_perplexity(sess, windows, progress),
                  **bits_per_weight(lm.model)}]
        if ref is not None:
            group.insert(0, {**_set_keys(name), "model": "reference (float32)",
                             **session_perplexity(ref, windows, progress), **bits_per_weight(ref.model)})
            for r in group:
                r["delta_pct"] = 100.0 * (r["perplexity"] / group[0]["perplexity"] - 1.0)
        rows.extend(group)
    return rows


def _evaluate_ort_encoder(spec: str, data_paths, threads: int | None) -> dict:
    """Embedding cosine of an encoder's ONNX export against the float source it was quantized from."""
    from edgekit import data
    from edgekit.engines.onnxruntime import OrtEncoder, export_info
    from edgekit.models import load_model

    source = export_info(spec).get("source")
    if not source:
        raise EdgekitError(f"{spec} does not name its source model (edgekit_export.json); re-export it")
    texts = sentences("\n\n".join(data.load_texts(data_paths, "eval")))
    if len(texts) < 8:
        raise EdgekitError("the evaluation text has fewer than 8 usable sentences; pass a longer --data file")
    ref = load_model(source)
    cos = (OrtEncoder(spec, threads).embed(texts) * embed(ref.model, ref.tokenizer, texts)).sum(-1)
    row = {"model": "ONNX Runtime (MatMulNBits)", "cosine_mean": float(cos.mean()), "cosine_min": float(cos.min()),
           "bits_per_weight": None}
    return {"model": str(spec), "task": "encoder", "engine": "onnxruntime", "cosine_mean": row["cosine_mean"],
            "cosine_min": row["cosine_min"], "sentences": len(texts), "reference": source, "rows": [row]}
