"""Helpers of the C API tests (test_capi.py, test_capi_arm.py): synthetic artifacts, the library, greedy decoding.

The synthetic artifacts are written directly with numpy + safetensors (random int4 codes and fp16 scales, metadata as
edgekit/artifact.py writes it): no torch, milliseconds each, and easy to damage on purpose.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

TINY = {"vocab_size": 96, "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": None, "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0, "rope_scaling": None, "tie_word_embeddings": True, "max_position_embeddings": 64,
        "hidden_act": "silu", "model_type": "llama"}
QUANT = {"weight": {"bits": 4, "group_size": 32, "symmetric": True}, "activation": {"bits": 8},
         "attention": {"qkv_bits": None, "softmax_log2_bits": None}, "w4a4_ratio": 0.0, "lm_head_bits": None}
PROMPT = [3, 17, 42, 5, 77]
N_NEW = 12
# The default seed's greedy path from PROMPT is varied (9 distinct ids in 12) and has no near-tie (top-1 margin
# >= 0.59 at every step, logits' spread ~8), so builds whose float sums differ in order (x86 vs Arm) agree on it.
TINY_SEED = 17


def source_module(name: str):
    """Import ``edgekit.<...>`` from this checkout.

    Normally a plain import. When the interpreter's ``edgekit`` is another checkout (an editable install of the
    main tree while these tests run in a worktree), the module file of *this* checkout is loaded instead, so the
    tests exercise the code next to them.
    """
    import edgekit

    if Path(edgekit.__file__).resolve().parent == ROOT / "edgekit":
        return importlib.import_module(name)
    path = ROOT / (name.replace(".", "/") + ".py")
    if not path.is_file():  # a package
        path = ROOT / name.replace(".", "/") / "__init__.py"
    alias = name.replace(".", "_") + "_checkout"
    if alias in sys.modules:
        return sys.modules[alias]
    spec = importlib.util.spec_from_file_location(alias, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[alias] = mod  # dataclasses look their module up while the class is created
    spec.loader.exec_module(mod)
    return mod


LINEARS = source_module("edgekit.models.families").LLAMA.linears()  # a block's linears, in the loader's order


def tiny_tensors(config: dict, seed: int = TINY_SEED) -> dict[str, np.ndarray]:
    """Random tensors of a llama artifact with ``config``'s sizes (W4A8 linears, float norms and embedding)."""
    rng = np.random.default_rng(seed)
    h, ffn, vocab = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    hd = config.get("head_dim") or h // config["num_attention_heads"]
    q_dim, kv_dim = config["num_attention_heads"] * hd, config["num_key_value_heads"] * hd
    shapes = dict(zip(LINEARS, [(q_dim, h), (kv_dim, h), (kv_dim, h), (h, q_dim), (ffn, h), (ffn, h), (h, ffn)]))
    t = {"model.embed_tokens.weight": rng.normal(0, 1.0, (vocab, h)).astype(np.float32),
         "model.norm.weight": rng.uniform(0.5, 1.5, h).astype(np.float32)}
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = rng.uniform(0.5, 1.5, h).astype(np.float32)
        t[p + "post_attention_layernorm.weight"] = rng.uniform(0.5, 1.5, h).astype(np.float32)
        for name, (n, k) in shapes.items():
            t[p + name + ".qweight"] = rng.integers(0, 256, (n, k // 2), dtype=np.uint8)
            t[p + name + ".scales"] = rng.uniform(0.02, 0.06, (n, k // 32)).astype(np.float16)
    if not config.get("tie_word_embeddings", False):
        t["lm_head.weight"] = rng.normal(0, 1.0, (vocab, h)).astype(np.float32)
    return t


def tiny_metadata(config: dict, overrides: dict[str, str] | None = None) -> dict[str, str]:
    """The artifact metadata of a W4A8 llama with ``config``; ``overrides`` replace or add keys."""
    h, ffn = config["hidden_size"], config["intermediate_size"]
    hd = config.get("head_dim") or h // config["num_attention_heads"]
    q_dim, kv_dim = config["num_attention_heads"] * hd, config["num_key_value_heads"] * hd
    shapes = dict(zip(LINEARS, [(q_dim, h), (kv_dim, h), (kv_dim, h), (h, q_dim), (ffn, h), (ffn, h), (h, ffn)]))
    linears = {f"model.layers.{i}.{name}": {"bits": 4, "group_size": 32, "symmetric": True, "act_bits": 8,
                                            "act_mode": "per_token", "mix": False, "shape": list(shape),
                                            "bias": False}
               for i in range(config["num_hidden_layers"]) for name, shape in shapes.items()}
    meta = {"edgekit.format": "edgekit-artifact", "edgekit.format_version": "1", "edgekit.family": "llama",
            "edgekit.task": "causal-lm", "edgekit.source": "synthetic", "edgekit.model_config": json.dumps(config),
            "edgekit.quant": json.dumps(QUANT), "edgekit.linears": json.dumps(linears)}
    meta.update(overrides or {})
    return meta


def write_tiny(path: Path, config: dict | None = None, tensors: dict | None = None, seed: int = TINY_SEED,
               meta: dict | None = None) -> Path:
    """Write a synthetic artifact (``config`` defaults to :data:`TINY`)."""
    from safetensors.numpy import save_file

    config = dict(TINY if config is None else config)
    save_file(tensors if tensors is not None else tiny_tensors(config, seed), str(path),
              metadata=meta if meta is not None else tiny_metadata(config))
    # safetensors writes the metadata in hash order, which changes between processes: rewrite the header with
    # sorted keys (padded to 8 bytes as safetensors does) so that the same call gives the same bytes (fuzz seeds)
    header, data = read_raw(path)
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    return write_raw(path, text + b" " * (-len(text) % 8), data)


def read_raw(path: Path) -> tuple[dict, bytes]:
    """(header dict, data bytes) of a safetensors file."""
    raw = Path(path).read_bytes()
    n = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def write_raw(path: Path, header: dict | bytes, data: bytes) -> Path:
    """Write a safetensors file from a header (dict, or exact JSON bytes) and the data bytes, unchecked."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    Path(path).write_bytes(len(text).to_bytes(8, "little") + text + data)
    return Path(path)


class Model:
    """A model loaded through the C API via ctypes; raises ``CError(status, message)`` on failure."""

    def __init__(self, lib, path, max_ctx: int = 0, n_threads: int = 0):
        self.lib = lib
        p = lib.ek_load_params_default()
        p.max_ctx, p.n_threads = max_ctx, n_threads
        h = ctypes.c_void_p()
        check(lib, lib.ek_model_load(str(path).encode(), ctypes.byref(p), ctypes.byref(h)))
        self.h = h

    def close(self):
        if self.h:
            self.lib.ek_model_free(self.h)
            self.h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def eval(self, tokens, all_logits: bool = False) -> np.ndarray:
        arr = (ctypes.c_int32 * len(tokens))(*[int(t) for t in tokens])
        check(self.lib, self.lib.ek_eval(self.h, arr, len(tokens), int(all_logits)))
        return self.logits()

    def decode(self, token: int) -> np.ndarray:
        check(self.lib, self.lib.ek_decode(self.h, int(token)))
        return self.logits()[0]

    def logits(self) -> np.ndarray | None:
        rows = ctypes.c_int32()
        ptr = self.lib.ek_get_logits(self.h, ctypes.byref(rows))
        if not ptr:
            return None
        return np.ctypeslib.as_array(ptr, shape=(rows.value, self.lib.ek_n_vocab(self.h))).copy()

    def greedy(self, prompt, n: int) -> list[int]:
        """The ids examples/generate.c prints: argmax after the prompt, then n - 1 decode steps."""
        out = [int(np.argmax(self.eval(prompt)[-1]))]
        while len(out) < n:
            out.append(int(np.argmax(self.decode(out[-1]))))
        return out


class CError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(f"status {status}: {message}")
        self.status, self.message = status, message


def check(lib, status: int) -> None:
    if status != 0:
        raise CError(status, lib.ek_last_error().decode())


def compile_example(out: Path, include_dir: Path, lib_dir: Path, cc: str = "cc") -> Path:
    """Build examples/generate.c as a user would (C99, the installed header, -ledgekit with an rpath)."""
    import subprocess

    cmd = [cc, "-std=c99", "-O2", "-Wall", "-Wextra", "-pedantic", "-Werror", str(ROOT / "examples" / "generate.c"),
           f"-I{include_dir}", f"-L{lib_dir}", "-ledgekit", f"-Wl,-rpath,{lib_dir}", "-o", str(out)]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    assert p.returncode == 0, f"{' '.join(cmd)}\n{p.stdout}"
    return out


def need_cross_tools() -> None:
    """Skip the calling test when the aarch64 cross compiler or qemu-aarch64 is missing (optional Debian packages);
    fail it when cmake, which every build needs, is missing."""
    import shutil

    import pytest

    missing = [t for t in ("aarch64-linux-gnu-g++", "qemu-aarch64") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (Debian: g++-aarch64-linux-gnu, qemu-user)")
    if shutil.which("cmake") is None:
        pytest.fail("cmake is not on PATH")
