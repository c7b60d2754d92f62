"""Vendi score against brute-force kernels, closed forms and its dual eigenproblem."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg

from lim_jax.metrics import diversity


def brute_force_vendi(x: np.ndarray, kernel, q: float = 1.0) -> float:
  """Friedman & Dieng 2023 / Pasarkar & Dieng 2023 definitions literally: K by an explicit
  double loop over pairs, scipy.linalg.eigvalsh of K / n, Renyi/Shannon entropy of the spectrum."""
  n = len(x)
  gram = np.empty((n, n))
  for i in range(n):
    for j in range(n):
      gram[i, j] = kernel(x[i], x[j])
  w = linalg.eigvalsh(gram / n)
  w = w[w > 1e-12]
  if q == 1:
    return float(np.exp(-np.sum(w * np.log(w))))
  if np.isinf(q):
    return float(1 / w.max())
  return float(np.sum(w**q) ** (1 / (1 - q)))


def cosine(u, v):
  return float(u @ v / np.sqrt((u @ u) * (v @ v)))


def rbf(bandwidth):
  return lambda u, v: float(np.exp(-np.sum((u - v) ** 2) / (2 * bandwidth**2)))


@pytest.mark.parametrize("q", [0.5, 1.0, 2.0, np.inf])
def test_matches_brute_force(q):
  """Reference: ``brute_force_vendi`` (explicit-loop kernel, scipy eigvalsh). rtol 1e-9: both are
  float64 eigensolvers of the same 30 x 30 matrix (or its dual), agreeing to ~1e-13."""
  rng = np.random.default_rng(0)
  x = rng.standard_normal((30, 4)) + 0.5
  images = rng.uniform(0, 1, (30, 3, 2, 2))  # d = 12 < n: the (d, d) side is used
  flat = images.reshape(30, -1)
  np.testing.assert_allclose(diversity.vendi_score(x, "cosine", q=q),
                             brute_force_vendi(x, cosine, q), rtol=1e-9)
  np.testing.assert_allclose(diversity.vendi_score(images, "cosine", q=q),
                             brute_force_vendi(flat, cosine, q), rtol=1e-9)
  np.testing.assert_allclose(diversity.vendi_score(x, "rbf", bandwidth=0.7, q=q),
                             brute_force_vendi(x, rbf(0.7), q), rtol=1e-9)


def test_identical_points_score_one():
  """Closed form: n copies of one vector give K = all-ones, spectrum (1, 0, ..), VS_q = 1."""
  x = np.tile(np.random.default_rng(1).standard_normal(7), (25, 1))
  for q in (0.0, 1.0, 2.0, np.inf):
    np.testing.assert_allclose(diversity.vendi_score(x, q=q), 1.0, rtol=1e-9)
    np.testing.assert_allclose(diversity.vendi_score(x, "rbf", bandwidth=1.0, q=q), 1.0,
                               rtol=1e-9)


def test_orthogonal_vectors_score_n():
  """Closed form: n mutually orthogonal vectors (random rotation of scaled unit vectors, d = 12 > n
  = 9) give K = I, spectrum 1/n each, VS_q = n for every q."""
  rng = np.random.default_rng(2)
  rotation, _ = np.linalg.qr(rng.standard_normal((12, 12)))
  x = (np.eye(12)[:9] * rng.uniform(0.5, 3.0, (9, 1))) @ rotation
  for q in (0.0, 0.5, 1.0, 2.0, np.inf):
    np.testing.assert_allclose(diversity.vendi_score(x, q=q), 9.0, rtol=1e-9)


def test_two_groups_closed_form():
  """Closed form: two equal groups of identical vectors with cosine s between the groups give
  K / n with eigenvalues (1 +- s) / 2, so VS = exp(H((1 + s)/2, (1 - s)/2)) (Shannon H) and
  VS_2 = 1 / sum lambda^2."""
  s = 0.3
  u, v = np.array([1.0, 0.0, 0.0]), np.array([s, np.sqrt(1 - s**2), 0.0])
  x = np.concatenate([np.tile(u, (10, 1)), np.tile(2.5 * v, (10, 1))])
  lam = np.array([(1 + s) / 2, (1 - s) / 2])
  np.testing.assert_allclose(diversity.vendi_score(x), np.exp(-np.sum(lam * np.log(lam))),
                             rtol=1e-9)
  np.testing.assert_allclose(diversity.vendi_score(x, q=2), 1 / np.sum(lam**2), rtol=1e-9)


def test_dual_eigenproblem_equals_direct():
  """X~ X~^T / n (n x n) and X~^T X~ / n (d x d) share their nonzero eigenvalues (SVD of X~), for
  n < d and n > d alike: spectra agree to 1e-12 after zero padding, and the scores to 1e-10."""
  rng = np.random.default_rng(3)
  for n, d in ((15, 40), (60, 8)):
    x = rng.standard_normal((n, d)) + 0.2
    by_samples = diversity.kernel_spectrum(x, side="samples")
    by_features = diversity.kernel_spectrum(x, side="features")
    size = max(n, d)
    pad = lambda w: np.pad(w, (0, size - len(w)))  # noqa: B023 (used in this iteration only)
    np.testing.assert_allclose(pad(by_samples), pad(by_features), atol=1e-12)
    for q in (0.5, 1.0, 2.0):
      np.testing.assert_allclose(diversity.vendi_score(x, q=q, side="samples"),
                                 diversity.vendi_score(x, q=q, side="features"), rtol=1e-10)


def test_rbf_well_separated_clusters_count_clusters():
  """c = 5 tight clusters (std sigma = 1e-3 in d = 5) 10 apart with bandwidth h = 1: K is block
  diagonal to within exp(-50), and each block is all-ones up to a spectral mass
  delta = E[1 - K_ij] = d sigma^2 / h^2 = 5e-6 spread over n - c small eigenvalues, which moves
  the entropy by at most ~ delta log(n / delta) ~ 1e-4. Closed form for the spectrum = cluster
  weights w: equal clusters give VS = 5; w = (0.4, 0.3, 0.2, 0.1) gives VS = exp(H(w)) = 3.596
  and VS_inf = 1 / 0.4. rtol 1e-3 (10x the bound)."""
  rng = np.random.default_rng(4)
  centres = 10.0 * np.eye(5)
  x = np.repeat(centres, 20, axis=0) + 1e-3 * rng.standard_normal((100, 5))
  np.testing.assert_allclose(diversity.vendi_score(x, "rbf", bandwidth=1.0), 5.0, rtol=1e-3)
  sizes = [40, 30, 20, 10]
  y = np.repeat(centres[:4], sizes, axis=0) + 1e-3 * rng.standard_normal((100, 5))
  w = np.array(sizes) / 100
  np.testing.assert_allclose(diversity.vendi_score(y, "rbf", bandwidth=1.0),
                             np.exp(-np.sum(w * np.log(w))), rtol=1e-3)
  np.testing.assert_allclose(diversity.vendi_score(y, "rbf", bandwidth=1.0, q=np.inf), 1 / 0.4,
                             rtol=1e-3)


def test_order_q_is_non_increasing_and_bounded():
  """Hill-number properties (Pasarkar & Dieng 2023): 1 <= VS_inf <= VS_2 <= VS_1 <= VS_0 = rank K
  <= n. Reference for the rank: numpy.linalg.matrix_rank of the data (rank 6 by construction)."""
  rng = np.random.default_rng(5)
  x = rng.standard_normal((40, 6)) @ rng.standard_normal((6, 20))
  scores = [diversity.vendi_score(x, q=q) for q in (0.0, 0.5, 1.0, 2.0, np.inf)]
  assert scores[0] == np.linalg.matrix_rank(x) == 6
  assert all(a >= b - 1e-12 for a, b in zip(scores, scores[1:])), scores
  assert scores[-1] >= 1.0 and scores[1] > scores[2] > scores[3]


def test_pixel_vendi_is_cosine_on_raw_pixels():
  """pixel_vendi_score equals the brute-force cosine Vendi of the flattened uint8 pixels, is
  unchanged by rescaling to [0, 1] (cosine is scale invariant), and rejects centred [-1, 1]
  images (a different kernel)."""
  rng = np.random.default_rng(6)
  images = rng.integers(0, 256, (12, 4, 4, 3), dtype=np.uint8)
  flat = images.reshape(12, -1).astype(np.float64)
  want = brute_force_vendi(flat, cosine)
  np.testing.assert_allclose(diversity.pixel_vendi_score(images), want, rtol=1e-9)
  np.testing.assert_allclose(diversity.pixel_vendi_score(images / 255.0), want, rtol=1e-9)
  with pytest.raises(ValueError, match="non-negative"):
    diversity.pixel_vendi_score(images / 127.5 - 1.0)


def test_errors():
  x = np.ones((5, 3))
  with pytest.raises(ValueError, match="bandwidth must be a positive float"):
    diversity.vendi_score(x, "rbf")
  with pytest.raises(ValueError, match="bandwidth"):
    diversity.vendi_score(x, "rbf", bandwidth=-1.0)
  with pytest.raises(ValueError, match="kernel must be one of"):
    diversity.vendi_score(x, "laplace")
  with pytest.raises(ValueError, match="q must be >= 0"):
    diversity.vendi_score(x, q=-1.0)
  with pytest.raises(ValueError, match="side must be one of"):
    diversity.vendi_score(x, side="rows")
  with pytest.raises(ValueError, match="all-zero samples"):
    diversity.vendi_score(np.zeros((4, 3)))
  with pytest.raises(ValueError, match="non-finite"):
    diversity.vendi_score(np.array([[1.0, np.nan]]))
  with pytest.raises(ValueError, match="at least one sample"):
    diversity.vendi_score(np.zeros((0, 3)))
