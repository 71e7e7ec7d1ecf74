"""Held-out NLL of finished `edgekit distill` runs on the held-out pairs of the current code (validation windows that
repeat training text skipped): the students and the teacher on the same pairs, fp32 (edgekit.distill.teacher.compare)."""
import json, sys, time
import torch
from transformers import AutoModelForCausalLM, T5ForConditionalGeneration
from edgekit.models import load_model
from edgekit.distill.config import load_student_config
from edgekit.distill.pairs import build_pairs
from edgekit.distill.teacher import compare
from edgekit.native.info import cpu_model
torch.set_num_threads(2)
lm = load_model("smollm2-135m")
out = {"machine": cpu_model(), "script": open(__file__).read(), "runs": {}}
for label, d in (a.split("=") for a in sys.argv[2:]):
    rep = json.load(open(f"{d}/distill.json"))
    cfg = load_student_config(rep["config"]["name"] if rep["config"]["name"] != "default" else None)
    cfg = cfg.with_train(**{k: rep["config"]["train"][k] for k in ("train_pairs", "val_pairs", "prefix_len", "cont_len", "seed")})
    tr, va, info = build_pairs(lm.tokenizer, cfg.train)
    cls = T5ForConditionalGeneration if rep["config"]["student"].get("architecture", "t5") == "t5" else AutoModelForCausalLM
    st = cls.from_pretrained(f"{d}/student").float().eval()
    t0 = time.time()
    res = compare(st, lm.model, va, 64)
    ce = [h["ce"] for h in rep["loss_curve"][-50:]]
    out["runs"][label] = {"dir": d, "kd_weight": rep["config"]["train"]["kd_weight"], "held_out": res, "pairs": info,
                         "held_out_at_training": rep["held_out"], "online_ce_last50": sum(ce) / len(ce),
                         "train_seconds": rep["train"]["seconds"], "teacher_scoring_seconds": rep["teacher_scoring_seconds"],
                         "total_seconds": rep["total_seconds"], "precision": rep["train"].get("precision")}
    print(label, res["student_nll"], res["teacher_nll"], res["kl_full"], info["val_windows_skipped_as_repeats"], round(time.time() - t0, 1), flush=True)
json.dump(out, open(sys.argv[1], "w"), indent=1)
