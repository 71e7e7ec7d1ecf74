"""Recipes: YAML files that map onto :class:`edgekit.config.AgileQuantConfig`, validated strictly.

A recipe has a ``name``, an optional ``description``, a ``scheme`` (``agile_quant``), the config fields (``weight``,
``activation``, ``attention``, ``w4a4_ratio``, ``lm_head_bits``) and optional ``calibration`` defaults
(``samples``, ``seqlen``). Any other key is an error that names it and lists the allowed ones.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path


from edgekit.config import AgileQuantConfig, from_dict, read_named_yaml
from edgekit.errors import EdgekitError

# the repository's recipes/ in a source checkout; a wheel carries them as edgekit/recipes_data (CMake installs them)
_HERE = Path(__file__).resolve().parent
RECIPES_DIR = _HERE.parent / "recipes" if (_HERE.parent / "recipes").is_dir() else _HERE / "recipes_data"
_TOP = {"name", "description", "scheme", "calibration"}
_CALIB = {"samples", "seqlen"}
DEFAULT_RECIPE = "agile-w4a8"
# encoders keep GPTQ + activation-aware scaling: on MiniLM the importance-weighted RTN of agile-w4a8 reaches 0.974
# embedding cosine, GPTQ 0.985 (BENCHMARKS.md)
ENCODER_RECIPE = "agile-w4a8-gptq"


def default_recipe(model_spec: str | None = None) -> str:
    """The recipe ``edgekit quantize`` uses without ``--recipe``: ``agile-w4a8`` for decoders,
    ``agile-w4a8-gptq`` for encoders (read from the model's ``config.json``; hub ids count as decoders)."""
    from edgekit.models.checks import family_of
    from edgekit.models.sources import resolve_spec

    try:
        src = resolve_spec(model_spec) if model_spec else None
        cfg = None if src is None or src.gguf_file else Path(src.path) / "config.json"
        # only the architecture name: loading the model validates the directory (and its weights) anyway
        if cfg is not None and cfg.is_file():
            model_type = json.loads(cfg.read_text(encoding="utf-8"))["model_type"]
            if family_of(str(model_type), str(cfg)) == "bert":
                return ENCODER_RECIPE
    except (EdgekitError, OSError, ValueError, KeyError, TypeError):
        pass  # quantizing reports what is wrong with the model
    return DEFAULT_RECIPE


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A parsed recipe: its name, the quantization config and calibration defaults."""

    name: str
    config: AgileQuantConfig
    calib_samples: int | None = None  # None: the task's default (see edgekit.quantize.quantize_model)
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
    """Load a shipped recipe by name (``agile-w4a8``) or a YAML file by path; None gives the default recipe."""
    name_or_path = name_or_path or DEFAULT_RECIPE
    data, p = read_named_yaml(name_or_path, RECIPES_DIR, "recipe")
    return parse_recipe(data, str(p.name))


def with_overrides(cfg: AgileQuantConfig, *, bits=None, act_bits=None, group_size=None) -> AgileQuantConfig:
    """Apply command-line overrides (``--bits``, ``--act-bits``, ``--group-size``) to a recipe's config."""
    w, a = cfg.weight, cfg.activation
    if bits is not None:
        w = dataclasses.replace(w, bits=bits)
    if group_size is not None:
        w = dataclasses.replace(w, group_size=group_size)
    if act_bits is not None:
        a = dataclasses.replace(a, bits=act_bits)
    return dataclasses.replace(cfg, weight=w, activation=a)
