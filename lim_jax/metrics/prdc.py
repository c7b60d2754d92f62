"""Improved precision/recall and density/coverage of two feature sets (host-side numpy, float64).

Both pairs of metrics estimate a sample set's support by k-nearest-neighbour balls. With real
features ``X = {x_i}_{i<N}``, fake features ``Y = {y_j}_{j<M}`` and ``r_k(z, Z)`` the distance from
``z in Z`` to its k-th nearest neighbour in ``Z \\ {z}``, the manifold of a set is the union of its
closed balls ``B(z, r_k(z, Z)) = {u : |u - z| <= r_k(z, Z)}``.

* Kynkäänniemi et al. 2019, "Improved precision and recall metric for assessing generative
  models", Sec. 2, k = 3::

    precision = 1/M sum_j 1[ exists i : |y_j - x_i| <= r_k(x_i, X) ]
    recall    = 1/N sum_i 1[ exists j : |x_i - y_j| <= r_k(y_j, Y) ]

* Naeem et al. 2020, "Reliable fidelity and diversity metrics for generative models", Sec. 3,
  same k::

    density  = 1/(k M) sum_j sum_i 1[ |y_j - x_i| <= r_k(x_i, X) ]
    coverage = 1/N     sum_i 1[ min_j |x_i - y_j| <= r_k(x_i, X) ]

Ties count as inside (``<=``), as in the papers' closed balls; Naeem et al.'s reference code
(``generative-evaluation-prdc``) uses a strict ``<``, which differs only when a distance equals a
radius exactly (duplicated or lattice points). If X and Y are iid from one continuous law,
exchangeability of the N - 1 + M points around each x_i gives ``E[density] = 1`` and
``E[coverage] = 1 - prod_{i=1..k} (N - i) / (N + M - i)`` (coverage fails when the k nearest are
all real), as Naeem et al. 2020 state.

Distances are never held as an ``(N, M)`` matrix: they are formed tile by tile (``chunk x chunk``)
from ``|a|^2 + |b|^2 - 2 a.b`` on features centred at the real coordinate-wise median (robust to
heavy-tailed outliers), so memory is ``O(chunk^2 + (N + M) k)`` whatever N and M. Comparisons are
made on squared distances. The expansion is not bit-reproducible (the same pair in two tiles can
round differently), so a tie would be decided by round-off; instead a squared distance within the
rounding bound of a ball's squared radius, ``slack_i = 8 eps D (|z_i| + r_i)^2`` (twice the error
bound ``~ D eps (|a|^2 + |b|^2)`` of a dot product of length D, for two points of the ball), counts
as equal, i.e. inside. This is what makes ``X = Y`` give precision = recall = coverage = 1 (each
radius is a distance that the cross pass computes again). Pairs whose expanded squared distance is
within rounding of zero are recomputed as ``sum (a - b)^2``, so duplicates are at distance 0.
"""

from __future__ import annotations

import numpy as np

DEFAULT_K = 3
DEFAULT_CHUNK = 1024
# Bound, relative to (|a|^2 + |b|^2) and per feature dimension, on the rounding error of the
# expanded |a|^2 + |b|^2 - 2 a.b (a float64 dot product of length D errs by ~D eps |a| |b| at
# worst):
# pairs below it are recomputed directly, and ties with a radius are decided up to it.
_CANCELLATION = 4.0 * np.finfo(np.float64).eps
_EXACT_PAIRS_PER_BATCH = 4096


def _features(x, name: str) -> np.ndarray:
  """``(N, ...)`` -> a float64 ``(N, D)`` copy; ValueError naming ``name`` for bad shapes/values."""
  x = np.array(x, np.float64)
  if x.ndim < 2:
    raise ValueError(f"{name} must be a feature array of shape (N, D), got shape {x.shape}")
  x = x.reshape(x.shape[0], -1)
  if not np.all(np.isfinite(x)):
    raise ValueError(f"{name} has non-finite features; drop those samples before prdc")
  return x


def _sq_norms(x: np.ndarray) -> np.ndarray:
  return np.einsum("nd,nd->n", x, x)


def _sq_distances(a: np.ndarray, a_sq: np.ndarray, b: np.ndarray, b_sq: np.ndarray,
                  same_block: bool = False) -> np.ndarray:
  """Squared distances ``(len(a), len(b))`` between two row blocks; ``inf`` on the diagonal when
  ``same_block`` (a point is not its own neighbour)."""
  scale = a_sq[:, None] + b_sq[None, :]
  d2 = np.maximum(scale - 2.0 * (a @ b.T), 0.0)
  if same_block:
    np.fill_diagonal(d2, np.inf)
  rows, cols = np.nonzero(d2 <= _CANCELLATION * a.shape[1] * scale)
  for s in range(0, len(rows), _EXACT_PAIRS_PER_BATCH):
    r, c = rows[s:s + _EXACT_PAIRS_PER_BATCH], cols[s:s + _EXACT_PAIRS_PER_BATCH]
    d2[r, c] = np.sum((a[r] - b[c]) ** 2, axis=1)
  return d2


def _keep_k_smallest(best: np.ndarray, block: np.ndarray, k: int) -> np.ndarray:
  """Merges the running ``(c, k)`` smallest values with a ``(c, w)`` block: ``(c, k)`` smallest."""
  both = np.concatenate([best, block], axis=1)
  return np.partition(both, k - 1, axis=1)[:, :k]


