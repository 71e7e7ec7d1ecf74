"""The C++ tokenizer on the real SmolLM2 tokenizer.json (the one its artifacts carry: transformers' conversion of the
shipped GGUF, ByteLevel with unk and byte fallback, 21 control bytes missing from the vocabulary): the ids of Hugging
Face ``tokenizers`` on 10,000 fuzzed strings with the chat special tokens embedded, the same decoded text, and
ek_tokenize / ek_detokenize / ek_token_eos through the C API on the session's quantized artifact.
"""

from __future__ import annotations

import ctypes

import pytest

import capi_util as cu
import tokenizer_fuzz as tf

_C = pytest.importorskip("edgekit._C")
native = cu.source_module("edgekit.native.capi")
SPECIALS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<file_sep>", "<jupyter_code>"]


def test_smollm2_tokenizer_matches_hf_on_fuzz(smollm2, tmp_path):
    smollm2.tokenizer.save_pretrained(tmp_path)
    cpp = _C.Tokenizer.from_json((tmp_path / "tokenizer.json").read_text())
    hf = smollm2.tokenizer.backend_tokenizer
    texts = tf.fuzz_strings(10_000, seed=5, specials=SPECIALS)
    want = [e.ids for e in hf.encode_batch(texts, add_special_tokens=False)]
    got = cpp.encode_batch(texts)
    bad = [(t, g, w) for t, g, w in zip(texts, got, want) if g != w]
    assert not bad, f"{len(bad)} of {len(texts)} differ; first: {bad[0]!r}"
    assert cpp.decode_batch(want) == hf.decode_batch(want, skip_special_tokens=False)
    assert cpp.decode_batch(want[:500], skip_special_tokens=True) == hf.decode_batch(want[:500],
                                                                                    skip_special_tokens=True)


def test_smollm2_artifact_tokenizer_through_capi(artifact, smollm2):
    lib = native.load_library()
    hf = smollm2.tokenizer
    text = "<|im_start|>user\nWhat is 12 + 30? Don't guess.<|im_end|>\n"
    with cu.Model(lib, artifact) as m:
        n, buf = ctypes.c_int32(), (ctypes.c_int32 * 256)()
        cu.check(lib, lib.ek_tokenize(m.h, text.encode(), -1, 1, buf, 256, ctypes.byref(n)))
        ids = list(buf[:n.value])
        assert ids == hf(text)["input_ids"]  # add_special: SmolLM2 adds no BOS (add_bos_token false in the GGUF)
        out = ctypes.create_string_buffer(1024)
        cu.check(lib, lib.ek_detokenize(m.h, buf, n.value, 1, out, 1024, ctypes.byref(n)))
        assert out.value.decode() == hf.backend_tokenizer.decode(ids, skip_special_tokens=True)
        assert lib.ek_token_eos(m.h) == hf.eos_token_id
    assert _C.Tokenizer.from_artifact(str(artifact)).encode_batch([text]) == [ids]
