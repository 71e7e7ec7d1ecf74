"""``edgekit eval`` (perplexity, or continuation perplexity with token pruning) and ``edgekit run`` (generation)."""

from __future__ import annotations

import click

from edgekit.cli.common import ENGINES, EdgekitError, echo_json, friendly, print_rows, set_threads
from edgekit.cli.prune import eval_options, run_continuation_eval


@click.command(name="eval")
@click.argument("model")
@click.option("--data", "data_paths", multiple=True, type=click.Path(dir_okay=False),
              help="Held-out text/JSONL file (repeatable). Default: Debian's license texts.")
@click.option("--set", "sets", multiple=True,
              help="Named evaluation set (repeatable or comma-separated): dev (the license texts; choose on it), "
                   "test-man, test-docstrings (report only). Default: --data, else dev. See edgekit.data.EVAL_SETS.")
@click.option("--ctx", type=int, default=512, show_default=True, help="Window length in tokens.")
@click.option("--max-tokens", type=int, default=4096, show_default=True, help="Tokens evaluated at most.")
@click.option("--compare-reference", is_flag=True, help="Also evaluate the artifact's float source model.")
@click.option("--engine", type=click.Choice(ENGINES), default=None,
              help="fake: PyTorch fake-quant reference; kernels: edgekit's C++ int4 x int8 kernels under PyTorch; "
                   "runtime (= edgekit): the whole forward pass in edgekit's C++ engine; llama.cpp: a .gguf "
                   "export; onnxruntime: an ONNX export directory. Default: onnxruntime for an ONNX export, "
                   "else fake.")
@click.option("--threads", type=int, default=None, help="CPU threads (default: all).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@eval_options
@friendly
def eval_cmd(model, data_paths, sets, ctx, max_tokens, compare_reference, engine, threads, as_json, prefix_len,
             score_len, max_windows, prune_ratio, prune_start_layer, prune_layers):
    """Perplexity of MODEL, an artifact or an export on held-out text (cosine vs float for encoders).

    With --prefix-len: continuation perplexity of a pruned prefill (token pruning), next to the unpruned model."""
    from edgekit.eval.evaluate import evaluate

    set_threads(threads)
    if prefix_len is not None and sets:
        raise EdgekitError("--set applies to plain perplexity; continuation perplexity (--prefix-len) takes --data")
    from edgekit.engines import is_seq2seq

    if prefix_len is not None and is_seq2seq(model):
        return run_seq2seq_eval(model, list(data_paths), engine, as_json, prefix_len, score_len, max_windows,
                                compare_reference)
    if prefix_len is not None:
        return run_continuation_eval(model, list(data_paths), engine, as_json, prefix_len, score_len, max_windows,
                                     prune_ratio, prune_start_layer, prune_layers)
    if prune_ratio is not None or prune_start_layer is not None or prune_layers:
        raise EdgekitError("--prune-ratio/--prune-start-layer/--prune-layers apply to continuation perplexity: "
                           "add --prefix-len L")
    if sets and data_paths:
        raise EdgekitError("--data and --set are exclusive: a named set is its own text")
    res = evaluate(model, list(data_paths), ctx, max_tokens, compare_reference, progress=not as_json, engine=engine,
                   threads=threads, **({"sets": list(sets)} if sets else {}))
    if as_json:
        echo_json(res)
    elif res["task"] == "encoder":
        print_rows(res["rows"], [("model", "model", "{}"), ("cosine_mean", "mean cosine vs fp32", "{:.4f}"),
                                 ("cosine_min", "min cosine", "{:.4f}"), ("bits_per_weight", "bits/weight", "{:.2f}")],
                   f"{res['sentences']} held-out sentences")
    elif sets:
        print_rows(res["rows"], [("set", "set", "{}"), ("set_role", "role", "{}"), ("model", "model", "{}"),
                                 ("perplexity", "perplexity", "{:.3f}"), ("delta_pct", "Δ vs ref", "{:+.2f} %"),
                                 ("windows", "windows", "{}"), ("tokens", "tokens", "{}")],
                   f"windows of {ctx} tokens, at most {max_tokens} per set; choose on dev, report test sets",
                   left=("set", "role", "model"))
    else:
        print_rows(res["rows"], [("model", "model", "{}"), ("perplexity", "perplexity", "{:.3f}"),
                                 ("delta_pct", "Δ vs ref", "{:+.2f} %"), ("bits_per_weight", "bits/weight", "{:.2f}"),
                                 ("tokens", "tokens", "{}")],
                   f"{res['windows']} windows × {res['ctx']} tokens of held-out text")


def run_seq2seq_eval(model, data_paths, engine, as_json, prefix_len, score_len, max_windows,
                     compare_reference) -> None:
    """The body of ``edgekit eval ENCDEC --prefix-len``: the encoder reads the prefix, the decoder is scored."""
    from edgekit.eval.continuation import evaluate_seq2seq_continuation

    res = evaluate_seq2seq_continuation(model, data_paths, prefix_len, score_len, engine, max_windows,
                                        compare_reference, progress=not as_json)
    if as_json:
        echo_json(res)
        return
    print_rows(res["rows"], [("model", "model", "{}"), ("continuation_ppl", "continuation ppl", "{:.3f}"),
                             ("continuation_nll", "NLL (nats/token)", "{:.3f}"),
                             ("continuation_delta_pct", "Δ", "{:+.2f} %"), ("ttft_s", "TTFT (s)", "{:.3f}")],
               f"{res['rows'][0]['windows']} windows: encoder prefix {prefix_len}, {score_len} decoder tokens scored")


@click.command()
@click.argument("model")
@click.option("--prompt", required=True, help="Text to continue.")
@click.option("--max-tokens", type=int, default=64, show_default=True)
@click.option("--temperature", type=float, default=0.0, show_default=True, help="0 = greedy (reproducible).")
@click.option("--top-k", type=int, default=0, show_default=True)
@click.option("--top-p", type=float, default=1.0, show_default=True)
@click.option("--chat", is_flag=True, help="Wrap the prompt in the model's chat template.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--engine", type=click.Choice(ENGINES), default=None,
              help="fake: PyTorch fake-quant; kernels: C++ int4 kernels under PyTorch; runtime (= edgekit): the C++ "
                   "engine; llama.cpp: a .gguf export; onnxruntime: an ONNX export directory. Default: onnxruntime "
                   "for an ONNX export, else fake.")
@click.option("--threads", type=int, default=None, help="CPU threads (default: all).")
@friendly
def run(model, prompt, max_tokens, temperature, top_k, top_p, chat, seed, engine, threads):
    """Generate text from MODEL, an artifact or an export, streamed as it is produced."""
    from edgekit.engines import pick_engine
    from edgekit.eval.generate import generate

    pick_engine(model, engine)  # a wrong engine is reported before the prompt is echoed
    set_threads(threads)
    click.echo(prompt, nl=False)
    generate(model, prompt, max_tokens, temperature, top_k, top_p, chat, seed, stream=True, engine=engine,
             threads=threads)
