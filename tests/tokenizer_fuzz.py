"""Seeded fuzz text for the C++ tokenizer's parity with Hugging Face ``tokenizers`` (tests/engines/test_tokenizer.py,
tests/model/test_tokenizer_smollm2.py, tests/cross/test_tokenizer_arm.py), and small trained byte-level BPE
tokenizers to run it on without a real model.

Every string is a few fragments drawn from pools that aim at the tokenizer's edges: letters, marks and digits of many
scripts (Nd digits beyond ASCII, Nl and No numbers), combining marks, CJK, emoji with ZWJ and modifiers, astral
planes, runs of every kind of whitespace (White_Space and the C0 separators Python calls space but Unicode does not),
contractions in both cases, punctuation runs, control characters, special tokens whole and cut, and random code
points of any plane (unassigned ones where no Unicode version assigns any).
"""

from __future__ import annotations

import random

WHITESPACE = [" ", "  ", "\t", "\n", "\r", "\r\n", "\n\n", "\x0b", "\x0c", "\x85", "\xa0", "\u1680", "\u2000",
              "\u2003", "\u200a", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000", "\x1c", "\x1d", "\x1e", "\x1f",
              "\u200b", "\ufeff", " \t ", "\n \n", "    "]
WORDS = ["hello", "World", "the", "don", "I", "naïve", "café", "Ünïcödé", "straße", "ﬁne", "Ǆemal", "ΑΒΓ", "λόγος",
         "Привет", "мир", "שלום", "مرحبا", "नमस्ते", "हिन्दी", "ภาษาไทย", "日本語", "中文字", "한국어", "カタカナ", "ひらがな",
         "ትግርኛ", "ᚠᚢᚦ", "𝐀𝐁𝐂", "𐐷𐑌", "𝔘𝔫𝔦", "ǅ", "ʰʲ", "ᵃ", "x", "Q", "def", "return", "snake_case", "CamelCase"]
CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'LL", "'", "''", "’s", "'x"]
DIGITS = ["0", "7", "42", "1234567", "3.14", "1,000", "٠١٢٣", "۴۵۶", "०१२", "০৯", "๐๑", "０１２", "𝟎𝟏", "᠐᠑", "𑁦"]
NUMBERS = ["Ⅻ", "ⅻ", "〇", "𐍁", "ᛮ", "²", "³", "½", "¾", "①", "⑳", "㊿", "𝍠", "༳", "፲"]
PUNCT = [".", ",", "!", "?", "...", "--", "—", "“", "”", "«", "»", "(", ")", "[]", "{}", "<>", "#", "@", "$", "%",
         "^&*", "+=", "\\", "/", "|", "~", "`", "_", "§", "¶", "•", "€", "£", "¥", "©", "®", "™", "°", "±", "×",
         "÷", "¿", "¡", "、", "。", "「」", "・"]
MARKS = ["\u0301", "\u0300", "\u0308", "\u0327", "\u20dd", "\u0903", "\u093f", "\u0e31", "\u302a", "\u1ab0",
         "e\u0301", "a\u0308\u0301", "\u0915\u094d\u0937"]
EMOJI = ["😀", "👍🏽", "👨‍👩‍👧", "🏳️‍🌈", "🇫🇷", "❤️", "🤖", "🦀", "☃", "✓", "🧑🏿‍🚀", "🀄", "🂡"]
CONTROL = ["\x00", "\x01", "\x04", "\x06", "\x07", "\x08", "\x13", "\x14", "\x16", "\x1b", "\x7f", "\x80", "\x9f",
           "\u00ad", "\u200d", "\u200e", "\u2060", "\ue000", "\U000f0000"]
CJK = ["漢", "字", "龍", "鿐", "𠀀", "𪚥", "𰀀", "가", "힣", "ㄱ", "あ", "ア", "ｱ"]


POOLS = [(0.16, WORDS), (0.30, WHITESPACE), (0.38, CONTRACTIONS), (0.46, DIGITS), (0.50, NUMBERS), (0.58, PUNCT),
         (0.62, MARKS), (0.66, EMOJI), (0.69, CONTROL), (0.73, CJK)]


