"""Where edgekit's C API lives (``libedgekit.so`` + ``edgekit.h``), and a ctypes binding of it.

A wheel carries both next to the package: ``edgekit/lib/libedgekit.so`` and ``edgekit/include/edgekit.h``. To build
a C program against them::

    LIB=$(python -m edgekit.native.capi --lib-dir)
    cc prog.c -I"$(python -m edgekit.native.capi --include-dir)" -L"$LIB" -ledgekit -Wl,-rpath,"$LIB"

Search order for the library: ``$EDGEKIT_LIB_DIR`` (a directory, e.g. a CMake build tree); ``lib/`` next to this
package; ``edgekit/lib`` under the other ``sys.path`` entries (an editable install puts the built files in
site-packages while the package itself is imported from the source tree); the newest ``libedgekit.so`` built for
this CPU in the source tree's build directories (``build*/`` and ``build/*/``). The header: ``$EDGEKIT_INCLUDE_DIR``,
then ``include/`` next to the package or under ``sys.path``, then the source tree's ``csrc/include``.
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

from edgekit.errors import EdgekitError

_PKG = Path(__file__).resolve().parent.parent   # .../edgekit
_SOURCE = _PKG.parent                            # the checkout, when running from one
LIB_NAME = "libedgekit.dylib" if sys.platform == "darwin" else "libedgekit.so"
HEADER = "edgekit.h"

# ek_status values (edgekit.h)
EK_OK, EK_ERR_INVALID_ARGUMENT, EK_ERR_IO, EK_ERR_FORMAT = 0, 1, 2, 3
EK_ERR_UNSUPPORTED, EK_ERR_CONTEXT_FULL, EK_ERR_OOM, EK_ERR_INTERNAL = 4, 5, 6, 7
EK_ERR_BUFFER_TOO_SMALL = 8
EK_LOAD_PARAMS_VERSION = 1
EK_SAMPLING_VERSION = 1


def _package_dirs(sub: str) -> list[Path]:
    dirs = [_PKG / sub]
    for entry in sys.path:
        d = Path(entry or ".").resolve() / "edgekit" / sub
        if d not in dirs:
            dirs.append(d)
    return dirs


def _host_loadable(path: Path) -> bool:
    """False for an ELF library built for another CPU (a cross build lying in build/), True otherwise."""
    from edgekit.build import ELF_MACHINE, elf_machine, host_arch

    if not os.access(path, os.R_OK):
        return False
    want, got = ELF_MACHINE.get(host_arch()), elf_machine(path)
    return want is None or got is None or got == want


def library_path() -> Path:
    """Path of ``libedgekit.so`` (see the module docstring for where it is looked for).

    Raises:
        EdgekitError: if no library is found.
    """
    env = os.environ.get("EDGEKIT_LIB_DIR")
    if env:
        p = Path(env) / LIB_NAME
        if not p.is_file():
            raise EdgekitError(f"EDGEKIT_LIB_DIR is {env} but it holds no {LIB_NAME}")
        return p
    for d in _package_dirs("lib"):
        if (d / LIB_NAME).is_file():
            return d / LIB_NAME
    built = [p for pattern in (f"build*/{LIB_NAME}", f"build/*/{LIB_NAME}") for p in _SOURCE.glob(pattern)
             if _host_loadable(p)]
    if built:
        return max(built, key=lambda p: p.stat().st_mtime)
    raise EdgekitError(f"{LIB_NAME} not found next to the edgekit package ({_PKG / 'lib'}) nor in a build directory "
                       f"of {_SOURCE}; reinstall edgekit, or build it (cmake --build <dir> --target edgekit) and set "
                       "EDGEKIT_LIB_DIR to that directory")


def include_dir() -> Path:
    """Directory holding ``edgekit.h``.

    Raises:
        EdgekitError: if the header is not found.
    """
    env = os.environ.get("EDGEKIT_INCLUDE_DIR")
    candidates = [Path(env)] if env else [*_package_dirs("include"), _SOURCE / "csrc" / "include"]
    for d in candidates:
        if (d / HEADER).is_file():
            return d
    raise EdgekitError(f"{HEADER} not found (looked in {', '.join(map(str, candidates))}); reinstall edgekit")


class LoadParams(ctypes.Structure):
    """``ek_load_params`` (edgekit.h)."""

    _fields_ = [("struct_size", ctypes.c_uint32), ("version", ctypes.c_uint32), ("max_ctx", ctypes.c_int32),
                ("n_threads", ctypes.c_int32)]


class Sampling(ctypes.Structure):
    """``ek_sampling`` (edgekit.h): the settings of ek_generate."""

    _fields_ = [("struct_size", ctypes.c_uint32), ("version", ctypes.c_uint32), ("temperature", ctypes.c_float),
                ("top_k", ctypes.c_int32), ("top_p", ctypes.c_float), ("seed", ctypes.c_uint64),
                ("max_tokens", ctypes.c_int32), ("stop_at_eos", ctypes.c_int32), ("add_special", ctypes.c_int32),
                ("stop", ctypes.POINTER(ctypes.c_char_p)), ("n_stop", ctypes.c_int32)]


# int (*ek_token_callback)(void* user_data, int32_t token, const char* text, int32_t n_text)
TOKEN_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int32, ctypes.POINTER(ctypes.c_char),
                                  ctypes.c_int32)


def load_library(path: str | os.PathLike | None = None) -> ctypes.CDLL:
    """Open ``libedgekit.so`` (``path`` or :func:`library_path`) with every function's ctypes prototype declared."""
    lib = ctypes.CDLL(str(path or library_path()))
    vp, i32, st = ctypes.c_void_p, ctypes.c_int32, ctypes.c_int
    protos = {
        "ek_load_params_default": (LoadParams, []),
        "ek_model_load": (st, [ctypes.c_char_p, ctypes.POINTER(LoadParams), ctypes.POINTER(vp)]),
        "ek_model_free": (None, [vp]),
        "ek_eval": (st, [vp, ctypes.POINTER(i32), i32, ctypes.c_int]),
        "ek_decode": (st, [vp, i32]),
        "ek_encode": (st, [vp, ctypes.POINTER(i32), i32]),
        "ek_is_encoder_decoder": (i32, [vp]),
        "ek_decoder_start": (i32, [vp]),
        "ek_get_logits": (ctypes.POINTER(ctypes.c_float), [vp, ctypes.POINTER(i32)]),
        "ek_n_vocab": (i32, [vp]),
        "ek_n_ctx": (i32, [vp]),
        "ek_n_past": (i32, [vp]),
        "ek_reset": (st, [vp]),
        "ek_truncate": (st, [vp, i32]),
        "ek_set_pruning": (st, [vp, ctypes.c_float, ctypes.POINTER(i32), i32, i32]),
        "ek_set_acm": (st, [vp, ctypes.c_float, i32]),
        "ek_acm_learners": (i32, [vp]),
        "ek_acm_counts": (st, [vp, ctypes.POINTER(ctypes.c_int64), i32, ctypes.POINTER(ctypes.c_double), ctypes.c_int]),
        "ek_tokenize": (st, [vp, ctypes.c_char_p, i32, ctypes.c_int, ctypes.POINTER(i32), i32, ctypes.POINTER(i32)]),
        "ek_detokenize": (st, [vp, ctypes.POINTER(i32), i32, ctypes.c_int, ctypes.c_char_p, i32, ctypes.POINTER(i32)]),
        "ek_token_eos": (i32, [vp]),
        "ek_sampling_default": (Sampling, []),
        "ek_generate": (st, [vp, ctypes.c_char_p, ctypes.POINTER(Sampling), TOKEN_CALLBACK, vp, ctypes.POINTER(i32)]),
        "ek_kernels": (st, [ctypes.c_char_p, i32, ctypes.POINTER(i32)]),
        "ek_set_num_threads": (st, [i32]),
        "ek_last_error": (ctypes.c_char_p, []),
        "ek_status_name": (ctypes.c_char_p, [st]),
    }
    for name, (res, args) in protos.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    return lib


def _main(argv: list[str]) -> int:
    if argv == ["--lib-dir"]:
        print(library_path().parent)
    elif argv == ["--include-dir"]:
        print(include_dir())
    elif not argv:
        lib, inc = library_path(), include_dir()
        print(f"library: {lib}\nheader:  {inc / HEADER}\nbuild:   cc prog.c -I{inc} -L{lib.parent} -ledgekit "
              f"-Wl,-rpath,{lib.parent}")
    else:
        print("usage: python -m edgekit.native.capi [--lib-dir | --include-dir]", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    try:
        sys.exit(_main(sys.argv[1:]))
    except EdgekitError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
