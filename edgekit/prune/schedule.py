"""The token-pruning schedule and selection rule, shared by the PyTorch path and the C++ runtime.

The keep count and the selection are the C++ runtime's own (``csrc/runtime/prune.cpp`` through ``edgekit._C``), so
both paths keep the same tokens when they see the same scores; Python adds only what the C++ does not have: the
choice of the pruning layers (:func:`auto_start_layer`, :func:`resolve`) and the survivor plan for reports. The rule
(``csrc/include/edgekit/prune.h``):

* importance of a token at a layer: its softmax probability on position 0, summed over heads in head order;
* the ``j``-th of ``m`` pruning layers keeps ``max(protected, ceil(n0 * (1 - ratio)^(j/m) - 1e-9))`` of the ``n0``
  prompt tokens, ``protected = min(n0, 1 + keep_last)``;
* position 0 and the last ``keep_last`` prompt positions are never dropped; the others go in order of increasing
  importance, ties broken by the lower prompt index.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edgekit.config import PruneConfig
from edgekit.errors import EdgekitError

#: a layer counts as an attention sink (no longer local) from this fraction of the deepest layer's first-token mass.
#: Relative, because local layers' mass on token 0 shrinks like 1/length while sink layers' stays put: on SmolLM2
#: layers 3-9 read 0.27 at 128 tokens and 0.09 at 1024, layers 12+ read 0.35-0.6 at any length (measure on >= 512).
SINK_FRACTION = 0.5


def keep_count(n0: int, ratio: float, j: int, m: int, keep_last: int) -> int:
    """Tokens that survive the ``j``-th (1-based) of ``m`` pruning layers of a prompt of ``n0`` tokens
    (``_C.prune_keep_count``)."""
    from edgekit import _C

    return _C.prune_keep_count(int(n0), float(ratio), int(j), int(m), int(keep_last))


def select(score: np.ndarray, orig: np.ndarray, n0: int, keep_last: int, n_keep: int) -> np.ndarray:
    """Rows (increasing) of the active tokens that survive (``_C.prune_select``).

    Args:
        score: float32 importance of each active row.
        orig: the prompt index of each active row (increasing).
        n0: prompt length.
        keep_last: protected tail length.
        n_keep: how many rows survive (protected rows always do).
    """
    from edgekit import _C

    keep = _C.prune_select(np.asarray(score, dtype=np.float32), np.asarray(orig, dtype=np.int32), int(n0),
                           int(keep_last), int(n_keep))
    return np.asarray(keep, dtype=np.int64)


def auto_start_layer(mass, fraction: float = SINK_FRACTION) -> int:
    """The first layer whose attention is no longer local: its mean attention on the first token reaches
    ``fraction`` of the largest layer's.

    Early layers attend to their neighbours and pruning there costs the most quality; from the first "sink" layer on,
    the attention-to-first-token score says which tokens the layer ignores. Layer 0 is never chosen.
    """
    mass = [float(v) for v in mass]
    if len(mass) < 2 or max(mass[1:]) <= 0:
        return len(mass) // 2
    bar = fraction * max(mass[1:])
    return next(i for i, v in enumerate(mass) if i > 0 and v >= bar)


def with_overrides(cfg: PruneConfig, ratio: float | None = None, start_layer: int | None = None,
                   layers=None) -> PruneConfig:
    """``cfg`` with the command line's overrides (``--prune-ratio``, ``--prune-start-layer``, ``--prune-layers``):
    explicit layers replace the start layer and the other way round; None / empty leaves a field as it is."""
    changes = {}
    if ratio is not None:
        changes["ratio"] = float(ratio)
    if layers:
        changes.update(layers=tuple(layers), start_layer=None)
    elif start_layer is not None:
        changes.update(start_layer=int(start_layer), layers=None)
    return dataclasses.replace(cfg, **changes)


def resolve(cfg: PruneConfig, n_layers: int, mass=None) -> PruneConfig:
    """The config with its pruning layers spelled out (what an artifact stores and the runtimes read).

    Args:
        cfg: the recipe's pruning config.
        n_layers: decoder layers of the model.
        mass: per-layer mean attention mass on the first token, needed only when ``start_layer`` is unset.

    Raises:
        EdgekitError: a layer outside the model, or no way to choose the start layer.
    """
    if cfg.layers is not None:
        layers = cfg.layers
    else:
        start = cfg.start_layer
        if start is None:
            if mass is None:
                raise EdgekitError("choose --prune-start-layer (or --prune-layers): no attention statistics to "
                                   "pick it from")
            start = auto_start_layer(mass)
        layers = tuple(range(start, n_layers))
    bad = [i for i in layers if i >= n_layers]
    if bad or not layers:
        raise EdgekitError(f"prune layer {bad[0] if bad else '?'} is outside the model's layers 0..{n_layers - 1}")
    return dataclasses.replace(cfg, start_layer=layers[0], layers=tuple(layers))


def plan(cfg: PruneConfig, n0: int) -> list[int]:
    """Survivor counts after each pruning layer of a prompt of ``n0`` tokens (for reports)."""
    m = len(cfg.layers or ())
    return [keep_count(n0, cfg.ratio, j, m, cfg.keep_last) for j in range(1, m + 1)]