def fragment(rng: random.Random, specials: list[str]) -> str:
    kind = rng.random()
    for upto, pool in POOLS:  # the fixed pools by cumulative probability
        if kind < upto:
            return rng.choice(pool)
    if kind < 0.77 and specials:
        s = rng.choice(specials)
        return s if rng.random() < 0.7 else s[: rng.randrange(1, len(s))]  # whole, or cut short
    if kind < 0.85:
        return "".join(chr(rng.randrange(0x20, 0x7F)) for _ in range(rng.randrange(1, 6)))
    # any code point of any plane but the surrogates: assigned ones, private use, and unassigned ones of planes 4-13
    out = []
    for _ in range(rng.randrange(1, 4)):
        plane = rng.choice([0, 0, 0, 1, 1, 2, 3, 5, 14, 15])
        cp = plane << 16 | rng.randrange(0x10000)
        if not 0xD800 <= cp <= 0xDFFF:  # the C++ tables hold tokenizers' own Unicode versions
            out.append(chr(cp))
    return "".join(out)


def fuzz_strings(n: int, seed: int, specials: list[str] = ()) -> list[str]:
    """``n`` seeded strings of 1..12 fragments (a few empty and a few long ones among them)."""
    rng = random.Random(seed)
    out = ["", " ", "a", "\n"]
    while len(out) < n:
        k = rng.randrange(1, 13) if rng.random() > 0.01 else rng.randrange(100, 400)
        out.append("".join(fragment(rng, list(specials)) for _ in range(k)))
    return out[:n]


def train_bpe(kind: str, vocab_size: int = 1200, seed: int = 1):
    """A byte-level BPE ``tokenizers.Tokenizer`` trained on fuzz text, configured as one of the layouts the C++
    tokenizer reads:

    ``digits``: Sequence[Digits(individual), ByteLevel], a TemplateProcessing ``<s> $A </s>``, ByteLevel decoder
    (the layout of SmolLM2's own tokenizer.json);
    ``gguf``: ByteLevel alone, unk with fuse_unk and byte_fallback, a few control bytes missing from the alphabet,
    the decoder Sequence[ByteFallback, Fuse, Replace, ByteLevel] (what transformers writes for SmolLM2's GGUF);
    ``prefix``: Sequence[Digits(runs), ByteLevel(add_prefix_space)], merges ignored for whole-word tokens.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<s>", "</s>"]
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if kind == "gguf":
        missing = {chr(256 + i) for i in (4, 6, 19, 20)}  # bytes 0x04 0x06 0x13 0x14, as SmolLM2's vocabulary lacks
        alphabet = [c for c in alphabet if c not in missing]
        model = models.BPE(unk_token="<|endoftext|>", fuse_unk=True, byte_fallback=True)
    else:
        model = models.BPE(ignore_merges=kind == "prefix")
    tok = Tokenizer(model)
    if kind == "digits":
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                     pre_tokenizers.ByteLevel(add_prefix_space=False)])
    elif kind == "prefix":
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=False),
                                                     pre_tokenizers.ByteLevel(add_prefix_space=True)])
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[AddedToken(s, special=True, normalized=False)
                                                                         for s in specials],
                                  initial_alphabet=alphabet, show_progress=False)
    corpus = fuzz_strings(3000, seed) + ["The quick brown fox jumps over the lazy dog. " * 3] * 50
    if kind == "gguf":
        corpus = ["".join(c for c in s if c not in "\x04\x06\x13\x14") for s in corpus]
    tok.train_from_iterator(corpus, trainer=trainer)
    if kind == "digits":
        tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>",
                                                           special_tokens=[("<s>", tok.token_to_id("<s>")),
                                                                           ("</s>", tok.token_to_id("</s>"))])
        tok.decoder = decoders.ByteLevel()
    elif kind == "gguf":
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
        tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Replace("\u2581", " "),
                                         decoders.ByteLevel()])
    else:
        tok.decoder = decoders.ByteLevel()
    return tok, specials
