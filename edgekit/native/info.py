"""What ``edgekit info`` reports: package versions, the CPU, and the native kernels compiled and chosen.

Everything is gathered lazily and defensively: a missing optional package reports ``None`` and a missing or broken
native module reports ``native: False`` with the reason, so ``edgekit info`` works on any install and is the first
thing to run when something else does not.
"""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata

# Distribution name on PyPI for each package whose version we report (key = the name shown).
_PACKAGES = {
    "numpy": "numpy",
    "torch": "torch",
    "transformers": "transformers",
    "gguf": "gguf",
    "onnxruntime": "onnxruntime",
    "llama_cpp": "llama_cpp_python",
}


def package_version(dist: str) -> str | None:
    """Installed version of a distribution, or ``None``; reads metadata only, so nothing heavy gets imported."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def cpuinfo_fields(text: str | None = None) -> dict[str, str]:
    """``key: value`` lines of ``/proc/cpuinfo`` (or of ``text``), the first value of each key (the first CPU's);
    empty where the file cannot be read."""
    if text is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError:
            text = ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_model() -> str:
    """Human-readable CPU model name.

    Returns:
        The ``model name`` line of ``/proc/cpuinfo`` on Linux x86, a description built from the implementer/part
        lines on Linux aarch64, or :func:`platform.processor` elsewhere (``"unknown"`` if that is empty too).
    """
    fields = cpuinfo_fields()
    if "model name" in fields:
        return fields["model name"]
    if "Model" in fields:  # Raspberry Pi kernels print the board model here
        return fields["Model"]
    if "CPU part" in fields:
        return f"implementer {fields.get('CPU implementer', '?')} part {fields['CPU part']}"
    return platform.processor() or "unknown"


def native_info() -> dict:
    """Features and kernel dispatch as the native module ``edgekit._C`` sees them.

    Returns:
        ``{"native": True, "cpu_features": {...}, "build": {...}, "kernels": {op: {...}}}`` where each op lists the
        implementations ``compiled``, those ``supported`` by this CPU, and the ``selected`` one (or ``error`` when
        ``EDGEKIT_KERNELS`` makes selection fail). ``{"native": False, "reason": ...}`` when the module is missing.
    """
    try:
        from edgekit import _C
    except Exception as e:  # ImportError, or an OSError/undefined symbol from a stale build
        return {"native": False, "reason": f"edgekit._C failed to import: {type(e).__name__}: {e}"}

    kernels = {}
    for op in _C.ops():
        entry = {"compiled": list(_C.compiled(op)), "supported": list(_C.implementations(op))}
        try:
            entry["selected"] = _C.selected(op)
        except RuntimeError as e:
            entry["selected"] = None
            entry["error"] = str(e)
        kernels[op] = entry
    return {
        "native": True,
        "module": getattr(_C, "__file__", None),
        "cpu_features": dict(_C.cpu_features()),
        "build": dict(_C.build_info()),
        "kernels": kernels,
    }


def collect_info() -> dict:
    """Everything ``edgekit info`` shows, as plain JSON-serialisable data.

    Returns:
        A dict with ``edgekit``, ``python``, ``platform``, ``versions`` (package → version or ``None``), ``cpu``
        (model, logical cores, machine) and the keys of :func:`native_info`. ``EDGEKIT_KERNELS`` is echoed when set.
    """
    import edgekit

    data = {
        "edgekit": edgekit.__version__,
        "python": platform.python_version(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "versions": {name: package_version(dist) for name, dist in _PACKAGES.items()},
        "cpu": {"model": cpu_model(), "machine": platform.machine(), "logical_cores": os.cpu_count()},
        "env": {"EDGEKIT_KERNELS": os.environ.get("EDGEKIT_KERNELS")},
    }
    data.update(native_info())
    return data


def _mark(flag: bool) -> str:
    return "[green]yes[/green]" if flag else "[dim]no[/dim]"


def render_info(data: dict, console=None) -> None:
    """Print the output of :func:`collect_info` as rich tables.

    Args:
        data: What :func:`collect_info` returned.
        console: A ``rich.console.Console``; a new one on stdout when ``None``.
    """
    from rich.console import Console
    from rich.table import Table

    console = console or Console()

    env = Table(title="edgekit", show_header=False, title_justify="left")
    env.add_column("key", style="bold")
    env.add_column("value")
    env.add_row("edgekit", data["edgekit"])
    env.add_row("python", f"{data['python']} ({data['executable']})")
    env.add_row("platform", data["platform"])
    for name, version in data["versions"].items():
        env.add_row(name, version or "[dim]not installed[/dim]")
    if data["env"].get("EDGEKIT_KERNELS"):
        env.add_row("EDGEKIT_KERNELS", data["env"]["EDGEKIT_KERNELS"])
    console.print(env)

    cpu = data["cpu"]
    hw = Table(title="CPU", show_header=False, title_justify="left")
    hw.add_column("key", style="bold")
    hw.add_column("value")
    hw.add_row("model", cpu["model"])
    hw.add_row("machine", f"{cpu['machine']}, {cpu['logical_cores']} logical cores")
    if data["native"]:
        present = [name for name, ok in data["cpu_features"].items() if ok]
        absent = [name for name, ok in data["cpu_features"].items() if not ok]
        hw.add_row("features", ", ".join(present) or "[dim]none detected[/dim]")
        hw.add_row("absent", "[dim]" + (", ".join(absent) or "-") + "[/dim]")
    console.print(hw)

    if not data["native"]:
        console.print(f"[bold red]native kernels unavailable[/bold red]: {data['reason']}")
        console.print("[dim]build them with `make test` or `pip install -e .`[/dim]")
        return

    build = data["build"]
    ker = Table(title=f"Kernels (built by {build['compiler']})", title_justify="left")
    ker.add_column("op", style="bold")
    ker.add_column("compiled")
    ker.add_column("supported here")
    ker.add_column("selected")
    errors = []
    for op, entry in data["kernels"].items():
        selected = entry["selected"] or "[red]error (below)[/red]"
        ker.add_row(op, ", ".join(entry["compiled"]), ", ".join(entry["supported"]), selected)
        if entry.get("error"):
            errors.append(f"{op}: {entry['error']}")
    console.print(ker)
    for line in errors:  # long messages read better outside the table
        console.print(f"[red]error[/red] {line}", highlight=False)
