"""Precision/recall/density/coverage against brute force, closed forms and Monte Carlo."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from lim_jax.metrics import prdc as prdc_lib


def brute_force(real: np.ndarray, fake: np.ndarray, k: int = 3,
                strict: bool = False) -> dict[str, float]:
  """Kynkäänniemi et al. 2019 Sec. 2 and Naeem et al. 2020 Sec. 3 on full scipy distance
  matrices, one explicit loop per sample (``strict`` switches the ball test from <= to <)."""
  inside = (lambda d, r: d < r) if strict else (lambda d, r: d <= r)
  d_rr, d_ff, d_rf = cdist(real, real), cdist(fake, fake), cdist(real, fake)
  r_real = np.array([np.sort(np.delete(d_rr[i], i))[k - 1] for i in range(len(real))])
  r_fake = np.array([np.sort(np.delete(d_ff[j], j))[k - 1] for j in range(len(fake))])
  precision = np.mean([any(inside(d_rf[i, j], r_real[i]) for i in range(len(real)))
                       for j in range(len(fake))])
  recall = np.mean([any(inside(d_rf[i, j], r_fake[j]) for j in range(len(fake)))
                    for i in range(len(real))])
  density = sum(int(inside(d_rf[i, j], r_real[i]))
                for i in range(len(real)) for j in range(len(fake))) / (k * len(fake))
  coverage = np.mean([inside(d_rf[i].min(), r_real[i]) for i in range(len(real))])
  return {"precision": precision, "recall": recall, "density": density, "coverage": coverage}


@pytest.mark.parametrize("n,m,d,k,chunk", [(60, 45, 3, 3, 7), (40, 70, 16, 3, 1000),
                                           (33, 33, 2, 1, 1), (50, 20, 5, 5, 16)])
def test_matches_brute_force(n, m, d, k, chunk):
  """Reference: ``brute_force`` (scipy cdist + explicit loops). Continuous random points have no
  ties, so every indicator agrees and the values must be equal to float rounding (1e-12)."""
  rng = np.random.default_rng(n + m + d)
  real = rng.standard_normal((n, d))
  fake = 0.7 * rng.standard_normal((m, d)) + 0.4
  got = prdc_lib.prdc(real, fake, k=k, chunk=chunk)
  want = brute_force(real, fake, k=k)
  for name in want:
    np.testing.assert_allclose(got[name], want[name], atol=1e-12, err_msg=name)


def test_heavy_tailed_points_match_brute_force():
  """Cauchy clouds (the heavy tails of the levy family) plus one point at 1e8: the rounding slack
  is per ball, so the outlier's norm must not widen the bulk's balls. Reference: ``brute_force``
  (scipy cdist); values equal to 1e-12."""
  rng = np.random.default_rng(11)
  real = rng.standard_cauchy((150, 2))
  fake = 1.5 * rng.standard_cauchy((120, 2))
  real[0] = fake[0] = [1e8, -1e8]
  got = prdc_lib.prdc(real, fake, chunk=32)
  want = brute_force(real, fake)
  for name in want:
    np.testing.assert_allclose(got[name], want[name], atol=1e-12, err_msg=name)


def test_chunk_size_does_not_change_the_result():
  """Tiling is an implementation detail: chunks 1, 13, 64 and 10_000 give identical dicts."""
  rng = np.random.default_rng(1)
  real, fake = rng.standard_normal((130, 4)), rng.standard_normal((90, 4)) + 0.3
  results = [prdc_lib.prdc(real, fake, chunk=c) for c in (1, 13, 64, 10_000)]
  assert all(r == results[0] for r in results[1:])


def test_knn_radii_match_sorted_distances():
  """Reference: k-th smallest off-diagonal entry of the scipy distance matrix (rtol 1e-10; the
  expansion |a|^2 + |b|^2 - 2ab loses ~1e-15 relative)."""
  x = np.random.default_rng(2).standard_normal((77, 6)) * 5 + 100  # far from 0: cancellation
  d = cdist(x, x)
  np.fill_diagonal(d, np.inf)
  want = np.sort(d, axis=1)[:, 2]
  np.testing.assert_allclose(np.sqrt(prdc_lib.knn_sq_radii(x, k=3, chunk=10)), want, rtol=1e-10)


def test_ties_count_as_inside():
  """Integer lattice points with duplicates: squared distances are exact integers, so many equal a
  radius. Reference: brute force with <= (the papers' closed balls). The same data under a strict
  < gives different numbers, so this test detects the wrong tie rule."""
  rng = np.random.default_rng(3)
  real = rng.integers(0, 5, (40, 2)).astype(float)
  fake = rng.integers(1, 6, (30, 2)).astype(float)
  got = prdc_lib.prdc(real, fake, chunk=9)
  closed, open_ = brute_force(real, fake), brute_force(real, fake, strict=True)
  assert closed != open_
  for name in closed:
    np.testing.assert_allclose(got[name], closed[name], atol=1e-12, err_msg=name)


def test_identical_sets():
  """Closed form for X = Y without ties: every point lies in its own ball, so precision = recall =
  coverage = 1, and each ball holds itself and its k neighbours: density = (k + 1) / k exactly."""
  x = np.random.default_rng(4).standard_normal((200, 10))
  for k in (1, 3, 5):
    out = prdc_lib.prdc(x, x.copy(), k=k, chunk=64)
    assert out["precision"] == out["recall"] == out["coverage"] == 1.0
    np.testing.assert_allclose(out["density"], (k + 1) / k, rtol=1e-12)


def test_duplicated_points_have_zero_radius_and_are_covered():
  """Exact duplicates: with each point repeated k + 1 times every radius is 0. Closed form under
  the <= rule with exact zero distances: X = Y gives precision = recall = coverage = 1 and density
  = (k + 1) / k (each copy lies in the k + 1 zero-radius balls of its copies); a strict < or a
  round-off distance of 1e-8 would give 0 for all four."""
  base = np.random.default_rng(5).standard_normal((20, 7)) * 3 + 50
  x = np.repeat(base, 4, axis=0)
  assert np.all(prdc_lib.knn_sq_radii(x, k=3) == 0.0)
  out = prdc_lib.prdc(x, x, k=3, chunk=11)
  assert out["precision"] == out["recall"] == out["coverage"] == 1.0
  np.testing.assert_allclose(out["density"], 4 / 3, rtol=1e-12)


def test_same_distribution_density_and_coverage_expectations():
  """Monte Carlo vs closed forms (exchangeability; Naeem et al. 2020) for iid X, Y ~ N(0, I_8),
  N = M = 2000: E[density] = 1 and E[coverage] = 1 - prod_{i<=3} (N - i)/(N + M - i) = 0.8752.
  Spreads measured over 20 seeds at N = 1000 were 0.031 and 0.008; scaled by 1/sqrt(2) to N = 2000
  they are ~0.022 and ~0.0056, so tolerances 0.08 and 0.025 are ~3.5-4.5 standard deviations."""
  rng = np.random.default_rng(6)
  n = 2000
  out = prdc_lib.prdc(rng.standard_normal((n, 8)), rng.standard_normal((n, 8)))
  want_coverage = 1 - np.prod([(n - i) / (2 * n - i) for i in (1, 2, 3)])
  assert abs(out["density"] - 1.0) < 0.08
  assert abs(out["coverage"] - want_coverage) < 0.025


def test_shifted_cloud_lowers_precision_and_recall():
  """A shift of the fake cloud moves it off the real manifold. Monte Carlo (N(0, I_4), 500 points
  each, shift by 3 std along one axis): over 10 seeds precision fell from 0.94 +- 0.01 to
  0.48 +- 0.10, recall from 0.95 +- 0.01 to 0.55 +- 0.09, density 1.00 -> 0.33, coverage 0.87 ->
  0.20, so a drop of more than 0.1 holds with >3.5 sd to spare. Disjoint clouds (shift 50) give
  exactly 0 (closed form: no point is within any ball of the other set)."""
  rng = np.random.default_rng(7)
  real, noise = rng.standard_normal((500, 4)), rng.standard_normal((500, 4))
  shift = np.array([1.0, 0.0, 0.0, 0.0])
  outs = [prdc_lib.prdc(real, noise + s * shift) for s in (0.0, 3.0, 50.0)]
  for name in ("precision", "recall", "density", "coverage"):
    values = [o[name] for o in outs]
    assert values[0] > values[1] + 0.1, (name, values)
    assert values[2] == 0.0, (name, values)


def test_memory_stays_bounded():
  """Peak numpy allocation (tracemalloc) for N = M = 2000 with chunk = 400 stays under 12 MB (6 MB
  measured: a few 1.3 MB tiles and their masks), while one (N, M) float64 distance matrix alone is
  32 MB (chunk = N measured 101 MB), so an unchunked implementation fails."""
  rng = np.random.default_rng(8)
  real, fake = rng.standard_normal((2000, 16)), rng.standard_normal((2000, 16))
  tracemalloc.start()
  base = tracemalloc.get_traced_memory()[0]
  prdc_lib.prdc(real, fake, chunk=400)
  peak = tracemalloc.get_traced_memory()[1] - base
  tracemalloc.stop()
  assert peak < 12e6, peak


@pytest.mark.slow
def test_memory_stays_bounded_at_inception_scale():
  """N = M = 10_000, D = 2048 (Inception pool features), default chunk: peak allocation beyond the
  float32 inputs stays under 500 MB (two float64 copies are 2 x 164 MB, plus a few 8 MB tiles;
  N = M = 4000 measured 167 MB), while one full (N, M) float64 distance matrix alone is 800 MB.
  About 21 s of CPU on one core."""
  rng = np.random.default_rng(9)
  real = rng.standard_normal((10_000, 2048)).astype(np.float32)
  fake = rng.standard_normal((10_000, 2048)).astype(np.float32)
  tracemalloc.start()
  base = tracemalloc.get_traced_memory()[0]
  out = prdc_lib.prdc(real, fake)
  peak = tracemalloc.get_traced_memory()[1] - base
  tracemalloc.stop()
  assert peak < 5e8, peak
  assert 0.5 < out["density"] < 1.5


def test_errors_name_the_argument():
  x = np.zeros((10, 3))
  with pytest.raises(ValueError, match="real has D=3, fake has D=4"):
    prdc_lib.prdc(x, np.zeros((10, 4)))
  with pytest.raises(ValueError, match="fake has 3 points.*k=3.*4"):
    prdc_lib.prdc(x, np.zeros((3, 3)))
  with pytest.raises(ValueError, match="real has 2 points"):
    prdc_lib.prdc(x[:2], x)
  with pytest.raises(ValueError, match="k must be"):
    prdc_lib.prdc(x, x, k=0)
  with pytest.raises(ValueError, match="chunk must be"):
    prdc_lib.prdc(x, x, chunk=0)
  with pytest.raises(ValueError, match="real must be a feature array"):
    prdc_lib.prdc(np.zeros(10), x)
  bad = x.copy()
  bad[0, 0] = np.nan
  with pytest.raises(ValueError, match="fake has non-finite"):
    prdc_lib.prdc(x, bad)
