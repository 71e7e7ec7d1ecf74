"""The C++ runtime engine (csrc/runtime/llama.cpp) on a tiny TRIP artifact (static per-tensor int8 activations):
the C++ loader's engine and the kernel path give the same bits. The runtime against the kernel path on the
real SmolLM2 is tests/model/test_runtime.py."""

from __future__ import annotations

import numpy as np
import torch


def test_static_per_tensor_artifact_runs_bit_exact(tiny_llama_dir, tmp_path):
    """A TRIP recipe (static per-tensor int8 activations, the power-of-two factors folded into the weights) in the
    runtime: the C++ loader's engine and the kernel path (the PyTorch loader's arrays) give the same bits."""
    from edgekit.engines.kernels import use_kernels
    from edgekit.quant.serialize import load_artifact_model
    from edgekit.quant.api import quantize_model
    from edgekit.recipes import load_recipe
    from edgekit.engines.runtime import Runtime

    out = tmp_path / "trip.ekq"
    quantize_model(str(tiny_llama_dir), load_recipe("agile-quant-trip").config, out, calib_samples=4,
                   calib_seqlen=64, progress=False)
    lm, art = load_artifact_model(out)
    assert {spec["act_mode"] for spec in art.linears.values()} == {"per_tensor"}
    use_kernels(lm.model)
    ids = torch.randint(0, lm.model.config.vocab_size, (40,), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = lm.model(input_ids=ids[None], use_cache=False).logits[0].float().numpy()
    rt = Runtime.from_artifact(out, max_ctx=64)
    np.testing.assert_array_equal(rt.eval(ids.numpy(), all_logits=True), ref)
