"""The ACM model directory: what ``edgekit acm`` writes and ``edgekit acm-eval`` (and the engines) read.

Layout (a Hugging Face model directory plus one marker file)::

    DIR/config.json         the model's transformers config (unchanged: hidden size, FFN width, layers ...)
    DIR/model.safetensors   every tensor; each layer's ``mlp.*`` are the ACM's: ``gate_proj``/``up_proj``/
                            ``down_proj`` with neurons in learner order, ``gate.fc1``/``gate.fc2`` the gate
                            (a tied ``lm_head.weight`` is not stored twice)
    DIR/tokenizer*          the tokenizer
    DIR/acm.json            {"format": "edgekit-acm", "format_version", "acm" (the AcmConfig), "n_learners",
                            "learner_width", "gate_hidden", "family", "source", "report"}

``acm.json`` is what makes a directory an ACM model (:func:`is_acm_dir`); a plain transformers loader would load the
directory without its gates, so edgekit's loaders refuse or route it here. Learner ``n`` is rows ``n*w..(n+1)*w-1`` of
``gate_proj``/``up_proj`` and the same columns of ``down_proj``, so the dense FFN (k = N) is the three matrices as
stored: an export at k = N needs no conversion. Written into a temporary directory and renamed into place.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from edgekit.errors import EdgekitError

ACM_FILE = "acm.json"
FORMAT = "edgekit-acm"
FORMAT_VERSION = 1


def is_acm_dir(path) -> bool:
    """Whether ``path`` is an ACM model directory (has ``acm.json``)."""
    p = Path(path)
    return p.is_dir() and (p / ACM_FILE).is_file()


def check_output_dir(out) -> Path:
    """``out`` as a Path, refusing an existing file or a non-empty directory (checked before any work)."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise EdgekitError(f"output {out} exists and is not an empty directory; give a new directory "
                           "(nothing is overwritten)")
    return out


def read_info(path) -> dict:
    """The parsed ``acm.json`` of an ACM directory.

    Raises:
        EdgekitError: not an ACM directory, or a marker of another format or version.
    """
    p = Path(path)
    if not is_acm_dir(p):
        raise EdgekitError(f"{p} is not an ACM model directory (no {ACM_FILE}); make one with edgekit acm MODEL "
                           "-o DIR")
    try:
        info = json.loads((p / ACM_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise EdgekitError(f"{p / ACM_FILE}: not valid JSON ({e})") from None
    if info.get("format") != FORMAT or info.get("format_version") != FORMAT_VERSION:
        raise EdgekitError(f"{p / ACM_FILE}: format {info.get('format')!r} version {info.get('format_version')!r}; "
                           f"this edgekit reads {FORMAT!r} version {FORMAT_VERSION}")
    return info


def save_acm(out, model, tokenizer, *, family: str, config, source: str, report: dict) -> Path:
    """Write the ACM model directory ``out`` (see the module docstring); atomic (temporary directory, rename).

    Args:
        out: a new or empty directory.
        model: the converted model (every gated FFN an :class:`~edgekit.acm.modules.AcmFfn`).
        tokenizer: its tokenizer.
        family: the family name (``llama``).
        config: the :class:`~edgekit.config.AcmConfig` it was made with.
        source: the model spec it came from.
        report: what the conversion measured (stored in ``acm.json``).
    """
    from safetensors.torch import save_file

    from edgekit.acm.modules import acm_modules
    from edgekit.config import to_dict
    from edgekit.models.loader import embeddings_tied

    out = check_output_dir(out)
    acms = acm_modules(model)
    if not acms:
        raise ValueError("the model has no ACM modules to save")
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        if embeddings_tied(model):
            state.pop("lm_head.weight", None)
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": FORMAT})
        model.config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        info = {"format": FORMAT, "format_version": FORMAT_VERSION, "acm": to_dict(config),
                "n_learners": acms[0].n_learners, "learner_width": acms[0].width,
                "gate_hidden": acms[0].gate.fc1.out_features, "family": family, "source": source, "report": report}
        (tmp / ACM_FILE).write_text(json.dumps(info, indent=2), encoding="utf-8")
        if out.exists():
            out.rmdir()  # empty (checked above)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def load_acm(path):
    """Load an ACM directory as a :class:`edgekit.models.LoadedModel` (float32, eval mode, gradients off, gates in
    ``gated`` mode).

    Raises:
        EdgekitError: not an ACM directory, or its files do not match (missing or unexpected tensors).
    """
    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from edgekit.acm.modules import attach_empty_acms
    from edgekit.models.families import get_family
    from edgekit.models.loader import LoadedModel
    from edgekit.models.sources import ModelSource

    p = Path(path)
    info = read_info(p)
    family = get_family(info["family"])
    hf_cfg = AutoConfig.from_pretrained(str(p))
    torch.manual_seed(0)  # from_config initializes weights at random before they are overwritten
    model = AutoModelForCausalLM.from_config(hf_cfg).float()
    attach_empty_acms(model, family, info)
    try:
        state = load_file(str(p / "model.safetensors"))
    except (OSError, ValueError, RuntimeError) as e:
        raise EdgekitError(f"{p / 'model.safetensors'}: cannot be read ({e})") from None
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = getattr(hf_cfg, "tie_word_embeddings", False)
    missing = [k for k in missing if not (tied and k == "lm_head.weight")]
    if missing or unexpected:
        raise EdgekitError(f"{p}: the tensors do not match an ACM model of its config (missing: {missing[:3]}, "
                           f"unexpected: {unexpected[:3]})")
    if tied:
        model.tie_weights()
    model.eval()
    for q in model.parameters():
        q.requires_grad_(False)
    try:
        tok = AutoTokenizer.from_pretrained(str(p))
    except (OSError, ValueError, KeyError) as e:
        raise EdgekitError(f"could not load the tokenizer of {p}: {type(e).__name__}") from None
    if tok.pad_token is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token
    note = (f"acm: {info['n_learners']} learners of {info['learner_width']} per FFN, budget "
            f"{info['acm']['budget']:g}")
    return LoadedModel(model=model, tokenizer=tok, family=family.name, task="causal-lm",
                       source=ModelSource(kind="hf_dir", path=str(p), spec=str(p)), config=hf_cfg, notes=[note])
