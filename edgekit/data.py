"""Calibration and evaluation text: sources, validation and token windows.

Calibration defaults to CPython's own ``pydoc_data.topics`` (present wherever Python is), evaluation defaults to the
license texts Debian keeps in ``/usr/share/common-licenses``: two different corpora, so a model is never evaluated
on what it was calibrated on.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError

#: Held-out evaluation corpus: long English prose that shares nothing with the calibration default.
DEFAULT_EVAL_FILES = ("GPL-3", "Apache-2.0", "MPL-2.0", "LGPL-2.1", "Artistic")
COMMON_LICENSES = Path("/usr/share/common-licenses")


def default_calibration_text() -> str:
    """Return CPython's ``pydoc_data.topics`` help text, joined in a stable (sorted-key) order."""
    from pydoc_data import topics

    return "\n\n".join(topics.topics[k] for k in sorted(topics.topics))


def default_eval_text() -> str:
    """Return the default held-out evaluation text (Debian's license texts).

    Raises:
        EdgekitError: if none of the license files exist (pass ``--data FILE`` instead).
    """
    parts = [(COMMON_LICENSES / n) for n in DEFAULT_EVAL_FILES]
    found = [p.read_text(encoding="utf-8", errors="replace") for p in parts if p.is_file()]
    if not found:
        raise EdgekitError(f"no default evaluation text: {COMMON_LICENSES} has none of {DEFAULT_EVAL_FILES}; "
                           "pass --data FILE")
    return "\n\n".join(found)


def read_text_file(path: str | os.PathLike) -> list[str]:
    """Read a plain-text or JSONL file into a list of documents.

    A ``.jsonl`` file (or any file whose first non-blank line is a JSON object) gives one document per line, taken
    from its ``text`` field; any other file is one document.

    Raises:
        EdgekitError: if the file is missing, not UTF-8, empty, or a JSONL line lacks a ``text`` string.
    """
    p = Path(path)
    if not p.is_file():
        raise EdgekitError(f"text file not found: {p}")
    try:
        raw = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise EdgekitError(f"{p} is not UTF-8 text (byte {e.start}); convert it or pass another file") from None
    if not raw.strip():
        raise EdgekitError(f"{p} is empty; pass a file with text in it")
    if "\x00" in raw:
        raise EdgekitError(f"{p} looks binary (contains NUL bytes); pass a plain-text or JSONL file")
    first = raw.lstrip().splitlines()[0]
    if p.suffix == ".jsonl" or first.startswith("{"):
        docs = []
        for i, line in enumerate(raw.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise EdgekitError(f"{p}:{i}: not valid JSON ({e.msg})") from None
            if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                raise EdgekitError(f"{p}:{i}: a JSONL line needs a string field 'text'")
            docs.append(obj["text"])
        if not any(d.strip() for d in docs):
            raise EdgekitError(f"{p} has no non-empty 'text' fields")
        return docs
    return [raw]


def load_texts(paths: list[str] | tuple[str, ...] | None, default: str = "calibration") -> list[str]:
    """Load documents from ``paths``, or the default corpus (``"calibration"`` or ``"eval"``) when none are given."""
    if not paths:
        return [default_calibration_text() if default == "calibration" else default_eval_text()]
    docs: list[str] = []
    for p in paths:
        docs.extend(read_text_file(p))
    return docs


def tokenize_docs(tokenizer, docs: list[str]) -> np.ndarray:
    """Tokenize documents without special tokens and concatenate them into one int64 stream."""
    ids: list[int] = []
    for d in docs:
        ids.extend(tokenizer(d, add_special_tokens=False)["input_ids"])
    return np.asarray(ids, dtype=np.int64)


def calibration_windows(tokenizer, paths=None, n_samples: int = 128, seqlen: int = 512, seed: int = 0,
                        special_tokens: bool = False):
    """Sample ``n_samples`` random windows of ``seqlen`` tokens from the calibration text (seeded).

    With ``special_tokens`` each window is wrapped the way the tokenizer frames a sequence (e.g. BERT's
    ``[CLS] … [SEP]``), so an encoder is calibrated on inputs shaped like the ones it serves.

    Returns:
        torch.LongTensor of shape ``[n_samples, seqlen]``.

    Raises:
        EdgekitError: if the text has fewer than ``seqlen + 1`` tokens or the arguments are not positive.
    """
    import torch

    if n_samples < 1 or seqlen < 2:
        raise EdgekitError(f"--calib-samples must be >= 1 and --calib-seqlen >= 2 (got {n_samples}, {seqlen})")
    stream = tokenize_docs(tokenizer, load_texts(paths, "calibration"))
    if len(stream) <= seqlen:
        raise EdgekitError(f"calibration text has {len(stream)} tokens, fewer than --calib-seqlen {seqlen}; "
                           "give more text or a shorter --calib-seqlen")
    rng = np.random.default_rng(seed)
    extra = len(tokenizer.build_inputs_with_special_tokens([])) if special_tokens else 0
    body = seqlen - extra
    starts = rng.integers(0, len(stream) - body, size=n_samples)
    rows = [stream[s:s + body] for s in starts]
    if special_tokens:
        rows = [np.asarray(tokenizer.build_inputs_with_special_tokens(r.tolist()), dtype=np.int64) for r in rows]
    return torch.from_numpy(np.stack(rows))


def eval_windows(tokenizer, paths=None, ctx: int = 512, max_tokens: int = 4096):
    """Cut the evaluation text into non-overlapping windows of ``ctx`` tokens, at most ``max_tokens`` in all.

    Returns:
        torch.LongTensor of shape ``[n_windows, ctx]`` (the last partial window is dropped).
    """
    import torch

    if ctx < 2:
        raise EdgekitError(f"--ctx must be >= 2 (got {ctx})")
    stream = tokenize_docs(tokenizer, load_texts(paths, "eval"))
    n = min(len(stream), max_tokens) // ctx
    if n == 0:
        raise EdgekitError(f"evaluation text has {len(stream)} tokens, fewer than one --ctx {ctx} window")
    return torch.from_numpy(stream[: n * ctx].reshape(n, ctx).copy())
