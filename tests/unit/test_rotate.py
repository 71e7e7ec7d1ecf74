"""The residual-stream rotation (edgekit/quant/rotate.py): exact Hadamard matrices, orthogonal rotations, and a rotated
float Llama that gives the original logits. The rotated real SmolLM2 and its artifact in every engine are
tests/model/test_rotation_smollm2.py; the tiny rotated artifact in the runtime is tests/engines/test_rotation_runtime.py.
"""

from __future__ import annotations

import copy

import pytest
import torch

from edgekit.errors import EdgekitError
from edgekit.quant.rotate import hadamard_matrix, rotate_model, rotation_matrix


@pytest.mark.parametrize("n", [1, 2, 12, 20, 64, 96, 576])
def test_hadamard_matrix_is_exact(n):
    h = hadamard_matrix(n)
    assert set(h.unique().tolist()) <= {-1.0, 1.0}
    assert torch.equal(h @ h.T, n * torch.eye(n, dtype=torch.float64))  # ±1 entries: the products are exact


@pytest.mark.parametrize("n", [3, 6, 9, 10])
def test_hadamard_matrix_refuses_orders_it_cannot_build(n):
    with pytest.raises(EdgekitError, match="rotation: random"):
        hadamard_matrix(n)


@pytest.mark.parametrize("kind", ["hadamard", "random"])
def test_rotation_matrix_is_orthogonal_and_seeded(kind):
    q = rotation_matrix(kind, 576)
    assert torch.allclose(q @ q.T, torch.eye(576, dtype=torch.float64), atol=1e-12)
    assert torch.equal(q, rotation_matrix(kind, 576))  # the same seed, the same matrix
    assert not torch.equal(q, rotation_matrix(kind, 576, seed=1))
    if kind == "hadamard":  # every entry has the same magnitude: an outlier channel is spread over all of them
        assert torch.allclose(q.abs(), torch.full_like(q, 1 / 24))


def test_rotation_matrix_unknown_kind():
    with pytest.raises(EdgekitError, match="unknown rotation"):
        rotation_matrix("givens", 8)


def _tiny_llama(hidden: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=300, hidden_size=hidden, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():  # norms far from 1, so a fold that is missing or wrong shows in the logits
        for norm in [m for n, m in model.named_modules() if n.endswith("norm")]:
            norm.weight.uniform_(0.2, 4.0)
    return model


@pytest.mark.parametrize("kind,hidden", [("hadamard", 96), ("hadamard", 64), ("random", 96)])
def test_rotated_llama_gives_the_same_logits(kind, hidden):
    from edgekit.models.families import LLAMA

    model = _tiny_llama(hidden)
    ids = torch.randint(0, 300, (2, 33), generator=torch.Generator().manual_seed(1))
    rot = copy.deepcopy(model)
    rotate_model(rot, LLAMA, kind)
    with torch.no_grad():
        ref, got = model(ids).logits, rot(ids).logits
    assert (got - ref).abs().max() < 1e-5 * ref.abs().max()
    # a plain Llama: every norm weight is 1, the head is untied (E·diag(w)·Q is not E·Q), the residual is rotated
    assert all(torch.equal(m.weight, torch.ones_like(m.weight)) for n, m in rot.named_modules() if n.endswith("norm"))
    assert rot.config.tie_word_embeddings is False
    assert rot.lm_head.weight.data_ptr() != rot.model.embed_tokens.weight.data_ptr()
    q = rotation_matrix(kind, hidden)
    assert torch.allclose(rot.model.embed_tokens.weight.double(), model.model.embed_tokens.weight.double() @ q,
                          atol=1e-6)


def test_rotation_none_changes_nothing():
    from edgekit.models.families import LLAMA

    model = _tiny_llama(64)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rotate_model(model, LLAMA, "none")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.config.tie_word_embeddings is True


def test_rotation_refuses_a_family_without_its_layer_lists():
    from edgekit.models.families import BERT

    with pytest.raises(EdgekitError, match="bert family"):
        rotate_model(torch.nn.Module(), BERT, "hadamard")


def test_rotation_is_a_strict_recipe_key():
    from edgekit.config import AgileQuantConfig, from_dict

    cfg = from_dict(AgileQuantConfig, {"rotation": "hadamard"})
    assert cfg.rotation == "hadamard" and cfg.describe().endswith("rot-hadamard")
    assert from_dict(AgileQuantConfig, {}).rotation == "none"  # artifacts written before the key load unchanged
    with pytest.raises(EdgekitError, match="rotation must be"):
        from_dict(AgileQuantConfig, {"rotation": "spin"})
