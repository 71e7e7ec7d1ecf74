"""edgekit distill on tiny models: the strict student YAML, the loss against a hand computation, the top-k KL
against the full KL, the teacher/student position alignment, the schedule and data order, exact resume, the man-page
split, the whole stage on a tiny teacher, and one clear error per bad input."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from transformers import T5ForConditionalGeneration

from edgekit.cli import main
from edgekit.distill.config import load_student_config
from edgekit.distill.loss import full_kl, kd_loss, topk_kl
from edgekit.distill.pairs import build_pairs, man_page_split, windows
from edgekit.distill.student import build_student, check_teacher, parameter_counts, student_logits
from edgekit.distill.teacher import load_cache, save_cache, score_topk, teacher_logprobs
from edgekit.distill.train import batch_rows, lr_factor, train
from edgekit.errors import EdgekitError

from distill_util import TOK, V, random_pairs, tiny_student_cfg, tiny_teacher, tiny_train_cfg

# --- config ---------------------------------------------------------------------------------------------------------

def test_shipped_student_configs_load_and_are_sized_as_documented():
    d, large = load_student_config(), load_student_config("large")
    assert (d.student.encoder_layers, d.student.decoder_layers, d.student.d_model) == (6, 2, 576)
    assert (large.student.encoder_layers, large.student.decoder_layers) == (16, 8)
    assert d.train.kd_weight == 0.5 and d.student.init_from_teacher == ("embedding", "final_norm")
    # the counts the default YAML's description states (the teacher's 106.2 M non-embedding: tests/model)
    from transformers import T5Config

    from edgekit.distill.student import t5_config

    with torch.device("meta"):
        m = T5ForConditionalGeneration(t5_config(d.student, TOK))
    counts = parameter_counts(m)
    assert abs(counts["non_embedding"] / 1e6 - 34.5) < 0.1 and counts["embedding"] == 49152 * 576
    assert isinstance(m.config, T5Config) and m.config.dense_act_fn == "gelu_pytorch_tanh" and m.config.is_gated_act


@pytest.mark.parametrize("text, needle", [
    ("encoder_layer: 2\n", "unknown key 'encoder_layer'"),
    ("train: {stepz: 3}\n", "unknown key 'stepz'"),
    ("train: 5\n", "train must be a mapping"),
    ("init_from_teacher: [embedding, heads]\n", "init_from_teacher must be a list drawn from"),
    ("decoder_layers: 0\n", "decoder_layers must be an integer >= 1"),
    ("train: {kd_weight: 1.5}\n", "kd_weight must be in [0, 1]"),
])
def test_student_yaml_is_strict(tmp_path, text, needle):
    p = tmp_path / "s.yaml"
    p.write_text(text)
    with pytest.raises(EdgekitError) as e:
        load_student_config(str(p))
    assert needle in str(e.value)


def test_command_line_overrides_are_checked_like_the_yaml():
    cfg = load_student_config().with_train(steps=7, kd_weight=0.0, lr=None)
    assert cfg.train.steps == 7 and cfg.train.kd_weight == 0.0 and cfg.train.lr == 1e-3
    with pytest.raises(EdgekitError, match="batch must be an integer >= 1"):
        load_student_config().with_train(batch=0)


# --- loss -----------------------------------------------------------------------------------------------------------

def test_kd_loss_equals_a_hand_computation():
    s_logits = torch.tensor([[[1.0, 0.0, -1.0, 2.0]]])  # B=1, C=1, V=4
    t_logp = torch.log(torch.tensor([[[0.5, 0.3]]]))  # teacher: p(3)=0.5, p(0)=0.3, tail 0.2
    t_idx = torch.tensor([[[3, 0]]])
    target = torch.tensor([[0]])
    z = sum(math.exp(x) for x in (1.0, 0.0, -1.0, 2.0))
    q = [math.exp(x) / z for x in (1.0, 0.0, -1.0, 2.0)]
    kl = 0.5 * math.log(0.5 / q[3]) + 0.3 * math.log(0.3 / q[0]) + 0.2 * math.log(0.2 / (q[1] + q[2]))
    ce = -math.log(q[0])
    out = kd_loss(s_logits, target, t_logp, t_idx, 0.9)
    assert out["kl"].item() == pytest.approx(kl, rel=1e-6)
    assert out["ce"].item() == pytest.approx(ce, rel=1e-6)
    assert out["loss"].item() == pytest.approx(0.9 * kl + 0.1 * ce, rel=1e-6)
    ce_only = kd_loss(s_logits, target, None, None, 0.0)
    assert ce_only["loss"].item() == pytest.approx(ce, rel=1e-6) and ce_only["kl"].item() == 0.0


def test_topk_kl_is_exact_at_k_equal_v_and_close_below_the_full_kl():
    g = torch.Generator().manual_seed(0)
    t = torch.log_softmax(torch.randn(4, 16, 200, generator=g) * 4, -1)  # peaked, like an LM's
    s = torch.log_softmax(t + 0.3 * torch.randn(4, 16, 200, generator=g), -1)
    full = full_kl(t, s)
    all_v = t.topk(200, -1)
    assert torch.allclose(topk_kl(all_v.values, all_v.indices, s), full, atol=1e-5)
    top = t.topk(64, -1)
    approx = topk_kl(top.values, top.indices, s)
    assert (approx <= full + 1e-6).all()  # the reduced distributions' KL never exceeds the full one
    assert (full - approx).abs().mean() < 0.02 * full.mean()
    renorm = (top.values.exp() / top.values.exp().sum(-1, keepdim=True))
    naive = (renorm * (renorm.log() - s.gather(-1, top.indices))).sum(-1)  # what the tail bucket is better than
    assert (full - approx).abs().mean() < (full - naive).abs().mean()


# --- alignment ------------------------------------------------------------------------------------------------------

def test_teacher_logprobs_are_the_continuation_positions():
    teacher = tiny_teacher()
    pairs = random_pairs(2)
    pre, con = torch.from_numpy(pairs.prefix), torch.from_numpy(pairs.cont)
    got = teacher_logprobs(teacher, pre, con)
    for j in range(con.shape[1]):  # position j: the teacher after prefix + cont[:j], its last logits
        seq = torch.cat([pre, con[:, :j]], 1)
        want = torch.log_softmax(teacher(input_ids=seq).logits[:, -1], -1)
        assert torch.allclose(got[:, j], want, atol=1e-5), j


def test_student_output_j_sees_the_continuation_only_before_j():
    student = build_student(tiny_student_cfg(init_from_teacher=[]), tiny_teacher(), TOK).eval()
    pairs = random_pairs(1)
    pre, con = torch.from_numpy(pairs.prefix), torch.from_numpy(pairs.cont)
    base = student_logits(student, pre, con)
    changed = con.clone()
    changed[0, 3] = (changed[0, 3] + 1) % V
    other = student_logits(student, pre, changed)
    assert torch.equal(base[:, :4], other[:, :4])  # outputs 0..3 predict cont[0..3]: they do not read cont[3]
    assert not torch.allclose(base[:, 4], other[:, 4])


def test_init_from_teacher_gives_the_teachers_head():
    teacher = tiny_teacher()
    with torch.no_grad():
        teacher.model.norm.weight.uniform_(0.5, 2.0)
    student = build_student(tiny_student_cfg(), teacher, TOK).eval()
    assert torch.equal(student.shared.weight, teacher.model.embed_tokens.weight)
    h = torch.randn(3, 32)
    s_head = student.lm_head(student.decoder.final_layer_norm(h) * 32 ** -0.5)  # what HF's tied T5 computes
    t_head = teacher.lm_head(teacher.model.norm(h))
    assert torch.allclose(s_head, t_head, atol=1e-3, rtol=1e-3)


# --- schedule, data order, checkpoints ------------------------------------------------------------------------------

def test_schedule_warms_up_then_decays_to_the_floor():
    cfg = tiny_train_cfg(steps=10, warmup_steps=4, min_lr_ratio=0.1)
    f = [lr_factor(s, cfg) for s in range(10)]
    assert f[:4] == [0.25, 0.5, 0.75, 1.0]
    assert all(a >= b for a, b in zip(f[3:], f[4:])) and lr_factor(10, cfg) == pytest.approx(0.1)


def test_each_epoch_visits_every_pair_once_and_ranks_split_the_global_batch():
    cfg = tiny_train_cfg(batch=4)
    seen = np.concatenate([batch_rows(s, cfg, 8) for s in range(2)])
    assert sorted(seen.tolist()) == list(range(8))
    for s in range(5):
        assert np.array_equal(np.concatenate([batch_rows(s, cfg, 8, r, 2) for r in range(2)]), batch_rows(s, cfg, 8))


def _fresh(topk_pairs):
    teacher, pairs, topk = topk_pairs
    return build_student(tiny_student_cfg(), teacher, TOK, seed=0)


@pytest.fixture(scope="module")
def topk_pairs():
    teacher = tiny_teacher()
    pairs = random_pairs(10)
    v, i, _ = score_topk(teacher, pairs, 8, progress=False)
    return teacher, pairs, (v, i)


def test_resume_gives_the_weights_of_an_uninterrupted_run(tmp_path, topk_pairs):
    _, pairs, topk = topk_pairs
    cfg = tiny_train_cfg()
    fp = {"config": "x"}
    full = _fresh(topk_pairs)
    r_full = train(full, pairs, topk, cfg, ckpt_dir=tmp_path / "a", fingerprint=fp, progress=False)
    part = _fresh(topk_pairs)
    r1 = train(part, pairs, topk, cfg, ckpt_dir=tmp_path / "b", fingerprint=fp, progress=False, stop_after=4)
    assert r1["steps"] == 4 and sorted(p.name for p in (tmp_path / "b").iterdir()) == ["step-000003.pt"]
    resumed = _fresh(topk_pairs)  # a new process: fresh weights, everything else from the checkpoint of step 3
    r2 = train(resumed, pairs, topk, cfg, ckpt_dir=tmp_path / "b", fingerprint=fp, resume=True, progress=False)
    assert r2["start_step"] == 3 and r2["steps"] == 6
    assert [h["loss"] for h in r2["history"]] == [h["loss"] for h in r_full["history"]]
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert r_full["history"][-1]["loss"] < r_full["history"][0]["loss"]  # it trains


def test_resume_from_another_config_is_one_clear_error(tmp_path, topk_pairs):
    _, pairs, topk = topk_pairs
    cfg = tiny_train_cfg(steps=3)
    train(_fresh(topk_pairs), pairs, topk, cfg, ckpt_dir=tmp_path, fingerprint={"config": {"steps": 3}},
          progress=False)
    with pytest.raises(EdgekitError, match=r"another config \(config.steps: 3 in the checkpoint, 4 now\)"):
        train(_fresh(topk_pairs), pairs, topk, cfg, ckpt_dir=tmp_path, fingerprint={"config": {"steps": 4}},
              resume=True, progress=False)


def test_teacher_cache_round_trips_and_refuses_another_meta(tmp_path, topk_pairs):
    _, _, (v, i) = topk_pairs
    save_cache(tmp_path / "c.npz", v, i, {"k": 8}, 1.5)
    got = load_cache(tmp_path / "c.npz", {"k": 8})
    assert np.array_equal(got[0], v) and np.array_equal(got[1], i) and i.dtype == np.int32 and got[2] == 1.5
    assert load_cache(tmp_path / "c.npz", {"k": 16}) is None and load_cache(tmp_path / "none.npz", {}) is None


# --- data -----------------------------------------------------------------------------------------------------------

def test_man_page_split_keeps_test_man_out_and_holds_out_about_one_in_twenty():
    from edgekit.data import MAN_PAGES

    assert all(man_page_split(n) == "test" for n in MAN_PAGES)
    names = [f"page{i}" for i in range(4000)]
    val = sum(man_page_split(n) == "val" for n in names)
    assert 150 < val < 250 and man_page_split("page7") == man_page_split("page7")


def test_man_train_and_val_pages_are_disjoint():
    from edgekit.data import MAN_DIR, MAN_PAGES
    from edgekit.distill.pairs import man_pages

    if not MAN_DIR.is_dir() or len(list(MAN_DIR.iterdir())) < 100:
        pytest.skip(f"no man pages in {MAN_DIR}")
    tr, va = man_pages("train", 0), man_pages("val")
    assert tr and va and not {p.name for p in tr} & {p.name for p in va}
    assert not any(p.name.split(".1")[0] in MAN_PAGES for p in tr + va)
    assert man_pages("train", 1) != tr and sorted(man_pages("train", 1)) == sorted(tr)  # the seed orders, not picks


def test_windows_and_data_files(tmp_path):
    ids = np.arange(25)
    w = windows(ids, 4, 2)
    assert len(w) == 4 and w[1][0].tolist() == [6, 7, 8, 9] and w[1][1].tolist() == [10, 11]
    tok = lambda text, add_special_tokens=False: {"input_ids": [len(x) for x in text.split()]}  # noqa: E731
    f = tmp_path / "t.txt"
    f.write_text(" ".join(["ab"] * 130))
    tr, va, info = build_pairs(tok, tiny_train_cfg(prefix_len=8, cont_len=4, train_pairs=100, val_pairs=5), [str(f)])
    assert len(tr) + len(va) == 10 and len(va) == 1 and info["documents"] == 1
    assert va.prefix[0].tolist() == [2] * 8  # window 9 held out
    few = tmp_path / "few.txt"
    few.write_text(" ".join("x" * k for k in range(1, 61)))  # tokens 1..60: 5 windows, the last one held out
    tr, va, _ = build_pairs(tok, tiny_train_cfg(prefix_len=8, cont_len=4, train_pairs=100, val_pairs=5), [str(few)])
    assert len(tr) == 4 and va.prefix.tolist() == [list(range(49, 57))] and va.cont.tolist() == [[57, 58, 59, 60]]
    assert tr.prefix[:, 0].tolist() == [1, 13, 25, 37]
    short = tmp_path / "short.txt"
    short.write_text("a b c d e f g h i j k l m")
    with pytest.raises(EdgekitError, match=r"1 window\(s\) of prefix_len \+ cont_len = 8 \+ 4 = 12 tokens"):
        build_pairs(tok, tiny_train_cfg(prefix_len=8, cont_len=4), [str(short)])
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    with pytest.raises(EdgekitError, match="is empty"):
        build_pairs(tok, tiny_train_cfg(), [str(empty)])


# --- teacher checks and the whole stage -----------------------------------------------------------------------------

def test_a_teacher_that_is_not_a_causal_lm_or_has_another_vocabulary_is_refused():
    enc = SimpleNamespace(task="encoder", family="bert", source=SimpleNamespace(spec="minilm-l6"))
    with pytest.raises(EdgekitError, match="is a bert encoder, not a causal LM"):
        check_teacher(enc, tiny_student_cfg())
    lm = SimpleNamespace(task="causal-lm", family="llama", config=SimpleNamespace(vocab_size=V, hidden_size=32),
                         tokenizer=[0] * V, source=SimpleNamespace(spec="t"))
    check_teacher(lm, tiny_student_cfg())
    with pytest.raises(EdgekitError, match="vocab_size 100 is not the teacher's"):
        check_teacher(lm, tiny_student_cfg(vocab_size=100))
    with pytest.raises(EdgekitError, match="needs d_model = the teacher's width 32"):
        check_teacher(lm, tiny_student_cfg(d_model=48))


def _student_yaml(tmp_path, vocab, **train):
    cfg = {"encoder_layers": 2, "decoder_layers": 1, "d_model": 64, "d_ff": 64, "num_heads": 4, "d_kv": 16,
           "vocab_size": vocab, "train": {"steps": 4, "batch": 2, "warmup_steps": 1, "top_k": 8, "prefix_len": 24,
                                          "cont_len": 8, "train_pairs": 8, "val_pairs": 2, "checkpoint_every": 2,
                                          **train}}
    p = tmp_path / "student.yaml"
    p.write_text(json.dumps(cfg))  # JSON is YAML
    return p


def test_distill_end_to_end_on_a_tiny_teacher(tiny_llama_dir, tmp_path):
    from edgekit.distill.api import distill_model
    from transformers import AutoConfig

    vocab = AutoConfig.from_pretrained(tiny_llama_dir).vocab_size
    text = tmp_path / "text.txt"
    text.write_text(" ".join(f"word{i % 97} and more words number {i}." for i in range(400)))
    cfg = load_student_config(str(_student_yaml(tmp_path, vocab)))
    res = distill_model(str(tiny_llama_dir), cfg, tmp_path / "run", data=[str(text)], progress=False)
    out = tmp_path / "run"
    assert res.student == out / "student" and (out / "distill.json").is_file()
    assert (out / "work" / "teacher-topk.npz").is_file()
    assert sorted(p.name for p in (out / "work" / "checkpoints").iterdir()) == ["step-000004.pt"]
    r = json.loads((out / "distill.json").read_text())
    assert len(r["loss_curve"]) == 4 and r["train"]["tokens_per_s"] > 0 and r["held_out"]["pairs"] == 2
    assert r["held_out"]["student_nll"] > 0 and r["held_out"]["kl_full"] >= r["held_out"]["kl_topk"] - 1e-6
    loaded = T5ForConditionalGeneration.from_pretrained(out / "student").eval()
    assert loaded.config.vocab_size == vocab and (out / "student" / "tokenizer_config.json").is_file()
    # the saved weights are the trained ones: the report's held-out NLL again from the files
    from edgekit.distill.teacher import compare
    from edgekit.models import load_model

    lm = load_model(str(tiny_llama_dir))
    _, val, _ = build_pairs(lm.tokenizer, cfg.train, [str(text)])
    again = compare(loaded, lm.model, val, 8)
    assert again["student_nll"] == pytest.approx(r["held_out"]["student_nll"], abs=1e-4)
    assert again["teacher_nll"] == pytest.approx(r["held_out"]["teacher_nll"], abs=1e-4)
    assert not any(p.name.startswith(".") for p in out.iterdir())  # no temporary left behind
    # a second run into the finished directory, and --resume of it, are refused
    with pytest.raises(EdgekitError, match="exists and is not empty"):
        distill_model(str(tiny_llama_dir), cfg, out, data=[str(text)], progress=False)
    with pytest.raises(EdgekitError, match="is finished already"):
        distill_model(str(tiny_llama_dir), cfg, out, data=[str(text)], resume=True, progress=False)


def test_cli_refuses_bad_input_with_one_line(tmp_path, tiny_llama_dir):
    runner = CliRunner()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    cases = [
        (["--teacher", "t", "-o", str(tmp_path / "full")], "exists and is not empty"),
        (["--teacher", "t", "-o", str(tmp_path / "new"), "--resume"], "has no work/ folder"),
        (["--teacher", "t", "--student", "nope", "-o", str(tmp_path / "n2")], "student config not found: nope"),
        (["--teacher", "t", "-o", str(tmp_path / "n3"), "--steps", "0"], "steps must be an integer >= 1"),
        (["--teacher", str(tiny_llama_dir), "-o", str(tmp_path / "n4")], "vocab_size 49152 is not the teacher's"),
        (["--teacher", "minilm-l6", "-o", str(tmp_path / "n5")], "is a bert encoder, not a causal LM"),
    ]
    for args, needle in cases:
        res = runner.invoke(main, ["distill", *args])
        assert res.exit_code == 2, (args, res.output)
        lines = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
        assert len(lines) == 1 and needle in lines[0], (args, res.output)


def test_an_interrupted_run_resumed_writes_the_uninterrupted_student(tiny_llama_dir, tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoConfig

    from edgekit.distill.api import distill_model

    vocab = AutoConfig.from_pretrained(tiny_llama_dir).vocab_size
    text = tmp_path / "text.txt"
    text.write_text(" ".join(f"line {i} of the text, word{i % 89}." for i in range(300)))
    cfg = load_student_config(str(_student_yaml(tmp_path, vocab)))
    kw = dict(data=[str(text)], progress=False)
    distill_model(str(tiny_llama_dir), cfg, tmp_path / "a", **kw)
    cut = distill_model(str(tiny_llama_dir), cfg, tmp_path / "b", stop_after=3, **kw)
    assert cut.student is None and not (tmp_path / "b" / "student").exists()  # no half-written student
    # step 3 is lost (the last checkpoint is step 2); the resumed run redoes it from the checkpoint
    assert sorted(p.name for p in (tmp_path / "b" / "work" / "checkpoints").iterdir()) == ["step-000002.pt"]
    res = distill_model(str(tiny_llama_dir), cfg, tmp_path / "b", resume=True, **kw)
    assert res.report["train"]["start_step"] == 2 and res.report["teacher_cache_reused"]
    ra, rb = (json.loads((tmp_path / d / "distill.json").read_text()) for d in ("a", "b"))
    assert [h["loss"] for h in ra["loss_curve"]] == [h["loss"] for h in rb["loss_curve"]]
    wa, wb = (load_file(str(tmp_path / d / "student" / "model.safetensors")) for d in ("a", "b"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    other = cfg.with_train(lr=2e-3)  # a checkpoint of another config is refused, naming the difference
    (tmp_path / "b" / "student").rename(tmp_path / "b-student")
    with pytest.raises(EdgekitError, match=r"another config \(config.train.lr: 0.001 in the checkpoint, 0.002 now\)"):
        distill_model(str(tiny_llama_dir), other, tmp_path / "b", resume=True, **kw)
