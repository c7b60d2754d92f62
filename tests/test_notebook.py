"""The Colab demo notebook runs headless from top to bottom (tiny step count)."""

import pathlib

import nbformat
from nbclient import NotebookClient
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.mark.integration
def test_demo_notebook_executes(tmp_path, monkeypatch):
  """Executes launch/colab/demo.ipynb with nbclient; any cell error fails the test."""
  nb = nbformat.read(ROOT / "launch" / "colab" / "demo.ipynb", as_version=4)
  monkeypatch.setenv("LIM_JAX_DEMO_STEPS", "40")
  monkeypatch.setenv("LIM_JAX_ROOT", str(ROOT))
  monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
  client = NotebookClient(nb, timeout=600, kernel_name="python3",
                          resources={"metadata": {"path": str(tmp_path)}})
  client.execute()
  outputs = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
  assert "trained to step 40" in outputs
  assert "NFE 40" in outputs
