"""One rank of the ACM data-parallel test (launched by tests/engines/test_acm_distributed.py under torchrun): convert
a tiny random Llama with phases 1 and 2 (layers split over the ranks), run phase 3 data-parallel, and save this rank's
parameters to ``OUT/rank<r>.pt`` so the test can compare the ranks."""

import copy
import sys

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from edgekit.acm import distributed
from edgekit.acm.finetune import finetune
from edgekit.config import AcmConfig, AcmPhaseConfig
from edgekit.quant.api import quantize_


def main(out: str) -> None:
    torch.set_num_threads(1)
    d = distributed.init()
    torch.manual_seed(0)  # the same model and windows on every rank
    cfg = LlamaConfig(vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=64)
    model = LlamaForCausalLM(cfg).eval().requires_grad_(False)
    ids = torch.randint(0, 96, (8, 24))
    teacher = copy.deepcopy(model)
    acm = AcmConfig(n_learners=4, gate_hidden=16, calib_samples=8, calib_seqlen=24,
                    phase1=AcmPhaseConfig(steps=2, lr=1e-3, batch=32), phase2=AcmPhaseConfig(steps=2, lr=1e-2, batch=32),
                    phase3=AcmPhaseConfig(steps=2, lr=1e-2, batch=2))
    report = quantize_(model, acm, family="llama", calib_ids=ids, progress=False, dist=d)
    report.update(finetune(model, teacher, ids, acm, progress=False, dist=d))
    trained = [row["layer"] for row in report["layers"] if "loss_first" in row]
    torch.save({"state": model.state_dict(), "trained": trained, "world": d.world, "report": report},
               f"{out}/rank{d.rank}.pt")
    distributed.finish(d)


if __name__ == "__main__":
    main(sys.argv[1])
