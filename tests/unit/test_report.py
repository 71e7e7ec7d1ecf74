"""The one writer of benchmark results (:mod:`edgekit.bench.report`): atomic JSON, Markdown and terminal tables."""

from __future__ import annotations

import json

import pytest

from edgekit.bench.report import cells, markdown_table, print_rows, save_json


def test_save_json_replaces_atomically_and_leaves_nothing_on_failure(tmp_path):
    path = tmp_path / "a" / "b.json"
    save_json({"rows": [1, 2]}, path)
    save_json({"rows": [3]}, path)
    assert json.loads(path.read_text()) == {"rows": [3]} and path.read_text().endswith("\n")
    with pytest.raises(TypeError):
        save_json({"bad": object()}, path)
    assert json.loads(path.read_text()) == {"rows": [3]}  # the old file survives a failed write
    assert [p.name for p in path.parent.iterdir()] == ["b.json"]


def test_markdown_table_and_missing_cells():
    rows = [{"name": "a", "x": 1.5}, {"name": "b", "x": None}]
    columns = [("name", "model", "{}"), ("x", "x", "{:.2f}")]
    md = markdown_table([h for _, h, _ in columns], cells(rows, columns), "lr")
    assert md.splitlines() == ["| model | x |", "|---|---:|", "| a | 1.50 |", "| b | — |"]
    with pytest.raises(ValueError):
        markdown_table(["a", "b"], [], "l")


def test_print_rows_left_aligns_the_model_column():
    from rich.console import Console

    console = Console(record=True, width=60)
    print_rows([{"model": "m", "v": 2}], [("model", "model", "{}"), ("v", "value", "{:.1f}")], "title",
               console=console, notes=["n"])
    text = console.export_text()
    assert "title" in text and "2.0" in text and "note: n" in text
    assert "│ m     │" in text and "│   2.0 │" in text  # "model" left-aligned, the number right-aligned
