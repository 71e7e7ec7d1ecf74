"""The package's import graph: no import cycles, the library never imports the benchmarks or the command line, no
module imports another module's private ``_name`` (the native ``_C`` excepted); and the public API resolves while
``import edgekit`` and the command line's import stay light.

The graph is read from the sources with ``ast`` (nothing is imported), so a cycle through a function-level import
counts too: such imports still tie the modules together.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "edgekit"
UPPER = ("edgekit.bench", "edgekit.device", "edgekit.cli")  # the floors above the library, in order
HEAVY = ("numpy", "torch", "transformers", "rich", "yaml", "edgekit._C")


def _modules() -> dict[str, Path]:
    mods = {}
    for f in PKG.rglob("*.py"):
        name = ".".join(f.relative_to(PKG.parent).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = f
    return mods


def _resolve(name: str, mods: dict) -> str | None:
    """The module of ``name`` (a module, or a name inside one)."""
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def _graph():
    """``(edges: module -> modules it imports, private: [(importer, module, name)])`` of edgekit's own modules."""
    mods = _modules()
    edges: dict[str, set[str]] = {m: set() for m in mods}
    private = []
    for m, f in mods.items():
        package = m if f.name == "__init__.py" else m.rpartition(".")[0]
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [(a.name, None) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    parts = parts[: len(parts) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                for a in node.names:
                    full = f"{base}.{a.name}"
                    targets.append((full if full in mods else base, a.name))
            for target, name in targets:
                if not target.startswith("edgekit"):
                    continue
                r = _resolve(target, mods)
                if r and r != m:
                    edges[m].add(r)
                    if name and name.startswith("_") and not name.startswith("__") and target in mods and name != "_C":
                        private.append((m, r, name))
    return edges, private


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    for v in list(edges):
        if v not in index:
            visit(v)
    return out


def _floor(module: str) -> str | None:
    return next((u for u in UPPER if module == u or module.startswith(u + ".")), None)


def test_the_graph_reader_sees_the_package():
    edges, _ = _graph()
    assert len(edges) > 50
    assert "edgekit.cli.common" in edges["edgekit.cli.eval"]  # an absolute import
    assert "edgekit.errors" in edges["edgekit.artifact"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    assert _cycles(_graph()[0]) == []


def test_the_library_does_not_import_the_benchmarks_or_the_cli():
    edges, _ = _graph()
    upward = sorted((a, b) for a, bs in edges.items() for b in bs
                    if _floor(b) and _floor(a) is None)
    assert upward == []
    # and no floor reaches up into a later one (bench → device → cli)
    assert sorted((a, b) for a, bs in edges.items() for b in bs
                  if _floor(a) and _floor(b) and UPPER.index(_floor(b)) > UPPER.index(_floor(a))) == []


def test_no_module_imports_another_modules_private_names():
    assert _graph()[1] == []


def test_artifact_format_and_config_stay_below_torch_and_yaml():
    edges, _ = _graph()
    assert not {m for m in edges["edgekit.artifact"] if m.startswith("edgekit.quant")}
    for module in ("artifact", "config"):
        text = (PKG / f"{module}.py").read_text(encoding="utf-8")
        tree = ast.parse(text)
        imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not imported & {"torch", "yaml"}, (module, imported)


def _fresh_imports(code: str) -> list[str]:
    """The heavy modules loaded after running ``code`` in a fresh interpreter."""
    probe = f"{code}\nimport sys\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return [m for m in out.strip().split(",") if m]


def test_import_edgekit_and_the_cli_stay_light():
    assert _fresh_imports("import edgekit") == []
    assert _fresh_imports("import edgekit.cli") == []


def test_the_public_api_resolves():
    import edgekit
    from edgekit.engines import open_session
    from edgekit.engines.runtime import Runtime
    from edgekit.models import load_model
    from edgekit.quant.api import quantize_
    from edgekit.recipes import load_recipe

    assert edgekit.Runtime is Runtime and edgekit.open_session is open_session
    assert edgekit.quantize_ is quantize_ and edgekit.load_model is load_model and edgekit.load_recipe is load_recipe
    assert issubclass(edgekit.EdgekitError, Exception)
    assert set(edgekit.__all__) <= set(dir(edgekit))
    for name in edgekit.__all__:
        assert getattr(edgekit, name) is not None
        if callable(getattr(edgekit, name)):
            assert getattr(edgekit, name).__doc__, name
    with pytest.raises(AttributeError, match="no_such_name"):
        edgekit.no_such_name  # noqa: B018
