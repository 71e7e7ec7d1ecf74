"""Build edgekit's kernels for a device profile (:mod:`edgekit.targets`) and run their C++ tests there.

``build_target`` configures and builds the CMake project (kernels library + ``edgekit_test_kernels``, the C API
``libedgekit.so`` and the example ``edgekit_generate``, no Python module) with the profile's toolchain and flags;
``run_target_tests`` runs the test program under qemu-user with the profile's CPU model (aarch64 on an x86 host) or
natively, and checks that dispatch picks the profile's kernel.
Both need a source checkout (CMakeLists.txt and csrc/ next to the package), cmake and the toolchain's compilers.
Build directories are reused: a rerun with the same settings is an incremental build.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import re
import shutil
import subprocess
from pathlib import Path

from edgekit.errors import EdgekitError
from edgekit.targets import Target, load_target

SOURCE_DIR = Path(__file__).resolve().parent.parent
TEST_PROGRAM = "edgekit_test_kernels"
C_LIBRARY = "libedgekit.so"                 # the C API (csrc/include/edgekit.h); CMake target `edgekit`
EXAMPLE_PROGRAM = "edgekit_generate"        # examples/generate.c linked against it
BENCH_PROGRAM = "edgekit-bench"             # csrc/tools/bench, static (a device bundle's programs)
GENERATE_PROGRAM = "edgekit-generate"       # examples/generate.c, static, with the C API compiled in
ALL_TARGETS = (TEST_PROGRAM, "edgekit", EXAMPLE_PROGRAM)
_OUTPUTS = {TEST_PROGRAM: TEST_PROGRAM, "edgekit": C_LIBRARY, EXAMPLE_PROGRAM: EXAMPLE_PROGRAM}
AARCH64_SYSROOT = "/usr/aarch64-linux-gnu"  # Debian's cross sysroot: qemu-user's -L for dynamic binaries
_STAMP = "edgekit-build.json"               # the settings a build dir was configured with
_SUMMARY = re.compile(r"^test_kernels: \d+ checks passed.*$", re.M)
_SELECTED = re.compile(r"^selected gemm_q4x4_q8: (\S+)", re.M)


@dataclasses.dataclass(frozen=True)
class TargetTestRun:
    """The outcome of one run of the C++ kernel tests."""

    target: str
    command: tuple[str, ...]
    returncode: int
    output: str
    selected_gemm: str | None  # what dispatch picked for gemm_q4x4_q8
    summary: str | None        # the `test_kernels: N checks passed (...)` line, None when it failed

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.summary is not None


def host_arch() -> str:
    m = platform.machine().lower()
    return {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}.get(m, m)


#: ELF e_machine of each architecture edgekit builds for
ELF_MACHINE = {"x86_64": 62, "aarch64": 183}


def elf_machine(path: str | Path) -> int | None:
    """The ELF ``e_machine`` of ``path``, or None when it is not an ELF file (a script) or cannot be read."""
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except OSError:
        return None
    if head[:4] != b"\x7fELF":
        return None
    return int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")


def _check_source_tree() -> None:
    if not (SOURCE_DIR / "CMakeLists.txt").is_file() or not (SOURCE_DIR / "csrc").is_dir():
        raise EdgekitError(f"building for a target needs edgekit's source tree (CMakeLists.txt, csrc/); "
                           f"{SOURCE_DIR} has none: clone the repository and run from there")


def _tool(name: str, why: str) -> str:
    path = shutil.which(name)
    if not path:
        raise EdgekitError(f"{name} not found on PATH; it is needed {why}")
    return path


def _run(cmd: list[str], timeout: float, what: str, env: dict | None = None) -> str:
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
                           env=env)
    except subprocess.TimeoutExpired:
        raise EdgekitError(f"{what} timed out after {timeout:.0f} s: {' '.join(cmd)}") from None
    if p.returncode != 0:
        tail = "\n".join(p.stdout.splitlines()[-40:])
        raise EdgekitError(f"{what} failed (exit {p.returncode}): {' '.join(cmd)}\n{tail}")
    return p.stdout


def configure_and_build(build_dir: str | Path, *, toolchain: str | Path | None = None, cflags: tuple[str, ...] = (),
                        jobs: int = 2, timeout: float = 900.0, targets: tuple[str, ...] = ALL_TARGETS) -> Path:
    """CMake configure + build of the kernels library, the C++ test program and the C API into ``build_dir``.

    ``toolchain`` (a CMake toolchain file, relative to the source tree unless absolute) makes it a cross build;
    ``cflags`` go into CMAKE_C_FLAGS / CMAKE_CXX_FLAGS. A directory configured with other settings is wiped first
    (CMake ignores a changed toolchain in an existing cache), but only if it is a CMake build directory.
    ``targets`` are CMake targets: by default the test program, ``edgekit`` (``libedgekit.so``) and the example
    ``edgekit_generate``; pass ``(TEST_PROGRAM,)`` to build the kernel tests alone.
    Returns the build directory; the test program is ``build_dir / TEST_PROGRAM``, the library
    ``build_dir / C_LIBRARY``, the example ``build_dir / EXAMPLE_PROGRAM``.
    """
    _check_source_tree()
    cmake = _tool("cmake", "to build the kernels")
    build_dir = Path(build_dir).resolve()
    tc = None
    if toolchain is not None:
        tc = Path(toolchain) if Path(toolchain).is_absolute() else SOURCE_DIR / toolchain
        if not tc.is_file():
            raise EdgekitError(f"CMake toolchain file not found: {tc}")
    settings = {"source": str(SOURCE_DIR), "toolchain": str(tc) if tc else None, "cflags": list(cflags)}

    stamp = build_dir / _STAMP
    if build_dir.exists() and any(build_dir.iterdir()):
        old = json.loads(stamp.read_text()) if stamp.is_file() else None
        if old != settings:
            if not (build_dir / "CMakeCache.txt").is_file() and not stamp.is_file():
                raise EdgekitError(f"{build_dir} exists and is not a CMake build directory; pick another out dir")
            shutil.rmtree(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)

    cmd = [cmake, "-S", str(SOURCE_DIR), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release",
           "-DEDGEKIT_BUILD_PYTHON=OFF", "-DEDGEKIT_BUILD_TESTS=ON", "-DEDGEKIT_BUILD_EXAMPLES=ON",
           "-DEDGEKIT_BUILD_TOOLS=ON"]
    if shutil.which("ninja") and not (build_dir / "CMakeCache.txt").is_file():
        cmd += ["-G", "Ninja"]
    if tc:
        cmd.append(f"-DCMAKE_TOOLCHAIN_FILE={tc}")
    flags = " ".join(cflags)
    cmd += [f"-DCMAKE_C_FLAGS={flags}", f"-DCMAKE_CXX_FLAGS={flags}"]
    _run(cmd, timeout, "cmake configure")
    stamp.write_text(json.dumps(settings))
    _run([cmake, "--build", str(build_dir), "--target", *targets, "-j", str(max(1, int(jobs)))], timeout,
         "cmake build")
    for t in targets:
        out = build_dir / _OUTPUTS.get(t, t)
        if not out.is_file():
            raise EdgekitError(f"the build finished but {out} is missing")
    return build_dir


def _as_target(target: Target | str | Path) -> Target:
    return target if isinstance(target, Target) else load_target(target)


def build_target(target: Target | str | Path, out_dir: str | Path, jobs: int = 2) -> Path:
    """Cross-compile (or natively compile) the kernels, their C++ tests, ``libedgekit.so`` and the example program for
    ``target`` into ``out_dir``."""
    t = _as_target(target)
    if t.toolchain is None and t.arch != host_arch():
        raise EdgekitError(f"target {t.name} is {t.arch} but this machine is {host_arch()}, and the profile names "
                           "no CMake toolchain file for a cross build")
    if t.toolchain is not None and t.arch == "aarch64":
        _tool("aarch64-linux-gnu-g++", f"to cross-compile for {t.name} (Debian: apt-get install g++-aarch64-linux-gnu)")
    return configure_and_build(out_dir, toolchain=t.toolchain, cflags=t.cflags, jobs=jobs)


def target_command(target: Target, exe: Path) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that run ``exe`` as ``target``'s CPU."""
    env = dict(os.environ)
    env.pop("EDGEKIT_KERNELS", None)
    if target.arch == host_arch():
        # natively, the host's CPU decides; force the profile's kernel so that the run stands for the device
        env["EDGEKIT_KERNELS"] = target.kernels
        return [str(exe)], env
    if target.arch != "aarch64" or not target.qemu_cpu:
        raise EdgekitError(f"cannot run {target.arch} tests for {target.name} on this {host_arch()} machine: "
                           "the profile needs qemu_cpu (qemu-user emulation is set up for aarch64 only)")
    qemu = _tool("qemu-aarch64", f"to run {target.name}'s tests (Debian: apt-get install qemu-user)")
    sysroot = env.get("QEMU_LD_PREFIX", AARCH64_SYSROOT)
    return [qemu, "-L", sysroot, "-cpu", target.qemu_cpu, str(exe)], env


