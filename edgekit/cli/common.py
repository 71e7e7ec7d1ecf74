"""What every ``edgekit`` command shares: error handling, ``--threads``, ``--json`` output, tables and list options.

A leaf of the command line: it imports click, edgekit's error type, the engine registry's names and the table writer
(:mod:`edgekit.bench.report`, standard library only), so that every command module can import it and
``edgekit --help`` stays instant (torch, numpy and rich load inside the commands that use them).
"""

from __future__ import annotations

import json

import click

from edgekit.bench.report import print_rows  # result tables: (key, header, format) columns; stdlib-only module
from edgekit.engines import NAMES
from edgekit.errors import EdgekitError, friendly

__all__ = ["ENGINES", "EdgekitError", "echo_json", "friendly", "int_list", "parse_layers", "print_rows",
           "set_threads"]

# --engine values of eval/run: the engine registry's names and aliases (edgekit.engines imports nothing heavy),
# except ``torch``, which is ``edgekit bench model``'s name for the fake engine and was never an eval/run choice
ENGINES = [n for n in NAMES if n != "torch"]


def set_threads(threads: int | None) -> None:
    """Apply ``--threads`` to torch and to the native kernels' pool (imported only when the option is given)."""
    if threads:
        import torch

        from edgekit import _C

        torch.set_num_threads(threads)
        _C.set_num_threads(threads)


def echo_json(data) -> None:
    """Print ``data`` as indented JSON (what ``--json`` flags print)."""
    click.echo(json.dumps(data, indent=2))


def int_list(value: str, what: str) -> list[int]:
    """``"1,2,4"`` → ``[1, 2, 4]`` for the option ``--what``.

    Raises:
        EdgekitError: anything but a non-empty comma-separated list of positive integers.
    """
    try:
        out = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise EdgekitError(f"--{what} must be a comma-separated list of integers, got {value!r}") from None
    if not out or any(v <= 0 for v in out):
        raise EdgekitError(f"--{what} needs at least one positive integer, got {value!r}")
    return out


def parse_layers(text: str | None) -> tuple[int, ...] | None:
    """``"12,14,16"`` → ``(12, 14, 16)``; None/empty → None (the ``--prune-layers`` option).

    Raises:
        EdgekitError: anything but comma-separated non-negative integers.
    """
    if not text:
        return None
    try:
        layers = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise EdgekitError(f"--prune-layers must be comma-separated layer indices such as 12,14,16; got {text!r}") \
            from None
    if not layers or min(layers) < 0:
        raise EdgekitError(f"--prune-layers must be comma-separated layer indices >= 0; got {text!r}")
    return layers
