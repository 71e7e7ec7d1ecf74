"""GGUF export: an edgekit artifact (or its float source) as a file llama.cpp loads unchanged.

What is written, for a Llama-family W4A8 artifact:

* metadata of llama.cpp's ``llama`` architecture (block count, context length, widths, head counts, RoPE base and
  dimension, RMSNorm epsilon, vocabulary size) from the artifact's ``model_config``; ``general.file_type`` =
  ``MOSTLY_Q4_0``;
* the tokenizer (``tokenizer.*``: vocab, merges, token types, special ids, chat template) and the descriptive
  ``general.*`` keys copied from the source GGUF the artifact was quantized from (an artifact of a non-GGUF source
  is refused for now);
* every symmetric group-32 int4 linear as ``Q4_0`` blocks made **from the artifact's own codes and scales**: a block
  is the group's fp16 scale followed by its 16 packed bytes, which are already GGUF's nibble order
  (:func:`edgekit.quant.formats.q4_0_rows`), so nothing is requantized; symmetric group-32 int8 linears likewise
  become ``Q8_0`` blocks (fp16 scale + 32 int8 codes);
* norms in F32; the token embedding (and an untied head) as ``Q8_0`` computed here, or ``F16``. The Q8_0 rule is
  ggml's (per 32 values ``d = amax / 127``, ``q = x / d``) except that ties round half to even (numpy's ``rint``,
  edgekit's rule), where ggml's ``roundf`` rounds them away from zero; the two differ only on exact ``.5`` ties.

llama.cpp's ``llama`` graph applies RoPE to interleaved pairs while transformers rotates the two halves of each head,
so ``convert_hf_to_gguf.py`` permutes the rows of Q and K (``LlamaModel.permute``) and transformers undoes it when it
loads a GGUF. The artifact holds transformers' order, so the same row permutation is applied here to the codes and
scales of ``q_proj``/``k_proj``; whole rows move, so it is lossless.

:func:`export_t5_gguf` writes a float T5 encoder-decoder (``edgekit distill``'s student) as llama.cpp's ``t5``
architecture, its tokenizer from ``tokenizer.json`` (:mod:`edgekit.export.gguf_vocab`).

Anything llama.cpp's blocks cannot express (asymmetric weights, other group sizes, the W4A4 mix, static per-tensor
activation scales, quantized attention, other architectures) is refused with one :class:`EdgekitError` that names it.

:func:`export_source_f16` writes the float source model as an F16 GGUF (dequantized tensor by tensor from the source
GGUF), so llama.cpp's own quantizer can be compared on equal footing. Files are written to a temporary name next to
the destination and renamed into place only when complete.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.export.refusal import refuse
from edgekit.models.families import LLAMA

EMBED_TYPES = ("q8_0", "f16")
QK = 32  # values per Q4_0 / Q8_0 block
_RECIPES = "w4a8 (or rtn-w4a8)"
# GGUF's name of each Llama block linear, in the order of edgekit.models.families.LLAMA.linears()
_LINEARS = dict(zip(LLAMA.linears(), ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")))
_NORMS = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
# keys of the source GGUF that describe the written file, not the model: set here instead of copied
_OWN_KEYS = ("general.architecture", "general.file_type", "general.quantization_version", "general.quantized_by")


def gguf_linear_name(block: int, linear: str) -> str:
    """GGUF tensor name of a Llama block linear (``linear`` as in :meth:`Family.linears`), e.g. ``blk.0.attn_q.weight``."""
    if linear not in _LINEARS:
        raise EdgekitError(f"{linear!r} is not a Llama block linear; expected one of {', '.join(_LINEARS)}")
    return f"blk.{block}.{_LINEARS[linear]}.weight"


def gguf_t5_name(hf_name: str, n_blocks: int) -> str | None:
    """GGUF tensor name of a T5 tensor (Hugging Face name, e.g. ``decoder.block.0.layer.1.EncDecAttention.k.weight``
    → ``dec.blk.0.cross_attn_k.weight``), from gguf's own T5 table; None for a name it does not map (the encoder's
    and decoder's aliases of the shared embedding)."""
    import gguf

    return gguf.get_tensor_name_map(gguf.MODEL_ARCH.T5, n_blocks).get_name(hf_name, try_suffixes=(".weight",))


