"""The C++ kernel tests (csrc/tests/test_kernels.cpp) on aarch64 under qemu-user, and natively on this host.

One cross build (cmake/aarch64-linux-gnu.cmake, no device flags: what a generic arm64 binary gets, with every Arm
kernel compiled in) runs as a Pi 4 (Cortex-A72: NEON, no dotprod), as a Pi 5 (Cortex-A76: dotprod) and as qemu's
``max`` CPU (dotprod and i8mm, standing for an Armv8.6 / Armv9 phone core); dispatch must pick ``neon``, ``neondot``
and ``neoni8mm`` respectively and every implementation must match the scalar one. The same binary must also run on
a Cortex-A53 (no dotprod, no i8mm) without SIGILL: the dotprod / i8mm code is reached only through dispatch.
``EDGEKIT_KERNELS`` forcing is checked on those CPUs with the program's ``--selected`` mode (no kernel runs). A native build runs the same program for the x86
kernels. Each build happens once per session, in pytest's tmp dir (never in the source tree); these two build the
kernel tests alone (conftest's ``arm_build`` and ``host_build``, which tests/cross/test_bundle.py extends with the
device programs). The ``rpi5`` profile's own build (conftest's ``rpi5_build``: edgekit.build.build_target,
-march=armv8.2-a+dotprod for everything, with libedgekit.so and the C example that tests/cross/test_capi_arm.py runs) is
checked end to end as well. Skipped only when the cross compiler or qemu-aarch64 is missing.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import capi_util as cu
import pytest

from edgekit.build import AARCH64_SYSROOT, TEST_PROGRAM, host_arch, run_target_tests

JOBS = 2            # the test machines have two cores
RUN_TIMEOUT = 300   # one run of the test program under qemu takes ~5-15 s


def _run(cmd: list[str], force: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "EDGEKIT_KERNELS"}  # let dispatch choose
    if force is not None:
        env["EDGEKIT_KERNELS"] = force
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=RUN_TIMEOUT,
                          env=env)


def _summary(out: str) -> str:
    lines = [ln for ln in out.splitlines() if ln.startswith("test_kernels:")]
    return lines[-1] if lines else ""


def _assert_passed(p: subprocess.CompletedProcess, what: str) -> None:
    fails = "\n".join([ln for ln in p.stdout.splitlines() if ln.startswith("FAIL")][:30])
    assert p.returncode == 0, f"{what}: exit {p.returncode}\n{fails or p.stdout[-3000:]}"
    assert "checks passed" in _summary(p.stdout), f"{what}: no summary line\n{p.stdout[-3000:]}"


# qemu CPU → (what dispatch picks for the W4A8 matmuls, every implementation it supports)
ARM_CPUS = {
    "cortex-a53": ("neon", "scalar,neon"),                          # armv8.0: no dotprod, no i8mm
    "cortex-a72": ("neon", "scalar,neon"),                          # Pi 4
    "cortex-a76": ("neondot", "scalar,neon,neondot"),               # Pi 5: dotprod, no i8mm
    "max": ("neoni8mm", "scalar,neon,neondot,neoni8mm"),            # dotprod + i8mm (Armv8.6 and later)
}


def _qemu(arm_build: Path, cpu: str, *args: str, force: str | None = None) -> subprocess.CompletedProcess:
    return _run(["qemu-aarch64", "-L", AARCH64_SYSROOT, "-cpu", cpu, str(arm_build / TEST_PROGRAM), *args], force)


@pytest.mark.parametrize("cpu", ["cortex-a72", "cortex-a76", "max"])
def test_arm_kernels_under_qemu(arm_build, cpu):
    expected, supported = ARM_CPUS[cpu]
    p = _qemu(arm_build, cpu)
    _assert_passed(p, f"qemu -cpu {cpu}")
    for op in ("gemm_q4x4_q8", "gemm_q4x4_q8b"):
        assert f"selected {op}: {expected}\n" in p.stdout, p.stdout[:500]
    # every aarch64 implementation the CPU supports was compared with the scalar one
    assert f"gemm_q4x4_q8: {supported};" in _summary(p.stdout)
    print(f"-cpu {cpu}: {_summary(p.stdout)}")


def test_every_kernel_binary_runs_on_cortex_a53(arm_build):
    """The binary with the dotprod and i8mm kernels compiled in runs on an armv8.0 core (no dotprod, no i8mm):
    nothing outside those files uses their instructions, and dispatch never calls them there (no SIGILL)."""
    p = _qemu(arm_build, "cortex-a53")
    assert p.returncode != -4 and "Illegal instruction" not in p.stdout, p.stdout[-2000:]  # SIGILL
    _assert_passed(p, "qemu -cpu cortex-a53")
    assert "selected gemm_q4x4_q8: neon\n" in p.stdout and "selected gemm_q4x4_q8b: neon\n" in p.stdout
    assert f"gemm_q4x4_q8: {ARM_CPUS['cortex-a53'][1]};" in _summary(p.stdout)
    print(f"-cpu cortex-a53: {_summary(p.stdout)}")


@pytest.mark.parametrize("cpu, force, expected", [
    ("max", "neoni8mm", "neoni8mm"),   # the exact name
    ("max", "neondot", "neondot"),
    ("max", "neon", "neon"),           # an exact name wins over the family (README): the armv8.0 kernel
    ("cortex-a76", "neon", "neon"),
    ("cortex-a53", "neon", "neon"),
    ("max", "scalar", "scalar"),
])
def test_arm_forcing(arm_build, cpu, force, expected):
    p = _qemu(arm_build, cpu, "--selected", force=force)
    assert p.returncode == 0, p.stdout[-2000:]
    assert f"selected gemm_q4x4_q8: {expected}\n" in p.stdout, p.stdout
    assert f"selected gemm_q4x4_q8b: {expected}\n" in p.stdout, p.stdout
    # ops without an i8mm (dotprod) kernel run their best neon-family one, so a whole model still runs when forced
    quant = "scalar" if force == "scalar" else "neon"
    assert f"selected quant_row_q8: {quant}\n" in p.stdout, p.stdout


@pytest.mark.parametrize("cpu", ["cortex-a76", "cortex-a53"])
def test_forcing_i8mm_without_it_is_a_clear_error(arm_build, cpu):
    p = _qemu(arm_build, cpu, "--selected", force="neoni8mm")
    assert p.returncode == 0, p.stdout[-2000:]
    line = next(ln for ln in p.stdout.splitlines() if ln.startswith("selected gemm_q4x4_q8:"))
    assert "error" in line and "neoni8mm" in line and "i8mm" in line.split("lacks", 1)[-1], line


def test_native_kernels(host_build):
    p = _run([str(host_build / TEST_PROGRAM)])
    _assert_passed(p, f"native {host_arch()}")
    print(_summary(p.stdout))


def test_rpi5_target_build_and_run(rpi5_build):
    """edgekit.build end to end for one profile: its own flags, its qemu CPU, its expected kernel."""
    cu.need_cross_tools()
    target, build_dir = rpi5_build
    run = run_target_tests(target, build_dir, timeout=RUN_TIMEOUT)
    assert run.ok and run.selected_gemm == "neondot", run.output[-2000:]
