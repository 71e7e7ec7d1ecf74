"""ONNX export: an edgekit artifact as an ONNX model directory that ONNX Runtime loads unchanged.

How it is made:

1. The graph comes from optimum's ONNX exporter (``optimum-onnx``) run on the artifact's *dequantized* float model:
   task ``text-generation-with-past`` for Llama-family decoders (inputs ``input_ids``, ``attention_mask``,
   ``position_ids`` and ``past_key_values.<i>.key/value``; outputs ``logits`` and ``present.<i>.key/value``),
   ``feature-extraction`` for BERT encoders (output ``last_hidden_state``).
2. Every quantized linear's ``MatMul`` is found by the initializer it multiplies with: the exporter stores a
   linear's weight transposed under a generated name (``onnx::MatMul_1234``), so the initializer is matched by its
   exact bytes against the transposed dequantized weight, never by name.
3. That ``MatMul`` becomes ``com.microsoft.MatMulNBits`` (``bits``, ``block_size`` = the artifact's group size,
   ``accuracy_level`` 4: int8 activations per block, int32 accumulation) whose ``B`` and ``scales`` are **the
   artifact's own codes and scales** (:func:`matmulnbits_weights`): nothing is requantized. The default zero point
   (8 for 4-bit, 128 for 8-bit) is the symmetric format's offset; an asymmetric artifact (``w = q * d + m``) gets
   float zero points ``-m / d`` (ONNX Runtime then computes that MatMul in fp32: its int8 path needs integer zero
   points).
4. Embeddings, norms and an untied head stay float32 as the artifact stores them; a tied head multiplies by a
   ``Transpose`` of the embedding instead of a second copy of it.

The directory holds ``model.onnx`` (plus ``model.onnx_data`` past 2 GB), ``config.json``, the tokenizer files
and ``edgekit_export.json`` (what was exported, read back by ``edgekit eval/run --engine onnxruntime``). It is
built in a temporary directory next to the destination, checked with ``onnx.checker`` (path-based, so models past
2 GB work) and renamed into place only when complete.

A float T5 encoder-decoder (``edgekit distill``'s student) is exported by :func:`export_seq2seq_onnx` as optimum's
``text2text-generation-with-past`` graphs: ``encoder_model.onnx`` (run once per prompt), ``decoder_model.onnx``
(the first step; it also returns the cross-attention K/V, computed once) and ``decoder_with_past_model.onnx`` (every
later step, all caches as inputs), float32, with the student's tokenizer and ``edgekit_export.json`` (task
``seq2seq``).

Not exportable (one :class:`EdgekitError` naming each): the W4A4 token mix, quantized attention (Q/K/V or log2
softmax), static per-tensor activation scales, group sizes ``MatMulNBits`` has no kernel for.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.export.refusal import refuse

TASKS = {"causal-lm": "text-generation-with-past", "encoder": "feature-extraction"}
SEQ2SEQ_TASK = "text2text-generation-with-past"
#: the graphs of a seq2seq export (module docstring)
SEQ2SEQ_FILES = ("encoder_model.onnx", "decoder_model.onnx", "decoder_with_past_model.onnx")
# what save_pretrained writes for a tokenizer (the ones present are copied)
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                    "vocab.json", "merges.txt", "added_tokens.json")
INFO_FILE = "edgekit_export.json"
FORMAT = "edgekit-onnx"
ACCURACY_LEVEL = 4  # int8 activations per block, int32 accumulation (MLAS SQNBIT_CompInt8)
ACCURACY_LEVELS = (1, 4)  # 1: fp32 compute on the same weights (a float graph has no use for 2 and 3)
_BLOCK_SIZES = (16, 32, 64, 128, 256)  # MatMulNBits block sizes (powers of two >= 16)
_EXTERNAL_DATA_BYTES = 1_800_000_000  # protobuf's 2 GB limit, with headroom for the graph itself


def matmulnbits_weights(qweight: np.ndarray, scales: np.ndarray, mins: np.ndarray | None, bits: int,
                        group_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``MatMulNBits`` inputs ``(B, scales, zero_points)`` from an artifact linear's stored codes and scales.

    ``B`` is uint8 ``[N, K/G, G*bits/8]``. For 4 bits, byte ``i`` of a block holds element ``2i`` in its low nibble
    and ``2i + 1`` in its high nibble (edgekit's bytes pair element ``i`` with ``i + G/2``, so the nibbles are
    re-paired; the codes themselves are unchanged). For 8 bits the stored int8 code ``c`` becomes ``c + 128``.
    ``scales`` are the fp16 scales widened to float32 (exact), flattened to ``[N * K/G]``. ``zero_points`` is
    None for symmetric weights (the operator's default 8 / 128 is exactly the format's offset) and float32
    ``-m / d`` for asymmetric ones.
    """
    from edgekit.quant.formats import unpack_int4

    n = qweight.shape[0]
    if bits == 4:
        codes = unpack_int4(qweight, group_size)
        pairs = codes.reshape(n, codes.shape[1] // group_size, group_size // 2, 2)
        b = pairs[..., 0] | (pairs[..., 1] << 4)
    elif bits == 8:
        codes = np.asarray(qweight, dtype=np.int8)
        b = (codes.astype(np.int16) + 128).astype(np.uint8).reshape(n, codes.shape[1] // group_size, group_size)
    else:
        raise EdgekitError(f"MatMulNBits export handles 4- and 8-bit weights, not {bits}-bit")
    d = np.asarray(scales, dtype=np.float16).astype(np.float32)
    zp = None
    if mins is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            zp = np.where(d != 0, -np.asarray(mins, np.float16).astype(np.float32) / d, 0).astype(np.float32)
        zp = zp.reshape(-1)
    return np.ascontiguousarray(b, dtype=np.uint8), d.reshape(-1), zp


def check_exportable(art) -> None:
    """Raise one :class:`EdgekitError` listing what in ``art`` the ONNX export cannot express."""
    q = art.quant
    problems: list[str] = []
    if art.task not in TASKS:
        problems.append(f"task {art.task!r} (exported tasks: {', '.join(TASKS)})")
    if q.get("w4a4_ratio") or any(s.get("mix") for s in art.linears.values()):
        problems.append("the W4A4 token mix (MatMulNBits has no per-token int4 activations)")
    att = q.get("attention") or {}
    if att.get("qkv_bits") or att.get("softmax_log2_bits"):
        problems.append("quantized attention (Q/K/V or log2 softmax)")
    if getattr(art, "acm", None) is not None:
        problems.append("adaptive computation modules (no gate op in the graph; `edgekit export --format gguf` writes "
                        "the dense k = N model, or run the artifact in edgekit's runtime)")
    if "lm_head" in art.linears:
        problems.append("a quantized LM head (lm_head_bits; the export keeps the head float, tied to the embedding)")
    reasons: dict[str, str | None] = {}
    for name, s in art.linears.items():
        if s.get("act_mode") == "per_tensor":
            why = "static per-tensor activation scales (MatMulNBits quantizes activations per block at run time)"
        elif s.get("group_size") not in _BLOCK_SIZES:
            why = f"group size {s.get('group_size')} (MatMulNBits blocks: {', '.join(map(str, _BLOCK_SIZES))})"
        elif s.get("bits") not in (4, 8):
            why = f"{s.get('bits')}-bit weights"
        else:
            why = None
        reasons[name] = why
    refuse(art.path, "ONNX", problems, reasons, "Re-quantize with the w4a8 (or rtn-w4a8, w8a8) recipe")


def _float_model(art, weights: dict[str, np.ndarray]):
    """The artifact's model in float32 with every quantized linear replaced by its dequantized weight."""
    from safetensors import safe_open

    from edgekit.quant.serialize import empty_model, load_float_tensors
    from edgekit.quant.weights import QuantizedWeight

    model = empty_model(art)
    model.config._attn_implementation = "sdpa"  # optimum traces transformers' own attention, never edgekit's
    state = {}
    with safe_open(str(art.path), framework="numpy") as f:
        keys = set(f.keys())
        for name, spec in art.linears.items():
            need = [f"{name}.qweight", f"{name}.scales"] + ([] if spec.get("symmetric", True) else [f"{name}.mins"])
            missing = [k for k in need if k not in keys]
            if missing:
                raise EdgekitError(f"{art.path}: tensor {missing[0]!r} is missing; the artifact is damaged")
            qw = QuantizedWeight.from_storage(f.get_tensor(need[0]), f.get_tensor(need[1]),
                                              f.get_tensor(need[2]) if len(need) > 2 else None, spec["bits"],
                                              spec["group_size"])
            w = qw.dequantize()
            weights[name] = np.ascontiguousarray(w.numpy().T)
            state[f"{name}.weight"] = w
        load_float_tensors(model, art, f, state)
    return model


def _first_line(e: BaseException) -> str:
    """The exception's first sentence on one line (optimum appends links and advice after it)."""
    lines = [s.strip() for s in str(e).strip().splitlines() if s.strip()]
    text = lines[0] if lines else ""
    cut = text.find(". ")
    return f"{type(e).__name__}: {text[:cut + 1] if cut > 0 else text}"


def optimum_export(model, out_dir: Path, task: str, files: tuple[str, ...] = ("model.onnx",)) -> Path:
    """Run optimum's exporter quietly; any failure becomes one line naming optimum's reason. Returns the path of
    ``files[0]`` once every one of ``files`` is there."""
    import logging
    import warnings

    try:
        from optimum.exporters.onnx import onnx_export_from_model
    except ImportError as e:
        raise EdgekitError(f"the ONNX export needs optimum-onnx ({e}); install it with `pip install "
                           "edgekit[export]`") from None
    quiet = [logging.getLogger(n) for n in ("optimum", "transformers", "torch.onnx")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            onnx_export_from_model(model, str(out_dir), task=task, do_validation=False, no_post_process=True)
    except (ValueError, KeyError, NotImplementedError, RuntimeError, TypeError, AttributeError) as e:
        mt = getattr(model.config, "model_type", "?")
        raise EdgekitError(f"optimum could not export this {mt} model for {task}: {_first_line(e)}") from None
    finally:
        for lg, lv in zip(quiet, levels):
            lg.setLevel(lv)
    missing = [f for f in files if not (out_dir / f).is_file()]
    if missing:
        raise EdgekitError(f"optimum wrote no {missing[0]} for task {task} (files: {sorted(os.listdir(out_dir))})")
    return out_dir / files[0]


def _digest(a: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(a, dtype=np.float32).tobytes(), digest_size=16).digest()


def _replace_matmuls(model, art, weights: dict[str, np.ndarray], accuracy_level: int = ACCURACY_LEVEL) -> dict:
    """Swap each quantized linear's MatMul for MatMulNBits in ``model`` (an ``onnx.ModelProto``), in place."""
    from onnx import helper, numpy_helper
    from safetensors import safe_open

    g = model.graph
    by_digest: dict[bytes, list[str]] = {}
    shapes = {w.shape for w in weights.values()}
    for name, w in weights.items():
        by_digest.setdefault(_digest(w), []).append(name)
    owner: dict[str, list[str]] = {}  # initializer name -> linears whose transposed weight it holds
    for t in g.initializer:
        if tuple(t.dims) in shapes and t.data_type == 1:
            hit = by_digest.get(_digest(numpy_helper.to_array(t)))
            if hit:
                owner[t.name] = hit
    users: dict[str, int] = {}
    for node in g.node:
        for x in node.input:
            users[x] = users.get(x, 0) + 1
    done: dict[str, str] = {}
    new_nodes, new_inits, dropped = [], [], set()
    with safe_open(str(art.path), framework="numpy") as f:
        for node in g.node:
            cands = owner.get(node.input[1]) if node.op_type == "MatMul" and len(node.input) == 2 else None
            free = [c for c in (cands or []) if c not in done]
            if not free:
                new_nodes.append(node)
                continue
            # identical weights are interchangeable; prefer the linear the exporter named the node after
            lin = next((c for c in free if "/" + c.replace(".", "/") + "/" in "/" + node.name.replace(".", "/")),
                       free[0])
            spec = art.linears[lin]
            k, n = weights[lin].shape
            b, d, zp = matmulnbits_weights(f.get_tensor(f"{lin}.qweight"), f.get_tensor(f"{lin}.scales"),
                                           None if spec.get("symmetric", True) else f.get_tensor(f"{lin}.mins"),
                                           spec["bits"], spec["group_size"])
            ins = [node.input[0], f"{lin}.nbits.B", f"{lin}.nbits.scales"]
            new_inits += [numpy_helper.from_array(b, ins[1]), numpy_helper.from_array(d, ins[2])]
            if zp is not None:
                ins.append(f"{lin}.nbits.zero_points")
                new_inits.append(numpy_helper.from_array(zp, ins[3]))
            new_nodes.append(helper.make_node(
                "MatMulNBits", ins, list(node.output), name=(node.name or lin) + "NBits", domain="com.microsoft",
                K=k, N=n, bits=spec["bits"], block_size=spec["group_size"], accuracy_level=accuracy_level))
            done[lin] = node.input[1]
            users[node.input[1]] -= 1
            if users[node.input[1]] == 0:
                dropped.add(node.input[1])
    missing = sorted(set(art.linears) - set(done))
    if missing:
        raise EdgekitError(f"the exported graph has no MatMul on the weights of {len(missing)} quantized linear(s), "
                           f"e.g. {missing[0]}; this architecture's ONNX graph is not supported yet")
    del g.node[:]
    g.node.extend(new_nodes)
    keep = [t for t in g.initializer if t.name not in dropped]
    del g.initializer[:]
    g.initializer.extend(keep + new_inits)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return {"matmulnbits": len(done), "bits": sorted({art.linears[x]["bits"] for x in done}),
            "zero_points": any(not art.linears[x].get("symmetric", True) for x in done)}


def _tie_head(model, art) -> bool:
    """Point a tied head's MatMul at a Transpose of the embedding instead of the exporter's transposed copy."""
    from onnx import helper, numpy_helper

    g = model.graph
    inits = {t.name: t for t in g.initializer}
    emb = next((t for t in g.initializer if t.name.endswith("embed_tokens.weight")), None)
    if emb is None or not art.model_config.get("tie_word_embeddings"):
        return False
    vocab, hidden = emb.dims
    for node in g.node:
        t = inits.get(node.input[1]) if node.op_type == "MatMul" and len(node.input) == 2 else None
        if t is None or list(t.dims) != [hidden, vocab]:
            continue
        if not np.array_equal(numpy_helper.to_array(t), numpy_helper.to_array(emb).T):
            continue
        name = emb.name + ".T"
        g.node.insert(0, helper.make_node("Transpose", [emb.name], [name], name="/tied_head/Transpose",
                                          perm=[1, 0]))
        old = node.input[1]
        node.input[1] = name
        if not any(old in n.input for n in g.node):
            g.initializer.remove(t)
        return True
    return False


def _save(model, path: Path) -> None:
    import onnx

    size = sum(len(t.raw_data) for t in model.graph.initializer)
    if size > _EXTERNAL_DATA_BYTES:
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=path.name + "_data", size_threshold=1024)
    else:
        onnx.save_model(model, str(path))
    onnx.checker.check_model(str(path))  # path-based: works past protobuf's 2 GB


def check_output_dir(output) -> Path:
    """``output`` as a Path when an ONNX export may be written there (missing, empty, or an earlier export).

    Raises:
        EdgekitError: it holds something else, or its parent directory does not exist.
    """
    out = Path(output)
    if out.exists() and not (out.is_dir() and (not any(out.iterdir()) or (out / INFO_FILE).is_file())):
        raise EdgekitError(f"{out} exists and is not an earlier ONNX export; choose another -o directory")
    if not out.parent.is_dir():
        raise EdgekitError(f"output directory does not exist: {out.parent}")
    return out


def place_export(tmp: Path, out: Path) -> None:
    """Move the finished directory ``tmp`` to ``out``, replacing an earlier export (never other content)."""
    if out.exists():
        if out.is_dir() and (not any(out.iterdir()) or (out / INFO_FILE).is_file()):
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            try:
                os.replace(tmp, out)
            except BaseException:
                os.replace(old, out)  # put the earlier export back
                raise
            shutil.rmtree(old, ignore_errors=True)
            return
        raise EdgekitError(f"{out} exists and is not an earlier ONNX export; choose another -o directory")
    os.replace(tmp, out)


def export_onnx(artifact, output, accuracy_level: int | None = None) -> dict:
    """``edgekit export ARTIFACT --format onnx -o DIR``; a T5 student directory goes to
    :func:`export_seq2seq_onnx` (float, no MatMulNBits, so no ``accuracy_level``).

    Args:
        artifact: Path of the ``.ekq`` artifact (a Llama-family decoder or a BERT encoder).
        output: Directory to write (created; an earlier ONNX export there is replaced).
        accuracy_level: ``MatMulNBits`` compute: 4 (int8 activations per block; None: the default) or 1 (fp32
            compute on the same 4-bit weights: the weight-only model, slower; a check of the export itself).

    Returns:
        ``{"path", "task", "matmulnbits" (replaced linears), "bits", "zero_points", "tied_head", "bytes",
        "seconds"}``.

    Raises:
        EdgekitError: the artifact is missing or holds something the export cannot express, optimum cannot export
            the architecture, or the output directory is unusable. Nothing is written then.
    """
    from edgekit.artifact import is_artifact, read_artifact, write_tokenizer
    from edgekit.distill.student import is_t5_dir

    t0 = time.perf_counter()
    if is_t5_dir(artifact):
        if accuracy_level is not None:
            raise EdgekitError("--accuracy-level sets MatMulNBits' compute; a T5 student is exported in float32")
        return export_seq2seq_onnx(artifact, output)
    accuracy_level = ACCURACY_LEVEL if accuracy_level is None else accuracy_level
    if accuracy_level not in ACCURACY_LEVELS:
        raise EdgekitError(f"accuracy level {accuracy_level}: choose 4 (int8 activations) or 1 (fp32 compute)")
    if not is_artifact(artifact):
        if not Path(artifact).is_file() or str(artifact).endswith(".ekq"):
            read_artifact(artifact)  # the precise error: missing, truncated, damaged
        raise EdgekitError(f"{artifact} is not an edgekit artifact; quantize a model first (edgekit quantize MODEL "
                           "-o A.ekq), then export A.ekq")
    art = read_artifact(artifact)
    check_exportable(art)
    out = check_output_dir(output)
    import onnx

    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        weights: dict[str, np.ndarray] = {}
        model = _float_model(art, weights)
        raw = optimum_export(model, tmp / "raw", TASKS[art.task])
        del model
        proto = onnx.load(str(raw))
        summary = _replace_matmuls(proto, art, weights, accuracy_level)
        del weights
        summary["tied_head"] = _tie_head(proto, art)
        final = tmp / "final"
        final.mkdir()
        _save(proto, final / "model.onnx")
        del proto
        for name in ("config.json", "generation_config.json"):
            if (tmp / "raw" / name).is_file():
                shutil.copy(tmp / "raw" / name, final / name)
        write_tokenizer(art, final)
        info = {"format": FORMAT, "version": 1, "task": art.task, "family": art.family, "source": art.source,
                "artifact": str(art.path), "recipe": art.report.get("recipe"), "accuracy_level": accuracy_level,
                **summary}
        (final / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
        place_export(final, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    size = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    return {"path": str(out), "task": art.task, **summary, "bytes": size,
            "seconds": round(time.perf_counter() - t0, 2)}


def export_seq2seq_onnx(model_dir, output) -> dict:
    """``edgekit export STUDENT --format onnx -o DIR`` for a T5 directory (``edgekit distill``'s ``DIR/student``):
    optimum's ``text2text-generation-with-past`` graphs in float32 (module docstring).

    Args:
        model_dir: The T5 directory (``config.json``, safetensors, tokenizer files).
        output: The directory to write (created; an earlier ONNX export there is replaced).

    Returns:
        ``{"path", "task": "seq2seq", "files", "bytes", "seconds"}``.

    Raises:
        EdgekitError: not a T5 directory, optimum cannot export it, or the output directory is unusable; nothing
            is written then.
    """
    import torch
    from transformers import T5ForConditionalGeneration

    from edgekit.distill.student import load_t5_config

    t0 = time.perf_counter()
    cfg = load_t5_config(model_dir)
    src = Path(model_dir)
    if not (src / "tokenizer.json").is_file():
        raise EdgekitError(f"{src} has no tokenizer.json; the export carries the student's tokenizer")
    out = check_output_dir(output)
    try:
        model = T5ForConditionalGeneration.from_pretrained(str(src), dtype=torch.float32).eval()
    except (OSError, ValueError, RuntimeError) as e:
        raise EdgekitError(f"could not load the T5 model in {src}: {type(e).__name__}: {e}") from None
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        raw = tmp / "raw"
        optimum_export(model, raw, SEQ2SEQ_TASK, SEQ2SEQ_FILES)
        del model
        final = tmp / "final"
        final.mkdir()
        for name in SEQ2SEQ_FILES + ("config.json", "generation_config.json"):
            if (raw / name).is_file():
                shutil.move(str(raw / name), final / name)
            if (raw / f"{name}_data").is_file():  # external weights of a graph past 2 GB
                shutil.move(str(raw / f"{name}_data"), final / f"{name}_data")
        for name in _TOKENIZER_FILES:
            if (src / name).is_file():
                shutil.copy(src / name, final / name)
        info = {"format": FORMAT, "version": 1, "task": "seq2seq", "family": "t5", "source": str(src.resolve()),
                "files": list(SEQ2SEQ_FILES), "decoder_start_token_id": cfg.get("decoder_start_token_id")}
        (final / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
        place_export(final, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    size = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    return {"path": str(out), "task": "seq2seq", "files": list(SEQ2SEQ_FILES), "bytes": size,
            "seconds": round(time.perf_counter() - t0, 2)}
