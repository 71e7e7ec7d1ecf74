"""Perplexity: the one negative-log-likelihood loop, used for every engine (and by ``edgekit bench quality``).

The rule (see :func:`edgekit.data.eval_windows`): each window is scored on its own from an empty context with no BOS
token, token ``i`` predicted from tokens ``0..i-1`` for ``i = 1..ctx-1``, and ``perplexity = exp(total NLL / scored
tokens)``. Log-probabilities are computed in float64 from each engine's float32 logits. (llama.cpp's own
``llama-perplexity`` tool scores only the second half of each chunk and prepends BOS, so its numbers are not
comparable to edgekit's; these are.)
"""

from __future__ import annotations

import math

import numpy as np
from tqdm.auto import tqdm

from edgekit.errors import EdgekitError

# Rows of logits turned into float64 at a time: bounds the temporary to ~50 MB for a 49k vocabulary.
_CHUNK_ROWS = 128


def token_nll(logits, targets) -> np.ndarray:
    """Per-row ``logsumexp(logits[r]) - logits[r, targets[r]]`` in float64 (the NLL of each target token)."""
    logits = _numpy(logits)
    targets = np.asarray(targets, dtype=np.int64).reshape(-1)
    out = np.empty(len(targets), np.float64)
    for s in range(0, len(targets), _CHUNK_ROWS):
        z = logits[s:s + _CHUNK_ROWS].astype(np.float64)
        t = targets[s:s + _CHUNK_ROWS]
        m = z.max(axis=1)
        lse = m + np.log(np.exp(z - m[:, None]).sum(axis=1))
        out[s:s + len(t)] = lse - z[np.arange(len(t)), t]
    return out


def as_windows(windows) -> np.ndarray:
    """A LongTensor / array / nested list of token ids as an int64 array ``[n_windows, ctx]``.

    Raises:
        EdgekitError: not a 2-D array of at least one window of two tokens.
    """
    try:
        arr = np.asarray(windows.cpu() if hasattr(windows, "cpu") else windows, dtype=np.int64)
    except (TypeError, ValueError) as e:
        raise EdgekitError(f"evaluation windows must be a 2-D array of token ids ({e})") from None
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 2:
        raise EdgekitError(f"evaluation windows must have shape [n_windows >= 1, ctx >= 2], got {list(arr.shape)}")
    return arr


def perplexity_of(logits_fn, windows, progress: bool = True, desc: str = "eval") -> dict:
    """Perplexity of any engine: ``logits_fn(window)`` returns the logits ``[ctx, vocab]`` of one window (a row of
    ``windows``, passed as given) computed from an empty context.

    Returns:
        ``{"perplexity", "nll" (mean per token), "tokens", "windows", "ctx"}``.
    """
    total, count = 0.0, 0
    for w in tqdm(windows, desc=desc, unit="window", disable=not progress):
        targets = np.asarray(w, dtype=np.int64)[1:]
        total += float(token_nll(_numpy(logits_fn(w))[:-1], targets).sum())
        count += len(targets)
    nll = total / count
    return {"perplexity": math.exp(nll), "nll": nll, "tokens": count, "windows": len(windows), "ctx": len(windows[0])}


def session_perplexity(sess, windows, progress: bool = True, desc: str = "eval") -> dict:
    """:func:`perplexity_of` in a :class:`edgekit.engines.Session`: every window from an empty cache."""
    def logits(w):
        sess.reset()
        return sess.eval(np.asarray(w), all_logits=True)

    return perplexity_of(logits, windows, progress, desc)


def perplexity(model, windows, progress: bool = True) -> dict:
    """:func:`perplexity_of` of a transformers causal LM over token windows ``[n, ctx]`` (a LongTensor)."""
    import torch

    def logits(w):
        with torch.no_grad():
            return model(input_ids=w[None], use_cache=False).logits[0].float()

    return perplexity_of(logits, windows, progress)


def _numpy(x) -> np.ndarray:
    """Logits as a numpy array (a torch tensor is moved to float32 on the CPU)."""
    if hasattr(x, "detach"):
        return x.detach().float().cpu().numpy()
    return np.asarray(x)
