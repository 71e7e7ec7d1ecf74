"""Model families: where a family keeps its blocks, which linears share an input, and which norm feeds them.

Everything architecture-specific that quantization, the engines and the exports need lives here, so they stay
generic: :meth:`Family.linears` is the one Python list of each architecture's quantized linears (the C++ loader,
``csrc/runtime/load_llama.cpp``, keeps its own copy for Llama; a test checks that the two agree). Importing this
module costs no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgekit.errors import EdgekitError

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class Family:
    """Structure of one model family.

    Attributes:
        name: ``"llama"`` or ``"bert"``.
        layers_path: dotted path from the top model to the list of blocks.
        input_groups: linears of one block grouped by the tensor they read (they share a Hessian and a scale).
        norm_feeds: norm module → the input group it feeds (where TRIP factors can be folded).
        attention: the block's attention module, or None when edgekit does not quantize attention for this family.
        mix_linears: linears whose inputs take part in the W4A4 per-token int4/int8 mix.
        head: the output head's module path (kept float unless the recipe says otherwise).
        scale_folds: (input group, producer module, kind) where per-channel scales can be folded exactly:
            ``norm`` (a norm's weight/bias), ``rows`` (a linear's output rows), ``rows_gqa`` (value rows shared by
            several query heads).
        gated_ffn: the block's gated (SwiGLU) FFN as ``(module, gate linear, up linear, down linear)``, the FFN's
            output being ``down(act(gate(x)) * up(x))``; None for a family whose FFN is not gated (adaptive
            computation modules, :mod:`edgekit.acm`, need one).
        decoder: an encoder-decoder's decoder stack (its own blocks and linears; this Family then describes the
            encoder stack); None for single-stack models.
        residual_writers: the block's linears whose outputs are added to the residual stream (a residual rotation,
            :mod:`edgekit.quant.rotate`, multiplies them by ``Qᵀ`` on the left); empty where none is supported.
        final_norm: the norm before the head (folded into the head by a rotation), or None.
    """

    name: str
    layers_path: str
    input_groups: tuple[tuple[str, ...], ...]
    norm_feeds: tuple[tuple[str, int], ...]
    attention: str | None
    mix_linears: tuple[str, ...]
    head: str | None
    scale_folds: tuple[tuple[int, str, str], ...] = ()
    gated_ffn: tuple[str, str, str, str] | None = None
    decoder: Family | None = None
    residual_writers: tuple[str, ...] = ()
    final_norm: str | None = None

    def layers(self, model: nn.Module) -> nn.ModuleList:
        """The model's list of blocks."""
        return model.get_submodule(self.layers_path)

    @staticmethod
    def heads(config) -> tuple[int, int, int]:
        """(query heads, KV heads, head dim) from a transformers config."""
        h = config.num_attention_heads
        kv = getattr(config, "num_key_value_heads", None) or h
        hd = getattr(config, "head_dim", None) or config.hidden_size // h
        return h, kv, hd

    def linears(self) -> tuple[str, ...]:
        """Every quantized linear of a block, in execution order (names relative to the block)."""
        return tuple(n for group in self.input_groups for n in group)

    def stacks(self) -> tuple[Family, ...]:
        """The block stacks in execution order: this family's, then its decoder's (encoder-decoders)."""
        return (self,) if self.decoder is None else (self, self.decoder)


def short_name(linear: str) -> str:
    """A block linear's short key, as the C++ runtime names it: ``self_attn.q_proj`` → ``q``, ``mlp.gate_proj`` →
    ``gate``."""
    return linear.rsplit(".", 1)[-1].removesuffix("_proj")


LLAMA = Family(
    name="llama",
    layers_path="model.layers",
    input_groups=(("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"), ("self_attn.o_proj",),
                  ("mlp.gate_proj", "mlp.up_proj"), ("mlp.down_proj",)),
    norm_feeds=(("input_layernorm", 0), ("post_attention_layernorm", 2)),
    attention="self_attn",
    mix_linears=("self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"),
    head="lm_head",
    scale_folds=((0, "input_layernorm", "norm"), (1, "self_attn.v_proj", "rows_gqa"),
                 (2, "post_attention_layernorm", "norm"), (3, "mlp.up_proj", "rows")),
    gated_ffn=("mlp", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"),
    residual_writers=("self_attn.o_proj", "mlp.down_proj"),
    final_norm="model.norm",
)

BERT = Family(
    name="bert",
    layers_path="encoder.layer",
    input_groups=(("attention.self.query", "attention.self.key", "attention.self.value"),
                  ("attention.output.dense",), ("intermediate.dense",), ("output.dense",)),
    norm_feeds=(),  # BERT's LayerNorms sit after the residual add, in the previous block: no folding point
    attention=None,
    mix_linears=(),
    head=None,
    # Only the value rows fold exactly: q/k/v and intermediate.dense read LayerNorm outputs that are also the
    # residual stream (scaling them would change the residual), and output.dense reads GELU(intermediate).
    scale_folds=((1, "attention.self.value", "rows"),),
)

# T5 v1.1 (edgekit distill's student): pre-RMSNorm blocks, relative position bias in the first block of each stack
# (float), gated-GELU FFN. The decoder's cross-attention k / v read the encoder's output, its q the decoder stream.
_T5_FFN = ("DenseReluDense.wi_0", "DenseReluDense.wi_1", "DenseReluDense.wo")
T5_DECODER = Family(
    name="t5-decoder",
    layers_path="decoder.block",
    input_groups=(("layer.0.SelfAttention.q", "layer.0.SelfAttention.k", "layer.0.SelfAttention.v"),
                  ("layer.0.SelfAttention.o",), ("layer.1.EncDecAttention.q",),
                  ("layer.1.EncDecAttention.k", "layer.1.EncDecAttention.v"), ("layer.1.EncDecAttention.o",),
                  ("layer.2." + _T5_FFN[0], "layer.2." + _T5_FFN[1]), ("layer.2." + _T5_FFN[2],)),
    norm_feeds=(("layer.0.layer_norm", 0), ("layer.1.layer_norm", 2), ("layer.2.layer_norm", 5)),
    attention=None,
    mix_linears=(),
    head=None,
)
T5 = Family(
    name="t5",
    layers_path="encoder.block",
    input_groups=(("layer.0.SelfAttention.q", "layer.0.SelfAttention.k", "layer.0.SelfAttention.v"),
                  ("layer.0.SelfAttention.o",), ("layer.1." + _T5_FFN[0], "layer.1." + _T5_FFN[1]),
                  ("layer.1." + _T5_FFN[2],)),
    norm_feeds=(("layer.0.layer_norm", 0), ("layer.1.layer_norm", 2)),
    attention=None,
    mix_linears=(),
    head="lm_head",
    decoder=T5_DECODER,
)

FAMILIES = {f.name: f for f in (LLAMA, BERT, T5)}


def get_family(name: str) -> Family:
    """The :class:`Family` called ``name``, or an error listing the known ones."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise EdgekitError(f"no quantization support for model family {name!r}; "
                           f"supported: {', '.join(sorted(FAMILIES))}") from None
