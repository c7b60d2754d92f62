"""Smoke tests of the image benchmarks ``benchmarks/bench_images.py`` and ``bench_unet.py``.

Each script runs in a subprocess at its tiniest size; the test checks the exit status and that the
Markdown table is printed with finite numbers. Subprocesses (not imports) because the scripts are
run that way and set up their own jax state; they run on one CPU device without the test
``conftest`` flags, so their wall time is what a user sees.
"""

from __future__ import annotations

import importlib.util
import math
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"


def _run(script: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)  # no forced host devices: the scripts run on one device
  env["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "true"  # fast compiles, as tests/conftest.py sets
  return subprocess.run([sys.executable, str(BENCH / script), *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=timeout, check=False)


def _table_rows(stdout: str, first_cell: str) -> list[list[str]]:
  rows = [[c.strip() for c in line.strip().strip("|").split("|")]
          for line in stdout.splitlines() if line.startswith("|")]
  return [r for r in rows if r and r[0].startswith(first_cell)]


@pytest.mark.skipif(importlib.util.find_spec("sklearn") is None,
                    reason="bench_images needs scikit-learn (the 'bench' extra) for the digits")
@pytest.mark.integration
def test_bench_images_smoke(tmp_path):
  """Reference: the script's own contract (rc 0; one table row for the data and one per model,
  every FD finite and >= 0, P/R/C in [0, 1], Vendi in [1, n]) at 4 steps, 16 samples, NFE 2."""
  res = _run("bench_images.py", "--families=gaussian", "--fbm_grid=", "--steps=4", "--batch=8",
             "--ch=8", "--num_samples=16", "--sample_batch=16", "--nfe=2", "--classifier_epochs=2",
             f"--out={tmp_path}")
  assert res.returncode == 0, res.stderr[-3000:]
  header = _table_rows(res.stdout, "model")
  assert header and header[0][2:] == ["FD", "P", "R", "D", "C", "pixVS", "featVS"], res.stdout
  rows = _table_rows(res.stdout, "data") + _table_rows(res.stdout, "gaussian")
  assert [r[0] for r in rows] == ["data (B vs A)", "gaussian"], res.stdout
  for r in rows:
    fd, p, rec, _, cov, pix_vs, feat_vs = (float(c) for c in r[2:])
    assert math.isfinite(fd) and fd >= 0
    assert all(0.0 <= v <= 1.0 for v in (p, rec, cov))
    assert pix_vs >= 1.0 and feat_vs >= 1.0
  assert re.search(r"feature CNN held-out accuracy [01]\.\d+", res.stdout)
  assert (tmp_path / "samples_gaussian.png").exists() and (tmp_path / "results.json").exists()


def test_bench_images_bad_size_is_a_clear_error(tmp_path):
  """Reference: the documented error path (exit 2, the message names ``--image_size``)."""
  if importlib.util.find_spec("sklearn") is None:
    pytest.skip("needs scikit-learn (the 'bench' extra)")
  res = _run("bench_images.py", "--image_size=12", f"--out={tmp_path}", timeout=120)
  assert res.returncode == 2 and "--image_size" in res.stderr, res.stderr[-2000:]


@pytest.mark.integration
def test_bench_unet_smoke():
  """Reference: the script's own contract (rc 0; a table with one train and one sample row per
  dtype, images/s finite and > 0) at ch 8, batch 2, NFE 2, one repeat, float32 only."""
  res = _run("bench_unet.py", "--ch=8", "--batch=2", "--sample_batch=2", "--nfe=2",
             "--repeats=1", "--dtypes=float32", "--variants=unrolled", "--steps_per_call=1")
  assert res.returncode == 0, res.stderr[-3000:]
  rows = _table_rows(res.stdout, "float32")
  assert [r[1].split(" ")[0] for r in rows] == ["train", "sample"], res.stdout
  for r in rows:
    assert math.isfinite(float(r[2])) and float(r[2]) > 0
