"""Text generation from a model or artifact (PyTorch path), streamed to the terminal."""

from __future__ import annotations

import torch


def generate(spec: str, prompt: str, max_tokens: int = 64, temperature: float = 0.0, top_k: int = 0,
             top_p: float = 1.0, chat: bool = False, seed: int = 0, stream: bool = True) -> dict:
    """Generate a continuation of ``prompt``; greedy when ``temperature`` is 0 (the default, reproducible).

    Returns:
        ``{"prompt", "text", "tokens", "new_token_ids"}``.
    """
    from transformers import TextStreamer

    from edgekit.errors import EdgekitError
    from edgekit.evaluate import load_any

    if max_tokens < 1:
        raise EdgekitError(f"--max-tokens must be >= 1 (got {max_tokens})")
    lm, _ = load_any(spec)
    if lm.task != "causal-lm":
        raise EdgekitError(f"{spec} is an encoder ({lm.family}); edgekit run needs a causal language model")
    tok = lm.tokenizer
    if chat and getattr(tok, "chat_template", None):
        ids = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                      return_tensors="pt")
    else:
        ids = tok(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
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
