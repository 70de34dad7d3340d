"""experiments/notebooks/quickstart.ipynb runs headlessly, top to bottom, with the venv's kernel."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
kernelspec = pytest.importorskip("jupyter_client.kernelspec")

NOTEBOOK = Path(__file__).resolve().parents[2] / "experiments" / "notebooks" / "quickstart.ipynb"


@pytest.fixture(scope="session")
def kernel_name() -> str:
    """The "python3" kernel of this interpreter's environment; installed into it (--sys-prefix) if missing."""
    if "python3" not in kernelspec.find_kernel_specs():
        cmd = [sys.executable, "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3"]
        subprocess.run(cmd, check=True, capture_output=True)
    spec = kernelspec.get_kernel_spec("python3")
    # "python" in a kernelspec's argv is run as sys.executable by jupyter_client; anything else must be ours
    assert spec.argv[0] in ("python", "python3", sys.executable), spec.argv
    return "python3"


def test_saved_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    assert any("E' = E + " in c.source for c in nb.cells if c.cell_type == "markdown")


def test_notebook_executes(kernel_name, tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, kernel_name=kernel_name, timeout=120, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the plot was drawn
