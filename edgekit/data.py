"""Calibration and evaluation text: sources, validation and token windows.

Calibration defaults to CPython's own ``pydoc_data.topics`` (present wherever Python is), evaluation defaults to the
license texts Debian keeps in ``/usr/share/common-licenses``: two different corpora, so a model is never evaluated
on what it was calibrated on.

Named evaluation sets (:data:`EVAL_SETS`, ``edgekit eval --set``, ``edgekit bench quality --sets``) make the protocol
explicit: recipes and hyper-parameters are chosen on ``dev`` (the license texts); the ``test-*`` sets are other
English domains that are only reported, never calibrated or selected on.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import shutil
import subprocess
import sysconfig
from dataclasses import dataclass
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


def calibration_sources(paths=None) -> list[str]:
    """Names of the calibration text, for reports and files: the given paths, else the default's name."""
    return [str(p) for p in paths] if paths else ["pydoc_data.topics"]


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


def eval_windows(tokenizer, paths=None, ctx: int = 512, max_tokens: int = 4096, eval_set: str | None = None):
    """Cut the evaluation text into non-overlapping windows of ``ctx`` tokens, at most ``max_tokens`` in all.

    ``eval_set`` names one of :data:`EVAL_SETS` instead of ``paths`` (``None`` or ``"dev"`` without ``paths``: the
    default text, cut as before); each set is cut as its ``cut`` says.

    Returns:
        torch.LongTensor of shape ``[n_windows, ctx]`` (the last partial window is dropped).
    """
    import torch

    if ctx < 2:
        raise EdgekitError(f"--ctx must be >= 2 (got {ctx})")
    if eval_set is not None:
        if paths:
            raise EdgekitError("--data and --set are exclusive: a named set is its own text")
        spec = get_eval_set(eval_set)
        docs = spec.load()
        if spec.cut == "per-document":
            return _per_document_windows(tokenizer, docs, ctx, max_tokens, spec.name)
        stream = tokenize_docs(tokenizer, docs)
    else:
        stream = tokenize_docs(tokenizer, load_texts(paths, "eval"))
    n = min(len(stream), max_tokens) // ctx
    if n == 0:
        raise EdgekitError(f"evaluation text has {len(stream)} tokens, fewer than one --ctx {ctx} window")
    return torch.from_numpy(stream[: n * ctx].reshape(n, ctx).copy())


# --- named evaluation sets ------------------------------------------------------------------------------------------

#: ``test-man``: these man(1) pages, all from Debian's required/essential packages (coreutils, findutils, grep, sed,
#: tar, gzip, diffutils, bash, dpkg, man-db), so every Debian-like machine has the same text. Listed in the order the
#: windows are taken from them.
MAN_PAGES = ("bash", "cat", "chmod", "chown", "cp", "cut", "date", "dd", "df", "diff", "du", "env", "find", "grep",
             "gzip", "head", "ln", "ls", "man", "mkdir", "mv", "nice", "rm", "sed", "sort", "stat", "tail", "tar",
             "tee", "touch", "tr", "uniq", "wc", "xargs", "dpkg")
MAN_DIR = Path("/usr/share/man/man1")
MAN_WIDTH = 80
#: ``test-docstrings``: module docstrings shorter than this many words (after dropping doctest paragraphs) are left out.
DOCSTRING_MIN_WORDS = 80
#: ``test-docstrings``: a docstring sharing a run of this many consecutive words (letters and digits, lowercased) with
#: the calibration text or the dev set is left out (pdb's repeats the debugger chapter that pydoc_data.topics holds).
SHARED_RUN_WORDS = 12


@dataclass(frozen=True)
class EvalSet:
    """One named evaluation text: ``role`` is ``dev`` (select on it) or ``test`` (report only); ``cut`` is ``stream``
    (documents joined in order, cut into consecutive windows) or ``per-document`` (windows never span two documents:
    each document is cut on its own, its partial tail dropped, and the windows are taken round-robin: the first
    window of every document in order, then the second of every document that has one, ...)."""

    name: str
    role: str
    cut: str
    description: str
    loader: object

    def load(self) -> list[str]:
        """The set's documents, in order."""
        return self.loader()


