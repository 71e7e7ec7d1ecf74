"""``edgekit bundle`` and ``edgekit device run / report``: take an artifact to a phone or a Pi and measure it there
(:mod:`edgekit.device`)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgekit.cli.common import EdgekitError, echo_json, friendly

BUNDLE_TARGETS = ("rpi4", "rpi5", "android-arm64", "x86-64")


@click.command()
@click.argument("artifact", type=click.Path(dir_okay=False))
@click.option("--target", "target_name", required=True,
              help=f"Device profile: {', '.join(BUNDLE_TARGETS)} (any name from targets/, or a YAML path).")
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="The bundle directory to create (must not exist).")
@click.option("--build-dir", type=click.Path(file_okay=False), default=None,
              help="Build directory of the architecture's programs (default: under ~/.cache/edgekit).")
@click.option("--jobs", type=int, default=2, show_default=True, help="Parallel compile jobs.")
@click.option("--llama-bench", "llama_bench", type=click.Path(dir_okay=False), default=None,
              help="A llama-bench built for the target: the bundle then carries llama.cpp too, and device run "
                   "measures it beside edgekit (same tests, threads, device).")
@click.option("--llama-gguf", type=click.Path(dir_okay=False), default=None,
              help="The GGUF llama-bench runs (default: llama.cpp's own Q4_0 requantization of the artifact's "
                   "source, made with llama-cpp-python).")
@friendly
def bundle(artifact, target_name, out_dir, build_dir, jobs, llama_bench, llama_gguf):
    """Write a device bundle of ARTIFACT: static edgekit-bench / edgekit-generate, the model, its tokenizer, golden
    logits, manifest.json and run.sh (no Python needed on the device)."""
    from edgekit.device.bundle import make_bundle

    out = make_bundle(artifact, target_name, out_dir, build_dir=build_dir, jobs=jobs, llama_bench=llama_bench,
                      llama_gguf=llama_gguf)
    manifest = json.loads((out / "manifest.json").read_text())
    req = ", ".join(manifest["isa"]["required"]) or "nothing beyond the architecture"
    peer = " and llama.cpp (./run.sh llama-bench)" if manifest.get("llama_cpp") else ""
    click.echo(f"wrote {out} for {manifest['target']['name']} ({manifest['target']['arch']}; requires {req}) with "
               f"edgekit{peer}; on the device: ./run.sh")


@click.group()
def device():
    """Run bundles on devices and compare their results."""


@device.command("run")
@click.argument("bundle_dir", metavar="BUNDLE", type=click.Path(file_okay=False))
@click.argument("address", metavar="[HOST|SERIAL]", required=False)
@click.option("--via", type=click.Choice(["local", "ssh", "adb"]), default="local", show_default=True,
              help="local: this machine; ssh HOST; adb [SERIAL].")
@click.option("--bench-args", default="", help='Extra edgekit-bench options, e.g. "-p 128 -n 64 --cores big".')
@click.option("-o", "--output", "out", type=click.Path(dir_okay=False), default=None,
              help="Where to write the JSON lines (default: <bundle>-<via>.jsonl here).")
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON instead of a table.")
@click.option("--timeout", type=float, default=3600, show_default=True, help="Seconds for the whole run.")
@click.option("--no-llama", is_flag=True, help="Skip the bundle's llama-bench (when it carries one).")
@friendly
def device_run(bundle_dir, address, via, bench_args, out, as_json, timeout, no_llama):
    """Push BUNDLE to a device, run it there (verification first), pull the JSON lines back.

    \b
      edgekit device run BUNDLE --via local
      edgekit device run BUNDLE --via ssh pi@raspberrypi.local
      edgekit device run BUNDLE --via adb [SERIAL]
    """
    import shlex

    from edgekit.bench.report import save_jsonl
    from edgekit.device.report import load_runs, markdown
    from edgekit.device.run import run_bundle

    if via == "ssh" and not address:
        raise EdgekitError("--via ssh needs HOST after the bundle: edgekit device run BUNDLE --via ssh HOST")
    records = run_bundle(bundle_dir, via, address, shlex.split(bench_args), timeout=timeout, llama_cpp=not no_llama)
    path = Path(out) if out else Path(f"{Path(bundle_dir).resolve().name}-{via}.jsonl")
    save_jsonl(records, path)
    if as_json:
        echo_json(records)
    else:
        click.echo(markdown(load_runs([path])))
        click.echo(f"\nwrote {path}")


@device.command("report")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="Also write a PNG bar chart here.")
@friendly
def device_report(files, plot):
    """A Markdown table of edgekit-bench JSON lines side by side; from two files on, runs whose intervals do not
    overlap the first file's are flagged."""
    from edgekit.device.report import load_runs, markdown
    from edgekit.device.report import plot as draw

    runs = load_runs(files)
    click.echo(markdown(runs))
    if plot:
        draw(runs, plot)
        click.echo(f"\nwrote {plot}")
