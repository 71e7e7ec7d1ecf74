"""The C++ byte-level BPE tokenizer (csrc/runtime/tokenizer.cpp) against Hugging Face ``tokenizers``: the same ids on
10,000 fuzzed strings (tests/tokenizer_fuzz.py), the same decoded text, round trips, and one clear error for each
tokenizer.json it cannot read; then ek_tokenize / ek_detokenize through the C API on a synthetic artifact that carries
a tokenizer. The tokenizers are small ones trained here in each layout the C++ side reads (the real SmolLM2 one is
tests/model/test_tokenizer_smollm2.py).
"""

from __future__ import annotations

import base64
import ctypes
import json

import pytest

import capi_util as cu
import tokenizer_fuzz as tf

_C = pytest.importorskip("edgekit._C")
native = cu.source_module("edgekit.native.capi")

N_FUZZ = 10_000


@pytest.fixture(scope="module", params=["digits", "gguf", "prefix"])
def trained(request):
    tok, specials = tf.train_bpe(request.param)
    return request.param, tok, specials, _C.Tokenizer.from_json(tok.to_str())


def mismatches(texts, got, want):
    bad = [(t, g, w) for t, g, w in zip(texts, got, want) if g != w]
    lines = [f"{len(bad)} of {len(texts)} differ; first ones:"]
    lines += [f"  {t!r}\n    c++ {g}\n    hf  {w}" for t, g, w in bad[:5]]
    return bad, "\n".join(lines)


def test_fuzz_ids_match_hf(trained):
    kind, hf, specials, cpp = trained
    texts = tf.fuzz_strings(N_FUZZ if kind == "digits" else N_FUZZ // 4, seed=7, specials=specials)
    want = [e.ids for e in hf.encode_batch(texts, add_special_tokens=False)]
    bad, msg = mismatches(texts, cpp.encode_batch(texts), want)
    assert not bad, f"{kind} (Unicode {_C.unicode_version()} tables): {msg}"
    # the post-processor's tokens (digits: <s> $A </s>; the others add nothing)
    some = texts[:500]
    want = [e.ids for e in hf.encode_batch(some, add_special_tokens=True)]
    bad, msg = mismatches(some, cpp.encode_batch(some, add_special_tokens=True), want)
    assert not bad, msg
    if kind == "digits":
        assert want[5][0] == hf.token_to_id("<s>") and want[5][-1] == hf.token_to_id("</s>")


def test_fuzz_decode_matches_hf_and_round_trips(trained):
    kind, hf, specials, cpp = trained
    texts = tf.fuzz_strings(N_FUZZ // 4, seed=8, specials=specials)
    ids = [e.ids for e in hf.encode_batch(texts, add_special_tokens=False)]
    for skip in (False, True):
        bad, msg = mismatches(texts, cpp.decode_batch(ids, skip_special_tokens=skip),
                              hf.decode_batch(ids, skip_special_tokens=skip))
        assert not bad, f"decode skip_special={skip}: {msg}"
    if kind != "prefix":  # (add_prefix_space puts a space before every piece the Digits split makes)
        unk = hf.token_to_id("<|endoftext|>")
        # a text whose characters the vocabulary lacks comes back with the unk token instead
        pairs = [(b, t) for b, t, i in zip(cpp.decode_batch(ids), texts, ids) if kind != "gguf" or unk not in i]
        assert len(pairs) > len(texts) // 2
        assert all(b == t for b, t in pairs), next((b, t) for b, t in pairs if b != t)
    # random token sequences, half characters included: U+FFFD where HF puts it
    import random

    rng = random.Random(3)
    seqs = [[rng.randrange(hf.get_vocab_size()) for _ in range(rng.randrange(1, 8))] for _ in range(2000)]
    bad, msg = mismatches(seqs, cpp.decode_batch(seqs), hf.decode_batch(seqs, skip_special_tokens=False))
    assert not bad, msg


def test_hand_picked_cases():
    """Cases the GPT-2 pattern and the Digits split decide, named so that a failure says which rule broke."""
    hf, specials = tf.train_bpe("digits")
    cpp = _C.Tokenizer.from_json(hf.to_str())
    cases = ["don't", "I'M here", "they're 've", "  x", "a  \n\n b", "x\u00a0\u00a0y", "tab\t\tend\t", "12345",
             "٣٤٥x", "Ⅻ½", " 'll", "''s", "<|im_start|>user\nhi<|im_end|>", "<|im_start", "a<s>b</s>",
             "\u2028\u2029", "e\u0301\u0301", "😀😀 😀", "x" * 3000, " " * 500 + "a"]
    want = [e.ids for e in hf.encode_batch(cases, add_special_tokens=False)]
    bad, msg = mismatches(cases, cpp.encode_batch(cases), want)
    assert not bad, msg
    assert cpp.encode_batch(["<|im_start|>"])[0] == [hf.token_to_id("<|im_start|>")]


def test_invalid_utf8_is_refused():
    hf, _ = tf.train_bpe("digits")
    cpp = _C.Tokenizer.from_json(hf.to_str())
    for bad, at in [(b"ok\xff", 2), (b"\xc0\xaf", 0), (b"ab\xed\xa0\x80", 2), (b"\xe2\x82", 0)]:
        with pytest.raises(ValueError, match=f"not valid UTF-8 \\(byte {at}\\)"):
            cpp.encode_batch([bad])
    with pytest.raises(ValueError, match="token id 99999 is not in the vocabulary"):
        cpp.decode_batch([[1, 99999]])


def _edit(text: str, fn) -> str:
    d = json.loads(text)
    fn(d)
    return json.dumps(d)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["model"].update(type="WordPiece"), "model WordPiece"),
    (lambda d: d.update(normalizer={"type": "NFC"}), "normalizer NFC"),
    (lambda d: d.update(pre_tokenizer={"type": "Whitespace"}), "pre_tokenizer Whitespace"),
    (lambda d: d.update(decoder={"type": "WordPiece", "prefix": "##", "cleanup": True}), "decoder WordPiece"),
    (lambda d: d["model"].update(dropout=0.1), "BPE dropout"),
    (lambda d: d["added_tokens"][0].update(lstrip=True), "with lstrip"),
    (lambda d: d["model"].update(merges=[["nope", "x"]]), "merges\\[0\\] names a token outside the vocabulary"),
    (lambda d: d["model"].update(vocab=[1, 2]), "model.vocab must be an object"),
])
def test_unsupported_or_bad_tokenizer_json_is_one_clear_error(edit, message):
    hf, _ = tf.train_bpe("digits")
    with pytest.raises(ValueError, match=message):
        _C.Tokenizer.from_json(_edit(hf.to_str(), edit))
    with pytest.raises(ValueError, match="tokenizer.json: is not valid JSON"):
        _C.Tokenizer.from_json(hf.to_str()[:-10])


