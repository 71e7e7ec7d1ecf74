"""Distillation data-parallel under torchrun: two CPU processes (gloo) on a tiny teacher/student pair give the
one-process loss curve on the same global batch within float tolerance, the same gathered teacher top-k, and
identical parameters on both ranks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

WORKER = Path(__file__).with_name("distill_dist_worker.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_give_the_one_process_loss_curve(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    env.pop("WORLD_SIZE", None)
    one = subprocess.run([sys.executable, str(WORKER), str(tmp_path), "one"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert one.returncode == 0, one.stdout[-2000:] + one.stderr[-4000:]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), str(WORKER), str(tmp_path), "two"]
    two = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert two.returncode == 0, two.stdout[-2000:] + two.stderr[-4000:]
    ref = torch.load(tmp_path / "one-rank0.pt", weights_only=False)
    r0, r1 = (torch.load(tmp_path / f"two-rank{r}.pt", weights_only=False) for r in (0, 1))
    assert ref["world"] == 1 and r0["world"] == r1["world"] == 2
    # the gathered top-k is the one-process top-k (each rank scored half of the pairs)
    assert np.array_equal(r0["topk"][1], ref["topk"][1]) and np.allclose(r0["topk"][0], ref["topk"][0], atol=1e-5)
    curve = [[h[k] for k in ("loss", "kl", "ce")] for h in ref["history"]]
    curve2 = [[h[k] for k in ("loss", "kl", "ce")] for h in r0["history"]]
    assert len(curve) == 5 and np.allclose(curve2, curve, rtol=1e-4, atol=1e-5), (curve, curve2)
    assert curve[-1][0] < curve[0][0]  # the curve is a training curve, not a constant
    for name, t in r0["state"].items():
        assert torch.equal(t, r1["state"][name]), name  # the ranks stay identical
        assert torch.allclose(t, ref["state"][name], atol=1e-4), name  # and equal to the one-process run


def test_edgekit_distill_under_torchrun_writes_the_one_process_student(tmp_path, tiny_llama_dir):
    """The whole command (pairs, teacher cache, training, report, files) on two gloo ranks: one student directory,
    written by rank 0, equal to the one-process run's within float tolerance."""
    import json

    from safetensors.torch import load_file
    from transformers import AutoConfig

    vocab = AutoConfig.from_pretrained(tiny_llama_dir).vocab_size
    yaml = tmp_path / "student.yaml"
    yaml.write_text(json.dumps({"encoder_layers": 1, "decoder_layers": 1, "d_model": 64, "d_ff": 64, "num_heads": 4,
                                "d_kv": 16, "vocab_size": vocab,
                                "train": {"steps": 3, "batch": 4, "warmup_steps": 1, "top_k": 8, "prefix_len": 16,
                                          "cont_len": 8, "train_pairs": 8, "val_pairs": 2, "checkpoint_every": 2}}))
    text = tmp_path / "text.txt"
    text.write_text(" ".join(f"sentence {i} about word{i % 61}." for i in range(200)))
    args = ["distill", "--teacher", str(tiny_llama_dir), "--student", str(yaml), "--data", str(text), "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    env.pop("WORLD_SIZE", None)
    one = subprocess.run([sys.executable, "-m", "edgekit.cli", *args, "-o", str(tmp_path / "one")], env=env,
                         capture_output=True, text=True, timeout=180)
    assert one.returncode == 0, one.stderr[-4000:]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), "-m", "edgekit.cli", *args,
           "-o", str(tmp_path / "two")]
    two = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert two.returncode == 0, two.stdout[-2000:] + two.stderr[-4000:]
    r1, r2 = (json.loads((tmp_path / d / "distill.json").read_text()) for d in ("one", "two"))
    assert r1["world_size"] == 1 and r2["world_size"] == 2
    c1, c2 = ([h["loss"] for h in r["loss_curve"]] for r in (r1, r2))
    assert len(c1) == 3 and np.allclose(c1, c2, rtol=1e-4), (c1, c2)
    w1, w2 = (load_file(str(tmp_path / d / "student" / "model.safetensors")) for d in ("one", "two"))
    assert w1.keys() == w2.keys() and all(torch.allclose(w1[k], w2[k], atol=1e-4) for k in w1)
    assert r2["held_out"]["student_nll"] == pytest.approx(r1["held_out"]["student_nll"], abs=1e-3)
