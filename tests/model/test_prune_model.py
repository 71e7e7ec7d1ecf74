"""Token pruning on the real SmolLM2-135M: the PyTorch path against transformers and against the C++ runtime, the
quantize-time schedule, and the commands (eval --prefix-len, bench prune, prune-stats)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from edgekit.config import PruneConfig
from edgekit.prune import schedule


@pytest.fixture(scope="module")
def kernel_forward(artifact):
    from edgekit.engines.fake import PrunedLlama
    from edgekit.engines.kernels import use_kernels
    from edgekit.quant.serialize import load_artifact_model

    lm, _ = load_artifact_model(artifact)
    use_kernels(lm.model)
    return PrunedLlama(lm.model)


def test_torch_path_equals_transformers_on_the_float_model(smollm2, eval_ids):
    """Unpruned, the hand-written layer loop is transformers' Llama forward (float model: no int8 chaos)."""
    from edgekit.engines.fake import PrunedLlama

    ids = eval_ids[0, :192]
    with torch.no_grad():
        ref = smollm2.model(input_ids=ids[None], use_cache=False).logits[0].float()
    fwd = PrunedLlama(smollm2.model)
    out = fwd.eval(ids[:150], all_logits=True)
    out = torch.cat([out, torch.stack([fwd.eval(ids[i:i + 1]) for i in range(150, 192)])])  # then decode
    torch.testing.assert_close(out, ref, atol=2e-3, rtol=1e-3)
    # pruning at the last layer only: the survivors' logits are the unpruned ones
    fwd.set_pruning(schedule.resolve(PruneConfig(ratio=0.5, layers=(29,)), 30))
    fwd.reset()
    pruned = fwd.eval(ids, all_logits=True)
    kept = fwd.kept[0]
    assert len(kept) == 96 and fwd.cached(29) == 192
    torch.testing.assert_close(pruned[kept], ref[kept], atol=2e-3, rtol=1e-3)


def test_runtime_and_torch_path_prune_alike(artifact, kernel_forward, eval_ids):
    """Same artifact, same schedule: the runtime (fp16 KV cache) and the PyTorch kernel path select nearly the same
    tokens (int8 activation rounding flips a few scores), and decoding after the pruned prefill agrees."""
    from edgekit.engines.runtime import Runtime

    rt = Runtime.from_artifact(artifact, max_ctx=512)
    ids = eval_ids[1, :384].numpy()
    rt.eval(eval_ids[0].numpy())  # the start layer from a 512-token prefill (local layers look sinky when short)
    cfg = schedule.resolve(PruneConfig(ratio=0.5), 30, rt.engine.first_token_mass())
    assert cfg.start_layer == 12, cfg  # SmolLM2's attention sinks from layer 12 on
    rt.engine.set_pruning(cfg.ratio, list(cfg.layers), cfg.keep_last)
    kernel_forward.set_pruning(cfg)
    rt.reset()
    kernel_forward.reset()
    a = rt.eval(ids[:256])
    b = kernel_forward.eval(ids[:256]).numpy()
    kept_rt, kept_pt = rt.engine.last_kept(), kernel_forward.kept
    assert [len(k) for k in kept_rt] == [len(k) for k in kept_pt] == schedule.plan(cfg, 256)
    first = len(set(kept_rt[0]) & set(kept_pt[0].tolist())) / len(kept_rt[0])
    last = len(set(kept_rt[-1]) & set(kept_pt[-1].tolist())) / len(kept_rt[-1])
    print(f"kept-set overlap: first pruning layer {first:.3f}, last {last:.3f}")
    assert first >= 0.98 and last >= 0.85, (first, last)
    assert [rt.engine.cached(i) for i in (0, cfg.start_layer, 29)] == \
        [kernel_forward.cached(i) for i in (0, cfg.start_layer, 29)] == [256, 256, len(kept_rt[-2])]
    # decode 16 teacher-forced steps after the pruned prefill: the two paths' predictions agree
    agree = int(a.argmax() == b.argmax())
    cos = [float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))]
    for t in ids[256:272]:
        x, y = rt.eval([t]), kernel_forward.eval([t]).numpy()
        agree += int(x.argmax() == y.argmax())
        cos.append(float(x @ y / np.linalg.norm(x) / np.linalg.norm(y)))
    print(f"decode after pruning: top-1 agreement {agree}/17, min logit cosine {min(cos):.4f}")
    assert agree >= 14 and min(cos) > 0.98, (agree, cos)


def test_quantize_resolves_the_schedule_from_attention(smollm2):
    from edgekit import data
    from edgekit.config import AgileQuantConfig
    from edgekit.quant.api import resolve_prune

    ids = data.calibration_windows(smollm2.tokenizer, None, 1, 512, 0)
    cfg = resolve_prune(AgileQuantConfig(prune=PruneConfig(ratio=0.3)), smollm2, ids)
    start = cfg.prune.start_layer
    assert cfg.prune.layers == tuple(range(start, 30)) and start == 12
    assert resolve_prune(AgileQuantConfig(), smollm2, ids).prune == PruneConfig()  # no pruning: untouched


def test_eval_prefix_len_and_bench_prune_and_stats(artifact, tmp_path):
    from edgekit.cli import main

    r = CliRunner().invoke(main, ["eval", str(artifact), "--engine", "runtime", "--prefix-len", "128",
                                  "--score-len", "32", "--max-windows", "2", "--prune-ratio", "0.25", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    base, pruned = res["rows"]
    assert base["kept_fraction"] == 1.0 and abs(pruned["kept_fraction"] - 0.75) < 0.01
    assert base["windows"] == pruned["windows"] == 2 and pruned["prefix_ppl_all_tokens"] > 0
    assert abs(pruned["continuation_delta_pct"]) < 25  # gross breakage only; the numbers are in BENCHMARKS.md
    r = CliRunner().invoke(main, ["bench", "prune", str(artifact), "--prefix-lens", "96", "--ratios", "0.25",
                                  "--max-windows", "1", "--score-len", "16", "--json", str(tmp_path / "p.json"),
                                  "--plot", str(tmp_path / "p.png")])
    assert r.exit_code == 0, r.output
    rows = json.loads((tmp_path / "p.json").read_text())["rows"]
    assert [(x["prefix_len"], x["prune_ratio"]) for x in rows] == [(96, 0.0), (96, 0.25)]
    assert all(x["ttft_s"] > 0 and x["continuation_ppl"] > 1 for x in rows)
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    r = CliRunner().invoke(main, ["prune-stats", str(artifact), "--json"])
    assert r.exit_code == 0, r.output
    st = json.loads(r.output)
    assert len(st["mass"]) == 30 and st["auto_start_layer"] == 12


@pytest.mark.parametrize("args, msg", [(["--prune-ratio", "0.3"], "add --prefix-len"),
                                       (["--prefix-len", "64", "--prune-layers", "a,b"], "comma-separated"),
                                       (["--prefix-len", "64", "--prune-ratio", "1.0"], "ratio must be in"),
                                       (["--prefix-len", "64", "--prune-layers", "12,40", "--prune-ratio", "0.2"],
                                        "outside the model")])
def test_eval_pruning_errors(artifact, args, msg):
    from edgekit.cli import main

    r = CliRunner().invoke(main, ["eval", str(artifact), "--engine", "runtime", "--max-windows", "1", *args])
    assert r.exit_code != 0 and msg in r.output, r.output
