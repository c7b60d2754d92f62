"""Smoke test of ``benchmarks/bench_student_t.py`` at its tiniest size, as tests/test_benchmarks.py.

The script runs in a subprocess exactly as a user runs it, on one CPU device with fast compiles.
Reference: its documented output, a Markdown table with one row per (model, sampler@NFE) whose
cells parse as finite numbers, and the same rows in ``--out/bench_student_t.json``.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.mark.integration
def test_bench_student_t_tiny(tmp_path):
  """t-EDM (nu = 3) and its Gaussian limit (``edm``), 10 steps, their own sampler at 5 NFE."""
  env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_DISABLE_MOST_OPTIMIZATIONS="1",
             TF_CPP_MIN_LOG_LEVEL="3")
  env.pop("XLA_FLAGS", None)  # conftest forces 4 host devices; users run on one
  proc = subprocess.run(
      [sys.executable, str(ROOT / "benchmarks" / "bench_student_t.py"), "--tiny", "--steps=10",
       "--nus=3", "--baselines=edm", "--samplers=own", "--nfe=5", "--num_samples=128",
       f"--out={tmp_path}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
      check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  rows = [[c.strip() for c in line.strip().strip("|").split("|")]
          for line in proc.stdout.splitlines()
          if line.startswith("|") and not line.startswith(("|---", "| model"))]
  assert [(r[0], r[1]) for r in rows] == [("student_t nu=3", "edm_heun@5"), ("edm", "heun@5")]
  for r in rows:
    assert all(math.isfinite(float(v)) for v in r[3:]), r
  saved = json.loads((tmp_path / "bench_student_t.json").read_text())
  assert [(s["model"], s["nfe"]) for s in saved] == [("student_t nu=3", 5), ("edm", 5)]
  assert (tmp_path / "bench_student_t.md").read_text().startswith("# sas")