def _with_rounding_slack(sq_radii: np.ndarray, sq_norms: np.ndarray, dim: int) -> np.ndarray:
  """``r_i^2 + slack_i`` with ``slack_i = 2 * 4 eps D (|z_i| + r_i)^2`` (module docstring): the
  radius and a distance from z_i to a point of its ball each err by at most ``4 eps D (|z_i| +
  r_i)^2``, so ties are decided up to the sum."""
  return sq_radii + 2.0 * _CANCELLATION * dim * (np.sqrt(sq_norms) + np.sqrt(sq_radii)) ** 2


def _sq_radii(x: np.ndarray, x_sq: np.ndarray, k: int, chunk: int) -> np.ndarray:
  """Squared k-NN radii of the (validated, centred) rows of ``x``; see :func:`knn_sq_radii`."""
  n = len(x)
  best = np.full((n, k), np.inf)
  starts = range(0, n, chunk)
  for i0 in starts:
    ri = slice(i0, min(i0 + chunk, n))
    for j0 in starts:
      if j0 < i0:
        continue
      rj = slice(j0, min(j0 + chunk, n))
      d2 = _sq_distances(x[ri], x_sq[ri], x[rj], x_sq[rj], same_block=i0 == j0)
      best[ri] = _keep_k_smallest(best[ri], d2, k)
      if j0 != i0:
        best[rj] = _keep_k_smallest(best[rj], d2.T, k)
  return best.max(axis=1)


def knn_sq_radii(x, k: int = DEFAULT_K, chunk: int = DEFAULT_CHUNK) -> np.ndarray:
  """Squared k-NN radii ``r_k(x_i, X)^2``, shape ``(N,)``, for ``x`` of shape ``(N, D)``.

  The point itself is excluded; a duplicate of it is not (it is a neighbour at distance 0). Only
  the upper triangle of ``chunk x chunk`` tiles is formed; each tile updates both its rows' and its
  columns' running k smallest.
  """
  x = _features(x, "x")
  _check_k_chunk(k, chunk)
  if len(x) < k + 1:
    raise ValueError(f"x has {len(x)} points; k-NN radii with k={k} need at least k + 1")
  x -= np.median(x, axis=0)
  return _sq_radii(x, _sq_norms(x), k, chunk)


def _check_k_chunk(k: int, chunk: int) -> None:
  if not isinstance(k, (int, np.integer)) or k < 1:
    raise ValueError(f"k must be a positive integer, got {k!r}")
  if not isinstance(chunk, (int, np.integer)) or chunk < 1:
    raise ValueError(f"chunk must be a positive integer, got {chunk!r}")


def prdc(real, fake, k: int = DEFAULT_K, chunk: int = DEFAULT_CHUNK) -> dict[str, float]:
  """Precision, recall, density and coverage of ``fake (M, D)`` against ``real (N, D)``.

  Args:
    real: real (reference) features ``(N, D)``; trailing axes beyond the first are flattened.
    fake: generated features ``(M, D)``.
    k: neighbour rank of the ball radii (3 in both papers).
    chunk: tile side; peak memory is a few ``chunk x chunk`` float64 arrays.

  Returns:
    ``{"precision", "recall", "density", "coverage"}`` as floats; precision, recall and coverage
    lie in [0, 1], density in [0, N / k].
  """
  _check_k_chunk(k, chunk)
  # Distances are translation invariant; centring shrinks |a|^2 + |b|^2 relative to |a - b|^2.
  # Each set is centred as soon as it is copied, so at most two (N, D) float64 arrays live at once.
  real = _features(real, "real")
  centre = np.median(real, axis=0)
  real -= centre
  fake = _features(fake, "fake")
  if real.shape[1] != fake.shape[1]:
    raise ValueError(f"real and fake feature dimensions differ: real has D={real.shape[1]}, "
                     f"fake has D={fake.shape[1]}")
  fake -= centre
  for name, x in (("real", real), ("fake", fake)):
    if len(x) < k + 1:
      raise ValueError(f"{name} has {len(x)} points; prdc with k={k} needs at least k + 1 = "
                       f"{k + 1}")
  real_sq, fake_sq = _sq_norms(real), _sq_norms(fake)
  dim = real.shape[1]
  real_r2 = _with_rounding_slack(_sq_radii(real, real_sq, k, chunk), real_sq, dim)
  fake_r2 = _with_rounding_slack(_sq_radii(fake, fake_sq, k, chunk), fake_sq, dim)

  n, m = len(real), len(fake)
  balls_holding_fake = np.zeros(m, np.int64)  # #{i : y_j in B(x_i)}
  real_covered = np.zeros(n, bool)  # exists j : y_j in B(x_i)
  real_in_fake = np.zeros(n, bool)  # exists j : x_i in B(y_j)
  for i0 in range(0, n, chunk):
    ri = slice(i0, min(i0 + chunk, n))
    for j0 in range(0, m, chunk):
      rj = slice(j0, min(j0 + chunk, m))
      d2 = _sq_distances(real[ri], real_sq[ri], fake[rj], fake_sq[rj])
      in_real_ball = d2 <= real_r2[ri, None]
      balls_holding_fake[rj] += in_real_ball.sum(axis=0)
      real_covered[ri] |= in_real_ball.any(axis=1)
      real_in_fake[ri] |= (d2 <= fake_r2[None, rj]).any(axis=1)
  return {"precision": float(np.mean(balls_holding_fake > 0)),
          "recall": float(np.mean(real_in_fake)),
          "density": float(balls_holding_fake.sum() / (k * m)),
          "coverage": float(np.mean(real_covered))}
