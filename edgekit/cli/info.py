"""``edgekit info``: versions, CPU features and the kernels compiled and chosen."""

from __future__ import annotations

import click

from edgekit.cli.common import echo_json, friendly


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@friendly
def info(as_json):
    """Versions, CPU features and the kernel implementations compiled and chosen."""
    from edgekit.native.info import collect_info, render_info

    data = collect_info()
    if as_json:
        echo_json(data)
    else:
        render_info(data)