def _dev_docs() -> list[str]:
    return [default_eval_text()]


def render_man_page(path: Path) -> str:
    """``man -l PATH`` rendered as plain text at ``MAN_WIDTH`` columns, no hyphenation or justification, with each
    line's indentation, the running header/footer lines and any overstrike formatting removed."""
    env = {**os.environ, "MANWIDTH": str(MAN_WIDTH), "MANPAGER": "cat", "PAGER": "cat", "LC_ALL": "C.UTF-8"}
    env.pop("MAN_KEEP_FORMATTING", None)
    proc = subprocess.run(["man", "--nh", "--nj", "-E", "UTF-8", "-l", str(path)], capture_output=True, text=True,
                          env=env, timeout=120)
    if proc.returncode != 0:
        raise EdgekitError(f"man -l {path} failed: {proc.stderr.strip()[-300:]}")
    text = re.sub(r".\x08", "", proc.stdout)  # overstrike bold/underline, should man keep it
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)  # SGR escapes, likewise
    lines = [ln.strip() for ln in text.splitlines()]
    nonblank = [i for i, ln in enumerate(lines) if ln]
    if len(nonblank) > 2:  # the first and last lines are the page's running header and footer
        lines = lines[nonblank[0] + 1:nonblank[-1]]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def man1_pages() -> dict[str, Path]:
    """Every man(1) page file of ``MAN_DIR`` by page name: ``NAME.1`` or ``NAME.1.gz`` (the plain file when both
    exist); other sections' suffixes (``.1ssl``, ``.1p``) are not listed. Sorted by file name."""
    pages: dict[str, Path] = {}
    for p in sorted(MAN_DIR.iterdir()) if MAN_DIR.is_dir() else ():
        name = p.name[:-5] if p.name.endswith(".1.gz") else p.name[:-2] if p.name.endswith(".1") else None
        if name:
            pages.setdefault(name, p)
    return pages


def _man_docs() -> list[str]:
    """The rendered pages of :data:`MAN_PAGES` found in ``MAN_DIR``, cached under edgekit's cache folder (rendered
    once per machine; the cache key covers the page files' paths, sizes and times and the rendering settings)."""
    from edgekit.cache import cache_dir

    if shutil.which("man") is None:
        raise EdgekitError("the test-man evaluation set needs the `man` command: install Debian's man-db package "
                           "(apt-get install man-db)")
    pages = man1_pages()
    paths = [pages[name] for name in MAN_PAGES if name in pages]
    if not paths:
        raise EdgekitError(f"the test-man evaluation set found none of its pages in {MAN_DIR}")
    key = hashlib.sha256(json.dumps([MAN_WIDTH, 1] + [[str(p), p.stat().st_size, p.stat().st_mtime_ns]
                                                      for p in paths]).encode()).hexdigest()[:16]
    cached = cache_dir() / "evalsets" / f"test-man-{key}.json"
    if cached.is_file():
        return json.loads(cached.read_text(encoding="utf-8"))
    docs = [d for d in (render_man_page(p) for p in paths) if d]
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(".tmp")
    tmp.write_text(json.dumps(docs), encoding="utf-8")
    tmp.replace(cached)
    return docs


