"""The C API on a Raspberry Pi 5 CPU: examples/generate.c cross-built by ``edgekit build --target rpi5`` (with
libedgekit.so) runs under qemu-aarch64 -cpu cortex-a76 and decodes the same greedy ids as this host's library.

The build is conftest's ``rpi5_build`` (in the session's tmp dir, shared with
tests/cross/test_kernels_arm.py::test_rpi5_target_build_and_run), so this adds one qemu run of a tiny model, a few seconds.
Skipped when the cross compiler or qemu-aarch64 is missing.
"""

from __future__ import annotations

import subprocess

import capi_util as cu

build = cu.source_module("edgekit.build")
native = cu.source_module("edgekit.native.capi")


def test_rpi5_example_under_qemu_matches_host(tmp_path, rpi5_build):
    target, build_dir = rpi5_build
    assert (build_dir / build.C_LIBRARY).is_file()
    tiny = cu.write_tiny(tmp_path / "tiny.ekq")
    cmd, env = build.target_command(target, build_dir / build.EXAMPLE_PROGRAM)
    cmd += [str(tiny), "-n", str(cu.N_NEW), "-t", "2", *map(str, cu.PROMPT)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, f"{' '.join(cmd)}\n{p.stderr[-2000:]}"
    arm_ids = [int(t) for t in p.stdout.split()]
    with cu.Model(native.load_library(), tiny) as m:
        assert arm_ids == m.greedy(cu.PROMPT, cu.N_NEW)
