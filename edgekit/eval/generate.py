"""Text generation from a model, artifact or export in any engine (:mod:`edgekit.engines`), streamed to the terminal."""

from __future__ import annotations

import numpy as np
import torch


def generate(spec: str, prompt: str, max_tokens: int = 64, temperature: float = 0.0, top_k: int = 0,
             top_p: float = 1.0, chat: bool = False, seed: int = 0, stream: bool = True,
             engine: str | None = "fake", threads: int | None = None) -> dict:
    """Generate a continuation of ``prompt``; greedy when ``temperature`` is 0 (the default, reproducible).

    ``engine``: ``fake`` (PyTorch fake-quant), ``kernels`` (PyTorch with the C++ int4 kernels), ``runtime`` or
    ``edgekit`` (the whole model in the C++ engine with its KV cache; artifacts of Llama-family decoders),
    ``llama.cpp`` (a ``.gguf`` file) or ``onnxruntime`` (an ONNX export directory); ``None`` picks onnxruntime for
    an ONNX export, else fake (:mod:`edgekit.engines`). ``threads`` is passed to llama.cpp and ONNX Runtime.

    Returns:
        ``{"prompt", "text", "tokens", "new_token_ids"}``.
    """
    from transformers import TextStreamer

    from edgekit.engines import is_seq2seq, open_session
    from edgekit.engines.fake import FakeSession
    from edgekit.errors import EdgekitError

    if max_tokens < 1:
        raise EdgekitError(f"--max-tokens must be >= 1 (got {max_tokens})")
    enc_dec = is_seq2seq(spec)  # the T5 student: the encoder reads the prompt, the decoder generates
    sess = open_session(spec, engine, threads=threads, seq2seq=enc_dec)
    if enc_dec or not isinstance(sess, FakeSession):
        return generate_in_session(sess, prompt, max_tokens, temperature, top_k, top_p, chat, seed, stream)
    # the PyTorch engines keep transformers' own generate(): its samplers, so sampled text stays what it was
    lm = sess.lm
    if lm.task != "causal-lm":
        raise EdgekitError(f"{spec} is an encoder ({lm.family}); edgekit run needs a causal language model")
    tok = lm.tokenizer
    ids = torch.tensor([_prompt_ids(tok, prompt, chat)])
    torch.manual_seed(seed)
    sample = temperature > 0
    kwargs = {"do_sample": sample, "max_new_tokens": max_tokens, "pad_token_id": tok.pad_token_id or tok.eos_token_id}
    if sample:
        kwargs.update(temperature=temperature, top_k=top_k or None, top_p=top_p)
    else:
        kwargs.update(temperature=None, top_k=None, top_p=None)
    streamer = TextStreamer(tok, skip_prompt=True) if stream else None
    with torch.no_grad():
        out = lm.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), streamer=streamer, **kwargs)
    new = out[0, ids.shape[1]:].tolist()
    return {"prompt": prompt, "text": tok.decode(new, skip_special_tokens=True), "tokens": len(new),
            "new_token_ids": new}


def _prompt_ids(tok, prompt: str, chat: bool) -> list[int]:
    if chat and getattr(tok, "chat_template", None):
        return list(tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True))
    return tok(prompt, add_special_tokens=False)["input_ids"]


def _pick(logits: torch.Tensor, temperature: float, top_k: int, top_p: float, gen: torch.Generator) -> int:
    """Greedy (temperature 0) or sampled next token, with optional top-k and nucleus (top-p) filtering."""
    if temperature <= 0:
        return int(torch.argmax(logits))
    logits = logits / temperature
    if top_k:
        kth = torch.topk(logits, min(top_k, logits.numel())).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, -1)
    if top_p < 1.0:
        sp, si = torch.sort(probs, descending=True)
        drop = sp.cumsum(-1) - sp > top_p  # keep the smallest prefix whose mass reaches top_p
        probs = probs.scatter(0, si[drop], 0.0)
        probs = probs / probs.sum()
    return int(torch.multinomial(probs, 1, generator=gen))


def generate_in_session(sess, prompt: str, max_tokens: int = 64, temperature: float = 0.0, top_k: int = 0,
                        top_p: float = 1.0, chat: bool = False, seed: int = 0, stream: bool = False) -> dict:
    """:func:`generate` in a session engine (the C++ runtime, llama.cpp or ONNX Runtime; :mod:`edgekit.engines`):
    prefill the prompt from an empty cache, then decode one token at a time; same return value. An encoder-decoder
    session (:class:`~edgekit.engines.Seq2SeqSession`) encodes the prompt and decodes from its ``decoder_start``."""
    from transformers import TextStreamer

    from edgekit.engines import Seq2SeqSession

    tok = sess.tokenizer
    ids = _prompt_ids(tok, prompt, chat)
    gen = torch.Generator().manual_seed(seed)
    streamer = TextStreamer(tok, skip_prompt=True) if stream else None
    if isinstance(sess, Seq2SeqSession):
        sess.encode(ids)  # empties the decoder's cache
        logits = sess.eval([sess.decoder_start])
    else:
        sess.reset()
        logits = sess.eval(ids)  # prefill
    new: list[int] = []
    for _ in range(max_tokens):
        nxt = _pick(torch.from_numpy(logits), temperature, top_k, top_p, gen)
        new.append(nxt)
        if streamer:
            streamer.put(torch.tensor([nxt]))
        if nxt == tok.eos_token_id or len(new) == max_tokens:
            break
        logits = sess.eval([nxt])  # decode one token against the cache
    if streamer:
        streamer.end()
    return {"prompt": prompt, "text": tok.decode(new, skip_special_tokens=True), "tokens": len(new),
            "new_token_ids": new}


def generate_greedy(sess, prompt_ids, n: int) -> tuple[list[int], np.ndarray]:
    """``n`` greedy tokens of an encoder-decoder :class:`~edgekit.engines.Seq2SeqSession` after ``prompt_ids``.

    The encoder reads the prompt once; the decoder starts from ``sess.decoder_start`` and is fed one token per step
    (no stop at EOS: a fixed count, so engines are compared token for token).

    Returns:
        ``(tokens, logits)``: the ``n`` tokens and the float32 logits ``[n, vocab]`` each was the argmax of.

    Raises:
        EdgekitError: ``sess`` is not an encoder-decoder session, or ``n`` < 1.
    """
    from edgekit.engines import Seq2SeqSession
    from edgekit.errors import EdgekitError

    if not isinstance(sess, Seq2SeqSession):
        raise EdgekitError(f"{type(sess).__name__} runs a decoder-only model; greedy encoder-decoder generation needs "
                           "a T5 model (its directory, GGUF or ONNX export)")
    if n < 1:
        raise EdgekitError(f"generate at least one token, not {n}")
    sess.encode(prompt_ids)
    tok, rows = sess.decoder_start, []
    out = []
    for _ in range(n):
        logits = sess.eval([tok])
        rows.append(logits)
        tok = int(np.argmax(logits))
        out.append(tok)
    return out, np.stack(rows).astype(np.float32)
