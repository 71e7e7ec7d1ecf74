"""ACM training data-parallel under torchrun: two CPU processes (gloo) on a tiny random Llama end with identical
parameters, each layer of phases 1 and 2 trained by one rank, and phase 3 really changed them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

WORKER = Path(__file__).with_name("acm_dist_worker.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_end_with_identical_parameters(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), str(WORKER), str(tmp_path)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    assert r0["world"] == r1["world"] == 2
    assert r0["trained"] == r1["trained"] == [0, 1]  # every rank's report has every layer's losses
    assert [row["rank"] for row in r0["report"]["layers"]] == [0, 1]  # phases 1 and 2: layer l on rank l % 2
    assert r0["state"].keys() == r1["state"].keys()
    for name, t in r0["state"].items():
        assert torch.equal(t, r1["state"][name]), name
    # phase 3 ran on both ranks: the gates moved away from the fresh gate (zero output weights)
    gate = r0["state"]["model.layers.0.mlp.gate.fc2.weight"]
    assert torch.count_nonzero(gate) > 0
    assert r0["report"]["phase3_steps"] == 2 and r0["report"]["loss_last"] == r1["report"]["loss_last"]
