"""Distillation's precision key (which CPUs get bf16 under ``auto``, the strict value, the teacher's top-k and a
training run in bf16 close to float32; the float32 path is the rest of the distill tests), and the check that keeps
validation windows repeating training text out of the held-out pairs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgekit.distill import precision as prec
from edgekit.distill.config import TrainConfig, load_student_config
from edgekit.distill.student import build_student
from edgekit.distill.teacher import score_topk
from edgekit.distill.train import train
from edgekit.errors import EdgekitError

from distill_util import TOK, V, random_pairs, tiny_student_cfg, tiny_teacher, tiny_train_cfg

ZEN4 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni avx512_bf16 vaes\n"
SPR = "flags\t\t: fpu avx2 avx512f avx512_vnni amx_bf16 amx_tile amx_int8\n"
ZEN3 = "flags\t\t: fpu sse2 avx2 fma vaes\n"
A76 = "Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\n"
NEOVERSE_V1 = "Features\t: fp asimd asimddp sha512 sve i8mm bf16 dgh\n"


@pytest.mark.parametrize("cpuinfo, native", [(ZEN4, True), (SPR, True), (NEOVERSE_V1, True), (ZEN3, False),
                                             (A76, False), ("", False)])
def test_native_bf16_is_read_from_the_cpu_flags(cpuinfo, native):
    assert prec.cpu_has_bf16(cpuinfo) is native


def test_auto_resolves_by_the_cpu_and_explicit_values_pass_through(monkeypatch):
    assert prec.resolve("fp32") == "fp32" and prec.resolve("bf16") == "bf16"
    monkeypatch.setattr(prec, "cpu_has_bf16", lambda cpuinfo=None: True)
    monkeypatch.setattr(prec.platform, "system", lambda: "Linux")
    assert prec.resolve("auto", "cpu") == "bf16"
    monkeypatch.setattr(prec, "cpu_has_bf16", lambda cpuinfo=None: False)
    assert prec.resolve("auto", "cpu") == "fp32"


def test_precision_is_a_strict_key_and_the_default_student_uses_auto():
    assert TrainConfig().precision == "fp32" and load_student_config().train.precision == "auto"
    with pytest.raises(EdgekitError, match="precision must be one of fp32, bf16, auto, got 'fp16'"):
        TrainConfig(precision="fp16")
    assert load_student_config().with_train(precision="bf16").train.precision == "bf16"


def test_bf16_teacher_scoring_keeps_the_float32_top_k():
    teacher = tiny_teacher()
    pairs = random_pairs(n=6)
    v32, i32, _ = score_topk(teacher, pairs, 8, progress=False)
    v16, i16, _ = score_topk(teacher, pairs, 8, progress=False, precision="bf16")
    assert v16.dtype == np.float32 and v16.shape == v32.shape
    # bf16 rounds the logits (8 mantissa bits): the log-probs move by a few 1e-2, the top token rarely changes
    assert np.abs(v16 - v32).max() < 0.1
    assert (i16[..., 0] == i32[..., 0]).mean() > 0.9
    assert not np.array_equal(v16, v32)  # the bf16 path really ran


def test_a_bf16_run_learns_like_the_float32_run():
    teacher = tiny_teacher()
    pairs = random_pairs(n=8)
    v, i, _ = score_topk(teacher, pairs, 8, progress=False)
    finals = {}
    for p in ("fp32", "bf16"):
        student = build_student(tiny_student_cfg(init_from_teacher=()), teacher, TOK, seed=0)
        cfg = tiny_train_cfg(steps=30, train_pairs=8, precision=p, checkpoint_every=0)
        res = train(student, pairs, (v, i), cfg, progress=False)
        assert res["precision"] == p
        losses = [h["loss"] for h in res["history"]]
        assert all(np.isfinite(losses)) and np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])
        finals[p] = np.mean(losses[-5:])
        # the weights stay float32 under autocast
        assert all(t.dtype == torch.float32 for t in student.parameters())
    assert finals["bf16"] == pytest.approx(finals["fp32"], rel=0.1)



def test_a_validation_window_that_repeats_training_text_is_recognised():
    from edgekit.distill.pairs import MAX_REPEATED, repeated_share, token_runs

    g = np.random.default_rng(0)
    train = [(g.integers(2, 5000, 40), g.integers(2, 5000, 24)) for _ in range(3)]
    runs = token_runs(train)
    copy = train[1]
    fresh = (g.integers(2, 5000, 40), g.integers(2, 5000, 24))
    # a copied page's window, a new one, and a new prefix whose continuation quotes 20 training tokens
    half = (fresh[0], np.concatenate([train[2][1][:20], fresh[1][20:]]))
    assert repeated_share(copy, runs) == 1.0 and repeated_share(fresh, runs) == 0.0
    assert 0.0 < repeated_share(half, runs) <= MAX_REPEATED
