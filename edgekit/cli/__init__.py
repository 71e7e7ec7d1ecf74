"""The ``edgekit`` command line: the ``main`` group and one module per command group.

Each command parses its options, builds a config and calls one library function. Heavy imports (torch,
transformers) happen inside the commands so that ``edgekit --help`` stays instant; what the commands share is in
:mod:`edgekit.cli.common`.
"""

from __future__ import annotations

import click

from edgekit.cli.acm import acm, acm_eval
from edgekit.cli.bench import bench
from edgekit.cli.build import build
from edgekit.cli.device import bundle, device
from edgekit.cli.distill import distill
from edgekit.cli.eval import eval_cmd, run
from edgekit.cli.export import export
from edgekit.cli.info import info
from edgekit.cli.prune import prune_stats
from edgekit.cli.quantize import imatrix, quantize

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="edgekit")
def main():
    """edgekit: Agile-Quant W4A8 quantization and fast CPU inference for small language models."""


for _command in (info, quantize, imatrix, eval_cmd, run, build, bundle, device, export, bench, prune_stats, acm,
                 acm_eval, distill):
    main.add_command(_command)
