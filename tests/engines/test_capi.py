"""The C API (csrc/include/edgekit.h, libedgekit.so) through ctypes and through examples/generate.c.

Synthetic artifacts (tests/capi_util.py) make every test here fast and torch-free; the library and the header are
found by edgekit.native.capi (EDGEKIT_LIB_DIR may point at a CMake build dir). The real quantized SmolLM2
against the kernel path is tests/model/test_capi_smollm2.py.
"""

from __future__ import annotations

import ctypes
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import capi_util as cu

native = cu.source_module("edgekit.native.capi")


@pytest.fixture(scope="module")
def lib_path():
    return native.library_path()


@pytest.fixture(scope="module")
def lib(lib_path):
    return native.load_library(lib_path)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return cu.write_tiny(tmp_path_factory.mktemp("capi") / "tiny.ekq")


def test_exports_are_exactly_the_header(lib_path):
    """libedgekit.so exports the functions of edgekit.h and nothing else (no kernel or C++ symbols)."""
    header = (native.include_dir() / native.HEADER).read_text()
    declared = set(re.findall(r"^EK_API\b[^;(]*?\b(ek_\w+)\s*\(", header, re.M))
    assert len(declared) >= 14, declared
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("nm not installed")
    out = subprocess.run([nm, "-D", "--defined-only", str(lib_path)], capture_output=True, text=True, check=True)
    exported = {line.split()[-1] for line in out.stdout.splitlines() if line.strip()}
    assert exported == declared


def test_example_program_matches_ctypes(tmp_path, lib, lib_path, tiny):
    """examples/generate.c built with the system compiler as a user would, against the installed header and lib."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    exe = cu.compile_example(tmp_path / "generate", native.include_dir(), lib_path.parent, cc)
    p = subprocess.run([str(exe), str(tiny), "-n", str(cu.N_NEW), "-t", "2", *map(str, cu.PROMPT)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    ids = [int(t) for t in p.stdout.split()]
    with cu.Model(lib, tiny) as m:
        assert ids == m.greedy(cu.PROMPT, cu.N_NEW)
    assert len(set(ids)) > 3, ids  # a path with some variety, not one repeated token
    bad = subprocess.run([str(exe), str(tmp_path / "missing.ekq")], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "EK_ERR_IO" in bad.stderr and "missing.ekq" in bad.stderr, bad.stderr


def _edit_meta(key, fn):
    def make(path):
        meta = cu.tiny_metadata(cu.TINY)
        meta[key] = json.dumps(fn(json.loads(meta[key])))
        return cu.write_tiny(path, meta=meta)
    return make


def _set(root, path, value):
    """root with root[path[0]]...[path[-1]] = value."""
    d = root
    for k in path[:-1]:
        d = d[k]
    d[path[-1]] = value
    return root


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def _drop_config_key(key):
    return _edit_meta("edgekit.model_config", lambda d: {k: v for k, v in d.items() if k != key})


def _tensor_edit(name, **entry):
    def make(path):
        header, data = cu.read_raw(cu.write_tiny(path))
        header[name].update(entry)
        return cu.write_raw(path, header, data)
    return make


def _scales_shape(path):
    """down_proj's scales relabelled [64, 2] with offsets to match: a valid tensor the model cannot use."""
    header, data = cu.read_raw(cu.write_tiny(path))
    entry = header["model.layers.0.mlp.down_proj.scales"]
    begin = entry["data_offsets"][0]
    entry.update(shape=[64, 2], data_offsets=[begin, begin + 64 * 2 * 2])
    return cu.write_raw(path, header, data)


