"""Model loading: resolve a spec (alias, HF directory, .gguf file, hub id) and load it as a float32 torch model.

Example:
    >>> from edgekit.models import load_model
    >>> lm = load_model("smollm2-135m")  # doctest: +SKIP
    >>> lm.family, lm.task
    ('llama', 'causal-lm')

Resolution (:mod:`.sources`) and file checks (:mod:`.checks`) need neither torch nor transformers; import those
submodules directly to validate a spec without paying for the torch import.
"""

from edgekit.models.checks import (
    ENCODER_FAMILY,
    LLAMA_FAMILY,
    SUPPORTED_ARCHITECTURES,
    check_gguf,
    check_hf_dir,
    check_safetensors,
    family_of,
    inspect_gguf,
)
from edgekit.models.loader import LoadedModel, embeddings_tied, load_model
from edgekit.models.sources import ModelSource, alias_path, list_aliases, resolve_spec

__all__ = [
    "ENCODER_FAMILY",
    "LLAMA_FAMILY",
    "SUPPORTED_ARCHITECTURES",
    "LoadedModel",
    "ModelSource",
    "alias_path",
    "check_gguf",
    "check_hf_dir",
    "check_safetensors",
    "embeddings_tied",
    "family_of",
    "inspect_gguf",
    "list_aliases",
    "load_model",
    "resolve_spec",
]
