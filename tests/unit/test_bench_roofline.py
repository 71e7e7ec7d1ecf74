"""``edgekit bench roofline`` and the roofline fractions of ``bench model``: the byte and op counts on a tiny artifact
and a tiny GGUF against a hand count, the fractions computed exactly from the measured numbers, the thread scaling,
and the clear errors (the probes themselves: tests/kernels/test_roofline_probes.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

import capi_util as cu
from edgekit.artifact import read_artifact
from edgekit.bench import model as bm
from edgekit.bench import roofline as rl
from edgekit.bench.model_report import SCALING_KEY, document, rows_to_markdown
from edgekit.cli import main
from edgekit.errors import EdgekitError

# Hand count for capi_util.TINY: vocab 96, hidden 64, ffn 96, 2 layers, 4 heads, 2 KV heads, head_dim 16.
# Linears per layer (N x K): q 64x64, k 32x64, v 32x64, o 64x64, gate 96x64, up 96x64, down 64x96.
SUM_NK = 4096 + 2048 + 2048 + 4096 + 6144 + 6144 + 6144  # = 30720 per layer
LAYER_BYTES = SUM_NK // 2 + SUM_NK // 32 * 2 + 2 * 64 * 4  # int4 codes + fp16 scales + two fp32 norms = 17792
WEIGHT_BYTES = 2 * LAYER_BYTES + 64 * 4 + 64 * 2 + 96 * 64 * 2  # + final norm + embedding row + fp16 head = 48256
KV_PER_POS = 2 * 2 * 2 * 16 * 2  # K and V x layers x KV heads x head_dim x fp16 = 256
OPS = 2 * 2 * SUM_NK  # 2 ops per multiply-add x 2 layers = 122880


@pytest.fixture
def tiny(tmp_path):
    return read_artifact(cu.write_tiny(tmp_path / "tiny.ekq"))


def test_counts_equal_the_hand_count(tiny, tmp_path):
    assert WEIGHT_BYTES == 48256 and OPS == 122880
    assert rl.kv_bytes_per_position(tiny) == KV_PER_POS
    assert rl.decode_bytes_per_token(tiny, 0) == WEIGHT_BYTES
    assert rl.decode_bytes_per_token(tiny, 10.5) == WEIGHT_BYTES + 10.5 * KV_PER_POS
    assert rl.prefill_ops_per_token(tiny) == OPS
    # an untied head is its own fp32 tensor in the file, read as fp16 like the tied one: the same bytes
    untied = read_artifact(cu.write_tiny(tmp_path / "untied.ekq", dict(cu.TINY, tie_word_embeddings=False)))
    assert rl.decode_bytes_per_token(untied, 0) == WEIGHT_BYTES
    assert rl.decode_kv_positions(512, 128) == 512 + 64.5


def test_gguf_bytes_from_block_sizes(tmp_path):
    gguf = pytest.importorskip("gguf")
    path = str(tmp_path / "t.gguf")
    w = gguf.GGUFWriter(path, "llama")
    w.add_tensor("token_embd.weight", np.zeros((96, 64), np.float16))  # [vocab, hidden] fp16
    w.add_tensor("blk.0.attn_k.weight", np.zeros((32, 36), np.uint8), raw_dtype=gguf.GGMLQuantizationType.Q4_0)
    w.add_tensor("blk.0.attn_q.weight", np.zeros((64, 68), np.uint8), raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor("blk.0.attn_norm.weight", np.zeros(64, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    # embedding row 64*2 + Q4_0 32x64 (2048/32 blocks of 18 B) + Q8_0 64x64 (4096/32 of 34 B) + norm + tied head
    hand = 128 + 2048 // 32 * 18 + 4096 // 32 * 34 + 64 * 4 + 96 * 64 * 2
    assert rl.gguf_decode_bytes_per_token(path, 100, 3) == hand + 300


def _rows():
    rows = []
    for t, (pre, dec, lpre, ldec) in ((1, (300.0, 40.0, 200.0, 50.0)), (2, (540.0, 60.0, 330.0, 70.0))):
        for engine, p, d in (("edgekit", pre, dec), ("llama.cpp", lpre, ldec)):
            rows += [{"engine": engine, "phase": "prefill_16", "tokens_per_s": p, "threads": t},
                     {"engine": engine, "phase": "decode_4", "tokens_per_s": d, "threads": t}]
    return rows


LIMITS = {1: {"read_bytes_per_s": 20e9, "int8_ops_per_s": 4e11, "read_gbps": 20.0, "int8_tops": 0.4,
              "dot_impl": "avx512vnni", "read_buffer_bytes": 2 ** 30, "l3_bytes": None},
          2: {"read_bytes_per_s": 25e9, "int8_ops_per_s": 8e11, "read_gbps": 25.0, "int8_tops": 0.8,
              "dot_impl": "avx512vnni", "read_buffer_bytes": 2 ** 30, "l3_bytes": None}}


def test_fractions_are_computed_from_the_measured_numbers(tiny):
    rows = rl.add_fractions(_rows(), LIMITS, tiny, None, prefill=16, decode=4)
    bpt = WEIGHT_BYTES + (16 + 2.5) * KV_PER_POS
    for r in rows:
        lim = LIMITS[r["threads"]]
        if r["engine"] == "edgekit" and r["phase"] == "decode_4":
            assert r["bytes_per_token"] == bpt
            assert r["bandwidth_fraction"] == bpt * r["tokens_per_s"] / lim["read_bytes_per_s"]
            assert 0 < r["bandwidth_fraction"] < 1.5 and "int8_peak_fraction" not in r
        elif r["engine"] == "edgekit":
            assert r["int8_peak_fraction"] == OPS * r["tokens_per_s"] / lim["int8_ops_per_s"]
            assert 0 < r["int8_peak_fraction"] < 1.5 and "bandwidth_fraction" not in r
        else:  # no GGUF given: llama.cpp rows carry nothing
            assert "bandwidth_fraction" not in r and "int8_peak_fraction" not in r
    summary = rl.summary_rows({"rows": rows, "roofline": {str(k): v for k, v in LIMITS.items()}})
    assert [s["threads"] for s in summary] == [1, 2]
    assert summary[1]["bandwidth_fraction"] == rows[5]["bandwidth_fraction"]  # edgekit decode, 2 threads
    md = rl.summary_markdown({"rows": rows, "roofline": LIMITS}).splitlines()
    assert len(md) == 4 and md[2].startswith("| 1 | 20.0 | 0.400 | avx512vnni |")


def test_scaling_and_json_rows(tiny, tmp_path):
    rows = bm.add_scaling(bm.add_ratios(rl.add_fractions(_rows(), LIMITS, tiny, None, 16, 4)))
    by = {(r["engine"], r["phase"], r["threads"]): r for r in rows}
    assert by[("edgekit", "prefill_16", 2)][SCALING_KEY] == 540.0 / 300.0
    assert by[("llama.cpp", "decode_4", 2)][SCALING_KEY] == 70.0 / 50.0
    assert by[("edgekit", "decode_4", 1)][SCALING_KEY] == 1.0
    assert by[("edgekit", "decode_4", 2)]["ratio_vs_llama.cpp"] == 60.0 / 70.0  # against the same thread count
    single = bm.add_scaling([r for r in _rows() if r["threads"] == 2])
    assert all(SCALING_KEY not in r for r in single)  # one thread count: nothing added
    md = rows_to_markdown({"rows": rows, "model": "x"})
    assert "vs fewest threads" in md and "of read bandwidth" in md and "of int8 peak" in md
    path = tmp_path / "m.json"
    from edgekit.bench.report import save_json

    save_json(document({"rows": rows, "roofline": {"1": LIMITS[1]}}), path)
    doc = json.loads(path.read_text())
    assert doc["rows"][1]["bandwidth_fraction"] == rows[1]["bandwidth_fraction"] and doc["roofline"]["1"]


def test_bad_input_is_one_clear_error(tmp_path):
    bad = tmp_path / "notes.ekq"
    bad.write_text("not an artifact")
    for args in (["bench", "roofline", str(bad)], ["bench", "roofline", str(tmp_path / "nope.ekq")],
                 ["bench", "roofline", "--threads", "0"], ["bench", "model", str(bad), "--threads", "0"],
                 ["bench", "model", str(bad), "--threads", "1,x"]):
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 2, (args, res.output)
        assert res.output.count("error:") == 1 and "Traceback" not in res.output, (args, res.output)
    with pytest.raises(EdgekitError, match="--threads must be"):
        bm.thread_counts([1, 0])
    with pytest.raises(EdgekitError, match="--threads must be"):
        rl.measure(0)
