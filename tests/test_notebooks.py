"""Issue 17 item 11: the notebooks show their figures in Jupyter.

``matplotlib.use("Agg")`` replaced Jupyter's inline backend, so an executed notebook held
no image at all. A static check keeps every notebook free of backend switches, and the
cheapest notebook is executed in a kernel (as Jupyter and nbmake run it) to check that
every cell that draws a figure holds an ``image/png`` output.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
DRAWS = ("plt.subplots", "plt.figure", "show_records(")


def _code_cells(notebook: dict) -> list[str]:
    return ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"]


def test_the_notebooks_are_numbered() -> None:
    assert [path.name[:2] for path in NOTEBOOKS] == ["01", "02", "03", "04", "05"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_no_notebook_switches_the_matplotlib_backend(path: Path) -> None:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    sources = _code_cells(notebook)
    assert not any("matplotlib.use(" in source or "%matplotlib" in source for source in sources)
    assert any(any(call in source for call in DRAWS) for source in sources), "every notebook draws figures"
    assert all(not cell.get("outputs") for cell in notebook["cells"] if cell["cell_type"] == "code")  # stored clean


@pytest.mark.slow
def test_the_executed_synthetic_world_notebook_holds_its_figures(tmp_path: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    path = next(path for path in NOTEBOOKS if path.name.startswith("01"))
    notebook = nbformat.read(path, as_version=4)
    env_backup = os.environ.pop("MPLBACKEND", None)  # as in a user's Jupyter: the inline backend
    try:
        NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        if env_backup is not None:
            os.environ["MPLBACKEND"] = env_backup
    drawing = [cell for cell in notebook.cells if cell.cell_type == "code" and any(c in cell.source for c in DRAWS)]
    assert len(drawing) >= 2
    for cell in drawing:
        images = [output for output in cell.outputs if "image/png" in output.get("data", {})]
        assert images, f"cell {cell.source[:60]!r} shows no image"
    show_cell = next(cell for cell in drawing if "show_records(" in cell.source)
    assert len([o for o in show_cell.outputs if "image/png" in o.get("data", {})]) == 2  # easy, hard: once each
