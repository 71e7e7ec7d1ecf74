"""The C++ kernel tests (csrc/tests/test_kernels.cpp) on aarch64 under qemu-user, and natively on this host.

One cross build (cmake/aarch64-linux-gnu.cmake, no device flags: what a generic arm64 binary gets) runs as a Pi 4
(Cortex-A72: NEON, no dotprod) and as a Pi 5 (Cortex-A76: dotprod); dispatch must pick ``neon`` and ``neondot``
respectively and every implementation must match the scalar one. A native build runs the same program for the x86
kernels. Each build happens once per session, in pytest's tmp dir (never in the source tree); these two build the
kernel tests alone. The ``rpi5`` profile's own build (conftest's ``rpi5_build``: edgekit.build.build_target,
-march=armv8.2-a+dotprod for everything, with libedgekit.so and the C example that tests/cross/test_capi_arm.py runs) is
checked end to end as well. Skipped only when the cross compiler or qemu-aarch64 is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from edgekit.build import AARCH64_SYSROOT, TEST_PROGRAM, configure_and_build, host_arch, run_target_tests

JOBS = 2            # the test machines have two cores
RUN_TIMEOUT = 300   # one run of the test program under qemu takes ~5-15 s


def _need_cross_tools():
    missing = [t for t in ("aarch64-linux-gnu-g++", "qemu-aarch64") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (Debian: g++-aarch64-linux-gnu, qemu-user)")
    if shutil.which("cmake") is None:
        pytest.fail("cmake is not on PATH")


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "EDGEKIT_KERNELS"}  # let dispatch choose
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=RUN_TIMEOUT,
                          env=env)


def _summary(out: str) -> str:
    lines = [ln for ln in out.splitlines() if ln.startswith("test_kernels:")]
    return lines[-1] if lines else ""


def _assert_passed(p: subprocess.CompletedProcess, what: str) -> None:
    fails = "\n".join([ln for ln in p.stdout.splitlines() if ln.startswith("FAIL")][:30])
    assert p.returncode == 0, f"{what}: exit {p.returncode}\n{fails or p.stdout[-3000:]}"
    assert "checks passed" in _summary(p.stdout), f"{what}: no summary line\n{p.stdout[-3000:]}"


@pytest.fixture(scope="session")
def arm_build(tmp_path_factory) -> Path:
    _need_cross_tools()
    return configure_and_build(tmp_path_factory.mktemp("aarch64"), toolchain="cmake/aarch64-linux-gnu.cmake",
                               jobs=JOBS, targets=(TEST_PROGRAM,))


@pytest.fixture(scope="session")
def host_build(tmp_path_factory) -> Path:
    if shutil.which("cmake") is None:
        pytest.fail("cmake is not on PATH")
    return configure_and_build(tmp_path_factory.mktemp("host-tests"), jobs=JOBS, targets=(TEST_PROGRAM,))


@pytest.mark.parametrize("cpu, expected", [("cortex-a72", "neon"), ("cortex-a76", "neondot")])
def test_arm_kernels_under_qemu(arm_build, cpu, expected):
    p = _run(["qemu-aarch64", "-L", AARCH64_SYSROOT, "-cpu", cpu, str(arm_build / TEST_PROGRAM)])
    _assert_passed(p, f"qemu -cpu {cpu}")
    assert f"selected gemm_q4x4_q8: {expected}\n" in p.stdout, p.stdout[:500]
    # every aarch64 implementation the CPU supports was compared with the scalar one
    assert f"gemm_q4x4_q8: scalar,{'neon' if expected == 'neon' else 'neon,neondot'};" in _summary(p.stdout)
    print(_summary(p.stdout))


def test_native_kernels(host_build):
    p = _run([str(host_build / TEST_PROGRAM)])
    _assert_passed(p, f"native {host_arch()}")
    print(_summary(p.stdout))


def test_rpi5_target_build_and_run(rpi5_build):
    """edgekit.build end to end for one profile: its own flags, its qemu CPU, its expected kernel."""
    _need_cross_tools()
    target, build_dir = rpi5_build
    run = run_target_tests(target, build_dir, timeout=RUN_TIMEOUT)
    assert run.ok and run.selected_gemm == "neondot", run.output[-2000:]
