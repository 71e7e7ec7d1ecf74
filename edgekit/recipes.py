"""Recipes: YAML files that map onto :class:`edgekit.config.AgileQuantConfig`, validated strictly.

A recipe has a ``name``, an optional ``description``, a ``scheme`` (``agile_quant``), the config fields (``weight``,
``activation``, ``attention``, ``w4a4_ratio``, ``lm_head_bits``, ``lm_head_act_bits``,
``rotation``) and optional ``calibration`` defaults
(``samples``, ``seqlen``). Any other key is an error that names it and lists the allowed ones.

The shipped recipes (``recipes/*.yaml``): ``agile-quant`` is Agile-Quant W4A8 as published (GPTQ int4 weights after
activation-aware scaling, int8 activations per token); ``w4a8`` is edgekit's improvement of it (GPTQ on a shrunk
Hessian with importance-weighted int4 scales, int8 activations per block of 32); ``agile-quant-trip`` and
``agile-quant-w4a4`` are the paper's TRIP and W4A4 variants; ``rtn-w4a8`` and ``w8a8`` are baselines. ``w4a8-tune``
(``w4a8`` plus block-wise tuning of codes, scales and norms) is the default for causal decoders; encoder-decoders
keep ``w4a8`` (the tuning's shortened windows are exact only for causal blocks). The names
before the rename (``agile-w4a8`` …) still load, with a one-line notice (:data:`RECIPE_ALIASES`).

ACM recipes (``recipes/acm/*.yaml``, :func:`load_acm_recipe`) map onto :class:`edgekit.config.AcmConfig` with the same
strictness: ``name``, ``description`` and the config's fields, nothing else.

This module also reads the YAML files of recipes and device profiles (:func:`read_named_yaml`).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from edgekit.config import AcmConfig, AgileQuantConfig, from_dict
from edgekit.errors import EdgekitError

# the repository's recipes/ in a source checkout; a wheel carries them as edgekit/recipes_data (CMake installs them)
_HERE = Path(__file__).resolve().parent
RECIPES_DIR = _HERE.parent / "recipes" if (_HERE.parent / "recipes").is_dir() else _HERE / "recipes_data"
_TOP = {"name", "description", "scheme", "calibration"}
_CALIB = {"samples", "seqlen"}
# causal decoders: w4a8-tune beat w4a8 on the dev set at every seed, within the 10-minute budget (BENCHMARKS #1;
# reported after the choice: docstrings -1 %, man pages level)
DEFAULT_RECIPE = "w4a8-tune"
# encoder-decoders keep w4a8: the tuning cuts windows to their first tokens, exact only for causal blocks
SEQ2SEQ_RECIPE = "w4a8"
#: the recipes ``edgekit bench quality`` compares by default: the default, what it builds on, and the baselines
QUALITY_RECIPES = ("rtn-w4a8", "w4a8", "w4a8-tune", "agile-quant", "agile-quant-trip", "agile-quant-w4a4", "w8a8")
# encoders keep GPTQ + activation-aware scaling: on MiniLM the importance-weighted RTN of w4a8 reaches 0.974
# embedding cosine, GPTQ 0.985 (BENCHMARKS.md)
ENCODER_RECIPE = "agile-quant"
_FAMILY_RECIPES = {"bert": ENCODER_RECIPE, "t5": SEQ2SEQ_RECIPE}  # every other family: DEFAULT_RECIPE
#: old recipe name → its name now; the old names keep working (scripts, file names of earlier artifacts)
RECIPE_ALIASES = {"agile-w4a8": "w4a8", "agile-w4a8-gptq": "agile-quant", "agile-w4a8-trip": "agile-quant-trip",
                  "agile-w4a4": "agile-quant-w4a4"}
_noticed: set[str] = set()  # old names whose notice was printed (once per process)


def read_named_yaml(name_or_path, folder, kind: str):
    """Read ``name_or_path`` as a YAML file path, else as ``folder/<name>.yaml`` (a shipped recipe or target).

    Returns:
        ``(parsed YAML, path)``.

    Raises:
        EdgekitError: naming the shipped ones when neither exists, or when the file is not valid YAML text.
    """
    import yaml

    p = Path(name_or_path)
    if not p.is_file():
        p = Path(folder) / f"{name_or_path}.yaml"
    if not p.is_file():
        shipped = ", ".join(sorted(q.stem for q in Path(folder).glob("*.yaml")))
        raise EdgekitError(f"{kind} not found: {name_or_path}; shipped {kind}s: {shipped} "
                           "(or pass a path to a .yaml file)")
    try:
        return yaml.safe_load(p.read_text(encoding="utf-8")), p
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise EdgekitError(f"{p}: not valid YAML ({str(e).splitlines()[0]})") from None


def recipe_name(name: str) -> str:
    """The current name of a shipped recipe: an old name (:data:`RECIPE_ALIASES`) becomes its new one, with a
    one-line notice on stderr the first time; any other name is returned as it is."""
    new = RECIPE_ALIASES.get(name)
    if new is None:
        return name
    if name not in _noticed:
        _noticed.add(name)
        print(f"note: recipe {name!r} is now called {new!r}; the old name still works", file=sys.stderr)
    return new


def default_recipe(model_spec: str | None = None) -> str:
    """The recipe ``edgekit quantize`` uses without ``--recipe``: ``w4a8-tune`` for decoders, ``agile-quant`` for
    encoders, ``w4a8`` for encoder-decoders (read from the model's ``config.json``; hub ids count as decoders)."""
    from edgekit.models.checks import family_of
    from edgekit.models.sources import resolve_spec

    try:
        src = resolve_spec(model_spec) if model_spec else None
        cfg = None if src is None or src.gguf_file else Path(src.path) / "config.json"
        # only the architecture name: loading the model validates the directory (and its weights) anyway
        if cfg is not None and cfg.is_file():
            model_type = json.loads(cfg.read_text(encoding="utf-8"))["model_type"]
            return _FAMILY_RECIPES.get(family_of(str(model_type), str(cfg)), DEFAULT_RECIPE)
    except (EdgekitError, OSError, ValueError, KeyError, TypeError):
        pass  # quantizing reports what is wrong with the model
    return DEFAULT_RECIPE


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A parsed recipe: its name, the quantization config and calibration defaults."""

    name: str
    config: AgileQuantConfig
    calib_samples: int | None = None  # None: the task's default (see edgekit.quant.api.quantize_model)
    calib_seqlen: int | None = None
    description: str = ""


def list_recipes() -> list[str]:
    """Names of the recipes shipped with edgekit."""
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def parse_recipe(data: dict, where: str = "recipe") -> Recipe:
    """Validate a recipe mapping and build its :class:`Recipe`."""
    if not isinstance(data, dict):
        raise EdgekitError(f"{where}: a recipe must be a YAML mapping")
    allowed = _TOP | {f.name for f in dataclasses.fields(AgileQuantConfig)} - {"version"}
    for key in data:
        if key not in allowed:
            raise EdgekitError(f"{where}: unknown key {key!r}; allowed: {', '.join(sorted(allowed))}")
    scheme = data.get("scheme", "agile_quant")
    if scheme != "agile_quant":
        raise EdgekitError(f"{where}: unknown scheme {scheme!r}; supported: agile_quant")
    calib = data.get("calibration") or {}
    for key in calib:
        if key not in _CALIB:
            raise EdgekitError(f"{where}: unknown key {key!r} in calibration; allowed: {', '.join(sorted(_CALIB))}")
    cfg = from_dict(AgileQuantConfig, {k: v for k, v in data.items() if k not in _TOP}, where)
    samples, seqlen = calib.get("samples"), calib.get("seqlen")
    return Recipe(str(data.get("name", where)), cfg, None if samples is None else int(samples),
                  None if seqlen is None else int(seqlen), str(data.get("description", "")))


def load_recipe(name_or_path: str | None) -> Recipe:
    """Load a shipped recipe by name (``w4a8``; old names such as ``agile-w4a8`` too) or a YAML file by path; None
    gives the default recipe.

    Raises:
        EdgekitError: for an unknown name (listing the shipped ones) or an invalid recipe.
    """
    name_or_path = name_or_path or DEFAULT_RECIPE
    if not Path(name_or_path).is_file():
        name_or_path = recipe_name(str(name_or_path))
    data, p = read_named_yaml(name_or_path, RECIPES_DIR, "recipe")
    return parse_recipe(data, str(p.name))


def with_overrides(cfg: AgileQuantConfig, *, bits=None, act_bits=None, group_size=None) -> AgileQuantConfig:
    """Apply command-line overrides (``--bits``, ``--act-bits``, ``--group-size``) to a recipe's config.

    Block-wise tuning (``weight.tune``, the default recipe's) is defined for 4-bit group weights only: an override
    that leaves those turns it off, with a one-line notice, rather than failing.
    """
    from edgekit.config import TuneConfig

    w, a = cfg.weight, cfg.activation
    changes = {k: v for k, v in (("bits", bits), ("group_size", group_size)) if v is not None}
    if changes:
        bits_after, group_after = changes.get("bits", w.bits), changes.get("group_size", w.group_size)
        if w.tune.iters and not w.tunable(bits_after, w.symmetric, group_after):
            print(f"note: block-wise tuning needs 4-bit group weights; off for {bits_after}-bit, group "
                  f"{group_after}", file=sys.stderr)
            changes["tune"] = TuneConfig()
        w = dataclasses.replace(w, **changes)
    if act_bits is not None:
        a = dataclasses.replace(a, bits=act_bits)
    return dataclasses.replace(cfg, weight=w, activation=a)


#: the ACM recipes' folder (``recipes/acm``) and the one ``edgekit acm`` uses by default
ACM_RECIPES_DIR = RECIPES_DIR / "acm"
DEFAULT_ACM_RECIPE = "default"


def load_acm_recipe(name_or_path: str | None = None) -> tuple[str, AcmConfig]:
    """Load a shipped ACM recipe by name (``default``) or a YAML file by path.

    Returns:
        ``(name, AcmConfig)``.

    Raises:
        EdgekitError: an unknown name (listing the shipped ones), an unknown key (naming it and the allowed ones) or
            a bad value.
    """
    data, p = read_named_yaml(name_or_path or DEFAULT_ACM_RECIPE, ACM_RECIPES_DIR, "ACM recipe")
    where = str(p.name)
    if not isinstance(data, dict):
        raise EdgekitError(f"{where}: an ACM recipe must be a YAML mapping")
    top = {"name", "description"}
    allowed = top | {f.name for f in dataclasses.fields(AcmConfig)} - {"version"}
    for key in data:
        if key not in allowed:
            raise EdgekitError(f"{where}: unknown key {key!r}; allowed: {', '.join(sorted(allowed))}")
    cfg = from_dict(AcmConfig, {k: v for k, v in data.items() if k not in top}, where)
    return str(data.get("name", p.stem)), cfg
