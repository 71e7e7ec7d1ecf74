"""edgekit distill against the real SmolLM2-135M teacher: the default student's size (about a third of the
teacher's non-embedding parameters), its initialisation reproducing the teacher's output head, the teacher's
continuation log-probs aligned with a plain forward pass, and the error of the cached top-64 KL against the full KL
on real windows (printed: the number the report quotes)."""

from __future__ import annotations

import torch

from edgekit.distill.config import load_student_config
from edgekit.distill.loss import full_kl, topk_kl
from edgekit.distill.student import (build_student, check_teacher, parameter_counts, student_logits,
                                     teacher_parameter_counts)
from edgekit.distill.teacher import teacher_logprobs


def test_default_student_from_smollm2(smollm2, eval_ids):
    cfg = load_student_config()
    check_teacher(smollm2, cfg.student)
    student = build_student(cfg.student, smollm2.model, smollm2.tokenizer).eval()
    s, t = parameter_counts(student), teacher_parameter_counts(smollm2.model)
    frac = s["non_embedding"] / t["non_embedding"]
    print(f"\nstudent {s}\nteacher {t}\nnon-embedding fraction {frac:.3f}")
    assert t["embedding"] == s["embedding"] == 49152 * 576 and 0.28 < frac < 0.4
    assert torch.equal(student.shared.weight, smollm2.model.model.embed_tokens.weight)
    h = torch.randn(4, 576) * 3
    with torch.no_grad():
        s_head = student.lm_head(student.decoder.final_layer_norm(h) * 576 ** -0.5)
        t_head = smollm2.model.lm_head(smollm2.model.model.norm(h))
    assert torch.allclose(s_head, t_head, rtol=1e-3, atol=1e-3)

    pre, con = eval_ids[:2, :256], eval_ids[:2, 256:320]
    with torch.no_grad():
        t_logp = teacher_logprobs(smollm2.model, pre, con)
        ref = torch.log_softmax(smollm2.model(input_ids=eval_ids[:2, :320]).logits[:, 255:319], -1)
        assert torch.allclose(t_logp, ref, atol=1e-4)
        s_logp = torch.log_softmax(student_logits(student, pre, con), -1)
        # a student near the teacher (its own log-probs tempered) and the freshly initialised one
        near = torch.log_softmax(t_logp * 0.8, -1)
        for name, sl in (("tempered teacher", near), ("initial student", s_logp)):
            full = full_kl(t_logp, sl)
            top = t_logp.topk(64, -1)
            approx = topk_kl(top.values, top.indices, sl)
            err = (full - approx).abs().mean().item()
            print(f"top-64 KL vs full KL, {name}: full {full.mean():.4f}, top-64 {approx.mean():.4f}, "
                  f"mean |error| {err:.2e} nats/token")
            assert (approx <= full + 1e-4).all()  # the tail bucket's KL is a lower bound of the full KL
            if name == "tempered teacher":  # near the teacher (where training goes) top-64 is within ~5 %
                assert err < 0.1 * full.mean().item()
