"""notebooks/quickstart.ipynb runs top to bottom on the small budget (`OE_TEXT_NOTEBOOK_BUDGET=small`)."""

import os
from pathlib import Path

import pytest


REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "quickstart.ipynb"


def _stdout(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("name") == "stdout")


@pytest.mark.integration
def test_quickstart_notebook_executes(mirror, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("OE_TEXT_NOTEBOOK_BUDGET", "small")
    # The kernel is a child process with this environment: it must import this checkout's oe_text.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # CellExecutionError names the failing cell

    code = [c for c in notebook.cells if c.cell_type == "code"]
    images = [o for c in code for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 2  # the ROC curves and the score histograms, inline
    printed = "\n".join(_stdout(c) for c in code)
    assert "--max_train_samples 2000" in printed  # the small budget was used
    assert "'ce_loss'" in printed and "'oe_loss'" in printed  # both loss terms are logged
    assert "| **Mean** |" in printed  # the baseline vs OE table
    assert "two dogs run across a snowy field ." in printed
    assert "non-questions are flagged OOD" in printed
    assert "model.safetensors" in printed  # the pipeline loaded the saved detector
    assert (tmp_path / "outputs" / "notebook" / "detector" / "config.json").is_file()
