"""Device profiles (targets/*.yaml, edgekit.targets): every shipped one loads, and bad ones fail with a clear message.

Pure Python and fast: nothing is compiled here (tests/cross/test_kernels_arm.py builds and runs the kernels).
"""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from edgekit.errors import EdgekitError
from edgekit.targets import KERNELS, TARGETS_DIR, Target, list_targets, load_target, parse_target

SHIPPED = ("android-arm64", "rpi4", "rpi5", "x86-64", "x86-avx2", "x86-avx512-vnni")
EXPECTED_KERNELS = {"rpi4": "neon", "rpi5": "neondot", "android-arm64": "neoni8mm", "x86-avx2": "avx2",
                    "x86-avx512-vnni": "avx512vnni", "x86-64": "avx2"}


def _write(tmp_path, data, name="board.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data), encoding="utf-8")
    return p


def _rpi5_dict():
    return yaml.safe_load((TARGETS_DIR / "rpi5.yaml").read_text(encoding="utf-8"))


def test_list_targets_has_the_shipped_profiles():
    assert set(SHIPPED) <= set(list_targets())


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_targets_load(name):
    t = load_target(name)
    assert isinstance(t, Target) and t.name == name
    assert t.kernels == EXPECTED_KERNELS[name] and t.kernels in KERNELS[t.arch]
    assert t.cores >= 1 and t.memory_gib > 0 and t.description
    assert all("native" not in f for f in t.cflags)
    if t.arch == "aarch64":
        # cross-compiled and emulated here: the toolchain file must exist in the source tree
        assert t.toolchain and (TARGETS_DIR.parent / t.toolchain).is_file()
        assert t.qemu_cpu in ("cortex-a72", "cortex-a76", "max")
    else:
        assert t.toolchain is None and t.qemu_cpu is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.cores = 2  # type: ignore[misc]


def test_pi_profiles_match_their_cpus():
    rpi4, rpi5 = load_target("rpi4"), load_target("rpi5")
    assert rpi4.qemu_cpu == "cortex-a72" and "-march=armv8-a" in rpi4.cflags
    assert rpi5.qemu_cpu == "cortex-a76" and "-march=armv8.2-a+dotprod" in rpi5.cflags
    assert rpi4.cores == rpi5.cores == 4 and rpi5.memory_gib == 8
    # the Pi 5's Cortex-A76 has no i8mm; phones since 2022 (Armv8.6 / Armv9 cores) do
    assert not any("i8mm" in f for f in rpi4.cflags + rpi5.cflags)
    phone = load_target("android-arm64")
    assert phone.qemu_cpu == "max" and "-march=armv8.2-a+dotprod+i8mm" in phone.cflags


def test_required_features_follow_the_expected_kernel():
    """A bundle requires exactly what its profile's kernel needs (edgekit-bench --require), no more."""
    need = {"neon": {"asimd"}, "neondot": {"asimd", "asimddp"}, "neoni8mm": {"asimd", "asimddp", "i8mm"}}
    for name in ("rpi4", "rpi5", "android-arm64"):
        t = load_target(name)
        assert set(t.features) == need[t.kernels], name
        assert not set(t.features) & set(t.optional_features)
    assert load_target("x86-64").features == () and "avx512_vnni" in load_target("x86-64").optional_features


@pytest.mark.parametrize("bad", [["asimd dp"], "asimd", [""], ["a,b"]])
def test_bad_feature_list_is_an_error(tmp_path, bad):
    with pytest.raises(EdgekitError, match="features must be a list of feature names"):
        load_target(_write(tmp_path, _rpi5_dict() | {"features": bad}))


def test_load_by_path(tmp_path):
    t = load_target(_write(tmp_path, _rpi5_dict()))
    assert t.name == "rpi5" and t.path == (tmp_path / "board.yaml").resolve()


def test_unknown_key_names_it_and_the_allowed_ones(tmp_path):
    data = _rpi5_dict() | {"ram": 8}
    with pytest.raises(EdgekitError) as e:
        load_target(_write(tmp_path, data))
    msg = str(e.value)
    assert "unknown key 'ram'" in msg and "board.yaml" in msg
    for key in ("arch", "cflags", "cores", "kernels", "memory_gib", "qemu_cpu", "toolchain"):
        assert key in msg


def test_unknown_target_lists_the_shipped_ones():
    with pytest.raises(EdgekitError) as e:
        load_target("rpi9")
    msg = str(e.value)
    assert "rpi9" in msg
    for name in SHIPPED:
        assert name in msg


@pytest.mark.parametrize("change, words", [
    ({"arch": "riscv64"}, "arch must be one of"),
    ({"kernels": "avx2"}, "kernels must be one of scalar, neon, neondot, neoni8mm"),
    ({"cores": 0}, "cores must be a positive integer"),
    ({"cores": True}, "cores must be a positive integer"),
    ({"memory_gib": "8G"}, "memory_gib must be a positive number"),
    ({"cflags": "-O2"}, "cflags must be a list of strings"),
    ({"cflags": ["-mcpu=native"]}, "must not use the build machine's CPU"),
    ({"toolchain": ""}, "toolchain must be a non-empty string or null"),
    ({"qemu_cpu": 72}, "qemu_cpu must be a non-empty string or null"),
])
def test_bad_values_are_rejected(change, words):
    with pytest.raises(EdgekitError, match=words):
        parse_target(_rpi5_dict() | change, "rpi5.yaml")


def test_missing_keys_and_non_mappings():
    data = _rpi5_dict()
    del data["kernels"]
    with pytest.raises(EdgekitError, match="missing key.*kernels"):
        parse_target(data)
    with pytest.raises(EdgekitError, match="must be a YAML mapping"):
        parse_target(["rpi5"])
    with pytest.raises(EdgekitError, match="qemu_cpu is only for aarch64"):
        parse_target(yaml.safe_load((TARGETS_DIR / "x86-avx2.yaml").read_text()) | {"qemu_cpu": "cortex-a72"})


def test_invalid_yaml(tmp_path):
    p = tmp_path / "broken.yaml"
    p.write_text("name: [unclosed\n", encoding="utf-8")
    with pytest.raises(EdgekitError, match="not valid YAML"):
        load_target(p)
