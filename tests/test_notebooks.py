"""The committed notebooks carry the outputs of one full, in-order run, and no unintended error."""

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def code_cells(path):
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]


def test_every_chapter_is_a_notebook():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06", "07"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_was_executed_top_to_bottom_in_one_kernel(path):
    counts = [c["execution_count"] for c in code_cells(path)]
    assert None not in counts, f"{path.name}: {counts.count(None)} code cells were never executed"
    assert counts == list(range(1, len(counts) + 1)), f"{path.name}: cells were not run in order in a fresh kernel"
    assert sum(len(c["outputs"]) for c in code_cells(path)) > 0


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_errors_only_where_marked_and_every_marked_cell_errs(path):
    for cell in code_cells(path):
        marked = "raises-exception" in cell.get("metadata", {}).get("tags", [])
        errored = any(o["output_type"] == "error" for o in cell["outputs"])
        assert marked == errored, f"{path.name}: cell {cell['execution_count']} marked={marked} errored={errored}"