# ------------------------------------------------------------------------------------------------- C API ----

def tokenizer_meta(hf, eos: str = "<|im_end|>") -> str:
    files = {"tokenizer.json": hf.to_str().encode(), "tokenizer_config.json": json.dumps({"eos_token": eos}).encode()}
    return json.dumps({k: base64.b64encode(v).decode() for k, v in files.items()})


def write_with_tokenizer(path, hf, meta_value=None):
    config = dict(cu.TINY, vocab_size=hf.get_vocab_size())
    meta = cu.tiny_metadata(config, {"edgekit.tokenizer": meta_value if meta_value is not None
                                     else tokenizer_meta(hf)})
    return cu.write_tiny(path, config, meta=meta)


@pytest.fixture(scope="module")
def lib():
    return native.load_library()


def c_tokenize(lib, m, text: bytes, add_special=False):
    n = ctypes.c_int32()
    st = lib.ek_tokenize(m.h, text, len(text), int(add_special), None, 0, ctypes.byref(n))
    if st == 0:
        return []
    assert st == native.EK_ERR_BUFFER_TOO_SMALL, lib.ek_last_error()
    buf = (ctypes.c_int32 * n.value)()
    cu.check(lib, lib.ek_tokenize(m.h, text, len(text), int(add_special), buf, n.value, ctypes.byref(n)))
    return list(buf)


