"""Layer-by-layer calibration: capture the first block's inputs once, then walk the blocks one at a time.

Only one block's activations are alive at any moment, so memory stays bounded by ``samples × seqlen × hidden``
whatever the depth of the model. The same keyword arguments (rotary embeddings, causal mask, positions) are reused
for every block because all calibration batches have the same shape.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from edgekit.models.families import Family


@contextlib.contextmanager
def matmul_precision(precision: str):
    """Within the block, fp32 matmuls run with bf16 inputs and fp32 accumulation (``"bf16"``) or in IEEE fp32.

    oneDNN uses AMX / AVX512-BF16 for this where the CPU has them and plain fp32 elsewhere.
    """
    knob = getattr(getattr(torch.backends, "mkldnn", None), "matmul", None)
    if precision == "fp32" or knob is None or not hasattr(knob, "fp32_precision"):
        yield
        return
    old = knob.fp32_precision
    knob.fp32_precision = "bf16"
    try:
        yield
    finally:
        knob.fp32_precision = old


class _Stop(Exception):
    pass


class _Catcher(nn.Module):
    """Stands in for block 0: records its inputs and stops the forward pass."""

    def __init__(self, inner: nn.Module, store: list, kwargs_box: dict):
        super().__init__()
        self.inner = inner
        self.store = store
        self.kwargs_box = kwargs_box
        # transformers reads attributes such as attention_type from the block; forward them
        for attr in ("attention_type",):
            if hasattr(inner, attr):
                setattr(self, attr, getattr(inner, attr))

    def forward(self, hidden_states, *args, **kwargs):
        self.store.append(hidden_states.detach())
        if not self.kwargs_box:
            self.kwargs_box.update(kwargs)
            self.kwargs_box["__args__"] = args
        raise _Stop


@torch.no_grad()
def capture_block_inputs(model: nn.Module, family: Family, ids: torch.Tensor, batch_size: int):
    """Run the model up to block 0 for every calibration batch.

    Args:
        model: the float model.
        family: its :class:`Family`.
        ids: calibration token ids ``[n, L]``.
        batch_size: sequences per forward pass.

    Returns:
        ``(inputs, kwargs)``: a list of ``[b, L, hidden]`` tensors (one per batch) and the keyword arguments block 0
        was called with (positional extras under ``"__args__"``).
    """
    layers = family.layers(model)
    store: list[torch.Tensor] = []
    kwargs: dict = {}
    first = layers[0]
    layers[0] = _Catcher(first, store, kwargs)
    try:
        for i in range(0, ids.shape[0], batch_size):
            batch = ids[i:i + batch_size]
            try:
                model(input_ids=batch, attention_mask=torch.ones_like(batch), use_cache=False)
            except _Stop:
                pass
    finally:
        layers[0] = first
    return store, kwargs


def _kwargs_for(kwargs: dict, batch: int) -> dict:
    """Resize batch-dependent keyword tensors (masks, rotary tables) captured for the first batch."""
    out = {}
    for k, v in kwargs.items():
        if k == "__args__":
            continue
        if isinstance(v, torch.Tensor) and v.dim() >= 1 and v.shape[0] > batch:
            v = v[:batch]
        elif isinstance(v, tuple) and all(isinstance(t, torch.Tensor) for t in v):
            v = tuple(t[:batch] if t.dim() >= 1 and t.shape[0] > batch else t for t in v)
        out[k] = v
    return out


@torch.no_grad()
def t5_encoder_inputs(model: nn.Module, ids: torch.Tensor, batch_size: int):
    """A T5's encoder blocks' inputs and keyword arguments for every calibration batch of prefixes ``ids``.

    T5 computes the relative position bias in the first block of a stack and hands it to the others; here it is
    computed once and given to every block (the same values), so that each block can run on its own.

    Returns:
        ``(inputs, kwargs)``: ``[b, L, d_model]`` embeddings per batch and the blocks' keyword arguments.
    """
    emb = model.get_input_embeddings()
    inputs = [emb(ids[i:i + batch_size]).float() for i in range(0, ids.shape[0], batch_size)]
    attn = model.encoder.block[0].layer[0].SelfAttention
    return inputs, {"position_bias": attn.compute_bias(ids.shape[1], ids.shape[1])}


@torch.no_grad()
def t5_decoder_inputs(model: nn.Module, encoder_blocks_out: list[torch.Tensor], dec_ids: torch.Tensor,
                      batch_size: int):
    """A T5's decoder blocks' inputs and per-batch keyword arguments: decoder ids ``dec_ids`` (start token first)
    attending causally to themselves and to the encoder's output (``encoder_blocks_out`` through its final norm).

    Returns:
        ``(inputs, kwargs)``: ``[b, T, d_model]`` embeddings per batch and one keyword dict per batch.
    """
    emb = model.get_input_embeddings()
    inputs = [emb(dec_ids[i:i + batch_size]).float() for i in range(0, dec_ids.shape[0], batch_size)]
    t, n_heads = dec_ids.shape[1], model.config.num_heads
    bias = model.decoder.block[0].layer[0].SelfAttention.compute_bias(t, t)
    causal = torch.full((t, t), torch.finfo(bias.dtype).min).triu(1)
    kwargs = []
    for enc in encoder_blocks_out:
        states = model.encoder.final_layer_norm(enc)
        cross = torch.zeros(1, n_heads, t, states.shape[1], dtype=bias.dtype)
        kwargs.append({"position_bias": bias + causal, "encoder_hidden_states": states,
                       "encoder_decoder_position_bias": cross, "cache_position": torch.arange(t)})
    return inputs, kwargs


def per_batch_kwargs(kwargs: dict | list[dict], n: int) -> list[dict]:
    """The block keyword arguments of each of ``n`` captured batches (one dict shared by all, or one per batch)."""
    return kwargs if isinstance(kwargs, list) else [kwargs] * n


def call_block(block: nn.Module, x: torch.Tensor, kw: dict) -> torch.Tensor:
    """One block's hidden-state output on ``x`` with its captured keyword arguments ``kw`` (positional extras
    under ``"__args__"``; batch-dependent tensors resized to ``x``'s batch)."""
    y = block(x, *kw.get("__args__", ()), **_kwargs_for(kw, x.shape[0]))
    return y[0] if isinstance(y, tuple) else y


@torch.no_grad()
def run_block(block: nn.Module, inputs: list[torch.Tensor], kwargs: dict | list[dict],
              stop_at: nn.Module | None = None) -> list[torch.Tensor] | None:
    """Run one block over every captured batch and return its outputs (the next block's inputs). ``kwargs`` is one
    dict for every batch, or a list with one per batch (a decoder's encoder states).

    With ``stop_at`` the pass ends as each batch reaches that submodule (after its forward pre-hooks ran) and
    returns None: a statistics-only pass need not compute what comes after the last hooked input.
    """
    per_batch = per_batch_kwargs(kwargs, len(inputs))
    handle = None
    if stop_at is not None:
        def _stop(mod, a):
            raise _Stop

        handle = stop_at.register_forward_pre_hook(_stop)
    outs = []
    try:
        for x, kw in zip(inputs, per_batch):
            try:
                outs.append(call_block(block, x, kw).detach())
            except _Stop:
                continue
    finally:
        if handle is not None:
            handle.remove()
    return None if stop_at is not None else outs
