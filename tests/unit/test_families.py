"""The one Python list of each architecture's linears (:mod:`edgekit.models.families`) and the copies that may not
import it: the C++ loader's list (``kLinears`` in csrc) must name the same Llama linears in the same order, because
the loader pairs each with a fixed shape and a fixed slot of the layer."""

from __future__ import annotations

import re
from pathlib import Path

from edgekit.models.families import BERT, LLAMA, short_name

CSRC = Path(__file__).resolve().parents[2] / "csrc"


def _cpp_llama_linears() -> tuple[str, ...]:
    """The string literals of the C++ ``kLinears[]`` array, wherever in csrc it is defined."""
    found = []
    for f in sorted(CSRC.rglob("*")):
        if f.suffix not in (".cpp", ".cc", ".h", ".hpp"):
            continue
        m = re.search(r"\bkLinears\s*\[\s*\d*\s*\]\s*=\s*\{(.*?)\}", f.read_text(encoding="utf-8"), re.S)
        if m:
            found.append((f, tuple(re.findall(r'"([^"]*)"', m.group(1)))))
    assert len(found) == 1, f"expected one definition of kLinears under csrc/, found {[str(f) for f, _ in found]}"
    return found[0][1]


def test_cpp_loader_lists_the_llama_linears_in_the_same_order():
    assert _cpp_llama_linears() == LLAMA.linears()


def test_linear_lists():
    assert LLAMA.linears() == ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                               "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
    assert [short_name(n) for n in LLAMA.linears()] == ["q", "k", "v", "o", "gate", "up", "down"]
    assert len(BERT.linears()) == 6 and set(BERT.mix_linears) <= set(BERT.linears())
    assert set(LLAMA.mix_linears) <= set(LLAMA.linears())


def test_the_gguf_export_uses_the_family_list():
    from edgekit.export import gguf

    assert tuple(gguf._LINEARS) == LLAMA.linears()
    assert gguf._LINEARS["self_attn.o_proj"] == "attn_output" and gguf._LINEARS["mlp.down_proj"] == "ffn_down"