def c_detokenize(lib, m, ids, skip=False):
    arr = (ctypes.c_int32 * len(ids))(*ids)
    n = ctypes.c_int32()
    st = lib.ek_detokenize(m.h, arr, len(ids), int(skip), None, 0, ctypes.byref(n))
    assert st == native.EK_ERR_BUFFER_TOO_SMALL, lib.ek_last_error()
    buf = ctypes.create_string_buffer(n.value + 1)
    cu.check(lib, lib.ek_detokenize(m.h, arr, len(ids), int(skip), buf, n.value + 1, ctypes.byref(n)))
    return buf.raw[:n.value].decode()


def test_capi_tokenize_matches_hf(tmp_path, lib):
    hf, specials = tf.train_bpe("digits")
    path = write_with_tokenizer(tmp_path / "tok.ekq", hf)
    texts = tf.fuzz_strings(300, seed=11, specials=specials)
    with cu.Model(lib, path) as m:
        for t in texts:
            ids = hf.encode(t, add_special_tokens=False).ids
            assert c_tokenize(lib, m, t.encode()) == ids, repr(t)
            assert c_detokenize(lib, m, ids) == hf.decode(ids, skip_special_tokens=False)
        assert c_tokenize(lib, m, b"hi 12", add_special=True) == hf.encode("hi 12").ids
        assert lib.ek_token_eos(m.h) == hf.token_to_id("<|im_end|>")
        # NUL-terminated input (n_text < 0)
        n, buf = ctypes.c_int32(), (ctypes.c_int32 * 64)()
        cu.check(lib, lib.ek_tokenize(m.h, b"hello world", -1, 0, buf, 64, ctypes.byref(n)))
        assert list(buf[:n.value]) == hf.encode("hello world", add_special_tokens=False).ids
        # bad input: one status and message each, nothing written past the buffer
        st = lib.ek_tokenize(m.h, b"a\xffb", 3, 0, buf, 64, ctypes.byref(n))
        assert st == native.EK_ERR_INVALID_ARGUMENT and b"not valid UTF-8 (byte 1)" in lib.ek_last_error()
        bad = (ctypes.c_int32 * 2)(1, 10**6)
        st = lib.ek_detokenize(m.h, bad, 2, 0, ctypes.create_string_buffer(64), 64, ctypes.byref(n))
        assert st == native.EK_ERR_INVALID_ARGUMENT and b"1000000 is not in the vocabulary" in lib.ek_last_error()
        small = ctypes.create_string_buffer(3)
        ids = (ctypes.c_int32 * 3)(*hf.encode("hello", add_special_tokens=False).ids[:3])
        st = lib.ek_detokenize(m.h, ids, 1, 0, small, 1, ctypes.byref(n))
        assert st == native.EK_ERR_BUFFER_TOO_SMALL and n.value >= 1 and small.raw == b"\0" * 3
        assert lib.ek_tokenize(None, b"x", 1, 0, buf, 64, ctypes.byref(n)) == native.EK_ERR_INVALID_ARGUMENT


def test_capi_without_or_with_bad_tokenizer(tmp_path, lib):
    hf, _ = tf.train_bpe("digits")
    n, buf = ctypes.c_int32(), (ctypes.c_int32 * 8)()
    cases = [
        (cu.write_tiny(tmp_path / "none.ekq"), native.EK_ERR_UNSUPPORTED, b"carries no tokenizer"),
        (write_with_tokenizer(tmp_path / "wp.ekq", hf, json.dumps({"tokenizer.json": base64.b64encode(
            _edit(hf.to_str(), lambda d: d["model"].update(type="WordPiece")).encode()).decode()})),
         native.EK_ERR_UNSUPPORTED, b"model WordPiece"),
        (write_with_tokenizer(tmp_path / "trunc.ekq", hf, json.dumps({"tokenizer.json": base64.b64encode(
            hf.to_str()[:1000].encode()).decode()})), native.EK_ERR_FORMAT, b"tokenizer.json: is not valid JSON"),
        (write_with_tokenizer(tmp_path / "b64.ekq", hf, json.dumps({"tokenizer.json": "@@@"})),
         native.EK_ERR_FORMAT, b"not valid base64"),
    ]
    for path, status, message in cases:
        with cu.Model(lib, path) as m:  # the model loads; tokenization reports the problem
            assert lib.ek_tokenize(m.h, b"hi", 2, 0, buf, 8, ctypes.byref(n)) == status, path
            assert message in lib.ek_last_error(), lib.ek_last_error()
            assert lib.ek_token_eos(m.h) == -1
