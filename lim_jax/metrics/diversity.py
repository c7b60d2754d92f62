"""Vendi diversity score of a sample set (host-side numpy, float64).

Friedman & Dieng 2023, "The Vendi Score: A Diversity Evaluation Metric for Machine Learning"
(TMLR): for samples ``x_1..x_n`` and a positive semidefinite similarity kernel with
``k(x, x) = 1``, let ``lambda_1..lambda_n`` be the eigenvalues of ``K / n``, ``K_ij = k(x_i, x_j)``
(they are >= 0 and sum to ``tr(K) / n = 1``). Then

    VS(x_1..x_n) = exp( - sum_i lambda_i log lambda_i )        (0 log 0 = 0),

the exponential of the Shannon (von Neumann) entropy: the effective number of distinct samples.
n identical samples score 1; n mutually orthogonal ones (``K = I``) score n.

The order-q variant (Pasarkar & Dieng 2023, "Cousins of the Vendi score") exponentiates the
Renyi entropy instead, a Hill number of the spectrum::

    VS_q = exp( log(sum_i lambda_i^q) / (1 - q) ),  q >= 0, q != 1;   VS_inf = 1 / max_i lambda_i,

with VS_1 = VS (the q -> 1 limit), VS_0 = rank K, and VS_q non-increasing in q.

Kernels (``x`` is flattened to vectors ``(n, d)``):

* ``"cosine"``: ``k(u, v) = <u, v> / (|u| |v|)``. With ``X~`` the row-normalised ``(n, d)`` matrix,
  ``K / n = X~ X~^T / n`` has the same nonzero eigenvalues as ``X~^T X~ / n`` ``(d, d)``; the
  smaller of the two is diagonalised (the "dual" form, ``vendi_score.vendi.score_dual``).
* ``"rbf"``: ``k(u, v) = exp(-|u - v|^2 / (2 bandwidth^2))``. It needs the ``(n, n)`` matrix
  (``8 n^2`` bytes, ``O(n^3)`` time). ``bandwidth`` must be given: a default fitted to each sample
  set (e.g. the median distance) would rescale every set to itself and make scores incomparable.

Pixel Vendi (the pixel-wise diversity score of Nobis et al. 2024, "Generative Fractional Diffusion
Models", NeurIPS, as computed by the Vendi authors' ``vendi_score.image_utils.pixel_vendi_score``):
the cosine-kernel Vendi score, q = 1, of the raw, uncentred pixel vectors (uint8 values flattened
over H, W, C).
:func:`pixel_vendi_score` implements that; it does not resize (the package resizes to 32 x 32,
a no-op for CIFAR-10) and rejects negative inputs, since a cosine between centred [-1, 1] images is
a different kernel.

Numerically, eigenvalues below ``lambda_max * size * eps`` (the ``numpy.linalg.matrix_rank``
tolerance) are set to zero and the rest renormalised to sum to 1.
"""

from __future__ import annotations

import numpy as np

KERNELS = ("cosine", "rbf")
SIDES = ("auto", "samples", "features")


def _vectors(x, name: str = "x") -> np.ndarray:
  x = np.asarray(x, np.float64)
  if x.ndim < 1 or x.shape[0] < 1:
    raise ValueError(f"{name} must hold at least one sample along axis 0, got shape {x.shape}")
  x = x.reshape(x.shape[0], -1)
  if not np.all(np.isfinite(x)):
    raise ValueError(f"{name} has non-finite values; drop those samples before the Vendi score")
  return x


def _to_probabilities(eigenvalues: np.ndarray) -> np.ndarray:
  """Clips round-off (negative or below the rank tolerance) to 0 and renormalises to sum 1."""
  w = np.asarray(eigenvalues, np.float64)
  tol = max(w.max(), 0.0) * len(w) * np.finfo(np.float64).eps
  w = np.where(w > tol, w, 0.0)
  return np.sort(w / w.sum())[::-1]


