"""Smoke tests: every script in benchmarks/ runs at its tiniest size and writes its table / PNG.

Each script runs in a subprocess exactly as a user runs it (``python benchmarks/<script>.py ...``),
on one CPU device (the test-wide forced device count is removed; ``bench_scaling.py`` forces its
own), with ``JAX_DISABLE_MOST_OPTIMIZATIONS=1`` for fast compiles. The reference of every test is
the script's documented output format: the Markdown table header, one row per requested
family / sampler / NFE / device count, and numeric cells that parse as finite numbers (a NaN or a
missing row fails). Sizes are the smallest that still exercise every code path of the default run
(20 training steps, NFE 10, 64-256 samples); the U-Net paths of ``bench_overheads.py`` and
``bench_scaling.py`` are left out (a U-Net compile costs minutes on this 2-core machine without
XLA optimisations). Its integration tests take about two minutes of wall time on 2 CPU cores
(129 s measured).
"""

from __future__ import annotations

import math
import os
import pathlib
import re
import subprocess
import sys

import pytest


ROOT = pathlib.Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"


def run_script(name: str, *args: str, timeout: float = 240) -> str:
  """Runs ``benchmarks/<name>`` with ``args``; asserts rc == 0; returns stdout."""
  env = dict(os.environ)
  env.pop("XLA_FLAGS", None)  # conftest forces 4 host devices; users run on one
  env.update(JAX_PLATFORMS="cpu", JAX_DISABLE_MOST_OPTIMIZATIONS="1",
             TF_CPP_MIN_LOG_LEVEL="3")
  proc = subprocess.run([sys.executable, str(BENCH / name), *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=timeout, check=False)
  assert proc.returncode == 0, f"{name} failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}"
  return proc.stdout


def table_rows(text: str, first_cell: str) -> list[list[str]]:
  """Cells of the Markdown table rows of ``text`` whose first cell is ``first_cell``."""
  rows = []
  for line in text.splitlines():
    if line.startswith("|") and not line.startswith("|---"):
      cells = [c.strip() for c in line.strip().strip("|").split("|")]
      if cells[0] == first_cell:
        rows.append(cells)
  return rows


def numbers(cells: list[str]) -> list[float]:
  """Every number in ``cells`` (``1.2 ± 0.3``, ``+4.0 %``, ``3.1e+05``, ``nan`` all count)."""
  found = re.findall(r"[-+]?(?:\d+\.?\d*(?:e[-+]?\d+)?|nan|inf)", " ".join(cells), re.IGNORECASE)
  return [float(v) for v in found]


@pytest.mark.integration
def test_bench_nfe_study_tiny(tmp_path):
  """One family, one dataset, seed 0, NFE 10, ODE and SDE: the table has one row per sampler with
  finite metrics (on-mode fraction in [0, 1], rare modes in [0, 12]), and the PNG is written to
  --out and --figures, < 150 kB (the size limit for committed figures)."""
  out, figs = tmp_path / "out", tmp_path / "figs"
  stdout = run_script("bench_nfe_study.py", "--tiny", "--datasets=grid_imbalanced",
                      "--families=gaussian", f"--out={out}", f"--figures={figs}")
  md = (out / "nfe_study.md").read_text()
  assert "nfe_study.md" in stdout
  rows = table_rows(md, "gaussian")
  assert [r[1] for r in rows] == ["ei_ode@10", "ei_sde@10"]
  for r in rows:
    sw, tail, on_mode, rare, tv, finite = numbers(r[2:])
    assert all(math.isfinite(v) for v in (sw, tail, tv))
    assert 0 < sw and 0 <= on_mode <= 1 and 0 <= rare <= 12 and finite == 1.0
  for folder in (out, figs):
    png = folder / "nfe_grid_imbalanced.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size < 150_000


@pytest.mark.integration
def test_bench_overheads_tiny():
  """MLP only, gaussian and levy: one row each, gaussian's train-step ratio printed as 1.00, all
  times finite and positive (overhead percentages may be negative: timing noise)."""
  stdout = run_script("bench_overheads.py", "--tiny", "--models=mlp", "--families=gaussian,levy")
  for family in ("gaussian", "levy"):
    (row,) = table_rows(stdout, family)
    vals = numbers(row[1:])
    assert len(vals) == 9 and all(math.isfinite(v) for v in vals), row
    step_ms, ratio, noise_ms, _, bare_ms, ode_ms, _, sde_ms, _ = vals
    assert min(step_ms, noise_ms, bare_ms, ode_ms, sde_ms) > 0
    if family == "gaussian":
      assert ratio == 1.0


@pytest.mark.integration
def test_bench_overheads_reference_jump_tiny(tmp_path):
  """``--reference_jump`` with a standalone copy of today's jump.py: a ``jump@ref`` row beside the
  ``jump`` row, both with finite, positive times (the before/after comparison of RESULTS.md)."""
  ref = tmp_path / "jump_ref.py"
  ref.write_text((ROOT / "lim_jax" / "processes" / "jump.py").read_text())
  stdout = run_script("bench_overheads.py", "--tiny", "--models=mlp", "--families=gaussian,jump",
                      f"--reference_jump={ref}")
  for family in ("jump", "jump@ref"):
    (row,) = table_rows(stdout, family)
    vals = numbers(row[1:])
    assert len(vals) == 9 and all(math.isfinite(v) for v in vals), row
    assert min(vals[0], vals[2], vals[4], vals[5], vals[7]) > 0


@pytest.mark.integration
def test_bench_samplers_exact_tiny():
  """Both parts at smoke size: fbm K = 3 with euler/heun/em on the uniform_t grid and its power-3
  variant, jump's ei_ode/ei_sde on the edm grid for both cases; one row each, every cell a finite
  positive ratio (the exact models make even 10 NFE finite)."""
  stdout = run_script("bench_samplers_exact.py", "--tiny", timeout=480)
  stdout = stdout[stdout.index("#### "):]  # the final tables, not the rows printed as they finish
  assert "K = 3" in stdout and "jump `pure`" in stdout and "jump `diffusion`" in stdout
  for name, count in (("euler", 2), ("heun", 2), ("em", 2), ("ei_ode", 2), ("ei_sde", 2)):
    rows = table_rows(stdout, f"`{name}`")
    assert len(rows) == count, (name, rows)
    for row in rows:
      vals = numbers(row[2:])
      assert len(vals) == 2 and all(math.isfinite(v) and v > 0 for v in vals), row


@pytest.mark.integration
def test_bench_scaling_tiny():
  """Forced host devices 1 and 2 (one subprocess each): two rows, global batch = devices x the
  per-device batch (16), positive steps/s, efficiency 1.00 for one device."""
  stdout = run_script("bench_scaling.py", "--tiny", "--devices=1,2")
  rows = table_rows(stdout, "mlp")
  assert [r[1] for r in rows] == ["1 x cpu", "2 x cpu"]
  assert [int(r[2]) for r in rows] == [16, 32]
  assert all(float(r[3]) > 0 for r in rows)
  assert float(rows[0][5]) == 1.0
  assert "forced host devices" in stdout


@pytest.mark.integration
def test_bench_toy_tiny():
  """bench_toy.py for gaussian at 20 steps and 64 samples: one row, ratio 1.00, rates > 0."""
  stdout = run_script("bench_toy.py", "--families=gaussian", "--steps=20", "--num_samples=64")
  (row,) = table_rows(stdout, "gaussian")
  assert float(row[2]) > 0 and row[3] == "1.00" and float(row[5]) > 0


@pytest.mark.integration
def test_bench_toy_quality_tiny(tmp_path):
  """bench_toy_quality.py, gaussian on sas, 20 steps, NFE 10, 64 samples: one row with a finite
  sliced W1 and tail error."""
  stdout = run_script("bench_toy_quality.py", "--dataset=sas", "--families=gaussian",
                      "--steps=20", "--nfe=10", "--num_samples=64", f"--out={tmp_path}")
  (row,) = table_rows(stdout, "gaussian")
  assert row[1] == "ei_sde@10"
  vals = numbers(row[2:])
  assert vals and all(math.isfinite(v) for v in vals)


def test_bench_stable_tiny():
  """bench_stable.py with 2000 draws at alpha 1.5: one row, positive rates for both samplers."""
  stdout = run_script("bench_stable.py", "--n=2000", "--alphas=1.5")
  (row,) = table_rows(stdout, "1.5")
  assert float(row[1]) > 0 and float(row[2]) > 0


@pytest.mark.integration
def test_bench_fbm_diversity_tiny(tmp_path):
  """gaussian, fbm K = 0 and one (H, K) at 20 steps: the data row and one row per model with
  finite metrics; K = 0 reproduces the gaussian row exactly (exact Brownian limit, same keys)."""
  out = run_script("bench_fbm_diversity.py", "--steps=20", "--seeds=0", "--num_ou=0,2",
                   "--hurst=0.7", "--nfe=10", "--num_samples=128", f"--out={tmp_path}")
  rows = {label: table_rows(out, label) for label in
          ("data (fresh draw)", "gaussian", "fbm K=0 (BM)", "fbm H=0.7 K=2")}
  for label, found in rows.items():
    assert len(found) == 1, (label, out[-2000:])
    assert all(math.isfinite(v) for v in numbers(found[0][1:])), found
  assert rows["gaussian"][0][1:] == rows["fbm K=0 (BM)"][0][1:]


@pytest.mark.integration
def test_bench_design_space_tiny(tmp_path):
  """Parts ``allocation``, ``edm`` and ``edm_sampling`` at the tiny size: one allocation row per
  family and design with shares in [0, 100] %, and for each of moons / ring8 the EDM table's row
  (with its data-vs-data floor, positive) and the eight sampling rows (sigma_max 80 and 10, four
  samplers) plus the VP row and the data-vs-data row (positive), all finite; ``edm_sampling``
  restores the models ``edm`` trained (the shared rows agree)."""
  stdout = run_script("bench_design_space.py", "--tiny", "--parts=allocation,edm,edm_sampling",
                      f"--out={tmp_path}")
  for family in ("gaussian", "levy", "jump", "fbm", "mixture", "student_t"):
    rows = table_rows(stdout, family)
    assert [r[1] for r in rows] == ["paper", "shared"], family
    for r in rows:
      share = float(r[2].rstrip(" %"))
      assert 0 <= share <= 100
  for dataset in ("moons", "ring8"):
    rows = table_rows(stdout, dataset)
    edm_row = [r for r in rows if len(r) == 8]
    sampling = [r for r in rows if len(r) == 7]
    assert len(edm_row) == 1 and len(sampling) == 10, rows
    assert [r[1] for r in sampling] == ["80"] * 4 + ["10"] * 4 + ["VP", "-"]
    assert sampling[-1][2] == "data vs data (floor)" and numbers(sampling[-1][3:4])[0] > 0
    assert all(math.isfinite(v) for r in rows for v in numbers(r[1:4]) if r[1] != "VP")
    assert numbers(edm_row[0][7:8])[0] > 0
    heun80 = sampling[0]
    assert heun80[2] == "heun" and heun80[3] == edm_row[0][1]  # the same model, key and data
  assert (tmp_path / "design_space.json").exists()


def test_nfe_study_goal_table_picks_bests_and_pairs_seeds():
  """bench_nfe_study.goal_table on hand-made rows. gaussian: sampler a is best at 35 NFE (mean
  0.11; 0.10 at 500, so 1.10 to itself), b best at 499 (edm_sde's odd count; 0.095), ratio 1.158;
  the per-seed differences 0.014, 0.015, 0.016 have mean 0.015 and t-interval half-width
  t(0.975, 2) * 0.001 / sqrt(3) = 0.0025, wholly above the margin 0.05 * 0.095: missed, resolved.
  levy: 1.00 with differences +0.001, -0.001, 0 (interval +-0.0025, below the margin 0.005): met,
  resolved. fbm: differences 0, 0.01, 0.02 (ratio 1.10, interval +-0.025 spans the margin):
  missed, not resolved."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location("bench_nfe_study", BENCH / "bench_nfe_study.py")
  bench = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(bench)
  values = {("gaussian", "a", 35): (0.105, 0.11, 0.115), ("gaussian", "a", 500): (0.10,) * 3,
            ("gaussian", "b", 35): (0.20,) * 3, ("gaussian", "b", 499): (0.091, 0.095, 0.099),
            ("levy", "a", 35): (0.10,) * 3, ("levy", "a", 500): (0.099, 0.101, 0.10),
            ("fbm", "a", 35): (0.10, 0.11, 0.12), ("fbm", "a", 500): (0.10,) * 3}
  rows = [dict(dataset="moons", family=f, sampler=s, nfe=n, seed=seed, sliced_wasserstein=v,
               data_floor=0.05)
          for (f, s, n), vs in values.items() for seed, v in enumerate(vs)]
  lines = bench.goal_table(rows).splitlines()
  assert len(lines) == 5
  half = 4.302653 * 0.001 / math.sqrt(3)
  assert lines[2] == (f"| moons | gaussian | 0.1100 (a) | 0.0950 (b) | 1.16 | 1.10 | +0.0150 "
                      f"[{0.015 - half:+.4f}, {0.015 + half:+.4f}] | missed, resolved | 0.0500 |")
  assert lines[3].startswith("| moons | levy | 0.1000 (a) | 0.1000 (a) | 1.00 | 1.00 | +0.0000 [")
  assert lines[3].endswith("| met, resolved | 0.0500 |")
  assert lines[4].startswith("| moons | fbm | 0.1100 (a) | 0.1000 (a) | 1.10 | 1.10 | +0.0100 [")
  assert lines[4].endswith("| missed, not resolved | 0.0500 |")
