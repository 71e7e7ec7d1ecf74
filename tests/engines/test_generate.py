"""ek_generate (csrc/runtime/generate.cpp through the C API) on a tiny synthetic llama that carries a trained
byte-level BPE tokenizer: greedy generation equals the Python path (edgekit.eval.generate.generate_in_session on the
runtime engine with the HF tokenizer), the streamed text equals HF's decoding, seeded sampling repeats, top-k 1 and a
tiny top-p are greedy, stop strings end the text just before them, and bad settings give one clear error.
"""

from __future__ import annotations

import ctypes

import pytest

import capi_util as cu
import tokenizer_fuzz as tf
from test_tokenizer import write_with_tokenizer

native = cu.source_module("edgekit.native.capi")
PROMPT = "The quick brown fox 12"
N = 20


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    hf, _ = tf.train_bpe("digits")
    path = write_with_tokenizer(tmp_path_factory.mktemp("gen") / "tiny-tok.ekq", hf)
    return native.load_library(), path, hf


def run(lib, m, prompt=PROMPT, stop=(), ret=None, **settings):
    """(ids, text pieces, status) of one ek_generate call; ``ret`` maps the call index to the callback's return."""
    s = lib.ek_sampling_default()
    s.max_tokens = N
    for k, v in settings.items():
        setattr(s, k, v)
    arr = (ctypes.c_char_p * max(1, len(stop)))(*[x.encode() for x in stop])
    s.stop, s.n_stop = ctypes.cast(arr, ctypes.POINTER(ctypes.c_char_p)), len(stop)
    ids, pieces = [], []

    def on_token(_, token, text, n_text):
        ids.append(token)
        pieces.append(ctypes.string_at(text, n_text).decode())
        return (ret or {}).get(len(ids), 0)

    n = ctypes.c_int32()
    st = lib.ek_generate(m.h, prompt.encode(), ctypes.byref(s), native.TOKEN_CALLBACK(on_token), None, ctypes.byref(n))
    assert st != 0 or n.value == len(ids)
    return ids, pieces, st


def test_greedy_equals_python_path_and_hf_text(setup):
    from transformers import PreTrainedTokenizerFast

    lib, path, hf = setup
    with cu.Model(lib, path) as m:
        ids, pieces, st = run(lib, m)
        assert st == 0, lib.ek_last_error()
        assert len(ids) == N or ids[-1] == hf.token_to_id("<|im_end|>")
        assert "".join(pieces) == hf.decode(ids, skip_special_tokens=True)
        # the cache holds the prompt and all new tokens but the last
        assert lib.ek_n_past(m.h) == len(hf.encode(PROMPT, add_special_tokens=False).ids) + len(ids) - 1
        # the same as the ctypes argmax loop on ek_eval / ek_decode
        prompt_ids = hf.encode(PROMPT, add_special_tokens=False).ids
        cu.check(lib, lib.ek_reset(m.h))
        assert ids == m.greedy(prompt_ids, len(ids))
    engines = cu.source_module("edgekit.engines.runtime")
    gen = cu.source_module("edgekit.eval.generate")
    tok = PreTrainedTokenizerFast(tokenizer_object=hf, eos_token="<|im_end|>")
    sess = engines.Runtime(engines.Runtime.from_artifact(path).engine, tokenizer=tok)
    assert gen.generate_in_session(sess, PROMPT, max_tokens=N)["new_token_ids"] == ids


def test_example_program_text_in_text_out(setup, tmp_path):
    """examples/generate.c -p: the prompt text in, the greedy continuation's text out, as ek_generate's callback."""
    import shutil
    import subprocess

    lib, path, _ = setup
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    with cu.Model(lib, path) as m:
        _, pieces, _ = run(lib, m)
    exe = cu.compile_example(tmp_path / "generate", native.include_dir(), native.library_path().parent, cc)
    p = subprocess.run([str(exe), str(path), "-n", str(N), "-p", PROMPT], capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr.decode()
    assert p.stdout.decode() == "".join(pieces) + "\n"


def test_sampling_is_seeded_and_filters(setup):
    lib, path, hf = setup
    with cu.Model(lib, path) as m:
        greedy = run(lib, m)[0]
        a = run(lib, m, temperature=2.0, top_k=40, top_p=0.95, seed=7)[0]
        assert a == run(lib, m, temperature=2.0, top_k=40, top_p=0.95, seed=7)[0]
        others = [run(lib, m, temperature=2.0, top_k=40, top_p=0.95, seed=s)[0] for s in range(3)]
        assert any(o != a for o in others) and a != greedy
        assert run(lib, m, temperature=1.5, top_k=1, seed=3)[0] == greedy
        assert run(lib, m, temperature=1.5, top_p=1e-6, seed=3)[0] == greedy


def test_stop_strings_and_callback_stop(setup):
    lib, path, hf = setup
    with cu.Model(lib, path) as m:
        ids, pieces, _ = run(lib, m, stop_at_eos=0)
        text = "".join(pieces)
        # a stop string after the start of the text, free of U+FFFD (the random model makes many half characters)
        stop = next(text[i:i + w] for w in (2, 1) for i in range(1, len(text) - w + 1)
                    if "\ufffd" not in text[i:i + w])
        cut = text.find(stop)
        k = next(k for k in range(1, len(ids) + 1) if stop in hf.decode(ids[:k], skip_special_tokens=True))
        got_ids, got, st = run(lib, m, stop=["\x01never", stop], stop_at_eos=0)
        assert st == 0 and "".join(got) == text[:cut] and got_ids == ids[:k]
        got_ids, got, _ = run(lib, m, stop_at_eos=0, ret={5: 1})  # the callback stops after its 5th token
        # what was still held back (here the half character of the 5th token) is not reported
        assert got_ids == ids[:5] and "".join(got) == "".join(pieces[:5])


def test_generate_bad_input(setup, tmp_path):
    lib, path, _ = setup
    with cu.Model(lib, path) as m:
        for settings, message in [({"max_tokens": 0}, b"max_tokens must be > 0"),
                                  ({"top_p": 0.0}, b"top_p must lie in (0, 1]"),
                                  ({"version": 9}, b"settings must come from ek_sampling_default()")]:
            _, _, st = run(lib, m, **settings)
            assert st == native.EK_ERR_INVALID_ARGUMENT and message in lib.ek_last_error()
        _, _, st = run(lib, m, stop=[""])
        assert st == native.EK_ERR_INVALID_ARGUMENT and b"stop strings must be non-empty" in lib.ek_last_error()
        _, _, st = run(lib, m, prompt="")
        assert st == native.EK_ERR_INVALID_ARGUMENT and b"the prompt has no tokens" in lib.ek_last_error()
        _, _, st = run(lib, m, prompt="word " * 200)
        assert st == native.EK_ERR_CONTEXT_FULL and b"the cache holds 64" in lib.ek_last_error()
    with cu.Model(lib, cu.write_tiny(tmp_path / "none.ekq")) as m:
        _, _, st = run(lib, m)
        assert st == native.EK_ERR_UNSUPPORTED and b"carries no tokenizer" in lib.ek_last_error()
