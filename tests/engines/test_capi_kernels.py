"""ek_kernels (C API v3): the implementation dispatch runs for every op, as edgekit-bench records it."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys

import capi_util as cu

capi = cu.source_module("edgekit.native.capi")


def kernels(lib) -> tuple[int, str, int]:
    n = ctypes.c_int32(-1)
    buf = ctypes.create_string_buffer(4096)
    st = lib.ek_kernels(buf, len(buf), ctypes.byref(n))
    return st, buf.value.decode(), n.value


def test_kernels_line_matches_dispatch():
    from edgekit import _C

    lib = capi.load_library()
    st, line, n = kernels(lib)
    assert st == 0 and n == len(line)
    pairs = dict(item.split("=") for item in line.split(","))
    assert list(pairs) == list(_C.ops())
    assert pairs == {op: _C.selected(op) for op in _C.ops()}
    # a buffer too small: the status and the size it needs, nothing written
    small = ctypes.create_string_buffer(4)
    need = ctypes.c_int32()
    assert lib.ek_kernels(small, 4, ctypes.byref(need)) == 8 and need.value == n and small.value == b""
    assert lib.ek_kernels(None, 4, None) == 1


def test_forced_kernels_are_reported_and_bad_forcing_is_an_error():
    code = ("import ctypes, sys; sys.path.insert(0, %r); import capi_util as cu; "
            "lib = cu.source_module('edgekit.native.capi').load_library(); b = ctypes.create_string_buffer(4096); "
            "st = lib.ek_kernels(b, 4096, None); "
            "print(st, b.value.decode() if st == 0 else lib.ek_last_error().decode())"
            % str(cu.ROOT / "tests"))
    env = dict(os.environ, EDGEKIT_KERNELS="scalar")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout.split(" ", 1)
    assert out[0] == "0" and all(item.endswith("=scalar") for item in out[1].strip().split(","))
    env["EDGEKIT_KERNELS"] = "nosuchisa"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout.split(" ", 1)
    assert out[0] == "4" and "nosuchisa" in out[1]
