"""The C++ tokenizer on a Raspberry Pi 5 CPU: csrc/tests/tokenize_file.cpp cross-built into conftest's ``rpi5_build``
tokenizes 10,000 fuzzed strings (tests/tokenizer_fuzz.py) under qemu-aarch64 -cpu cortex-a76, and every id list equals
Hugging Face ``tokenizers``' on this host. Two tokenizer layouts: Digits + ByteLevel (SmolLM2's own) and ByteLevel
alone with unk / byte fallback (the GGUF-converted one). Skipped when the cross compiler or qemu-aarch64 is missing.
"""

from __future__ import annotations

import subprocess

import pytest

import capi_util as cu
import tokenizer_fuzz as tf

build = cu.source_module("edgekit.build")

PROGRAM = "edgekit_tokenize"


@pytest.mark.parametrize("kind, n", [("digits", 10_000), ("gguf", 2_000)])
def test_rpi5_tokenizer_under_qemu_matches_hf(tmp_path, rpi5_build, kind, n):
    target, build_dir = rpi5_build
    # the same build directory and settings: an incremental build of one more target
    build.configure_and_build(build_dir, toolchain=target.toolchain, cflags=target.cflags, targets=(PROGRAM,))
    hf, specials = tf.train_bpe(kind)
    (tmp_path / "tokenizer.json").write_text(hf.to_str())
    texts = tf.fuzz_strings(n, seed=21, specials=specials)
    with (tmp_path / "strings").open("wb") as f:
        for t in texts:
            b = t.encode()
            f.write(b"%d\n" % len(b) + b)
    cmd, env = build.target_command(target, build_dir / PROGRAM)
    cmd += [str(tmp_path / "tokenizer.json"), str(tmp_path / "strings")]
    p = subprocess.run(cmd, capture_output=True, timeout=300, env=env)
    assert p.returncode == 0, f"{' '.join(cmd)}\n{p.stderr.decode()[-2000:]}"
    lines = p.stdout.decode().split("\n")[:-1]
    assert len(lines) == len(texts)
    got = [[int(x) for x in line.split()] for line in lines]
    want = [e.ids for e in hf.encode_batch(texts, add_special_tokens=False)]
    bad = [(t, g, w) for t, g, w in zip(texts, got, want) if g != w]
    assert not bad, f"{len(bad)} of {len(texts)} differ under qemu; first: {bad[0]!r}"