LOAD_ERRORS = {
    "missing file": (lambda p: p.parent / "nope.ekq", native.EK_ERR_IO, r"nope\.ekq: cannot open"),
    "directory": (lambda p: p.parent, native.EK_ERR_IO, "not a regular file"),
    "empty file": (lambda p: _write(p, b""), native.EK_ERR_FORMAT, "shorter than the 8-byte"),
    "text file": (lambda p: _write(p, b"hello, this is not safetensors at all\n"), native.EK_ERR_FORMAT,
                  "not a safetensors file"),
    "truncated": (lambda p: _write(p, cu.write_tiny(p).read_bytes()[:-100]), native.EK_ERR_FORMAT,
                  "outside the .* data bytes"),
    "plain safetensors": (lambda p: cu.write_tiny(p, meta={"format": "pt"}), native.EK_ERR_FORMAT,
                          "not an edgekit artifact"),
    "format version": (lambda p: cu.write_tiny(p, meta=cu.tiny_metadata(cu.TINY, {"edgekit.format_version": "2"})),
                       native.EK_ERR_UNSUPPORTED, "format version '2'"),
    "bert": (lambda p: cu.write_tiny(p, meta=cu.tiny_metadata(cu.TINY, {"edgekit.family": "bert"})),
             native.EK_ERR_UNSUPPORTED, "bert causal-lm"),
    "8-bit weights": (_edit_meta("edgekit.linears", lambda d: _set(d, ["model.layers.1.mlp.up_proj", "bits"], 8)),
                      native.EK_ERR_UNSUPPORTED, r"model\.layers\.1\.mlp\.up_proj .*not 4-bit.*--engine kernels"),
    "static activations": (_edit_meta("edgekit.linears", lambda d: _set(d, ["model.layers.0.self_attn.q_proj",
                                                                            "act_mode"], "static")),
                           native.EK_ERR_UNSUPPORTED, "not per token, block or tensor"),
    "per-tensor without its scale": (_edit_meta("edgekit.linears", lambda d: _set(
        d, ["model.layers.0.self_attn.q_proj", "act_mode"], "per_tensor")), native.EK_ERR_FORMAT,
        r"q_proj\.act_scale' is missing"),
    "w4a4": (_edit_meta("edgekit.quant", lambda d: _set(d, ["w4a4_ratio"], 0.25)), native.EK_ERR_UNSUPPORTED,
             "W4A4"),
    "head bits": (_edit_meta("edgekit.quant", lambda d: _set(d, ["lm_head_bits"], 4)),
                  native.EK_ERR_FORMAT, "lm_head_bits must be 8 or null"),
    "head act bits": (_edit_meta("edgekit.quant", lambda d: _set(d, ["lm_head_act_bits"], 4)),
                      native.EK_ERR_FORMAT, "lm_head_act_bits must be 8 or null"),
    "head act bits on a float head": (_edit_meta("edgekit.quant", lambda d: _set(d, ["lm_head_act_bits"], 8)),
                                      native.EK_ERR_FORMAT, "lm_head_act_bits 8 needs lm_head_bits 8"),
    "rope scaling": (_edit_meta("edgekit.model_config", lambda d: _set(d, ["rope_scaling"], {"type": "linear"})),
                     native.EK_ERR_UNSUPPORTED, "rope_scaling"),
    "config without layers": (_drop_config_key("num_hidden_layers"), native.EK_ERR_FORMAT,
                              "model_config has no num_hidden_layers"),
    "scales shape": (_scales_shape, native.EK_ERR_FORMAT,
                     r"'model\.layers\.0\.mlp\.down_proj\.scales' must be F16 \[64, 3\], got F16 \[64, 2\]"),
    "missing tensor": (lambda p: cu.write_tiny(p, tensors={k: v for k, v in cu.tiny_tensors(cu.TINY).items()
                                                           if k != "model.layers.1.self_attn.k_proj.qweight"}),
                       native.EK_ERR_FORMAT, r"'model\.layers\.1\.self_attn\.k_proj\.qweight' is missing"),
    "dtype": (_tensor_edit("model.norm.weight", dtype="F64"), native.EK_ERR_FORMAT,
              r"'model\.norm\.weight': F64 \[64\] needs 512 bytes but data_offsets span 256"),
    "unknown dtype": (_tensor_edit("model.norm.weight", dtype="F128"), native.EK_ERR_FORMAT, "unknown dtype 'F128'"),
    "overflowing shape": (_tensor_edit("model.norm.weight", shape=[2 ** 32, 2 ** 32, 2 ** 32]), native.EK_ERR_FORMAT,
                          "overflows"),
    "huge offsets": (_tensor_edit("model.norm.weight", data_offsets=[2 ** 63, 2 ** 63 + 256]), native.EK_ERR_FORMAT,
                     "data_offsets must be two integers"),
}


