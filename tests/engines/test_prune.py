"""Token pruning: the schedule rules (the C++ rule vs numpy), the runtime on synthetic artifacts, the PyTorch path.

Real-model tests (runtime vs PyTorch path on the session's SmolLM2 W4A8) live in tests/model/test_prune_model.py.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import capi_util as cu
from edgekit import _C
from edgekit.config import AgileQuantConfig, PruneConfig, from_dict
from edgekit.errors import EdgekitError
from edgekit.prune import schedule


def _ref_keep_count(n0: int, ratio: float, j: int, m: int, keep_last: int) -> int:
    """The rule written out in numpy: survivors of the j-th of m layers, (1 - ratio)^(j/m) of the prompt, rounded
    up, never fewer than position 0 and the protected tail."""
    protect = min(n0, 1 + keep_last)
    left = float(n0) * math.pow(1.0 - float(np.float32(ratio)), float(j) / float(m))
    return max(protect, min(n0, math.ceil(left - 1e-9)))


def _ref_select(score, orig, n0: int, keep_last: int, n_keep: int) -> np.ndarray:
    """The selection written out in numpy: drop the lowest-scoring candidates (not position 0, not the tail), ties
    toward the lower prompt index (a stable sort)."""
    score, orig = np.asarray(score, dtype=np.float32), np.asarray(orig)
    cand = np.flatnonzero((orig != 0) & (orig < n0 - keep_last))
    n_drop = max(0, min(len(cand), len(score) - n_keep))
    keep = np.ones(len(score), dtype=bool)
    keep[cand[np.argsort(score[cand], kind="stable")][:n_drop]] = False
    return np.flatnonzero(keep)


def test_keep_counts_and_selection_match_the_runtime():
    """csrc/runtime/prune.cpp (through prune.schedule) agrees with the rule written out in numpy on every count and
    every selection, ties included."""
    rng = np.random.default_rng(0)
    for n0 in (1, 2, 5, 6, 7, 64, 513, 1024):
        for ratio in (0.0, 0.1, 0.25, 1 / 3, 0.5, 0.9):
            for m in (1, 3, 18):
                for keep_last in (1, 4, 64):
                    counts = [schedule.keep_count(n0, ratio, j, m, keep_last) for j in range(1, m + 1)]
                    assert counts == [_ref_keep_count(n0, ratio, j, m, keep_last) for j in range(1, m + 1)]
                    assert counts == sorted(counts, reverse=True) and counts[-1] >= min(n0, 1 + keep_last)
    for trial in range(300):
        n0 = int(rng.integers(2, 300))
        n = int(rng.integers(1, n0 + 1))
        orig = np.sort(rng.choice(np.arange(1, n0), size=n - 1, replace=False)) if n > 1 else np.zeros(0, int)
        orig = np.concatenate([[0], orig]).astype(np.int32)[:n]
        # few distinct values: many ties, which must break toward the lower prompt index in both
        score = rng.integers(0, 4, size=n).astype(np.float32) / 4 if trial % 2 else rng.random(n).astype(np.float32)
        keep_last, n_keep = int(rng.integers(1, 8)), int(rng.integers(0, n + 1))
        py = schedule.select(score, orig, n0, keep_last, n_keep)
        assert py.tolist() == _ref_select(score, orig, n0, keep_last, n_keep).tolist()
        kept = set(orig[py].tolist())
        assert 0 in kept or 0 not in orig  # position 0 and the protected tail are never dropped
        assert all(o in kept for o in orig if o >= n0 - keep_last)


def test_lowest_scores_go_first_and_ties_by_position():
    score = np.array([9, 0.1, 0.5, 0.1, 0.2, 0.3, 0.0, 0.0], np.float32)
    orig = np.arange(8)
    # 8 tokens, keep_last 2 protects 6 and 7; drop 3 of the candidates 1..5: 1 and 3 (tie at 0.1, both), then 4
    assert schedule.select(score, orig, 8, 2, 5).tolist() == [0, 2, 5, 6, 7]
    assert schedule.select(score, orig, 8, 2, 8).tolist() == list(range(8))


def test_resolve_and_config_validation():
    mass = [0.0, 0.01, 0.05, 0.1, 0.3, 0.6]
    assert schedule.auto_start_layer(mass) == 4
    cfg = schedule.resolve(PruneConfig(ratio=0.5), 6, mass)
    assert cfg.layers == (4, 5) and cfg.start_layer == 4
    assert schedule.resolve(PruneConfig(ratio=0.5, start_layer=1), 6).layers == (1, 2, 3, 4, 5)
    assert schedule.resolve(PruneConfig(ratio=0.5, layers=[2, 5]), 6).layers == (2, 5)
    with pytest.raises(EdgekitError, match="prune layer 7 is outside"):
        schedule.resolve(PruneConfig(ratio=0.5, layers=(3, 7)), 6)
    with pytest.raises(EdgekitError, match="--prune-start-layer"):
        schedule.resolve(PruneConfig(ratio=0.5), 6)
    for bad, msg in [({"ratio": 1.0}, "ratio must be in"), ({"layers": [3, 2]}, "strictly increasing"),
                     ({"keep_last": 0}, "keep_last"), ({"start_layer": -1}, "start_layer"),
                     ({"ratios": 0.2}, "unknown key 'ratios'")]:
        with pytest.raises(EdgekitError, match=msg):
            from_dict(AgileQuantConfig, {"prune": bad})
    q = from_dict(AgileQuantConfig, {"prune": {"ratio": 0.25, "layers": [1, 2]}})
    assert q.prune.layers == (1, 2) and "prune 0.25" in q.describe()


def _tiny(tmp_path, prune: dict | None = None, name="tiny.ekq"):
    quant = dict(cu.QUANT)
    if prune is not None:
        quant["prune"] = prune
    meta = cu.tiny_metadata(cu.TINY, {"edgekit.quant": json.dumps(quant)})
    return cu.write_tiny(tmp_path / name, meta=meta)


def _step(m, token: int) -> np.ndarray:
    return m.eval(np.array([token], np.int32))


PROMPT = np.array([1, 5, 9, 33, 2, 71, 40, 40, 8, 13, 77, 60, 3, 19, 22, 50, 7, 90, 11, 4], np.int32)


def test_beta_zero_is_bit_identical_and_kept_rows_equal_the_unpruned_ones(tmp_path):
    m = _C.LlamaRuntime.load(str(_tiny(tmp_path)), 0)
    full = m.eval(PROMPT, True)
    nxt = _step(m, 6)
    m.set_pruning(0.0, [0, 1], 4)  # the machinery runs (scores, selection, compaction) and drops nothing
    m.reset()
    np.testing.assert_array_equal(m.eval(PROMPT, True), full)
    np.testing.assert_array_equal(_step(m, 6), nxt)
    assert [len(k) for k in m.last_kept()] == [len(PROMPT)] * 2
    # pruning at the last layer only: survivors went through exactly the unpruned computation
    m.set_pruning(0.5, [1], 4)
    m.reset()
    pruned = m.eval(PROMPT, True)
    kept = m.last_kept()[0]
    assert len(kept) == 10 and 0 in kept and all(i in kept for i in range(16, 20))
    np.testing.assert_array_equal(pruned[kept], full[kept])
    dropped = sorted(set(range(len(PROMPT))) - set(kept))
    assert not np.array_equal(pruned[dropped], full[dropped])  # frozen before the MLP of layer 1
    assert (m.cached(0), m.cached(1)) == (20, 20)  # the pruning layer itself caches every token


def test_later_layers_cache_survivors_and_decode_truncate_work(tmp_path):
    m = _C.LlamaRuntime.load(str(_tiny(tmp_path, {"ratio": 0.5, "layers": [0], "keep_last": 4,
                                                   "start_layer": 0})), 0)
    assert m.pruning == (0.5, [0], 4)
    m.eval(PROMPT)
    assert (m.n_past, m.cached(0), m.cached(1)) == (20, 20, 10)
    steps = [_step(m, t) for t in (6, 7, 8)]  # decode is never pruned: each layer gains a slot per step
    assert (m.n_past, m.cached(0), m.cached(1)) == (23, 23, 13)
    m.truncate(21)
    assert (m.cached(0), m.cached(1)) == (21, 11)
    np.testing.assert_array_equal(_step(m, 7), steps[1])
    np.testing.assert_array_equal(_step(m, 8), steps[2])
    m.truncate(5)  # into the pruned prompt: layer 1 keeps only the survivors among positions 0..4
    kept = m.last_kept()[0]
    assert m.cached(1) == sum(1 for i in kept if i < 5)
    m.reset()
    assert (m.n_past, m.cached(1)) == (0, 0)
    _step(m, 3)  # a single-token prompt is never pruned
    assert m.cached(1) == 1


@pytest.mark.parametrize("prune, msg", [({"ratio": 1.5, "layers": [0]}, "ratio"),
                                        ({"ratio": 0.5, "layers": [0, 0]}, "increasing"),
                                        ({"ratio": 0.5, "layers": [2]}, "layer indices 0..1"),
                                        ({"ratio": 0.5, "layers": "all"}, "must be a list"),
                                        ({"ratio": 0.5, "layers": [0], "keep_last": 0}, "keep_last")])
def test_bad_prune_metadata_is_refused(tmp_path, prune, msg):
    with pytest.raises(ValueError, match=msg):
        _C.LlamaRuntime.load(str(_tiny(tmp_path, prune)), 0)


def test_c_api_set_pruning(tmp_path):
    native = cu.source_module("edgekit.native.capi")
    lib = native.load_library()
    path = _tiny(tmp_path)
    ref = _C.LlamaRuntime.load(str(path), 0)
    ref.set_pruning(0.5, [0, 1], 2)
    want = ref.eval(PROMPT, True)
    with cu.Model(lib, path) as m:
        layers = (cu.ctypes.c_int32 * 2)(0, 1)
        cu.check(lib, lib.ek_set_pruning(m.h, 0.5, layers, 2, 2))
        np.testing.assert_array_equal(m.eval(PROMPT, all_logits=True), want)
        for args, text in [((1.0, layers, 2, 2), "ratio"), ((0.5, None, 2, 2), "layers"),
                           ((0.5, (cu.ctypes.c_int32 * 2)(1, 0), 2, 2), "increasing"), ((0.5, layers, 2, 0), "keep")]:
            assert lib.ek_set_pruning(m.h, *args) == 1
            assert text in lib.ek_last_error().decode()
        cu.check(lib, lib.ek_set_pruning(m.h, 0.0, None, 0, 4))  # off
        m.h and lib.ek_reset(m.h)
        assert not np.array_equal(m.eval(PROMPT, all_logits=True), want)
