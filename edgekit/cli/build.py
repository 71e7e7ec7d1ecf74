"""``edgekit build``: cross-compile the native code for a device profile and run its kernel tests there."""

from __future__ import annotations

from pathlib import Path

import click

from edgekit.cli.common import friendly


@click.command()
@click.option("--target", "target_name", required=True,
              help="Device profile: a name from targets/ (rpi4, rpi5, android-arm64, x86-avx2, x86-avx512-vnni) "
                   "or a YAML path.")
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Build directory (default: build/targets/<target>).")
@click.option("--jobs", type=int, default=2, show_default=True, help="Parallel compile jobs.")
@click.option("--no-test", is_flag=True, help="Only build; do not run the kernel tests on the target CPU.")
@friendly
def build(target_name, out_dir, jobs, no_test):
    """Cross-compile the kernels, their C++ tests, libedgekit.so and the C example for a device profile, then run the
    kernel tests (under qemu for Arm)."""
    from edgekit.build import C_LIBRARY, EXAMPLE_PROGRAM, SOURCE_DIR, build_target, run_target_tests
    from edgekit.targets import load_target

    target = load_target(target_name)
    out = Path(out_dir) if out_dir else SOURCE_DIR / "build" / "targets" / target.name
    build_dir = build_target(target, out, jobs=jobs)
    click.echo(f"built {target.name} ({target.arch}) in {build_dir}: {C_LIBRARY}, {EXAMPLE_PROGRAM}")
    if not no_test:
        run = run_target_tests(target, build_dir)
        click.echo(f"{run.summary}; dispatch picks {run.selected_gemm}")
