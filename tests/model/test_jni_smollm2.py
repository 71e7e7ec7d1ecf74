"""The JNI wrapper ai.edgekit.Edgekit (bindings/java) on the session's real quantized SmolLM2 (conftest): the glue
built with its own CMakeLists against the installed libedgekit.so and the Java classes compiled with javac, both into
a tmp dir; tests/model/EdgekitRoundTrip.java drives the wrapper and prints what it got. Its greedy tokens equal the C
API's ek_generate (ctypes) and the Python runtime's generation, its tokenize/detokenize equal ek_tokenize /
ek_detokenize and give the text back (emoji included: JNI's modified UTF-8 is not UTF-8), the callback's false and an
exception thrown from it stop generation, C API errors arrive with the C API's message, and a closed model refuses.
Skipped when javac or java is missing (Debian: openjdk-17-jdk-headless, installed by `make sysdeps`).
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import pytest

import capi_util as cu

native = cu.source_module("edgekit.native.capi")
BINDINGS = cu.ROOT / "bindings" / "java"
DRIVER = Path(__file__).resolve().parent / "EdgekitRoundTrip.java"
N = 24
PROMPTS = ["The capital of France is", "Emoji 😀, café, 東京 and ½ are"]
TEXTS = ["<|im_start|>user\nHi 😀 there<|im_end|>\n", "", "  spaces\t\ttabs\n\nnewlines 12345 67",
         "Ünïcödé ℌ𝔢𝔩𝔩𝔬 𝟙𝟚𝟛 — 🇫🇷"]


@pytest.fixture(scope="module")
def jni_build(tmp_path_factory):
    """(build dir holding libedgekit_jni.so, classes dir): bindings/java built as a user would, outside the tree."""
    missing = [t for t in ("javac", "java") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (Debian: openjdk-17-jdk-headless; `make sysdeps`)")
    if shutil.which("cmake") is None:
        pytest.fail("cmake is not on PATH")
    d = tmp_path_factory.mktemp("jni")
    lib = native.library_path()
    cmds = [["cmake", "-S", str(BINDINGS), "-B", str(d / "build"), f"-DEDGEKIT_LIBRARY={lib}",
             f"-DEDGEKIT_INCLUDE_DIR={native.include_dir()}", "-DCMAKE_BUILD_TYPE=Release"],
            ["cmake", "--build", str(d / "build"), "-j2"],
            ["javac", "-Xlint:all", "-Werror", "-encoding", "UTF-8", "-d", str(d / "classes"),
             *map(str, sorted((BINDINGS / "ai" / "edgekit").glob("*.java"))), str(DRIVER)]]
    for cmd in cmds:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
        assert p.returncode == 0, f"{' '.join(cmd)}\n{p.stdout}"
    return d / "build", d / "classes"


@pytest.fixture(scope="module")
def java_run(jni_build, artifact, tmp_path_factory):
    """The driver's records on the artifact: {kind: [fields...]} ("gen 0": [ids, text hex, pieces hex], ...)."""
    build, classes = jni_build
    d = tmp_path_factory.mktemp("jni-run")
    garbage = d / "garbage.ekq"
    garbage.write_bytes(b"not a safetensors file at all")
    bad = [d / "missing-ñ😀.ekq", garbage]
    lines = [f"P {p.encode().hex()}" for p in PROMPTS] + [f"T {t.encode().hex()}" for t in TEXTS]
    lines += [f"B {str(b).encode().hex()}" for b in bad]
    (d / "input.txt").write_text("\n".join(lines) + "\n")
    cmd = ["java", f"-Djava.library.path={build}", "-Xcheck:jni", "-cp", str(classes), "EdgekitRoundTrip",
           str(artifact), str(d / "input.txt"), str(N)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and p.stdout.rstrip().endswith("done"), f"{' '.join(cmd)}\n{p.stdout}\n{p.stderr}"
    # -Xcheck:jni reports JNI misuse (a call with an exception pending, a leaked local frame) as warnings
    assert "WARNING" not in p.stderr, p.stderr
    recs = {}
    for line in p.stdout.splitlines():
        f = line.split(" ")
        key = " ".join(f[:2]) if f[0] in ("gen", "tok", "bad") else f[0]
        recs[key] = f[2:] if f[0] in ("gen", "tok", "bad") else f[1:]
    return recs, bad


def ids(field: str) -> list[int]:
    return [] if field == "-" else [int(x) for x in field.split(",")]


def text(field: str) -> str:
    return "" if field == "-" else bytes.fromhex(field).decode()


def capi_generate(lib, m, prompt: str, n: int = N) -> tuple[list[int], str]:
    """(ids, streamed text) of a greedy ek_generate through ctypes, the reference of the Java wrapper."""
    s = lib.ek_sampling_default()
    s.max_tokens = n
    got, pieces = [], []

    def on_token(_, token, piece, n_piece):
        got.append(token)
        pieces.append(ctypes.string_at(piece, n_piece))
        return 0

    cu.check(lib, lib.ek_generate(m.h, prompt.encode(), ctypes.byref(s), native.TOKEN_CALLBACK(on_token), None, None))
    return got, b"".join(pieces).decode()


def test_jni_greedy_equals_capi_and_python_runtime(java_run, artifact):
    gen = cu.source_module("edgekit.eval.generate")
    recs, _ = java_run
    lib = native.load_library()
    with cu.Model(lib, artifact) as m:
        for i, prompt in enumerate(PROMPTS):
            got, got_text, pieces = recs[f"gen {i}"]
            want, want_text = capi_generate(lib, m, prompt)
            assert ids(got) == want, prompt
            assert text(got_text) == text(pieces) == want_text, prompt
            py = gen.generate(str(artifact), prompt, N, stream=False, engine="runtime")
            assert ids(got) == py["new_token_ids"] and text(got_text) == py["text"], prompt
        # the comparison covers N tokens, or fewer when greedy decoding reached EOS (where depends on the CPU's
        # kernels: float sums in their own order), but never a trivially short run
        first = ids(recs["gen 0"][0])
        assert len(first) == N or (first[-1] == lib.ek_token_eos(m.h) and len(first) >= 16), first


def test_jni_tokenize_detokenize_round_trip(java_run, artifact):
    recs, _ = java_run
    lib = native.load_library()
    with cu.Model(lib, artifact) as m:
        for i, t in enumerate(TEXTS, start=len(PROMPTS)):
            got, back, back_skip = recs[f"tok {i}"]
            raw = t.encode()
            n, buf = ctypes.c_int32(), (ctypes.c_int32 * 512)()
            cu.check(lib, lib.ek_tokenize(m.h, raw, len(raw), 0, buf, 512, ctypes.byref(n)))
            assert ids(got) == list(buf[:n.value]), t
            assert text(back) == t
            out = ctypes.create_string_buffer(2048)
            cu.check(lib, lib.ek_detokenize(m.h, buf, n.value, 1, out, 2048, ctypes.byref(n)))
            assert text(back_skip) == out.value.decode()
    assert "<|im_start|>" not in text(recs[f"tok {len(PROMPTS)}"][2])  # skip_special did skip


def test_jni_callback_stop_exception_and_closed_model(java_run, artifact):
    recs, _ = java_run
    greedy = ids(recs["gen 0"][0])
    lib = native.load_library()
    with cu.Model(lib, artifact) as m:
        _, want_text = capi_generate(lib, m, PROMPTS[0], n=4)  # what the first 4 tokens stream
    assert ids(recs["stop"][0]) == greedy[:4] and text(recs["stop"][1]) == want_text
    assert recs["throw"] == ["same", ",".join(map(str, greedy[:3]))]  # stopped at the 3rd token, rethrown as is
    assert ids(recs["again"][0]) == greedy
    # no options, no callback: the defaults' 64 greedy tokens continue the 24 above (unless those ended at EOS)
    nocb, first = text(recs["nocb"][0]), text(recs["gen 0"][1])
    assert nocb.startswith(first) and (len(nocb) > len(first) if len(greedy) == N else nocb == first)
    for check in ("reenter-close", "reenter-tokenize", "nul-prompt", "bad-id", "bad-settings", "closed-generate",
                  "closed-tokenize", "closed-detokenize"):
        assert recs[check] == ["ok"], (check, recs[check])


def test_jni_load_errors_carry_the_c_api_message(java_run):
    recs, bad = java_run
    lib = native.load_library()
    for i, path in enumerate(bad, start=len(PROMPTS) + len(TEXTS)):
        h = ctypes.c_void_p()
        status = lib.ek_model_load(str(path).encode(), None, ctypes.byref(h))
        assert status != 0
        assert recs[f"bad {i}"] == [str(status), lib.ek_status_name(status).decode(),
                                    lib.ek_last_error().decode().encode().hex()]
    assert str(bad[0]) in text(recs[f"bad {len(PROMPTS) + len(TEXTS)}"][2])  # the emoji path, intact
