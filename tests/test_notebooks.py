"""Every recipe in notebooks/ runs top to bottom in a real kernel (what ``pytest --nbmake notebooks`` does).

Each notebook awaits its sweep before its last cell and keeps its database in a temporary folder.
The ones on the embedded model are marked ``embedded`` (skipped where the model is not installed).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
EMBEDDED = {"01-quickstart", "02-multi-stage"}  # use local/smollm2-135m
TIMEOUT = 300  # seconds per cell


def _param(path: Path) -> object:
    marks = [pytest.mark.slow] + ([pytest.mark.embedded] if path.stem in EMBEDDED else [])
    return pytest.param(path, id=path.stem, marks=marks)


def test_there_are_recipes():
    assert len(NOTEBOOKS) >= 5


@pytest.mark.parametrize("path", [_param(p) for p in NOTEBOOKS])
def test_notebook_runs(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nbclient import NotebookClient

    for name in ("PROMPTLOOPER_READONLY", "VOILA_BASE_URL", "VOILA_SERVER_URL", "PROMPTLOOPER_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # the kernel's ~/.ipython etc.
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=TIMEOUT, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError with the failing cell and its traceback
    errors = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