def kernel_spectrum(x, kernel: str = "cosine", bandwidth: float | None = None,
                    side: str = "auto") -> np.ndarray:
  """Eigenvalues of ``K / n`` as a probability vector, descending.

  Args:
    x: samples ``(n, ...)``, flattened to ``(n, d)``.
    kernel: ``"cosine"`` or ``"rbf"`` (module docstring).
    bandwidth: RBF length scale (required for ``"rbf"``, unused for ``"cosine"``).
    side: cosine only: ``"samples"`` diagonalises ``X~ X~^T / n`` ``(n, n)``, ``"features"``
      ``X~^T X~ / n`` ``(d, d)``, ``"auto"`` the smaller. RBF always uses ``(n, n)``.

  Returns:
    ``(min(n, d),)`` for cosine with ``side="auto"``, else ``(n,)`` or ``(d,)``: nonnegative,
    summing to 1; the nonzero entries do not depend on ``side``.
  """
  x = _vectors(x)
  n, d = x.shape
  if side not in SIDES:
    raise ValueError(f"side must be one of {SIDES}, got {side!r}")
  if kernel == "cosine":
    norms = np.linalg.norm(x, axis=1)
    if np.any(norms == 0):
      raise ValueError(f"x has {int(np.sum(norms == 0))} all-zero samples; the cosine kernel is "
                       "undefined for them")
    unit = x / norms[:, None]
    if side == "samples" or (side == "auto" and n <= d):
      gram = unit @ unit.T / n
    else:
      gram = unit.T @ unit / n
    return _to_probabilities(np.linalg.eigvalsh(gram))
  if kernel == "rbf":
    if bandwidth is None or not np.isfinite(bandwidth) or bandwidth <= 0:
      raise ValueError(f"bandwidth must be a positive float for kernel='rbf', got {bandwidth!r}")
    sq = np.einsum("nd,nd->n", x, x)
    # One (n, n) buffer: -2 x.x^T -> squared distances -> kernel -> K / n, all in place.
    gram = x @ x.T
    gram *= -2.0
    gram += sq[:, None]
    gram += sq[None, :]
    np.maximum(gram, 0.0, out=gram)
    gram *= -1.0 / (2.0 * bandwidth**2)
    np.exp(gram, out=gram)
    np.fill_diagonal(gram, 1.0)
    gram /= n
    return _to_probabilities(np.linalg.eigvalsh(gram))
  raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")


def vendi_from_spectrum(probabilities: np.ndarray, q: float = 1.0) -> float:
  """``exp`` of the order-``q`` Renyi entropy of a probability vector (Shannon at ``q = 1``)."""
  if not q >= 0:
    raise ValueError(f"q must be >= 0 (or inf), got {q!r}")
  p = np.asarray(probabilities, np.float64)
  p = p[p > 0]
  if q == 1:
    return float(np.exp(-np.sum(p * np.log(p))))
  if np.isinf(q):
    return float(1.0 / p.max())
  return float(np.exp(np.log(np.sum(p**q)) / (1.0 - q)))


def vendi_score(x, kernel: str = "cosine", bandwidth: float | None = None, q: float = 1.0,
                side: str = "auto") -> float:
  """Vendi score ``VS_q`` of samples ``x (n, ...)`` in [1, n] (module docstring for the kernels).

  Example: ``vendi_score(features)`` (cosine), ``vendi_score(x, "rbf", bandwidth=0.5)``.
  """
  return vendi_from_spectrum(kernel_spectrum(x, kernel, bandwidth, side), q)


def pixel_vendi_score(images, q: float = 1.0) -> float:
  """Pixel Vendi of Nobis et al. 2024: cosine Vendi of raw pixel vectors.

  Args:
    images: ``(n, H, W, C)`` (or any ``(n, ...)``) non-negative pixels, uint8 in [0, 255] as from
      :func:`lim_jax.sample.to_uint8` (any positive rescaling, e.g. [0, 1], gives the same score).
    q: order (1 in the paper).
  """
  images = np.asarray(images)
  if images.size and np.min(images) < 0:
    raise ValueError("images must be non-negative pixels (uint8 from sample.to_uint8 or [0, 1]); "
                     "pixel Vendi is defined on uncentred pixels, not on [-1, 1] model outputs")
  return vendi_score(images, "cosine", q=q)
