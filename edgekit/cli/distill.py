"""``edgekit distill``: a T5 encoder-decoder student distilled from a causal-LM teacher (edgekit/distill)."""

from __future__ import annotations

from pathlib import Path

import click

from edgekit.cli.common import echo_json, friendly
from edgekit.distill.config import PRECISIONS
from edgekit.errors import EdgekitError


@click.command()
@click.option("--teacher", required=True, help="The teacher: a causal LM spec (alias such as smollm2-135m, HF "
                                               "directory, .gguf, hub id).")
@click.option("--student", "student", default=None,
              help="Student config name (recipes/students: default, large) or a YAML path.")
@click.option("-o", "--output", required=True, type=click.Path(),
              help="Run directory (new or empty; with --resume the interrupted run's); the student lands in "
                   "OUTPUT/student.")
@click.option("--steps", type=int, default=None, help="Optimizer steps (config default).")
@click.option("--batch", type=int, default=None, help="Pairs per step over all processes (config default).")
@click.option("--lr", type=float, default=None, help="Peak learning rate (config default).")
@click.option("--prefix-len", type=int, default=None, help="Prefix tokens the encoder reads (config default 256).")
@click.option("--cont-len", type=int, default=None, help="Continuation tokens the decoder produces (default 64).")
@click.option("--kd-weight", type=float, default=None,
              help="Weight of KL(teacher || student); 1 - it weighs CE (default 0.5; the paper: 0.9; 0: CE only).")
@click.option("--train-pairs", type=int, default=None, help="Distinct training pairs scored by the teacher.")
@click.option("--val-pairs", type=int, default=None, help="Held-out pairs for the report's NLL.")
@click.option("--checkpoint-every", type=int, default=None, help="Steps between checkpoints (0: only at the end).")
@click.option("--seed", type=int, default=None, help="Seed of pages, init, epochs (config default 0).")
@click.option("--data", "data_paths", multiple=True, type=click.Path(dir_okay=False),
              help="Training text or JSONL file (repeatable). Default: the machine's man pages.")
@click.option("--precision", type=click.Choice(PRECISIONS), default=None,
              help="Teacher scoring and student training arithmetic (config default auto: bf16 autocast where the "
                   "CPU/GPU has native bf16, else fp32).")
@click.option("--resume", is_flag=True, help="Continue the run in OUTPUT from its newest checkpoint.")
@click.option("--threads", type=int, default=None, help="CPU threads (default: all).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@friendly
def distill(teacher, student, output, steps, batch, lr, prefix_len, cont_len, kd_weight, train_pairs, val_pairs,
            checkpoint_every, seed, precision, data_paths, resume, threads, as_json):
    """Distill a T5 encoder-decoder student from the causal LM TEACHER: the encoder reads a prefix, the decoder
    learns the teacher's continuation (0.5 KL + 0.5 CE by default, the paper's 0.9 / 0.1 with --kd-weight 0.9).

    Run under `torchrun --nproc_per_node P` for data-parallel training (gloo on CPU, nccl on GPUs)."""
    from edgekit.distill.api import check_output
    from edgekit.distill.config import load_student_config

    cfg = load_student_config(student).with_train(
        steps=steps, batch=batch, lr=lr, prefix_len=prefix_len, cont_len=cont_len, kd_weight=kd_weight,
        train_pairs=train_pairs, val_pairs=val_pairs, checkpoint_every=checkpoint_every, seed=seed,
        precision=precision)
    check_output(output, resume)
    from edgekit.distill.api import distill_model

    res = distill_model(teacher, cfg, output, data=list(data_paths), resume=resume, threads=threads,
                        progress=not as_json)
    if res.student is None:  # a rank other than 0 under torchrun: rank 0 reports
        return
    r = res.report
    r["loss_plot"] = _plot_loss(Path(output), cfg.name, r)
    if as_json:
        echo_json({"output": str(res.student), **r})
        return
    p, h, t = r["params"], r["held_out"], r["train"]
    click.echo(f"wrote {res.student}  (student {p['student']['non_embedding'] / 1e6:.1f} M non-embedding + "
               f"{p['student']['embedding'] / 1e6:.1f} M embedding parameters, "
               f"{p['student_non_embedding_fraction']:.2f} of the teacher's non-embedding)")
    click.echo(f"  {t['steps']} steps in {t['seconds']:.0f} s ({t['tokens_per_s'] or 0:.0f} tok/s, {t['precision']}), "
               f"teacher scoring "
               f"{r['teacher_scoring_seconds']:.0f} s; held-out continuation NLL: student {h['student_nll']:.3f}, "
               f"teacher {h['teacher_nll']:.3f} nats/token; top-{h['top_k']} KL error {h['kl_abs_error']:.2e}")
    if r["loss_plot"]:
        click.echo(f"  loss curve: {r['loss_plot']}")


def _plot_loss(out: Path, name: str, report: dict) -> str | None:
    """The run's loss curve as loss.png next to its distill.json; None without matplotlib (the bench extra)."""
    from edgekit.bench.distill_report import plot_curves
    from edgekit.distill.api import LOSS_PLOT

    try:
        return str(plot_curves({name: report}, out / LOSS_PLOT))
    except EdgekitError:
        return None
