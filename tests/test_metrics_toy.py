"""Toy metrics against independent references (scipy, closed forms)."""

import numpy as np
from scipy import stats

from lim_jax.metrics import toy


def test_wasserstein_1d_matches_scipy():
  """Exact 1-D W1 vs scipy.stats.wasserstein_distance, equal and unequal sizes (rtol 1e-9)."""
  rng = np.random.default_rng(0)
  for n, m in ((500, 500), (300, 700), (1, 17)):
    u, v = rng.standard_normal(n), 2 + rng.standard_cauchy(m)
    np.testing.assert_allclose(toy.wasserstein_1d(u, v), stats.wasserstein_distance(u, v),
                               rtol=1e-9)


def test_sliced_wasserstein_in_one_dimension_is_w1():
  """In 1-D every direction is +-1, so sliced W1 equals the exact W1 (scipy)."""
  rng = np.random.default_rng(1)
  x, y = rng.standard_normal((400, 1)), rng.exponential(size=(600, 1))
  np.testing.assert_allclose(toy.sliced_wasserstein(x, y, num_projections=8),
                             stats.wasserstein_distance(x[:, 0], y[:, 0]), rtol=1e-9)


def test_sliced_wasserstein_of_a_shift():
  """Shifting a set by c (d=2) gives sliced W1 = |c| E|cos theta| = 2|c|/pi (closed form, 4096
  random directions: Monte-Carlo error ~1 %)."""
  x = np.random.default_rng(2).standard_normal((1000, 2))
  sw = toy.sliced_wasserstein(x, x + np.array([3.0, 0.0]), num_projections=4096)
  np.testing.assert_allclose(sw, 6 / np.pi, rtol=0.03)


def test_mmd_zero_for_identical_and_positive_otherwise():
  rng = np.random.default_rng(3)
  x = rng.standard_normal((300, 2))
  assert abs(toy.mmd(x, x)) < 1e-12
  assert toy.mmd(x, x + 1.0) > 0.05


def test_tail_quantile_log_error():
  """Zero for identical samples; a scale change by k gives exactly |log k| (quantiles scale)."""
  x = np.random.default_rng(4).standard_cauchy((5000, 2))
  assert toy.tail_quantile_log_error(x, x) == 0.0
  np.testing.assert_allclose(toy.tail_quantile_log_error(3.0 * x, x), np.log(3.0), rtol=1e-9)


def test_mode_coverage_counts_modes_and_weights():
  """Samples drawn from the true mixture cover all modes with weight TV ~ sampling noise; samples
  from a single mode cover one mode with TV = 1 - w."""
  centers = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
  weights = np.array([0.7, 0.2, 0.1])
  rng = np.random.default_rng(5)
  comp = rng.choice(3, 5000, p=weights)
  x = centers[comp] + 0.1 * rng.standard_normal((5000, 2))
  out = toy.mode_coverage(x, centers, weights, 0.1)
  assert out["modes_covered"] == 3 and out["in_mode_fraction"] > 0.99
  assert out["weight_tv"] < 0.03  # multinomial SE ~ 0.007 per mode
  one = toy.mode_coverage(centers[:1] + 0.1 * rng.standard_normal((100, 2)), centers, weights, 0.1)
  assert one["modes_covered"] == 1
  np.testing.assert_allclose(one["weight_tv"], 0.3, atol=1e-9)