def run_target_tests(target: Target | str | Path, build_dir: str | Path, timeout: float = 600.0,
                     check: bool = True) -> TargetTestRun:
    """Run the C++ kernel tests of ``build_dir`` as ``target``: under qemu-user with its CPU model, or natively.

    With ``check`` (the default) a failing test, a missing summary line or a dispatch choice other than the
    profile's ``kernels`` raises :class:`EdgekitError` with the failing lines; otherwise the run is only returned.
    """
    t = _as_target(target)
    exe = Path(build_dir) / TEST_PROGRAM
    if not exe.is_file():
        raise EdgekitError(f"{exe} not found: build it first (build_target)")
    cmd, env = target_command(t, exe)
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise EdgekitError(f"{t.name}: the kernel tests timed out after {timeout:.0f} s: {' '.join(cmd)}") from None
    sel = _SELECTED.search(p.stdout)
    summ = _SUMMARY.search(p.stdout)
    run = TargetTestRun(t.name, tuple(cmd), p.returncode, p.stdout, sel.group(1) if sel else None,
                        summ.group(0) if summ else None)
    if check:
        if not run.ok:
            fails = [ln for ln in p.stdout.splitlines() if ln.startswith("FAIL")][:20]
            tail = "\n".join(fails or p.stdout.splitlines()[-20:])
            raise EdgekitError(f"{t.name}: kernel tests failed (exit {p.returncode}): {' '.join(cmd)}\n{tail}")
        if run.selected_gemm != t.kernels:
            raise EdgekitError(f"{t.name}: dispatch picked gemm_q4x4_q8 '{run.selected_gemm}' but the profile "
                               f"expects '{t.kernels}'")
    return run