@pytest.mark.parametrize("case", list(LOAD_ERRORS))
def test_load_errors(tmp_path, lib, case):
    make, status, pattern = LOAD_ERRORS[case]
    path = make(tmp_path / "bad.ekq")
    with pytest.raises(cu.CError) as e:
        cu.Model(lib, path)
    assert e.value.status == status, (e.value.status, e.value.message)
    assert re.search(pattern, e.value.message), e.value.message
    assert "\n" not in e.value.message
    assert lib.ek_status_name(status).decode().startswith("EK_ERR_")


# Edits of the header's JSON text (byte strings: old → new) and what the strict parser must make of them.
HEADER_JSON = {
    "escaped format value": (b'"edgekit-artifact"', b'"edgekit\\u002dartifact"', None),
    "surrogate pair": (b'"synthetic"', b'"synth\\ud83d\\ude00etic"', None),
    "raw utf-8": (b'"synthetic"', '"synth\u00e9tic \U0001f600"'.encode(), None),
    "pretty printed": (None, None, None),
    "overlong utf-8": (b'"synthetic"', b'"synth\xc0\xafetic"', "invalid UTF-8"),
    "lone surrogate": (b'"synthetic"', b'"synth\\udc00"', "lone low surrogate"),
    "control character": (b'"synthetic"', b'"synth\x01etic"', "control character"),
    "duplicate key": (b'"__metadata__":{', b'"__metadata__":{"a":"1","a":"2",', 'duplicate key "a"'),
    "too deep": (b'"__metadata__":{', b'"x":' + b"[" * 100 + b"]" * 100 + b',"__metadata__":{',
                 "nested deeper than 64"),
    "leading zero": (b'"data_offsets":[0,', b'"data_offsets":[00,', "leading zero"),
    "trailing comma": (b'"__metadata__":{', b'"__metadata__":{"a":"1",}', "expected a string key"),
    "float offset": (b'"data_offsets":[0,', b'"data_offsets":[0e0,', "data_offsets must be two integers"),
}


@pytest.mark.parametrize("case", list(HEADER_JSON))
def test_header_json_is_parsed_strictly(tmp_path, lib, tiny, case):
    old, new, error = HEADER_JSON[case]
    header, data = cu.read_raw(tiny)
    text = json.dumps(header, indent=2).encode() if old is None else \
        json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    if old is not None:
        assert text.count(old) >= 1, old
        text = text.replace(old, new, 1)
    path = cu.write_raw(tmp_path / "edited.ekq", text, data)
    if error is None:
        with cu.Model(lib, path) as m:
            assert m.eval(cu.PROMPT).shape == (1, 96)
        return
    with pytest.raises(cu.CError, match=re.escape(error)) as e:
        cu.Model(lib, path)
    assert e.value.status == native.EK_ERR_FORMAT
    if "data_offsets" not in error:  # a parse error says where
        assert "invalid JSON at byte" in e.value.message


def test_eval_decode_truncate_reset(lib, tiny):
    with cu.Model(lib, tiny, max_ctx=16) as m:
        assert (lib.ek_n_vocab(m.h), lib.ek_n_ctx(m.h), lib.ek_n_past(m.h)) == (96, 16, 0)
        assert m.logits() is None
        full = m.eval(cu.PROMPT + [1, 2, 3], all_logits=True)
        assert full.shape == (8, 96) and np.isfinite(full).all()
        assert lib.ek_n_past(m.h) == 8
        cu.check(lib, lib.ek_truncate(m.h, 5))
        assert lib.ek_n_past(m.h) == 5 and m.logits() is None
        steps = np.stack([m.decode(t) for t in (1, 2, 3)])  # decode reproduces prefill bit for bit
        np.testing.assert_array_equal(steps, full[5:])
        cu.check(lib, lib.ek_reset(m.h))
        assert lib.ek_n_past(m.h) == 0
        np.testing.assert_array_equal(m.eval(cu.PROMPT)[0], full[4])


