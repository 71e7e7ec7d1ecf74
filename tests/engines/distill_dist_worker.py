"""One process of the distillation data-parallel test (tests/engines/test_distill_distributed.py): score a tiny
teacher's top-k (shared out over the ranks and gathered) and train a tiny T5 student for a few steps on the same
global batch, then save the loss curve, the top-k cache and the parameters to ``OUT/<tag>-rank<r>.pt``. Run under
torchrun (two ranks) and without it (one process) by the test."""

import sys
from types import SimpleNamespace

import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from edgekit.acm import distributed
from edgekit.distill.config import StudentConfig, TrainConfig
from edgekit.distill.pairs import Pairs
from edgekit.distill.student import build_student
from edgekit.distill.teacher import score_topk
from edgekit.distill.train import train

V = 96


def main(out: str, tag: str) -> None:
    torch.set_num_threads(1)
    d = distributed.init()
    torch.manual_seed(0)  # the same teacher on every rank
    teacher = LlamaForCausalLM(LlamaConfig(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                           num_attention_heads=4, num_key_value_heads=2,
                                           max_position_embeddings=64)).eval().requires_grad_(False)
    g = np.random.default_rng(1)
    pairs = Pairs(g.integers(2, V, (12, 10)), g.integers(2, V, (12, 5)))  # 12 pairs: 3 steps of 4 is one epoch
    cfg = TrainConfig(steps=5, batch=4, lr=3e-3, warmup_steps=1, top_k=8, prefix_len=10, cont_len=5, train_pairs=12,
                      val_pairs=1, checkpoint_every=0)
    v, i, _ = score_topk(teacher, pairs, cfg.top_k, batch=2, dist=d, progress=False)
    student = build_student(StudentConfig(encoder_layers=2, decoder_layers=1, d_model=32, d_ff=64, num_heads=4,
                                          d_kv=8, vocab_size=V), teacher, SimpleNamespace(pad_token_id=0,
                                                                                          eos_token_id=1))
    res = train(student, pairs, (v, i), cfg, dist=d, progress=False)
    torch.save({"world": d.world, "history": res["history"], "topk": (v, i), "state": student.state_dict()},
               f"{out}/{tag}-rank{d.rank}.pt")
    distributed.finish(d)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
