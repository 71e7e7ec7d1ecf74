"""A quantized torch model to an ``.ekq`` artifact and back: :func:`save_artifact` turns the QLinears into the
artifact's tensors, :func:`load_artifact_model` rebuilds a runnable torch model (fake-quant QLinears) without the
original model. The file format itself is :mod:`edgekit.artifact`'s."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from edgekit.artifact import Artifact, read_artifact, tokenizer_files, write_artifact, write_tokenizer
from edgekit.config import AgileQuantConfig, from_dict, to_dict
from edgekit.errors import EdgekitError
from edgekit.models.families import Family, get_family
from edgekit.quant.agile import attach_attention
from edgekit.quant.modules import QLinear, mark_q8_head
from edgekit.quant.weights import QuantizedWeight


def save_artifact(path, model, tokenizer, *, family: Family, task: str, source: str, quant_cfg, report: dict) -> Path:
    """Write a quantized model as one ``.ekq`` file (atomically: temp file, then rename).

    Each :class:`QLinear` is stored as its codes and scales (plus mins / a static activation scale when it has them);
    every other tensor in float32 under its transformers name, a tied head once.
    """
    tensors: dict[str, np.ndarray] = {}
    linears: dict[str, dict] = {}
    skip: set[str] = set()
    for name, mod in model.named_modules():
        if not isinstance(mod, QLinear):
            continue
        q = mod.qweight
        tensors[f"{name}.qweight"] = np.ascontiguousarray(q.storage())
        tensors[f"{name}.scales"] = np.ascontiguousarray(q.scales)
        if q.mins is not None:
            tensors[f"{name}.mins"] = np.ascontiguousarray(q.mins)
        if mod.act_scale is not None:
            tensors[f"{name}.act_scale"] = np.asarray([float(mod.act_scale)], np.float32)
        linears[name] = {"bits": q.bits, "group_size": q.group_size, "symmetric": q.mins is None,
                         "act_bits": mod.act_bits, "act_mode": mod.act_mode, "mix": mod.mix is not None,
                         "shape": list(q.shape), "bias": mod.bias is not None}
        skip.add(f"{name}.weight")
    seen: dict[int, str] = {}
    for key, t in model.state_dict(keep_vars=False).items():
        if key in skip:
            continue
        ptr = t.data_ptr()
        if ptr in seen:  # tied weights (e.g. lm_head = embed_tokens): store once
            continue
        seen[ptr] = key
        tensors[key] = t.detach().float().contiguous().numpy() if t.is_floating_point() else t.numpy()
    with tempfile.TemporaryDirectory() as td:
        tokenizer.save_pretrained(td)
        tok = tokenizer_files(td)
    from edgekit.acm.modules import acm_modules

    acms = acm_modules(model)
    acm = ({"n_learners": acms[0].n_learners, "learner_width": acms[0].width,
            "gate_hidden": acms[0].gate.fc1.out_features, "gate_act": "gelu"} if acms else None)
    return write_artifact(path, tensors, family=family.name, task=task, source=source,
                          model_config=model.config.to_dict(), quant=to_dict(quant_cfg), linears=linears,
                          tokenizer=tok, report=report, acm=acm)


def artifact_tokenizer(art: Artifact):
    """The Hugging Face tokenizer stored in an artifact (its files are carried in the metadata).

    Raises:
        EdgekitError: when the artifact carries no tokenizer.
    """
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory() as td:
        write_tokenizer(art, td)
        return AutoTokenizer.from_pretrained(td)


def empty_model(art: Artifact):
    """The artifact's transformers model with uninitialized float32 weights (in eval mode), built from its config.

    Raises:
        EdgekitError: for a model type transformers does not know.
    """
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSeq2SeqLM
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING
    from transformers.modeling_utils import no_init_weights

    cfg_dict = dict(art.model_config)
    model_type = cfg_dict.get("model_type")
    if model_type not in CONFIG_MAPPING:
        raise EdgekitError(f"{art.path}: unknown model_type {model_type!r} in the artifact")
    config = CONFIG_MAPPING[model_type].from_dict(cfg_dict)
    auto = {"causal-lm": AutoModelForCausalLM, "seq2seq-lm": AutoModelForSeq2SeqLM}.get(art.task, AutoModel)
    with no_init_weights():
        model = auto.from_config(config, torch_dtype=torch.float32)
    return model.eval()


_QUANT_SUFFIXES = ("qweight", "scales", "mins", "act_scale")


def load_float_tensors(model, art: Artifact, f, state: dict, skip_missing=lambda key: False) -> None:
    """Load ``state`` plus every float tensor of the open artifact ``f`` (norms, embedding, biases) into ``model``,
    tie the head when the config says so, and check that nothing is missing or left over.

    Raises:
        EdgekitError: tensors that do not match the model (a damaged artifact).
    """
    for k in f.keys():
        if k.rsplit(".", 1)[-1] not in _QUANT_SUFFIXES:
            t = f.get_tensor(k)
            state[k] = torch.from_numpy(t) if not isinstance(t, torch.Tensor) else t
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not skip_missing(k)]
    if getattr(model.config, "tie_word_embeddings", False):
        model.tie_weights()
        # a tied name (lm_head; T5's encoder / decoder embed_tokens) shares the table stored under another name
        sd = model.state_dict(keep_vars=True)
        loaded = {sd[k].data_ptr() for k in state if k in sd}
        missing = [k for k in missing if sd[k].data_ptr() not in loaded]
    if missing or unexpected:
        raise EdgekitError(f"{art.path}: tensors do not match a {art.family} model "
                           f"(missing {missing[:3]}, unexpected {unexpected[:3]}); the artifact is damaged")


def load_artifact_model(path):
    """Load an artifact as a :class:`edgekit.models.LoadedModel` whose linears are :class:`QLinear`.

    Raises:
        EdgekitError: if the file is not a valid artifact or its tensors do not match its metadata.
    """
    from safetensors import safe_open

    from edgekit.models import LoadedModel
    from edgekit.models.sources import ModelSource

    art = read_artifact(path)
    family = get_family(art.family)
    qcfg = from_dict(AgileQuantConfig, art.quant, "edgekit.quant")
    model = empty_model(art)
    if art.acm is not None:  # the gated FFNs become ACMs before their tensors are loaded
        from edgekit.acm.modules import attach_empty_acms

        attach_empty_acms(model, family, art.acm)
    with safe_open(str(art.path), framework="pt") as f:
        keys = set(f.keys())

        def get(key):
            if key not in keys:
                raise EdgekitError(f"{art.path}: tensor {key!r} is missing; the artifact is damaged")
            return f.get_tensor(key)

        mixes = attach_attention(model, family, qcfg) if art.task == "causal-lm" else []
        if qcfg.lm_head_bits == 8 and not art.linears.get(family.head or ""):  # a Q8_0 table (agile.quantize_head)
            mark_q8_head(model, family.head, qcfg.lm_head_act_bits)
        for name, spec in art.linears.items():
            try:
                parent_name, _, child = name.rpartition(".")
                parent = model.get_submodule(parent_name) if parent_name else model
            except AttributeError:
                raise EdgekitError(f"{art.path}: linear {name!r} does not exist in a {art.family} model") from None
            qw = QuantizedWeight.from_storage(
                get(f"{name}.qweight").numpy(), get(f"{name}.scales").numpy(),
                get(f"{name}.mins").numpy() if not spec["symmetric"] else None, spec["bits"], spec["group_size"])
            if list(qw.shape) != list(spec["shape"]):
                raise EdgekitError(f"{art.path}: {name} has shape {list(qw.shape)}, metadata says {spec['shape']}")
            act_scale = float(get(f"{name}.act_scale")[0]) if f"{name}.act_scale" in keys else None
            mix = None
            if spec.get("mix"):
                rest = name[len(family.layers_path) + 1:] if name.startswith(family.layers_path + ".") else ""
                block = int(rest.split(".")[0]) if rest[:1].isdigit() else -1
                mix = mixes[block] if 0 <= block < len(mixes) else None
            bias = get(f"{name}.bias") if spec.get("bias") else None
            setattr(parent, child, QLinear(qw, bias, spec["act_bits"], spec["act_mode"], act_scale, mix))
        # a QLinear without bias replaced a linear that had one: that bias is legitimately absent
        load_float_tensors(model, art, f, {}, skip_missing=lambda k: k.endswith(".bias") and k[:-5] in art.linears)
    for p in model.parameters():
        p.requires_grad_(False)
    src = ModelSource(kind="artifact", path=str(art.path), gguf_file=None, alias=None, spec=str(path))
    return LoadedModel(model=model, tokenizer=artifact_tokenizer(art), family=art.family, task=art.task, source=src,
                       config=model.config, notes=[f"edgekit artifact: {qcfg.describe()}"]), art
