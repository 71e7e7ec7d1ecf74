"""Device profiles: YAML files under ``targets/`` that say how to build and test edgekit's kernels for one device.

A profile names the CPU architecture, the compiler flags for that device, the CMake toolchain file for a cross build
(null: native), the qemu-user CPU model that emulates it (null: run natively), the board's cores and memory, and
``kernels``, the W4A8 matmul implementation that dispatch must pick there (``neon`` on a Pi 4, ``neondot`` on a Pi 5,
``neoni8mm`` on a phone with i8mm), and the ISA features a device bundle requires (``features``: without them
edgekit-bench refuses to run) and may use (``optional_features``), by Linux's /proc/cpuinfo names.
:mod:`edgekit.build` turns a profile into a build and a test run, :mod:`edgekit.device.bundle` into a bundle. Validation is
strict, as for recipes: an unknown key is an error that names it and lists the allowed ones.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path


from edgekit.recipes import read_named_yaml
from edgekit.errors import EdgekitError

# the repository's targets/ in a source checkout; a wheel carries them as edgekit/targets_data (CMake installs them)
_HERE = Path(__file__).resolve().parent
TARGETS_DIR = _HERE.parent / "targets" if (_HERE.parent / "targets").is_dir() else _HERE / "targets_data"

ARCHES = ("aarch64", "x86_64")
# gemm_q4x4_q8 implementations per architecture (csrc/dispatch.cpp's table); scalar is valid everywhere
KERNELS = {"aarch64": ("scalar", "neon", "neondot", "neoni8mm"), "x86_64": ("scalar", "avx2", "avx512vnni")}

_REQUIRED = ("name", "arch", "cores", "memory_gib", "kernels")
_OPTIONAL = ("description", "cflags", "toolchain", "qemu_cpu", "features", "optional_features")
_ALLOWED = frozenset(_REQUIRED + _OPTIONAL)


@dataclasses.dataclass(frozen=True)
class Target:
    """One device profile (see the module docstring); ``path`` is the YAML file it came from."""

    name: str
    arch: str
    cores: int
    memory_gib: float
    kernels: str
    description: str = ""
    cflags: tuple[str, ...] = ()
    toolchain: str | None = None  # CMake toolchain file, relative to the source tree unless absolute
    qemu_cpu: str | None = None   # qemu-user -cpu model; None: the tests run natively
    features: tuple[str, ...] = ()           # ISA features a bundle requires (/proc/cpuinfo names: asimddp, avx2)
    optional_features: tuple[str, ...] = ()  # ISA features dispatch uses when present
    path: Path | None = None

    @property
    def cross(self) -> bool:
        """True when the build needs a toolchain file (a cross compile)."""
        return self.toolchain is not None


def list_targets() -> list[str]:
    """Names of the device profiles shipped with edgekit."""
    return sorted(p.stem for p in TARGETS_DIR.glob("*.yaml"))


def _require(cond: bool, where: str, msg: str) -> None:
    if not cond:
        raise EdgekitError(f"{where}: {msg}")


def _optional_str(data: dict, key: str, where: str) -> str | None:
    v = data.get(key)
    _require(v is None or (isinstance(v, str) and v.strip() != ""), where,
             f"{key} must be a non-empty string or null, got {v!r}")
    return v


def parse_target(data: object, where: str = "target", path: Path | None = None) -> Target:
    """Validate a profile mapping and build its :class:`Target`."""
    _require(isinstance(data, dict), where, "a target profile must be a YAML mapping")
    assert isinstance(data, dict)
    for key in data:
        if key not in _ALLOWED:
            raise EdgekitError(f"{where}: unknown key {key!r}; allowed: {', '.join(sorted(_ALLOWED))}")
    missing = [k for k in _REQUIRED if k not in data]
    _require(not missing, where, f"missing key(s) {', '.join(missing)}; required: {', '.join(_REQUIRED)}")

    name = data["name"]
    _require(isinstance(name, str) and name.strip() != "", where, f"name must be a non-empty string, got {name!r}")
    arch = data["arch"]
    _require(arch in ARCHES, where, f"arch must be one of {', '.join(ARCHES)}, got {arch!r}")
    cores = data["cores"]
    # bool is an int in Python: `cores: yes` must not pass as 1
    _require(isinstance(cores, int) and not isinstance(cores, bool) and cores >= 1, where,
             f"cores must be a positive integer, got {cores!r}")
    mem = data["memory_gib"]
    _require(isinstance(mem, (int, float)) and not isinstance(mem, bool) and mem > 0, where,
             f"memory_gib must be a positive number, got {mem!r}")
    kernels = data["kernels"]
    _require(kernels in KERNELS[arch], where,
             f"kernels must be one of {', '.join(KERNELS[arch])} for arch {arch}, got {kernels!r}")

    desc = data.get("description") or ""
    _require(isinstance(desc, str), where, f"description must be a string, got {desc!r}")
    cflags = data.get("cflags") or []
    _require(isinstance(cflags, list) and all(isinstance(f, str) and f.strip() for f in cflags), where,
             f"cflags must be a list of strings, got {cflags!r}")
    # a profile describes a device, never the build machine (CMakeLists.txt: no native-arch flags)
    native = [f for f in cflags if f.split("=", 1)[-1] == "native"]
    _require(not native, where, f"cflags must not use the build machine's CPU ({', '.join(native)})")
    toolchain = _optional_str(data, "toolchain", where)
    qemu_cpu = _optional_str(data, "qemu_cpu", where)
    _require(qemu_cpu is None or arch == "aarch64", where, "qemu_cpu is only for aarch64 targets")

    feats = {}
    for key in ("features", "optional_features"):
        v = data.get(key) or []
        _require(isinstance(v, list) and all(isinstance(f, str) and f.strip() and " " not in f and "," not in f
                                             for f in v), where, f"{key} must be a list of feature names, got {v!r}")
        feats[key] = tuple(v)
    return Target(name=name, arch=arch, cores=cores, memory_gib=float(mem), kernels=kernels, description=desc,
                  cflags=tuple(cflags), toolchain=toolchain, qemu_cpu=qemu_cpu, features=feats["features"],
                  optional_features=feats["optional_features"], path=path)


def load_target(name_or_path: str | Path) -> Target:
    """Load a shipped profile by name (``rpi5``) or a YAML file by path."""
    data, p = read_named_yaml(name_or_path, TARGETS_DIR, "target")
    return parse_target(data, str(p.name), p.resolve())
