"""Every notebook under notebooks/ runs top to bottom in a fresh kernel against a scan of the bundled
sample written into a temporary state folder (the developer's .compliance is never touched)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from pipeline.cases.store import open_store
from pipeline.config import load_settings
from pipeline.runner import scan

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory, root: Path, dask_client) -> Path:  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("notebook-state")
    settings = load_settings(str(root / "config.yaml"), {"COMPLIANCE_STATE_DIR": str(folder)})
    report = scan(settings, config_path=str(root / "config.yaml"), client=dask_client)
    assert report.cases_new > 0
    return folder


def _cases(state: Path) -> dict[str, tuple[str, int]]:
    store = open_store(state)
    try:
        df = store.list_cases()
    finally:
        store.close()
    return {c: (s, int(n)) for c, s, n in zip(df["case_id"], df["status"], df["hit_count"])}


def _outputs(nb: nbformat.NotebookNode, kind: str) -> list[object]:
    return [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])
            if kind in o.get("data", {})]


def test_notebooks_are_committed_without_outputs() -> None:
    assert [p.name for p in NOTEBOOKS] == ["01_explore_cases.ipynb", "02_tune_a_rule.ipynb", "03_regulator_query.ipynb"]
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{path.name} holds outputs"
                assert "pipeline.sources" not in cell.source and "import pipeline.cases" not in cell.source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path: Path, state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nbclient import NotebookClient

    monkeypatch.setenv("COMPLIANCE_STATE_DIR", str(state))   # the kernel inherits it
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    before = _cases(state)
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs if o.output_type == "error"]
    assert not errors
    assert _outputs(nb, "text/html"), "no table shown"
    if path.stem != "03_regulator_query":
        assert _outputs(nb, "image/png"), "no plot shown"
    else:
        exports = list((state / "exports").glob("*/manifest.json"))
        assert len(exports) == 1, "the query's export should land in the temporary state folder"
    assert _cases(state) == before, "a notebook changed the cases (a backtest must not)"
