"""A Hugging Face byte-level BPE tokenizer as GGUF ``tokenizer.*`` metadata (llama.cpp's ``gpt2`` tokenizer model).

The GGUF export of an artifact copies these keys from the GGUF it was quantized from; a model that exists only as a
Hugging Face directory (the T5 student of ``edgekit distill``) has a ``tokenizer.json`` instead, and this module
writes the same keys from it, the way ``convert_hf_to_gguf.py`` does for BPE vocabularies:

* ``tokenizer.ggml.tokens`` in id order, padded to the model's vocabulary with ``[PAD<i>]`` (type UNUSED) where
  the embedding has more rows than the tokenizer has tokens;
* ``tokenizer.ggml.token_type``: added special tokens CONTROL, other added tokens USER_DEFINED, the rest NORMAL;
* ``tokenizer.ggml.merges`` as ``"left right"`` strings;
* the special ids (BOS, EOS, UNK, padding) and whether encoding adds BOS / EOS (read by encoding a letter, so the
  post-processor decides, not a flag that may disagree with it);
* ``tokenizer.ggml.pre``, the pre-tokenizer llama.cpp splits text with, chosen from ``tokenizer.json``'s
  pre-tokenizer: ByteLevel with the GPT-2 pattern alone is ``gpt-2``; single digits split first, then the same
  ByteLevel, is ``smollm`` (SmolLM2's own ``tokenizer.json``). Anything else is refused, because llama.cpp would
  split text differently from transformers and the token ids would silently differ.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgekit.errors import EdgekitError

NORMAL, UNUSED, CONTROL, USER_DEFINED = 1, 5, 3, 4  # llama.cpp's token types (SentencePiece's numbering)


def _is_byte_level(pre: dict | None) -> bool:
    return bool(pre) and pre.get("type") == "ByteLevel" and pre.get("use_regex", True) \
        and not pre.get("add_prefix_space", False)


def pre_tokenizer_name(tokenizer_json: dict) -> str:
    """llama.cpp's ``tokenizer.ggml.pre`` that splits text as ``tokenizer_json``'s pre-tokenizer does.

    Raises:
        EdgekitError: a pre-tokenizer (or normalizer) llama.cpp has no exact equivalent of.
    """
    norm = tokenizer_json.get("normalizer")
    if norm and not (norm.get("type") == "Sequence" and not norm.get("normalizers")):
        raise EdgekitError(f"the tokenizer has a {norm.get('type')} normalizer, which llama.cpp's BPE tokenizer does "
                           "not apply; only byte-level BPE tokenizers without a normalizer are exported")
    pre = tokenizer_json.get("pre_tokenizer") or {}
    if _is_byte_level(pre):
        return "gpt-2"
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else []
    if len(steps) == 2 and steps[0].get("type") == "Digits" and steps[0].get("individual_digits") \
            and _is_byte_level(steps[1]):
        return "smollm"
    raise EdgekitError(f"the tokenizer's pre-tokenizer ({json.dumps(pre)[:120]}) has no llama.cpp equivalent edgekit "
                       "knows (ByteLevel with the GPT-2 pattern, optionally after single digits)")


def tokenizer_fields(tokenizer_dir, vocab_size: int) -> list[tuple]:
    """``(key, value, GGUFValueType, sub_type)`` of the ``tokenizer.*`` keys for the tokenizer in ``tokenizer_dir``.

    Args:
        tokenizer_dir: A directory with ``tokenizer.json`` (and ``tokenizer_config.json``), as ``save_pretrained``
            writes it.
        vocab_size: Rows of the model's embedding (the token list is padded to it).

    Raises:
        EdgekitError: no ``tokenizer.json``, not a BPE model, a pre-tokenizer llama.cpp cannot reproduce, or more
            tokens than embedding rows.
    """
    from gguf import GGUFValueType as V
    from transformers import AutoTokenizer

    d = Path(tokenizer_dir)
    f = d / "tokenizer.json"
    if not f.is_file():
        raise EdgekitError(f"{d} has no tokenizer.json; the GGUF export needs the fast tokenizer's file")
    tj = json.loads(f.read_text(encoding="utf-8"))
    model = tj.get("model", {})
    if model.get("type") != "BPE":
        raise EdgekitError(f"{f} is a {model.get('type')} tokenizer; the GGUF export writes byte-level BPE only")
    pre = pre_tokenizer_name(tj)
    try:
        tok = AutoTokenizer.from_pretrained(str(d))
    except (OSError, ValueError, KeyError) as e:
        raise EdgekitError(f"could not load the tokenizer of {d}: {type(e).__name__}: {e}") from None
    vocab = dict(model["vocab"])
    added = {a["content"]: a for a in tj.get("added_tokens", [])}
    for a in added.values():
        vocab[a["content"]] = a["id"]
    n = max(vocab.values()) + 1
    if n > vocab_size:
        raise EdgekitError(f"the tokenizer has ids up to {n - 1} but the model only {vocab_size} embedding rows")
    tokens = [f"[PAD{i}]" for i in range(vocab_size)]
    types = [UNUSED] * vocab_size
    for text, i in vocab.items():
        tokens[i] = text
        a = added.get(text)
        types[i] = NORMAL if a is None else CONTROL if a.get("special") else USER_DEFINED
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    probe = tok("a")["input_ids"]  # what the post-processor adds around plain text
    kvs = [("tokenizer.ggml.model", "gpt2", V.STRING, None),
           ("tokenizer.ggml.pre", pre, V.STRING, None),
           ("tokenizer.ggml.tokens", tokens, V.ARRAY, V.STRING),
           ("tokenizer.ggml.token_type", types, V.ARRAY, V.INT32),
           ("tokenizer.ggml.merges", merges, V.ARRAY, V.STRING),
           ("tokenizer.ggml.add_bos_token", bool(tok.bos_token_id is not None and probe[:1] == [tok.bos_token_id]),
            V.BOOL, None),
           ("tokenizer.ggml.add_eos_token", bool(tok.eos_token_id is not None and len(probe) > 1
                                                 and probe[-1:] == [tok.eos_token_id]), V.BOOL, None)]
    for key, tid in (("bos_token_id", tok.bos_token_id), ("eos_token_id", tok.eos_token_id),
                     ("unknown_token_id", tok.unk_token_id), ("padding_token_id", tok.pad_token_id)):
        if tid is not None:
            kvs.append((f"tokenizer.ggml.{key}", int(tid), V.UINT32, None))
    if isinstance(getattr(tok, "chat_template", None), str):
        kvs.append(("tokenizer.chat_template", tok.chat_template, V.STRING, None))
    return kvs


def tokenizer_from_gguf(reader):
    """The Hugging Face fast tokenizer that :func:`tokenizer_fields` wrote into a GGUF (``gguf.GGUFReader``): the
    same tokens, merges, pre-tokenizer and special tokens, so the ids equal the original tokenizer's.

    Raises:
        EdgekitError: the file's tokenizer is not a ``gpt2`` BPE with a pre-tokenizer named here.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    def field(key, default=None):
        f = reader.fields.get(key)
        return default if f is None else f.contents()

    pre = field("tokenizer.ggml.pre")
    if field("tokenizer.ggml.model") != "gpt2" or pre not in ("gpt-2", "smollm"):
        raise EdgekitError(f"the GGUF's tokenizer ({field('tokenizer.ggml.model')}, pre {pre}) is not a byte-level "
                           "BPE edgekit wrote; tokenize with the model's own tokenizer")
    tokens, types = field("tokenizer.ggml.tokens"), field("tokenizer.ggml.token_type")
    merges = [tuple(m.split(" ", 1)) for m in field("tokenizer.ggml.merges", [])]
    vocab = {t: i for i, t in enumerate(tokens)}  # added tokens too: add_tokens then keeps their ids
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.pre_tokenizer = byte_level if pre == "gpt-2" else pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), byte_level])
    tok.decoder = decoders.ByteLevel()
    for i, t in enumerate(tokens):
        if types[i] in (CONTROL, USER_DEFINED):
            tok.add_tokens([AddedToken(t, special=types[i] == CONTROL, normalized=False)])
    special = {}
    for role, key in (("bos_token", "bos_token_id"), ("eos_token", "eos_token_id"), ("unk_token", "unknown_token_id"),
                      ("pad_token", "padding_token_id")):
        tid = field(f"tokenizer.ggml.{key}")
        if tid is not None and 0 <= int(tid) < len(tokens):
            special[role] = tokens[int(tid)]
    return PreTrainedTokenizerFast(tokenizer_object=tok, **special)
