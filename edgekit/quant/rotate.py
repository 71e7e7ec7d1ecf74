"""A residual-stream rotation folded into the weights (QuaRot / SpinQuant's R1): the rotated model is still a plain
Llama with the same float outputs, but its linears see inputs whose outlier channels are spread over every channel,
which 4-bit groups round with less error.

Two exact steps, in float64:

1. **Fold every RMSNorm's weight** into the linears that read it: ``W ← W·diag(w)`` for q/k/v (input norm),
   gate/up (post-attention norm) and the head (final norm), then ``w ← 1``. The head therefore stops being the
   embedding (``E·diag(w_final)`` is not ``E``): the model is untied.
2. **Rotate the residual stream** by an orthogonal ``Q`` (d × d): every residual vector ``h`` becomes ``h·Q``.
   RMSNorm without a weight commutes with it (``‖h·Q‖ = ‖h‖``), so: embedding rows ``E ← E·Q``; every reader of a
   normed residual ``W ← W·Q`` (q/k/v, gate/up, head); every writer into the residual ``W ← Qᵀ·W`` (and its bias
   ``b ← b·Q``): o_proj, down_proj.

``Q`` is a randomized Hadamard matrix (``hadamard``: ``diag(±1)·H/√d`` with seeded signs, H built from Sylvester and
Paley blocks, e.g. 576 = 12·12·4) or a seeded random orthogonal matrix (``random``: QR of a Gaussian). Which layers
to touch is :class:`edgekit.models.families.Family`'s (``norm_feeds``, ``residual_writers``, ``final_norm``).
"""

from __future__ import annotations

import torch
from torch import nn

from edgekit.errors import EdgekitError
from edgekit.models.families import Family

ROTATIONS = ("none", "hadamard", "random")
ROTATION_SEED = 0  # fixed: the rotation is part of the recipe, not of the calibration seed


def _sylvester(n: int) -> torch.Tensor:
    """The Sylvester Hadamard matrix of order ``n`` (a power of two)."""
    h = torch.ones(1, 1, dtype=torch.float64)
    while h.shape[0] < n:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h


def _is_prime(q: int) -> bool:
    return q >= 2 and all(q % p for p in range(2, int(q ** 0.5) + 1))


def _paley(q: int) -> torch.Tensor:
    """Paley's construction I: a Hadamard matrix of order ``q + 1`` for a prime ``q ≡ 3 (mod 4)``."""
    residues = {(i * i) % q for i in range(1, q)}
    chi = torch.tensor([0.0] + [1.0 if i in residues else -1.0 for i in range(1, q)], dtype=torch.float64)
    idx = torch.arange(q)
    jac = chi[(idx[None, :] - idx[:, None]) % q]  # Jacobsthal matrix, skew-symmetric for q ≡ 3 mod 4
    s = torch.zeros(q + 1, q + 1, dtype=torch.float64)
    s[0, 1:], s[1:, 0], s[1:, 1:] = 1.0, -1.0, jac
    return s + torch.eye(q + 1, dtype=torch.float64)


