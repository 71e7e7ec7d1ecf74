"""Named evaluation sets (edgekit.data.EVAL_SETS): deterministic windows, no shared text between the sets or with the
calibration text, clear errors, and the seed aggregation of ``edgekit bench quality --seeds``."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from edgekit import data
from edgekit.errors import EdgekitError

SPAN = 20  # tokens: two texts "share text" when they have a run of this many identical tokens in common
HAS_MAN = shutil.which("man") is not None and data.MAN_DIR.is_dir()


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from edgekit.models import resolve_spec

    return AutoTokenizer.from_pretrained(resolve_spec("minilm-l6").path)


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory):
    """Rendered man pages go to a temporary cache, not the user's."""
    mp = pytest.MonkeyPatch()
    mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


def _sets() -> list[str]:
    return [n for n in data.EVAL_SETS if n != "test-man" or HAS_MAN]


def _spans(windows) -> set[tuple]:
    """Every SPAN-token run of the windows that holds at least 8 distinct tokens (so a ruler of dashes or
    asterisks, which any two texts may draw, is not counted as shared text)."""
    out = set()
    for w in np.asarray(windows):
        out.update(t for t in (tuple(w[i:i + SPAN]) for i in range(len(w) - SPAN + 1)) if len(set(t)) >= 8)
    return out


def test_the_protocol_has_one_dev_set_and_at_least_two_test_sets():
    roles = {n: s.role for n, s in data.EVAL_SETS.items()}
    assert roles["dev"] == "dev" and sum(r == "test" for r in roles.values()) >= 2
    assert all(s.description and s.cut in ("stream", "per-document") for s in data.EVAL_SETS.values())


@pytest.mark.parametrize("name", _sets())
def test_each_set_loads_the_same_windows_twice(tokenizer, name):
    a = data.eval_windows(tokenizer, None, 128, 1024, name)
    b = data.eval_windows(tokenizer, None, 128, 1024, name)
    assert a.shape == (8, 128) and a.dtype == b.dtype
    assert np.array_equal(a.numpy(), b.numpy())
    assert len({tuple(w) for w in a.numpy()}) == len(a)  # no window repeats


def test_dev_is_exactly_the_default_evaluation_text(tokenizer):
    a = data.eval_windows(tokenizer, None, 128, 2048)
    b = data.eval_windows(tokenizer, None, 128, 2048, "dev")
    assert np.array_equal(a.numpy(), b.numpy())


def test_sets_share_no_text_with_each_other_or_the_calibration_text(tokenizer):
    names = _sets()  # every window of every set (test-man's ~170k tokens included)
    spans = {n: _spans(data.eval_windows(tokenizer, None, 256, 10**7, n)) for n in names}
    calib = _spans(data.tokenize_docs(tokenizer, [data.default_calibration_text()])[None])
    for i, a in enumerate(names):
        shared = len(spans[a] & calib)
        assert shared == 0, f"{a} shares {shared} {SPAN}-token spans with the calibration text"
        for b in names[i + 1:]:
            shared = len(spans[a] & spans[b])
            assert shared == 0, f"{a} and {b} share {shared} {SPAN}-token spans"


