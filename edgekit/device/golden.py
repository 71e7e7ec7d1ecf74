"""Golden logits of a device bundle: a few prompts run on this host through the C API (the same runtime the
device's edgekit-bench links), their greedy continuation and every position's top-k logits, in the text format
csrc/tools/bench/golden.h reads. edgekit-bench replays them before it times anything (``--verify``).

One file per W4A8 kernel, ``golden-<impl>.txt``, each computed with ``EDGEKIT_KERNELS=<impl>`` in its own process:
the x86 kernels add their float block terms in their own order (kernels.h), and through 30 layers of int8
re-quantization that moves SmolLM2's logits by tenths, so a device is checked against the bits of the kernel it runs.
The Arm kernels give the scalar reference's bits, so an Arm bundle carries ``golden-scalar.txt`` only (edgekit-bench's
golden_variant picks the file). The small tolerance absorbs what is left (libm differences); a wrong kernel is off
by far more.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError

FOLDER = "golden"
TOP_K = 8
STEPS = 8
ATOL, RTOL = 2e-3, 2e-3  # |here - host| <= ATOL + RTOL * |host| for every compared logit
# prompts of a model that carries a tokenizer; without one, seeded random ids of these lengths
TEXTS = ("The capital of France is", "def fibonacci(n):\n    return", "Once upon a time, in a small village,")
RANDOM_LENGTHS = (5, 11, 17)


class _Model:
    """A model loaded through the host's libedgekit.so (ctypes)."""

    def __init__(self, lib, path: Path):
        self.lib = lib
        h = ctypes.c_void_p()
        if lib.ek_model_load(str(path).encode(), None, ctypes.byref(h)) != 0:
            raise EdgekitError(f"the host runtime cannot load {path}: {lib.ek_last_error().decode()}")
        self.h = h

    def close(self) -> None:
        self.lib.ek_model_free(self.h)

    def logits(self) -> np.ndarray:
        ptr = self.lib.ek_get_logits(self.h, None)
        return np.ctypeslib.as_array(ptr, shape=(self.lib.ek_n_vocab(self.h),)).astype(np.float64)

    def run(self, ids: list[int]) -> np.ndarray:
        arr = (ctypes.c_int32 * len(ids))(*ids)
        if self.lib.ek_eval(self.h, arr, len(ids), 0) != 0:
            raise EdgekitError(f"the host runtime failed on a golden prompt: {self.lib.ek_last_error().decode()}")
        return self.logits()

    def tokenize(self, text: str) -> list[int] | None:
        """The text's ids, or None when the artifact carries no tokenizer this runtime reads."""
        n = ctypes.c_int32()
        raw = text.encode()
        if self.lib.ek_tokenize(self.h, raw, len(raw), 0, None, 0, ctypes.byref(n)) not in (0, 8):
            return None
        buf = (ctypes.c_int32 * n.value)()
        if self.lib.ek_tokenize(self.h, raw, len(raw), 0, buf, n.value, ctypes.byref(n)) != 0:
            return None
        return list(buf)


def prompts(model: _Model, seed: int = 0) -> list[list[int]]:
    """The golden prompts' ids: :data:`TEXTS` through the artifact's tokenizer, else seeded random ids."""
    ids = [model.tokenize(t) for t in TEXTS]
    if all(ids):
        return ids  # type: ignore[return-value]
    rng = np.random.default_rng(seed)
    vocab = model.lib.ek_n_vocab(model.h)
    return [[int(x) for x in rng.integers(0, vocab, n)] for n in RANDOM_LENGTHS]


def variants(arch: str) -> list[str]:
    """The golden files a bundle for ``arch`` carries: ``scalar`` for Arm (its kernels give the scalar bits); for
    x86-64 every W4A8 implementation this host can run (a device whose kernel this host lacks is told so)."""
    from edgekit.targets import KERNELS

    if arch != "x86_64":
        return ["scalar"]
    from edgekit import _C

    return [k for k in _C.implementations("gemm_q4x4_q8") if k in KERNELS[arch]]


def write_golden_files(artifact: str | os.PathLike, folder: str | os.PathLike, arch: str) -> dict:
    """``golden-<impl>.txt`` in ``folder`` for every implementation of :func:`variants`, each computed in a child
    process with ``EDGEKIT_KERNELS=<impl>`` (dispatch chooses once per process). Returns the manifest's entry."""
    facts = {}
    for impl in variants(arch):
        out = Path(folder) / f"golden-{impl}.txt"
        env = dict(os.environ, EDGEKIT_KERNELS=impl)
        p = subprocess.run([sys.executable, "-m", "edgekit.device.golden", str(artifact), str(out)], env=env,
                           capture_output=True, text=True)
        if p.returncode != 0:
            raise EdgekitError(f"computing the golden logits with the {impl} kernels failed: "
                               f"{(p.stderr.strip().splitlines() or ['no output'])[-1]}")
        facts = json.loads(p.stdout)
    return {"path": f"{FOLDER}/", "variants": variants(arch), **facts}


def write_golden(artifact: str | os.PathLike, out: str | os.PathLike, lib=None) -> dict:
    """Compute the golden data of ``artifact`` with the host runtime (its current kernels) and write it to ``out``.

    Returns the facts the manifest records (prompts, steps, top_k, tolerance).
    """
    from edgekit.native.capi import load_library

    model = _Model(lib or load_library(), Path(artifact))
    try:
        n_ctx = model.lib.ek_n_ctx(model.h)
        lines = ["edgekit-golden 1", f"tolerance {ATOL!r} {RTOL!r}"]
        cases = prompts(model)
        for ids in cases:
            if len(ids) + STEPS > n_ctx:
                raise EdgekitError(f"a golden prompt of {len(ids)} tokens does not fit the model's context ({n_ctx})")
            lines += [f"case {len(ids)} {STEPS}", "prompt " + " ".join(map(str, ids))]
            model.lib.ek_reset(model.h)
            logits = model.run(ids)
            for step in range(STEPS):
                top = np.argsort(-logits, kind="stable")[:TOP_K]
                nxt = int(top[0])
                margin = float(logits[top[0]] - logits[top[1]])
                pairs = " ".join(f"{int(i)}:{float(logits[i]):.9g}" for i in top)
                lines.append(f"step {nxt} {margin:.9g} {pairs}")
                if step + 1 < STEPS:
                    logits = model.run([nxt])
    finally:
        model.close()
    Path(out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"prompts": len(cases), "steps": STEPS, "top_k": TOP_K, "tolerance": {"abs": ATOL, "rel": RTOL}}


if __name__ == "__main__":  # the child process of write_golden_files: ARTIFACT OUT → the facts as JSON
    try:
        print(json.dumps(write_golden(sys.argv[1], sys.argv[2])))
    except EdgekitError as e:
        sys.exit(f"error: {e}")