def hadamard_matrix(n: int) -> torch.Tensor:
    """A ±1 Hadamard matrix of order ``n`` (``H·Hᵀ = n·I``) as a Kronecker product of Paley blocks and a Sylvester one.

    Raises:
        EdgekitError: when ``n`` is not covered by these constructions (use ``rotation: random``).
    """
    if n >= 1 and n & (n - 1) == 0:
        return _sylvester(n)
    # the largest Paley order first keeps the number of factors small; every factor is itself a Hadamard matrix
    for order in range(n, 3, -1):
        if n % order == 0 and order % 4 == 0 and _is_prime(order - 1) and (order - 1) % 4 == 3:
            try:
                return torch.kron(_paley(order - 1), hadamard_matrix(n // order))
            except EdgekitError:
                continue
    raise EdgekitError(f"no Hadamard matrix of order {n} is built here (powers of two times Paley orders q + 1, "
                       "q ≡ 3 mod 4 prime); use rotation: random for this model")


def rotation_matrix(kind: str, n: int, seed: int = ROTATION_SEED) -> torch.Tensor:
    """The orthogonal ``n × n`` rotation ``kind`` (``hadamard`` or ``random``) in float64, seeded.

    Raises:
        EdgekitError: an unknown kind, or a Hadamard order that is not built.
    """
    g = torch.Generator().manual_seed(seed)
    if kind == "hadamard":  # random signs on the rows: QuaRot's randomized Hadamard transform
        signs = torch.randint(0, 2, (n,), generator=g, dtype=torch.float64) * 2 - 1
        return signs[:, None] * hadamard_matrix(n) / n ** 0.5
    if kind == "random":
        q, r = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
        return q * torch.sign(torch.diagonal(r))[None, :]  # the sign fix makes it Haar-distributed
    raise EdgekitError(f"unknown rotation {kind!r}; choose one of {', '.join(ROTATIONS)}")


def _set(param: torch.Tensor, value: torch.Tensor) -> None:
    param.copy_(value.to(param.dtype))


def _fold_norm(norm: nn.Module, readers: list[nn.Linear]) -> None:
    """``W ← W·diag(w)`` for every linear reading ``norm``'s output, then ``w ← 1``."""
    w = norm.weight.detach().double()
    if getattr(norm, "bias", None) is not None:
        raise EdgekitError("rotation folds RMSNorm weights; a norm with a bias (LayerNorm) cannot be folded")
    for lin in readers:
        _set(lin.weight, lin.weight.detach().double() * w[None, :])
    norm.weight.fill_(1.0)


def untie_head(model: nn.Module, family: Family) -> nn.Linear:
    """Give ``model`` its own LM head weight (a copy of the embedding when they were tied); records it in the config
    so the artifact and every engine load the head separately."""
    head = model.get_submodule(family.head)
    emb = model.get_input_embeddings()
    if head.weight.data_ptr() == emb.weight.data_ptr():
        head.weight = nn.Parameter(emb.weight.detach().clone(), requires_grad=False)
    model.config.tie_word_embeddings = False
    return head


@torch.no_grad()
def rotate_model(model: nn.Module, family: Family, kind: str, seed: int = ROTATION_SEED) -> None:
    """Fold the norms and rotate the residual stream of ``model`` in place (see the module docstring); the float
    model's logits do not change beyond float rounding. ``kind == "none"`` does nothing.

    Raises:
        EdgekitError: a family without the layer lists a rotation needs, a model with adaptive computation modules, an
            unknown kind or a hidden size without a Hadamard matrix.
    """
    if kind == "none":
        return
    if not (family.residual_writers and family.final_norm and family.head):
        raise EdgekitError(f"rotation is not supported for the {family.name} family (its norms do not fold into "
                           "the linears that read them); use rotation: none")
    from edgekit.acm.modules import acm_modules

    if acm_modules(model):
        raise EdgekitError("rotation does not fold into adaptive computation modules' gates; use rotation: none")
    d = model.get_input_embeddings().weight.shape[1]
    q = rotation_matrix(kind, d, seed)
    head = untie_head(model, family)
    for block in family.layers(model):
        for norm, gi in family.norm_feeds:
            _fold_norm(block.get_submodule(norm), [block.get_submodule(n) for n in family.input_groups[gi]])
            for name in family.input_groups[gi]:
                lin = block.get_submodule(name)
                _set(lin.weight, lin.weight.detach().double() @ q)
        for name in family.residual_writers:
            lin = block.get_submodule(name)
            _set(lin.weight, q.T @ lin.weight.detach().double())
            if lin.bias is not None:
                _set(lin.bias, lin.bias.detach().double() @ q)
    _fold_norm(model.get_submodule(family.final_norm), [head])
    _set(head.weight, head.weight.detach().double() @ q)
    emb = model.get_input_embeddings()
    _set(emb.weight, emb.weight.detach().double() @ q)