def test_per_document_windows_never_span_two_documents_and_go_round_robin(tokenizer):
    docs = ["alpha beta gamma delta " * 40, "one two three four five " * 30, "short text"]
    ids = [data.tokenize_docs(tokenizer, [d]) for d in docs]
    w = data._per_document_windows(tokenizer, docs, 32, 10**6, "x").numpy()
    per = [len(i) // 32 for i in ids]
    assert len(w) == sum(per) and per[2] == 0
    assert np.array_equal(w[0], ids[0][:32]) and np.array_equal(w[1], ids[1][:32])  # first window of each doc
    assert np.array_equal(w[2], ids[0][32:64])  # then the second ones
    assert len(data._per_document_windows(tokenizer, docs, 32, 96, "x")) == 3


def test_unknown_set_names_the_valid_ones(tokenizer):
    with pytest.raises(EdgekitError, match="unknown evaluation set 'wiki'; valid sets: dev, test-man"):
        data.eval_windows(tokenizer, None, 128, 1024, "wiki")
    with pytest.raises(EdgekitError, match="valid sets"):
        data.parse_sets("dev,nope")
    assert data.parse_sets("dev, test-docstrings,dev") == ["dev", "test-docstrings"]
    assert data.parse_sets(("dev", "test-docstrings,dev")) == ["dev", "test-docstrings"]
    with pytest.raises(EdgekitError, match="exclusive"):
        data.eval_windows(tokenizer, ["x.txt"], 128, 1024, "dev")


@pytest.mark.skipif(not HAS_MAN, reason="test-man needs the `man` command (Debian's man-db) and /usr/share/man/man1")
def test_man_pages_are_plain_text_and_rendered_once(monkeypatch):
    docs = data.get_eval_set("test-man").load()
    assert len(docs) >= 10
    assert not any("\x08" in d or "\x1b" in d for d in docs)
    assert any(d.startswith("NAME\ncat - concatenate files") for d in docs)

    def no_render(*a, **k):
        raise AssertionError("rendered again despite the cache")

    monkeypatch.setattr(data.subprocess, "run", no_render)
    assert data.get_eval_set("test-man").load() == docs


def test_missing_man_says_which_package(monkeypatch):
    monkeypatch.setattr(data.shutil, "which", lambda _: None)
    with pytest.raises(EdgekitError, match="man-db"):
        data.get_eval_set("test-man").load()


def test_docstrings_are_prose_without_doctests():
    docs = data.get_eval_set("test-docstrings").load()
    assert len(docs) >= 20
    assert not any(">>>" in d for d in docs)
    assert all(len(d.split()) >= data.DOCSTRING_MIN_WORDS for d in docs)
    assert not any(d.startswith("The Python Debugger Pdb") for d in docs)  # pdb's repeats pydoc_data.topics


def test_seed_aggregation_mean_and_spread():
    from edgekit.bench.quality import aggregate_seeds, parse_seeds

    rows = [{"set": s, "set_role": r, "name": "reference", "engine": "torch", "perplexity": ref}
            for s, r, ref in (("dev", "dev", 10.0), ("test-man", "test", 20.0))]
    for seed, (d, m) in enumerate([(11.0, 22.0), (12.0, 21.0), (13.0, 26.0)]):
        rows += [{"set": "dev", "set_role": "dev", "seed": seed, "name": "edgekit w4a8", "engine": "edgekit",
                  "perplexity": d, "quantize_seconds": 2.0 * seed},
                 {"set": "test-man", "set_role": "test", "seed": seed, "name": "edgekit w4a8", "engine": "edgekit",
                  "perplexity": m, "quantize_seconds": 2.0 * seed}]
    summary = aggregate_seeds(rows)
    assert [(r["set"], r["name"]) for r in summary] == [("dev", "reference"), ("dev", "edgekit w4a8"),
                                                       ("test-man", "reference"), ("test-man", "edgekit w4a8")]
    ref, dev, _, man = summary
    assert ref["perplexity_std"] == 0 and ref["n"] == 1 and ref["delta_pct"] == 0 and ref["seeds"] == []
    assert dev["seeds"] == [0, 1, 2] and dev["perplexity_mean"] == pytest.approx(12.0)
    assert (dev["perplexity_min"], dev["perplexity_max"]) == (11.0, 13.0)
    assert dev["perplexity_std"] == pytest.approx(1.0)  # sample std of 11, 12, 13
    assert dev["delta_pct"] == pytest.approx(20.0) and dev["quantize_seconds"] == pytest.approx(2.0)
    assert man["perplexity_mean"] == pytest.approx(23.0) and man["perplexity_std"] == pytest.approx(7 ** 0.5)
    assert man["delta_pct"] == pytest.approx(15.0) and man["set_role"] == "test"
    assert parse_seeds("0,1, 2") == [0, 1, 2]
    for bad in ("", "0,0", "-1", "a"):
        with pytest.raises(EdgekitError, match="--seeds"):
            parse_seeds(bad)