def test_context_full_and_bad_arguments(lib, tiny):
    with cu.Model(lib, tiny, max_ctx=8) as m:
        m.eval(list(range(6)))
        with pytest.raises(cu.CError, match="holds 8 tokens; 6 used, 3 more") as e:
            m.eval([1, 2, 3])
        assert e.value.status == native.EK_ERR_CONTEXT_FULL and lib.ek_n_past(m.h) == 6
        assert m.logits().shape == (1, 96)  # a rejected call leaves the model as it was
        for bad, what in (([5, 96], "token 1 is 96"), ([-1], "token 0 is -1")):
            with pytest.raises(cu.CError, match=what) as e:
                m.eval(bad)
            assert e.value.status == native.EK_ERR_INVALID_ARGUMENT
        assert lib.ek_eval(m.h, None, 1, 0) == native.EK_ERR_INVALID_ARGUMENT
        assert lib.ek_eval(m.h, (ctypes.c_int32 * 1)(1), 0, 0) == native.EK_ERR_INVALID_ARGUMENT
        assert lib.ek_truncate(m.h, 7) == native.EK_ERR_INVALID_ARGUMENT
        assert "0..6" in lib.ek_last_error().decode()
        m.eval([1, 2])
        assert lib.ek_decode(m.h, 3) == native.EK_ERR_CONTEXT_FULL
    assert lib.ek_eval(None, (ctypes.c_int32 * 1)(1), 1, 0) == native.EK_ERR_INVALID_ARGUMENT
    assert lib.ek_n_vocab(None) == 0 and not lib.ek_get_logits(None, None)
    lib.ek_model_free(None)
    p = lib.ek_load_params_default()
    p.version = 99
    out = ctypes.c_void_p()
    assert lib.ek_model_load(str(tiny).encode(), ctypes.byref(p), ctypes.byref(out)) == native.EK_ERR_INVALID_ARGUMENT
    assert not out and "params" in lib.ek_last_error().decode()


def test_untied_head_explicit_head_dim_and_unaligned_data(tmp_path, lib):
    """An untied LM head, head_dim != hidden / heads, and float tensors at unaligned file offsets (copied, not
    read through a misaligned pointer) all load and give the same logits as the aligned file."""
    cfg = dict(cu.TINY, tie_word_embeddings=False, head_dim=32)
    path = cu.write_tiny(tmp_path / "untied.ekq", config=cfg)
    header, data = cu.read_raw(path)
    text = json.dumps(header).encode()
    text += b" " * ((1 - 8 - len(text)) % 4)  # trailing spaces: the data starts at an offset ≡ 1 (mod 4)
    shifted = cu.write_raw(tmp_path / "unaligned.ekq", text, data)
    with cu.Model(lib, path) as a, cu.Model(lib, shifted) as b:
        want = a.eval(cu.PROMPT, all_logits=True)
        assert np.isfinite(want).all()
        np.testing.assert_array_equal(b.eval(cu.PROMPT, all_logits=True), want)


