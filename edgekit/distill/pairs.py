"""Prefix → continuation pairs for distillation: the encoder reads ``prefix_len`` tokens, the decoder produces the
next ``cont_len``.

Default text: the machine's English man(1) pages (:func:`edgekit.data.man1_pages`, rendered by
:func:`edgekit.data.render_man_page`, the ``test-man`` evaluation set's renderer). How pages are chosen:

* a page is *eligible* if its file is not a symbolic link and not a ``.so`` redirect (both repeat another page's
  text under a second name), and it renders without error;
* the pages of the ``test-man`` evaluation set (:data:`edgekit.data.MAN_PAGES`) are never used;
* every other page is assigned by its name alone: held out for validation when the first 8 hex digits of
  ``sha256("edgekit-distill-val:" + name)`` are divisible by :data:`VAL_EVERY` (about 1 page in 20), else training;
  so the split does not depend on which other pages a machine has, on the seed or on the lengths;
* training pages are taken in the order of ``sha256(f"{seed}:{name}")``, each cut into consecutive
  non-overlapping windows of ``prefix_len + cont_len`` tokens (its partial tail dropped), until ``train_pairs``
  pairs; validation pages in the order of ``sha256("val:" + name)``, only each page's first window (page starts),
  until ``val_pairs`` pairs;
* a validation window whose continuation mostly repeats training text (more than :data:`MAX_REPEATED` of its runs
  of :data:`SHARED_RUN_TOKENS` consecutive tokens, counted from the run ending at its first token, occur in the
  training pairs) is skipped (its page's next window is not tried): Debian ships many pages twice under names no
  symlink joins (versioned tools, Perl modules), and without this check 17 of the default's 32 validation pairs
  repeated training text nearly verbatim, which rewards memorising over predicting. Shared boilerplate below the
  threshold stays.

Rendered pages are cached under edgekit's cache folder (``distill-man/``). With ``--data FILE...`` the files'
documents are cut the same way, in order, and every 10th window (index 9, 19, ...) is held out for validation
(up to ``val_pairs``); windows never span two documents.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass

import numpy as np

from edgekit import data as textdata
from edgekit.errors import EdgekitError

#: one man page in this many (by name hash) is held out for validation
VAL_EVERY = 20
#: with --data files, every this-many-th window is held out
DATA_VAL_EVERY = 10
#: a man-page validation window sharing a run of this many consecutive tokens with the training pairs is skipped
SHARED_RUN_TOKENS = 16
#: ... when more than this share of its continuation's runs are in them
MAX_REPEATED = 0.5


@dataclass(frozen=True)
class Pairs:
    """``n`` prefix → continuation pairs: ``prefix [n, P]`` and ``cont [n, C]`` token ids (int64)."""

    prefix: np.ndarray
    cont: np.ndarray

    def __len__(self) -> int:
        return len(self.prefix)

    def digest(self) -> str:
        """A short hash of the ids (the teacher cache's and the checkpoints' identity of the data)."""
        h = hashlib.sha256()
        for a in (self.prefix, self.cont):
            h.update(str(a.shape).encode())
            h.update(np.ascontiguousarray(a, dtype=np.int64).tobytes())
        return h.hexdigest()[:16]


def man_page_split(name: str) -> str:
    """``test`` (a test-man page), ``val`` or ``train`` for the man page ``name`` (see the module docstring)."""
    if name in textdata.MAN_PAGES:
        return "test"
    h = int(hashlib.sha256(f"edgekit-distill-val:{name}".encode()).hexdigest()[:8], 16)
    return "val" if h % VAL_EVERY == 0 else "train"


def _is_redirect(path) -> bool:
    """A ``.so other.1`` stub page (its text is another page's)."""
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            head = f.read(256)
    except OSError:
        return True
    return head.lstrip().startswith(b".so ")


def man_pages(split: str, seed: int = 0) -> list:
    """The eligible man(1) page files of one split (``train`` or ``val``), in the order they are used.

    Raises:
        EdgekitError: ``man`` is not installed or no page of the split exists.
    """
    import shutil

    if shutil.which("man") is None:
        raise EdgekitError("distilling on man pages needs the `man` command (apt-get install man-db); or pass "
                           "--data FILE")
    key = (lambda n: hashlib.sha256(f"{seed}:{n}".encode()).hexdigest()) if split == "train" else \
        (lambda n: hashlib.sha256(f"val:{n}".encode()).hexdigest())
    pages = [(key(n), p) for n, p in textdata.man1_pages().items()
             if man_page_split(n) == split and not p.is_symlink()]
    if not pages:
        raise EdgekitError(f"no {split} man pages in {textdata.MAN_DIR}; pass --data FILE")
    return [p for _, p in sorted(pages)]


def render_cached(path) -> str:
    """``render_man_page(path)``, cached under edgekit's cache folder (key: path, size, mtime, width)."""
    from edgekit.cache import cache_dir

    st = path.stat()
    key = hashlib.sha256(json.dumps([str(path), st.st_size, st.st_mtime_ns, textdata.MAN_WIDTH]).encode())
    f = cache_dir() / "distill-man" / f"{key.hexdigest()[:20]}.txt"
    if f.is_file():
        return f.read_text(encoding="utf-8")
    text = textdata.render_man_page(path)
    f.parent.mkdir(parents=True, exist_ok=True)
    tmp = f.with_suffix(f".tmp{id(text)}")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(f)
    return text


def windows(ids: np.ndarray, prefix_len: int, cont_len: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Consecutive non-overlapping (prefix, continuation) windows of one document's ids (partial tail dropped)."""
    w = prefix_len + cont_len
    return [(ids[s:s + prefix_len], ids[s + prefix_len:s + w]) for s in range(0, len(ids) - w + 1, w)]


def _stack(rows) -> Pairs:
    return Pairs(np.stack([r[0] for r in rows]).astype(np.int64), np.stack([r[1] for r in rows]).astype(np.int64))


def _runs(seq: np.ndarray, n: int) -> list[int]:
    seq = np.ascontiguousarray(seq, dtype=np.int64)
    return [hash(w.tobytes()) for w in np.lib.stride_tricks.sliding_window_view(seq, n)] if len(seq) >= n else []


def token_runs(rows, n: int = SHARED_RUN_TOKENS) -> set[int]:
    """Hashes of every run of ``n`` consecutive tokens of each ``(prefix, cont)`` pair in ``rows``."""
    runs: set[int] = set()
    for pre, con in rows:
        runs.update(_runs(np.concatenate([pre, con]), n))
    return runs


def repeated_share(pair, runs: set[int], n: int = SHARED_RUN_TOKENS) -> float:
    """The share of ``pair``'s continuation runs (runs of ``n`` tokens ending at a continuation token) in ``runs``."""
    pre, con = pair
    mine = _runs(np.concatenate([pre[-(n - 1):] if n > 1 else pre[:0], con]), n)
    return sum(r in runs for r in mine) / len(mine) if mine else 0.0


def _man_pairs(tokenizer, split: str, n: int, prefix_len: int, cont_len: int, seed: int, first_only: bool,
               avoid: set[int] | None = None):
    """Pairs from the pages of ``split`` (only each page's first window with ``first_only``); a window whose
    continuation mostly repeats ``avoid`` (:func:`token_runs`, :func:`repeated_share`) is skipped.
    Returns ``(rows, pages used, pages not rendered, windows skipped as repeats)``."""
    rows, used, skipped, repeats = [], 0, 0, 0
    for path in man_pages(split, seed):
        if len(rows) >= n:
            break
        if _is_redirect(path):
            continue
        try:
            text = render_cached(path)
        except EdgekitError:
            skipped += 1  # a page man cannot render is left out, not fatal on a corpus of thousands
            continue
        ws = windows(textdata.tokenize_docs(tokenizer, [text]), prefix_len, cont_len)
        if first_only:
            ws = ws[:1]
        if avoid is not None:
            keep = [w for w in ws if repeated_share(w, avoid) <= MAX_REPEATED]
            repeats += len(ws) - len(keep)
            ws = keep
        if ws:
            used += 1
            rows.extend(ws[:n - len(rows)])
    return rows, used, skipped, repeats


def build_pairs(tokenizer, train_cfg, data_paths=None) -> tuple[Pairs, Pairs, dict]:
    """The training and validation pairs for ``train_cfg`` (``prefix_len``, ``cont_len``, ``train_pairs``,
    ``val_pairs``, ``seed``) from man pages or ``data_paths`` (see the module docstring).

    Returns:
        ``(train, val, info)``; info names the source and counts pages/documents and pairs.

    Raises:
        EdgekitError: a text file is missing, empty or not text, or the text has no training or no validation
            window of ``prefix_len + cont_len`` tokens.
    """
    p, c = train_cfg.prefix_len, train_cfg.cont_len
    need = f"prefix_len + cont_len = {p} + {c} = {p + c} tokens"
    if not data_paths:
        train, n_train, skipped, _ = _man_pairs(tokenizer, "train", train_cfg.train_pairs, p, c, train_cfg.seed,
                                                False)
        val, n_val, skipped_v, repeats = _man_pairs(tokenizer, "val", train_cfg.val_pairs, p, c, 0, True,
                                                    avoid=token_runs(train))
        info = {"source": f"man pages ({textdata.MAN_DIR}), test-man pages excluded", "train_pages": n_train,
                "val_pages": n_val, "pages_not_rendered": skipped + skipped_v,
                "val_windows_skipped_as_repeats": repeats}
        if not train or not val:
            raise EdgekitError(f"the man pages gave {len(train)} training and {len(val)} validation windows of {need}; "
                               "use shorter --prefix-len/--cont-len or pass --data FILE")
    else:
        docs = textdata.load_texts(list(data_paths))
        all_w = [w for d in docs for w in windows(textdata.tokenize_docs(tokenizer, [d]), p, c)]
        if len(all_w) < 2:
            longest = max(len(textdata.tokenize_docs(tokenizer, [d])) for d in docs)
            raise EdgekitError(f"--data has {len(all_w)} window(s) of {need} (its longest document has {longest} "
                               "tokens); distillation needs at least 2 (one held out): give more text or shorter "
                               "--prefix-len/--cont-len")
        held = [i for i in range(len(all_w)) if i % DATA_VAL_EVERY == DATA_VAL_EVERY - 1][:train_cfg.val_pairs]
        held = set(held or [len(all_w) - 1])  # fewer than 10 windows: hold out the last one
        val = [all_w[i] for i in sorted(held)]
        train = [w for i, w in enumerate(all_w) if i not in held][:train_cfg.train_pairs]
        info = {"source": "--data " + " ".join(str(x) for x in data_paths), "documents": len(docs)}
    info.update({"train_pairs": len(train), "val_pairs": len(val), "prefix_len": p, "cont_len": c})
    return _stack(train), _stack(val), info
