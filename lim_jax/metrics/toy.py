"""Weights-free metrics for low-dimensional samples (host-side numpy, float64).

* :func:`sliced_wasserstein`: mean over random unit directions of the 1-D W1 distance of the
  projections (Bonneel et al. 2015), each 1-D W1 computed exactly from quantile functions.
* :func:`mmd`: biased (V-statistic) squared MMD with a sum of Gaussian kernels
  ``k(x, y) = sum_b exp(-|x-y|^2 / (2 b^2))`` over bandwidths ``b in (0.1, 0.3, 1, 3)``.
* :func:`tail_quantile_log_error`: Baule (2025)'s tail metric, the mean over quantile levels
  ``q in [0.95, 0.999]`` of ``|log Q_|x|(q) - log Q_|y|(q)|``.
* :func:`mode_coverage`: fraction of samples nearest each mode (within ``radius`` mode stds) versus
  the true weights.
"""

from __future__ import annotations

import numpy as np

MMD_BANDWIDTHS = (0.1, 0.3, 1.0, 3.0)
TAIL_LEVELS = np.linspace(0.95, 0.999, 11)


def _as2d(x) -> np.ndarray:
  x = np.asarray(x, np.float64)
  return x.reshape(x.shape[0], -1)


def wasserstein_1d(u: np.ndarray, v: np.ndarray) -> float:
  """Exact W1 between two 1-D empirical laws: ``int |F_u^-1 - F_v^-1|`` over the merged levels."""
  u, v = np.sort(u), np.sort(v)
  levels = np.union1d(np.arange(1, len(u) + 1) / len(u), np.arange(1, len(v) + 1) / len(v))
  widths = np.diff(np.concatenate([[0.0], levels]))
  # Left-continuous inverse CDF evaluated on each interval (level_{i-1}, level_i].
  iu = np.minimum(np.searchsorted(np.arange(1, len(u) + 1) / len(u), levels - 1e-12), len(u) - 1)
  iv = np.minimum(np.searchsorted(np.arange(1, len(v) + 1) / len(v), levels - 1e-12), len(v) - 1)
  return float(np.sum(widths * np.abs(u[iu] - v[iv])))


def sliced_wasserstein(x, y, num_projections: int = 256, seed: int = 0) -> float:
  """Sliced W1 between sample sets ``x (n, d)`` and ``y (m, d)``."""
  x, y = _as2d(x), _as2d(y)
  dirs = np.random.default_rng(seed).standard_normal((num_projections, x.shape[1]))
  dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
  px, py = x @ dirs.T, y @ dirs.T
  return float(np.mean([wasserstein_1d(px[:, i], py[:, i]) for i in range(num_projections)]))


def mmd(x, y, bandwidths=MMD_BANDWIDTHS, max_points: int = 2000, seed: int = 0) -> float:
  """Biased squared MMD (zero for identical sets); at most ``max_points`` of each set are used."""
  rng = np.random.default_rng(seed)
  x, y = _as2d(x), _as2d(y)
  if len(x) > max_points:
    x = x[rng.choice(len(x), max_points, replace=False)]
  if len(y) > max_points:
    y = y[rng.choice(len(y), max_points, replace=False)]

  def kmean(a, b):
    d2 = np.maximum(np.sum(a**2, 1)[:, None] + np.sum(b**2, 1)[None, :] - 2 * a @ b.T, 0.0)
    return sum(np.mean(np.exp(-d2 / (2 * bw**2))) for bw in bandwidths)

  return float(kmean(x, x) + kmean(y, y) - 2 * kmean(x, y))


def tail_quantile_log_error(x, y, levels=TAIL_LEVELS) -> float:
  """Mean ``|log Q_|x|(q) - log Q_|y|(q)|`` over ``levels`` (norms over all but the batch axis)."""
  nx = np.linalg.norm(_as2d(x), axis=1)
  ny = np.linalg.norm(_as2d(y), axis=1)
  return float(np.mean(np.abs(np.log(np.quantile(nx, levels)) - np.log(np.quantile(ny, levels)))))


def mode_coverage(x, centers, weights, std: float, radius: float = 4.0) -> dict[str, float]:
  """Per-mode sample fractions for a Gaussian-mixture target.

  A sample belongs to its nearest centre if it lies within ``radius * std`` of it.

  Returns:
    ``modes_covered`` (modes with at least one sample), ``rare_modes_covered`` (of the modes whose
    weight is below the median), ``in_mode_fraction`` and ``weight_tv`` (total variation between
    the per-mode fractions among assigned samples and the true weights).
  """
  x, centers, weights = _as2d(x), np.asarray(centers), np.asarray(weights)
  d = np.linalg.norm(x[:, None, :] - centers[None], axis=-1)
  nearest = np.argmin(d, axis=1)
  inside = d[np.arange(len(x)), nearest] < radius * std
  counts = np.bincount(nearest[inside], minlength=len(centers))
  frac = counts / max(counts.sum(), 1)
  rare = weights < np.median(weights)
  return {"modes_covered": float(np.sum(counts > 0)),
          "rare_modes_covered": float(np.sum((counts > 0) & rare)),
          "in_mode_fraction": float(inside.mean()),
          "weight_tv": float(0.5 * np.abs(frac - weights).sum())}
