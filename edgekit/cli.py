"""The ``edgekit`` command line.

Each command parses its options, builds a config and calls one library function. Heavy imports (torch,
transformers) happen inside the commands so that ``edgekit --help`` stays instant.
"""

from __future__ import annotations

import functools
import json
import sys

import click

from edgekit.errors import EdgekitError


def _friendly(fn):
    """Turn an :class:`EdgekitError` into one ``error:`` line and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except EdgekitError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(2)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="edgekit")
def main():
    """edgekit: Agile-Quant W4A8 quantization and fast CPU inference for small language models."""


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@_friendly
def info(as_json):
    """Versions, CPU features and the kernel implementations compiled and chosen."""
    from edgekit.runtime.info import collect_info, render_info

    data = collect_info()
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        render_info(data)


if __name__ == "__main__":
    main()