def _docstring_docs() -> list[str]:
    """Module docstrings of CPython's top-level public standard-library modules (``<stdlib>/*.py`` whose name does
    not start with ``_``, sorted by name), read with :func:`ast.get_docstring` (no import); paragraphs holding a
    ``>>>`` doctest are dropped, and docstrings left with fewer than :data:`DOCSTRING_MIN_WORDS` words, or sharing a
    run of :data:`SHARED_RUN_WORDS` words with the calibration text or the dev set, are skipped."""
    root = Path(sysconfig.get_paths()["stdlib"])
    taken = _word_runs(default_calibration_text() + "\n\n" + default_eval_text())
    docs = []
    for p in sorted(root.glob("*.py")):
        if p.stem.startswith("_"):
            continue
        try:
            doc = ast.get_docstring(ast.parse(p.read_text(encoding="utf-8")), clean=True)
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        if not doc:
            continue
        doc = "\n\n".join(q for q in re.split(r"\n\s*\n", doc) if ">>>" not in q).strip()
        if len(doc.split()) >= DOCSTRING_MIN_WORDS and not _word_runs(doc) & taken:
            docs.append(doc)
    if not docs:
        raise EdgekitError(f"the test-docstrings evaluation set found no module docstrings in {root}")
    return docs


def _word_runs(text: str) -> set[tuple[str, ...]]:
    """Every run of :data:`SHARED_RUN_WORDS` consecutive words of ``text`` (letters/digits only, lowercased)."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    return {tuple(words[i:i + SHARED_RUN_WORDS]) for i in range(len(words) - SHARED_RUN_WORDS + 1)}


#: The named evaluation sets. Choose recipes and hyper-parameters on ``dev`` only; report the ``test-*`` sets.
EVAL_SETS: dict[str, EvalSet] = {s.name: s for s in (
    EvalSet("dev", "dev", "stream",
            "Debian's license texts in /usr/share/common-licenses (GPL-3, Apache-2.0, MPL-2.0, LGPL-2.1, Artistic), "
            "joined in that order; edgekit eval's default text", _dev_docs),
    EvalSet("test-man", "test", "per-document",
            f"man(1) pages of Debian's required/essential tools ({', '.join(MAN_PAGES)}) rendered by "
            f"`man -l` at {MAN_WIDTH} columns as plain text, one document per page", _man_docs),
    EvalSet("test-docstrings", "test", "stream",
            "module docstrings of CPython's top-level public standard-library modules, sorted by module name, "
            f"doctest paragraphs dropped, at least {DOCSTRING_MIN_WORDS} words each, none sharing a run of "
            f"{SHARED_RUN_WORDS} words with the calibration text (pydoc_data.topics) or dev", _docstring_docs),
)}


def get_eval_set(name: str) -> EvalSet:
    """The named evaluation set.

    Raises:
        EdgekitError: an unknown name (the message lists the valid ones).
    """
    if name not in EVAL_SETS:
        raise EdgekitError(f"unknown evaluation set {name!r}; valid sets: {', '.join(EVAL_SETS)}")
    return EVAL_SETS[name]


def parse_sets(text: str | list[str] | tuple[str, ...]) -> list[str]:
    """Set names from a comma-separated string or a list, checked and de-duplicated in order."""
    items = text.split(",") if isinstance(text, str) else [x for t in text for x in t.split(",")]
    names = []
    for n in (x.strip() for x in items):
        if n and n not in names:
            names.append(get_eval_set(n).name)
    if not names:
        raise EdgekitError(f"no evaluation set given; valid sets: {', '.join(EVAL_SETS)}")
    return names


def _per_document_windows(tokenizer, docs: list[str], ctx: int, max_tokens: int, name: str):
    """Windows of ``ctx`` tokens cut from each document on its own, taken round-robin across documents."""
    import torch

    per_doc = []
    for d in docs:
        ids = tokenize_docs(tokenizer, [d])
        k = len(ids) // ctx
        per_doc.append(ids[: k * ctx].reshape(k, ctx))
    limit = max_tokens // ctx
    rows = []
    for j in range(max((len(w) for w in per_doc), default=0)):
        rows.extend(w[j] for w in per_doc if j < len(w))
    rows = rows[:limit]
    if not rows:
        raise EdgekitError(f"evaluation set {name} has no document of at least one --ctx {ctx} window "
                           f"(or --max-tokens {max_tokens} < --ctx)")
    return torch.from_numpy(np.stack(rows).copy())