def llama_permute_rows(n_rows: int, n_head: int) -> np.ndarray:
    """Row order of ``convert_hf_to_gguf.py``'s ``LlamaModel.permute``: ``gguf_rows = hf_rows[index]``.

    Args:
        n_rows: Rows of the Q or K projection (``n_head * head_dim``).
        n_head: Attention heads for Q, key/value heads for K.

    Returns:
        An int64 index array of length ``n_rows``.
    """
    if n_head <= 0 or n_rows % (2 * n_head):
        raise EdgekitError(f"cannot permute {n_rows} rows into {n_head} heads of rotary pairs")
    return np.arange(n_rows).reshape(n_head, 2, n_rows // n_head // 2).swapaxes(1, 2).reshape(-1)


def q8_0_blocks(x: np.ndarray) -> np.ndarray:
    """GGUF Q8_0 bytes ``[N, K/32 * 34]`` of float rows ``[N, K]`` (rule: :func:`edgekit.quant.formats.quantize_q8_0`,
    so an artifact's Q8_0 table is written back with its own codes and scales)."""
    from edgekit.quant.formats import quantize_q8_0

    x = np.asarray(x, dtype=np.float32)
    n, k = x.shape
    if k % QK:
        raise EdgekitError(f"Q8_0 needs rows that are a multiple of {QK} values, got {k}")
    q, d = quantize_q8_0(x)
    return _blocks(d, q.view(np.uint8), n)


def _blocks(d16: np.ndarray, payload: np.ndarray, n: int) -> np.ndarray:
    """Interleave fp16 scales and per-block payload bytes into GGUF blocks, ``[n, bytes per row]``."""
    nb = d16.size
    d = np.ascontiguousarray(d16.reshape(nb)).view(np.uint8).reshape(nb, 2)
    return np.concatenate([d, payload.reshape(nb, -1)], axis=1).reshape(n, -1)


def check_exportable(art) -> None:
    """Raise one :class:`EdgekitError` listing what in ``art`` llama.cpp's GGUF blocks cannot express.

    Args:
        art: An :class:`edgekit.artifact.Artifact`.
    """
    cfg, q = art.model_config, art.quant
    problems: list[str] = []
    if art.family != "llama" or art.task != "causal-lm" or cfg.get("model_type") != "llama":
        problems.append(f"it is a {art.family} {art.task} (model_type {cfg.get('model_type')!r}), not a llama "
                        "decoder")
    if cfg.get("rope_scaling"):
        problems.append(f"rope_scaling {cfg['rope_scaling']} is not mapped yet")
    if cfg.get("attention_bias") or cfg.get("mlp_bias"):
        problems.append("linear biases are not mapped yet")
    if q.get("w4a4_ratio") or any(s.get("mix") for s in art.linears.values()):
        problems.append("the W4A4 token mix (llama.cpp has no per-token int4 activations)")
    att = q.get("attention") or {}
    if att.get("qkv_bits") or att.get("softmax_log2_bits"):
        problems.append("quantized attention (Q/K/V or log2 softmax)")
    reasons: dict[str, str | None] = {}
    for name, s in art.linears.items():
        if s.get("act_mode") == "per_tensor":
            why = "static per-tensor activation scales (llama.cpp quantizes activations per block at run time)"
        elif not s.get("symmetric", True):
            why = "asymmetric weights (q*d+m)"
        elif s.get("group_size") != QK:
            why = f"group size {s.get('group_size')} (Q4_0/Q8_0 blocks hold {QK})"
        elif s.get("bits") not in (4, 8):
            why = f"{s.get('bits')}-bit weights"
        elif s.get("bias"):
            why = "a bias"
        else:
            why = None
        reasons[name] = why
    refuse(art.path, "GGUF", problems, reasons, "llama.cpp expresses symmetric group-32 weights with dynamic "
                                                 f"activations; re-quantize with the {_RECIPES} recipe")


def _source_gguf(spec: str) -> Path:
    """The GGUF file a model spec resolves to, or an error saying a GGUF source is needed."""
    from edgekit.models.sources import resolve_spec

    src = resolve_spec(spec)
    if not src.gguf_file:
        raise EdgekitError(f"GGUF export carries the tokenizer over from a GGUF source; {spec!r} is a {src.kind} "
                           "model, which is not supported yet")
    path = Path(src.file)
    if not path.is_file():
        raise EdgekitError(f"source GGUF {path} not found; the artifact's source model must be installed")
    return path


def _copied_fields(reader, prefixes: tuple[str, ...]) -> list[tuple]:
    """``(key, value, type, sub_type)`` of the reader's fields whose key starts with one of ``prefixes``."""
    from gguf import GGUFValueType

    out = []
    for key, field in reader.fields.items():
        if not key.startswith(prefixes) or key in _OWN_KEYS:
            continue
        main = field.types[0]
        out.append((key, field.contents(), main, field.types[-1] if main == GGUFValueType.ARRAY else None))
    return out


def write_gguf(path: Path, arch: str, kvs: list[tuple], tensors: list[tuple]) -> None:
    """Write a GGUF file atomically: a temporary file in ``path``'s directory, renamed into place when complete.

    ``kvs`` are ``(key, value, GGUFValueType, sub_type)``; ``tensors`` are ``(name, array, raw GGML type or None)``.
    """
    import gguf

    if not path.parent.is_dir():
        raise EdgekitError(f"output directory does not exist: {path.parent}")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        w = gguf.GGUFWriter(tmp, arch)
        for key, val, vtype, sub in kvs:
            w.add_key_value(key, val, vtype, sub_type=sub)
        for name, arr, raw in tensors:
            w.add_tensor(name, arr, raw_dtype=raw)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 is meant for secrets, not model files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def export_artifact_gguf(artifact, output, embed_type: str = "q8_0") -> dict:
    """Export a Llama-family W4A8 artifact as a Q4_0 GGUF.

    Args:
        artifact: Path of the ``.ekq`` artifact.
        output: Path of the ``.gguf`` to write (replaced if it exists).
        embed_type: ``"q8_0"`` (llama.cpp's choice in its own Q4_0 files) or ``"f16"`` for the token embedding and
            an untied head.

    Returns:
        ``{"path", "tensors", "types" (count per GGML type), "bytes", "seconds"}``, and a ``notice`` for an ACM
        artifact: its learners concatenate into the dense FFN, so the GGUF is the k = N model (the runtime's forced
        k = N, exactly) and the gates are left out.

    Raises:
        EdgekitError: the artifact cannot be expressed in GGUF (the reason and the recipe that would export are
            named), its source GGUF is missing, or it is damaged.
    """
    import gguf
    from gguf import GGMLQuantizationType as T
    from gguf import GGUFValueType as V
    from safetensors import safe_open

    from edgekit.artifact import read_artifact
    from edgekit.quant.formats import q4_0_rows

    t0 = time.perf_counter()
    if embed_type not in EMBED_TYPES:
        raise EdgekitError(f"unknown embedding type {embed_type!r}; choose one of {', '.join(EMBED_TYPES)}")
    art = read_artifact(artifact)
    check_exportable(art)
    cfg = art.model_config
    n_layer, n_head = int(cfg["num_hidden_layers"]), int(cfg["num_attention_heads"])
    n_kv = int(cfg.get("num_key_value_heads") or n_head)
    hidden, vocab = int(cfg["hidden_size"]), int(cfg["vocab_size"])
    head_dim = int(cfg.get("head_dim") or hidden // n_head)
    src = _source_gguf(art.source)
    reader = gguf.GGUFReader(str(src))
    arch = reader.fields.get("general.architecture")
    if arch is None or arch.contents() != "llama":
        raise EdgekitError(f"source GGUF {src} is not a llama-architecture file")
    tok = reader.fields.get("tokenizer.ggml.tokens")
    if tok is None or len(tok.data) != vocab:
        raise EdgekitError(f"source GGUF {src} has {0 if tok is None else len(tok.data)} tokens but the artifact "
                           f"a vocabulary of {vocab}; was the artifact quantized from this file?")
    kvs = _copied_fields(reader, ("general.", "tokenizer."))
    del reader
    p = "llama."
    kvs += [(p + "block_count", n_layer, V.UINT32, None),
            (p + "context_length", int(cfg.get("max_position_embeddings", 2048)), V.UINT32, None),
            (p + "embedding_length", hidden, V.UINT32, None),
            (p + "feed_forward_length", int(cfg["intermediate_size"]), V.UINT32, None),
            (p + "attention.head_count", n_head, V.UINT32, None),
            (p + "attention.head_count_kv", n_kv, V.UINT32, None),
            (p + "rope.freq_base", float(cfg.get("rope_theta", 10000.0)), V.FLOAT32, None),
            (p + "rope.dimension_count", head_dim, V.UINT32, None),
            (p + "attention.layer_norm_rms_epsilon", float(cfg["rms_norm_eps"]), V.FLOAT32, None),
            (p + "vocab_size", vocab, V.UINT32, None),
            ("general.file_type", int(gguf.LlamaFileType.MOSTLY_Q8_0 if all(s["bits"] == 8 for s in
                                                                           art.linears.values())
                                      else gguf.LlamaFileType.MOSTLY_Q4_0), V.UINT32, None),
            ("general.quantization_version", gguf.GGML_QUANT_VERSION, V.UINT32, None),
            ("general.quantized_by", f"edgekit ({art.report.get('recipe', 'artifact')})", V.STRING, None)]

    def float_matrix(x: np.ndarray) -> tuple:
        if embed_type == "f16":
            return x.astype(np.float16), None
        return q8_0_blocks(x), T.Q8_0

    tensors: list[tuple] = []
    with safe_open(str(art.path), framework="numpy") as f:
        keys = set(f.keys())
        used: set[str] = set()

        def get(key: str) -> np.ndarray:
            if key not in keys:
                raise EdgekitError(f"{art.path}: tensor {key!r} is missing; the artifact is damaged")
            used.add(key)
            return f.get_tensor(key)

        tensors.append(("token_embd.weight", *float_matrix(get("model.embed_tokens.weight"))))
        tensors.append(("output_norm.weight", get("model.norm.weight").astype(np.float32), None))
        if "lm_head.weight" in keys:  # untied float head (a quantized head is a linear and refused above)
            tensors.append(("output.weight", *float_matrix(get("lm_head.weight"))))
        for i in range(n_layer):
            for hf, name in _NORMS.items():
                tensors.append((f"blk.{i}.{name}.weight", get(f"model.layers.{i}.{hf}.weight").astype(np.float32),
                                None))
            for hf, name in _LINEARS.items():
                lin = f"model.layers.{i}.{hf}"
                spec = art.linears.get(lin)
                if spec is None:
                    raise EdgekitError(f"{art.path}: linear {lin} is not quantized; only fully quantized "
                                       "artifacts are exported")
                codes, scales = get(f"{lin}.qweight"), get(f"{lin}.scales")
                n = codes.shape[0]
                if name in ("attn_q", "attn_k"):  # llama.cpp's rotary layout of the query and key rows
                    order = llama_permute_rows(n, n_head if name == "attn_q" else n_kv)
                    codes, scales = codes[order], scales[order]
                if spec["bits"] == 4:
                    tensors.append((f"blk.{i}.{name}.weight", q4_0_rows(codes, scales), T.Q4_0))
                else:
                    tensors.append((f"blk.{i}.{name}.weight",
                                    _blocks(scales.astype(np.float16), codes.astype(np.int8).view(np.uint8), n),
                                    T.Q8_0))
        if art.acm is not None:  # the gates: llama.cpp has no op for them; the learners already are the dense FFN
            used |= {k for k in keys if ".mlp.gate.fc" in k}
        extra = sorted(keys - used)
        if extra:
            raise EdgekitError(f"{art.path} holds tensors the GGUF export does not map ({', '.join(extra[:4])}"
                               f"{' ...' if len(extra) > 4 else ''})")
    out = Path(output)
    write_gguf(out, "llama", kvs, tensors)
    res = _summary(out, tensors, t0)
    if art.acm is not None:
        res["notice"] = (f"{art.path} has adaptive computation modules: exported as the dense model (k = N = "
                         f"{art.acm['n_learners']} learners for every token, the gates left out); only edgekit's "
                         "runtime skips learners")
    return res


def export_source_f16(spec: str, output) -> dict:
    """Write a model's float weights as an F16 GGUF (norms and other 1-D tensors F32).

    The source must be a GGUF file (an alias that ships one, or a path): every tensor is dequantized with the
    ``gguf`` package and stored as F16, names and metadata kept (Q/K rows are already in llama.cpp's order).

    Args:
        spec: Model spec (alias or ``.gguf`` path).
        output: Path of the ``.gguf`` to write.

    Returns:
        Same as :func:`export_artifact_gguf`.
    """
    import gguf
    from gguf import GGUFValueType as V

    t0 = time.perf_counter()
    src = _source_gguf(spec)
    reader = gguf.GGUFReader(str(src))
    arch_f = reader.fields.get("general.architecture")
    arch = arch_f.contents() if arch_f is not None else "llama"
    kvs = [kv for kv in _copied_fields(reader, ("",)) if not kv[0].startswith("GGUF.")]
    kvs += [("general.file_type", int(gguf.LlamaFileType.MOSTLY_F16), V.UINT32, None)]
    tensors = []
    for t in reader.tensors:
        w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        shape = [int(s) for s in reversed(t.shape.tolist())]  # GGUF lists dims innermost first
        w = w.reshape(shape)
        tensors.append((t.name, w if w.ndim == 1 else w.astype(np.float16), None))
    del reader
    out = Path(output)
    write_gguf(out, arch, kvs, tensors)
    return _summary(out, tensors, t0)


# T5 configurations llama.cpp's t5 graph computes: it hard-codes the bucket distance and picks GELU (tanh) for a
# gated FFN, ReLU for an ungated one
_T5_MAX_DISTANCE = 128
_T5_FFN = {(True, "gelu_pytorch_tanh"), (True, "gelu_new"), (False, "relu")}


def check_t5_exportable(cfg: dict, path) -> None:
    """Raise one :class:`EdgekitError` listing what in the T5 config ``cfg`` llama.cpp's ``t5`` graph computes
    differently."""
    problems = []
    if int(cfg.get("relative_attention_max_distance", 128)) != _T5_MAX_DISTANCE:
        problems.append(f"relative_attention_max_distance {cfg.get('relative_attention_max_distance')} (llama.cpp "
                        f"hard-codes {_T5_MAX_DISTANCE})")
    proj = str(cfg.get("feed_forward_proj", "relu"))
    gated = proj.startswith("gated-")
    act = proj.split("-", 1)[1] if gated else cfg.get("dense_act_fn", proj)
    if (gated, act) not in _T5_FFN:
        problems.append(f"feed_forward_proj {proj!r} (llama.cpp runs gated GELU-tanh or ungated ReLU)")
    refuse(path, "GGUF", problems, {}, "Train the student with the default feed_forward_proj and bucket distance")


def export_t5_gguf(model_dir, output, bits: int | None = None) -> dict:
    """Write a float T5 encoder-decoder (``edgekit distill``'s ``DIR/student``) as a GGUF of llama.cpp's ``t5``
    architecture.

    Tensor names come from gguf's T5 table (:func:`gguf_t5_name`); the tokenizer from the directory's
    ``tokenizer.json`` (:func:`edgekit.export.gguf_vocab.tokenizer_fields`). With a tied head, transformers scales
    the decoder output by ``d_model ** -0.5`` before the head and llama.cpp does not, so the factor is folded into
    the decoder's final RMSNorm weight (exact up to one float rounding) and no ``output.weight`` is written
    (llama.cpp then reuses ``token_embd``).

    Args:
        model_dir: The T5 directory (``config.json``, safetensors, tokenizer files).
        output: The ``.gguf`` to write (replaced if it exists; written atomically).
        bits: None: every tensor F32 (the torch model exactly); 16: matrices F16, norms and biases F32.

    Returns:
        Same as :func:`export_artifact_gguf`.

    Raises:
        EdgekitError: not a T5 directory, a configuration llama.cpp computes differently, or a tokenizer it
            cannot reproduce.
    """
    import gguf
    from gguf import GGUFValueType as V
    from safetensors import safe_open

    from edgekit.distill.student import load_t5_config
    from edgekit.export.gguf_vocab import tokenizer_fields

    t0 = time.perf_counter()
    if bits not in (None, 16):
        raise EdgekitError(f"--bits {bits}: a T5 student is written as F32 (default) or F16 (--bits 16)")
    cfg = load_t5_config(model_dir)
    check_t5_exportable(cfg, model_dir)
    d_model, vocab = int(cfg["d_model"]), int(cfg["vocab_size"])
    n_enc = int(cfg["num_layers"])
    n_dec = int(cfg.get("num_decoder_layers") or n_enc)
    tied = bool(cfg.get("tie_word_embeddings", True))
    kvs = tokenizer_fields(model_dir, vocab)
    a, K = "t5", gguf.Keys
    eps = float(cfg.get("layer_norm_epsilon", 1e-6))
    u32 = {K.LLM.CONTEXT_LENGTH: cfg.get("n_positions") or 2048, K.LLM.EMBEDDING_LENGTH: d_model,
           K.LLM.FEED_FORWARD_LENGTH: cfg["d_ff"], K.LLM.BLOCK_COUNT: n_enc, K.LLM.DECODER_BLOCK_COUNT: n_dec,
           K.Attention.HEAD_COUNT: cfg["num_heads"], K.Attention.KEY_LENGTH: cfg["d_kv"],
           K.Attention.VALUE_LENGTH: cfg["d_kv"], K.LLM.VOCAB_SIZE: vocab,
           K.Attention.REL_BUCKETS_COUNT: cfg.get("relative_attention_num_buckets", 32),
           K.LLM.DECODER_START_TOKEN_ID: cfg.get("decoder_start_token_id") or 0}
    kvs += [(key.format(arch=a), int(v), V.UINT32, None) for key, v in u32.items()]
    kvs += [(key.format(arch=a), eps, V.FLOAT32, None) for key in (K.Attention.LAYERNORM_EPS,
                                                                   K.Attention.LAYERNORM_RMS_EPS)]
    kvs += [("general.name", Path(model_dir).resolve().name, V.STRING, None),
            ("general.file_type", int(gguf.LlamaFileType.MOSTLY_F16 if bits == 16 else gguf.LlamaFileType.ALL_F32),
             V.UINT32, None)]
    skip = {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight"} | ({"lm_head.weight"} if tied else set())
    tensors, seen = [], {}
    for f in sorted(Path(model_dir).glob("*.safetensors")):
        with safe_open(str(f), framework="numpy") as st:
            for key in st.keys():
                if key in skip:
                    continue
                name = gguf_t5_name(key, max(n_enc, n_dec))
                if name is None:
                    raise EdgekitError(f"{f}: tensor {key!r} has no GGUF name in llama.cpp's t5 architecture")
                w = st.get_tensor(key).astype(np.float32)
                if name == "dec.output_norm.weight" and tied:  # transformers' d^-0.5 before the tied head
                    w = w * np.float32(d_model ** -0.5)
                seen[name] = key
                tensors.append((name, w.astype(np.float16) if bits == 16 and w.ndim == 2 and "rel_b" not in name
                                else w, None))
    if "token_embd.weight" not in seen:
        raise EdgekitError(f"{model_dir} has no shared.weight (the token embedding); the weights are incomplete")
    out = Path(output)
    write_gguf(out, a, kvs, tensors)
    return _summary(out, tensors, t0)


def _summary(out: Path, tensors: list[tuple], t0: float) -> dict:
    types: dict[str, int] = {}
    for _, arr, raw in tensors:
        name = raw.name if raw is not None else ("F16" if arr.dtype == np.float16 else "F32")
        types[name] = types.get(name, 0) + 1
    return {"path": str(out), "tensors": len(tensors), "types": types, "bytes": out.stat().st_size,
            "seconds": round(time.perf_counter() - t0, 2)}


def export_gguf(model: str, output, bits: int | None = None, embed_type: str | None = None) -> dict:
    """``edgekit export --format gguf``: an artifact as Q4_0, or (``bits=16``) a float model as F16; a T5
    encoder-decoder directory (``edgekit distill``'s student) as F32, or F16 with ``bits=16``
    (:func:`export_t5_gguf`).

    Raises:
        EdgekitError: ``model`` is not an artifact (and ``bits`` is not 16), or the export is not possible.
    """
    from edgekit.artifact import is_artifact
    from edgekit.distill.student import is_t5_dir

    if is_t5_dir(model):
        if embed_type:
            raise EdgekitError("--embed-type applies to an artifact's export; a T5 student is F32 (or F16: --bits 16)")
        return export_t5_gguf(model, output, bits)
    if bits == 16:
        if is_artifact(model):
            raise EdgekitError(f"{model} is a quantized artifact; --bits 16 exports an unquantized model (pass "
                               f"its source, {json.dumps(_artifact_source(model))})")
        return export_source_f16(model, output)
    if bits is not None:
        raise EdgekitError(f"--bits {bits}: only 16 (a float GGUF of an unquantized model) is supported; "
                           "quantized bits come from the artifact")
    if not is_artifact(model):
        raise EdgekitError(f"{model} is not an edgekit artifact; quantize it first (edgekit quantize) or pass "
                           "--bits 16 for a float GGUF")
    return export_artifact_gguf(model, output, embed_type or "q8_0")


def _artifact_source(path) -> str:
    from edgekit.artifact import read_artifact

    return read_artifact(path).source
