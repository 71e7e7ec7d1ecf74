"""``edgekit bench distill --speed``: the encoder-decoder student against its teacher in edgekit's runtime (both W4A8
artifacts), and against llama.cpp on the student's own GGUF, as the issue's speed goals state them.

Per input length (prompt tokens from the held-out text) each model is timed on the same prompt: time to first token
(student: encoder plus cross-attention K/V plus the first decoder step; teacher: the prefill) and decode tokens per
second over ``n_out`` greedy steps after it. The models take turns within each repeat (student, teacher, llama.cpp,
then again), so that the load of a shared machine falls on all of them alike; every ratio is computed per repeat
and the median over repeats reported, next to each model's own median.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from edgekit.errors import EdgekitError


def prompt_tokens(tokenizer, n: int) -> np.ndarray:
    """The first ``n`` tokens of the held-out text (:func:`edgekit.data.load_texts`), repeated if it is shorter."""
    from edgekit import data

    toks = np.asarray(data.tokenize_docs(tokenizer, data.load_texts(None, "eval")), dtype=np.int32)
    if len(toks) == 0:
        raise EdgekitError("the held-out text has no tokens")
    return np.resize(toks, n)


def time_decoder(sess, ids: np.ndarray, n_out: int) -> tuple[float, float]:
    """A decoder-only Session: (prefill seconds to the first token's logits, decode tokens / s over n_out steps)."""
    sess.reset()
    t0 = time.perf_counter()
    tok = int(np.argmax(sess.eval(ids)))
    ttft = time.perf_counter() - t0
    t1 = time.perf_counter()
    for _ in range(n_out):
        tok = int(np.argmax(sess.eval([tok])))
    return ttft, n_out / (time.perf_counter() - t1)


def time_seq2seq(sess, ids: np.ndarray, n_out: int) -> tuple[float, float]:
    """A Seq2SeqSession: (encode + first decoder step seconds, decode tokens / s over n_out further steps)."""
    t0 = time.perf_counter()
    sess.encode(ids)
    tok = int(np.argmax(sess.eval([sess.decoder_start])))
    ttft = time.perf_counter() - t0
    t1 = time.perf_counter()
    for _ in range(n_out):
        tok = int(np.argmax(sess.eval([tok])))
    return ttft, n_out / (time.perf_counter() - t1)


def artifact_params(path) -> int:
    """Parameters of an artifact's model (quantized linears counted by their shapes; a tied table once)."""
    from safetensors import safe_open

    from edgekit.artifact import read_artifact

    art = read_artifact(path)
    n = sum(int(np.prod(s["shape"])) for s in art.linears.values())
    with safe_open(str(path), framework="np") as f:
        for k in f.keys():
            if k.rsplit(".", 1)[-1] not in ("qweight", "scales", "mins", "act_scale"):
                n += int(np.prod(f.get_slice(k).get_shape()))
    return n


def run_speed(student: str, teacher: str, student_gguf: str | None = None, input_lens=(512, 1024), n_out: int = 128,
              llamacpp_out: int = 32, repeats: int = 3, threads: int = 2, progress: bool = True,
              decoder: str | None = None) -> dict:
    """Time the student artifact (runtime), the teacher artifact (runtime), if given a decoder-only student's
    artifact (``decoder``: runtime, the paper's comparison at equal size) and the student's GGUF (llama.cpp),
    interleaved; see the module docstring.

    Returns:
        ``{"rows": [...], "ratios": [...], "settings": {...}}``: one row per (model, input length) with ``model``,
        ``params``, ``engine``, ``input_len``, ``ttft_s``, ``decode_tok_s`` (medians) and the per-repeat values;
        ratio rows (student / teacher TTFT, student / teacher decode, runtime / llama.cpp decode of the student)
        as medians of the per-repeat ratios.

    Raises:
        EdgekitError: a file the engines cannot open, or a student that is not an encoder-decoder.
    """
    from edgekit.engines import open_session

    max_in = max(input_lens)
    s_sess = open_session(student, "runtime", max_ctx=n_out + 1, threads=threads, seq2seq=True)
    t_sess = open_session(teacher, "runtime", max_ctx=max_in + n_out + 1, threads=threads)
    g_sess = (open_session(student_gguf, "llama.cpp", max_ctx=max_in + llamacpp_out + 1, threads=threads,
                           seq2seq=True) if student_gguf else None)
    d_sess = open_session(decoder, "runtime", max_ctx=max_in + n_out + 1, threads=threads) if decoder else None
    models = [("encdec", s_sess, time_seq2seq, n_out, student, "edgekit runtime W4A8"),
              ("teacher", t_sess, time_decoder, n_out, teacher, "edgekit runtime W4A8")]
    if g_sess is not None:
        models.append(("encdec", g_sess, time_seq2seq, llamacpp_out, student_gguf, "llama.cpp GGUF"))
    if d_sess is not None:
        models.append(("decoder", d_sess, time_decoder, n_out, decoder, "edgekit runtime W4A8"))
    params = {p: artifact_params(p) for p in (student, teacher, decoder) if p}
    rows, ratios = [], []
    for n_in in input_lens:
        ids = prompt_tokens(s_sess.tokenizer, n_in)
        for _, sess, fn, out, _, _ in models:  # warm-up: pages, caches, the pool
            fn(sess, ids[:64], 2)
        per = {i: [] for i in range(len(models))}
        for r in range(repeats):
            for i, (name, sess, fn, out, _, engine) in enumerate(models):
                per[i].append(fn(sess, ids, out))
                if progress:
                    print(f"input {n_in} repeat {r + 1}/{repeats} {name} ({engine}): ttft {per[i][-1][0]:.3f} s, "
                          f"decode {per[i][-1][1]:.2f} tok/s", flush=True)
        for i, (name, _, _, out, path, engine) in enumerate(models):
            tt, dd = [p[0] for p in per[i]], [p[1] for p in per[i]]
            rows.append({"model": name, "params": params.get(path), "engine": engine, "input_len": n_in,
                         "output_len": out, "ttft_s": statistics.median(tt), "decode_tok_s": statistics.median(dd),
                         "ttft_s_repeats": tt, "decode_tok_s_repeats": dd, "file": str(path)})
        pairs = [("ttft encdec / teacher", 0, 1, 0), ("decode encdec / teacher", 0, 1, 1)]
        if g_sess is not None:
            pairs.append(("decode encdec runtime / llama.cpp", 0, 2, 1))
        if d_sess is not None:
            last = len(models) - 1
            pairs += [("ttft encdec / decoder", 0, last, 0), ("decode encdec / decoder", 0, last, 1)]
        for label, a, b, k in pairs:
            vals = [per[a][r][k] / per[b][r][k] for r in range(repeats)]
            ratios.append({"ratio": label, "input_len": n_in, "median": statistics.median(vals), "repeats": vals})
    for sess in (s_sess, t_sess, g_sess, d_sess):
        if sess is not None:
            sess.close()
    return {"rows": rows, "ratios": ratios,
            "settings": {"input_lens": list(input_lens), "n_out": n_out, "llamacpp_out": llamacpp_out,
                         "repeats": repeats, "threads": threads, "interleaved": True}}