def _fuzz_corpus(base: bytes, out_dir, n: int, seed: int = 1234) -> list[str]:
    """n damaged copies of a valid artifact: byte flips (header and data), truncations, bad header lengths, JSON
    edits of tensor entries and of the metadata."""
    rng = np.random.default_rng(seed)
    hlen = int.from_bytes(base[:8], "little")
    header, data = json.loads(base[8:8 + hlen]), base[8 + hlen:]
    names = sorted(k for k in header if k != "__metadata__")
    bad_values = [2 ** 64, 2 ** 63, -1, 1.5, "7", None, [], {}, 0, 2 ** 31, 1e300]
    files = []
    for i in range(n):
        kind = i % 6
        b = bytearray(base)
        if kind in (0, 1):  # flip bits in the header (0) or in the tensor data (1)
            lo, hi = (8, 8 + hlen) if kind == 0 else (8 + hlen, len(b))
            for pos in rng.integers(lo, hi, int(rng.integers(1, 9))):
                b[pos] ^= 1 << int(rng.integers(0, 8))
        elif kind == 2:
            b = b[:int(rng.integers(0, len(b)))]
        elif kind == 3:
            choices = [0, 1, hlen - 1, hlen + 1, hlen + 7, len(b), 2 ** 63, 2 ** 64 - 1, hlen // 2,
                       int(rng.integers(0, 2 ** 63))]
            b[:8] = int(choices[int(rng.integers(len(choices)))]).to_bytes(8, "little")
        else:
            h = json.loads(json.dumps(header))
            if kind == 4:  # one tensor entry: offsets, dtype, shape or the entry itself
                entry = h[names[int(rng.integers(len(names)))]]
                field = ["data_offsets", "dtype", "shape", "entry"][int(rng.integers(4))]
                if field == "data_offsets":
                    v = bad_values[int(rng.integers(len(bad_values)))]
                    entry[field] = [v, entry[field][1]] if rng.random() < 0.5 else [entry[field][0], v]
                elif field == "dtype":
                    entry[field] = ["F64", "U8", "F16", "BF16", "X", 7, None][int(rng.integers(7))]
                elif field == "shape":
                    entry[field] = [[2 ** 32] * 3, [-1], [1.0], [], [2 ** 62, 4], "abc", [0], [1] * 9][
                        int(rng.integers(8))]
                else:
                    entry.clear() if rng.random() < 0.5 else entry.update(extra=[[[[]]]])
            else:  # kind 5: the metadata's JSON values
                meta = h["__metadata__"]
                key = ["edgekit.model_config", "edgekit.quant", "edgekit.linears", "edgekit.format_version"][
                    int(rng.integers(4))]
                r = rng.random()
                if r < 0.3:
                    meta[key] = meta[key][:int(rng.integers(0, len(meta[key]) + 1))]
                elif r < 0.5:
                    meta[key] = "[" * 5000 + "]" * 5000 if rng.random() < 0.5 else '"\\ud800 \\u12"'
                elif key == "edgekit.model_config":
                    cfg = json.loads(meta[key])
                    field = ["hidden_size", "num_hidden_layers", "vocab_size", "num_key_value_heads", "head_dim",
                             "rms_norm_eps", "rope_theta", "intermediate_size", "tie_word_embeddings"][
                        int(rng.integers(9))]
                    cfg[field] = bad_values[int(rng.integers(len(bad_values)))]
                    meta[key] = json.dumps(cfg)
                else:
                    meta[key] = str(int(rng.integers(0, 3)))
            text = json.dumps(h).encode()
            b = bytearray(len(text).to_bytes(8, "little") + text + data)
        path = out_dir / f"fuzz{i:04d}.ekq"
        path.write_bytes(bytes(b))
        files.append(str(path))
    return files


_FUZZ_RUNNER = r"""
import sys
sys.path.insert(0, sys.argv[1])
import capi_util as cu
native = cu.source_module("edgekit.native.capi")
lib = native.load_library(sys.argv[2])
for path in open(sys.argv[3]).read().split():
    try:
        with cu.Model(lib, path, max_ctx=8, n_threads=1) as m:
            logits = m.eval([0, lib.ek_n_vocab(m.h) - 1], all_logits=True)
            print("EK_OK" if logits.shape[0] == 2 else "BAD", path, flush=True)
    except cu.CError as e:
        ok = 1 <= e.status <= 7 and e.message
        print(lib.ek_status_name(e.status).decode() if ok else "BAD", path, e.message, flush=True)
"""


def test_fuzz_damaged_artifacts_never_crash(tmp_path, lib_path, tiny):
    """A few hundred damaged artifacts loaded in one subprocess: each load succeeds or returns an error status with
    a message; a crash kills only the subprocess and fails this test. EDGEKIT_FUZZ_DRIVER may name the C++ driver
    (csrc/tests/fuzz_artifact.cpp), e.g. of an -fsanitize=address,undefined build, to run the corpus instead."""
    import os

    files = _fuzz_corpus(tiny.read_bytes(), tmp_path, 360)
    driver = os.environ.get("EDGEKIT_FUZZ_DRIVER")
    if driver:
        cmd = [driver, *files]
    else:
        (tmp_path / "files.txt").write_text("\n".join(files))
        cmd = [sys.executable, "-c", _FUZZ_RUNNER, str(cu.ROOT / "tests"), str(lib_path), str(tmp_path / "files.txt")]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"exit {p.returncode}\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith(("EK_", "BAD"))]
    assert len(lines) == len(files), p.stdout[-2000:]
    assert not [ln for ln in lines if ln.startswith("BAD")]
    statuses = [ln.split()[0] for ln in lines]
    counts = {s: statuses.count(s) for s in set(statuses)}
    print(counts)
    assert counts.get("EK_OK", 0) >= 30 and counts.get("EK_ERR_FORMAT", 0) >= 100, counts
