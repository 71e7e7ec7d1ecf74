"""``edgekit export``: an artifact (or a float model) to GGUF for llama.cpp or to an ONNX directory."""

from __future__ import annotations

import click

from edgekit.cli.common import EdgekitError, echo_json, friendly


@click.command()
@click.argument("model")
@click.option("--format", "fmt", type=click.Choice(["gguf", "onnx"]), default="gguf", show_default=True,
              help="Output format (gguf: a file llama.cpp loads unchanged; onnx: a directory ONNX Runtime loads, "
                   "quantized linears as com.microsoft.MatMulNBits).")
@click.option("-o", "--output", type=click.Path(), required=True, help="File (gguf) or directory (onnx) to write.")
@click.option("--bits", type=click.Choice(["16"]), default=None,
              help="gguf only. 16: write the unquantized MODEL (alias or .gguf) as an F16 GGUF instead of exporting "
                   "an artifact.")
@click.option("--embed-type", type=click.Choice(["q8_0", "f16"]), default=None,
              help="gguf only: type of the token embedding (and an untied head) in an artifact's export [q8_0].")
@click.option("--accuracy-level", type=click.Choice(["4", "1"]), default=None,
              help="onnx only: MatMulNBits compute, 4 = int8 activations per block [default], 1 = fp32 (the "
                   "weight-only model; slower).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@friendly
def export(model, fmt, output, bits, embed_type, accuracy_level, as_json):
    """Export an artifact (or, with --bits 16, a float MODEL) for another engine: MODEL -> OUTPUT.

    MODEL may also be the T5 student of `edgekit distill` (DIR/student): gguf writes llama.cpp's t5 architecture
    (F32, or F16 with --bits 16), onnx optimum's encoder / decoder / decoder-with-past graphs (float32)."""
    if fmt == "onnx":
        from edgekit.export.onnx import export_onnx

        if bits or embed_type:
            raise EdgekitError(f"{'--bits' if bits else '--embed-type'} applies to --format gguf only; the ONNX "
                               "export keeps the artifact's bits and its float embedding")
        res = export_onnx(model, output, accuracy_level=int(accuracy_level) if accuracy_level else None)
        if as_json:
            echo_json(res)
        elif res["task"] == "seq2seq":
            click.echo(f"wrote {res['path']}/ ({res['bytes'] / 2 ** 20:.1f} MiB; encoder-decoder, float32: "
                       f"{', '.join(res['files'])}; {res['seconds']:.1f} s)")
        else:
            click.echo(f"wrote {res['path']}/ ({res['bytes'] / 2 ** 20:.1f} MiB; {res['task']}; "
                       f"{res['matmulnbits']} MatMulNBits; {res['seconds']:.1f} s)")
        return
    from edgekit.export.gguf import export_gguf

    if accuracy_level:
        raise EdgekitError("--accuracy-level applies to --format onnx only")
    res = export_gguf(model, output, bits=int(bits) if bits else None, embed_type=embed_type)
    if res.get("notice"):
        click.echo(f"notice: {res['notice']}", err=True)
    if as_json:
        echo_json(res)
    else:
        types = ", ".join(f"{n} {k}" for k, n in sorted(res["types"].items()))
        click.echo(f"wrote {res['path']} ({res['bytes'] / 2 ** 20:.1f} MiB; {res['tensors']} tensors: {types}; "
                   f"{res['seconds']:.1f} s)")
