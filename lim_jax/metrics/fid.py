"""Fréchet Inception Distance (Heusel et al. 2017, eq. 6), with clean-fid's conventions (Parmar et
al. 2022, "On aliased resizing and surprising subtleties in GAN evaluation").

``FID = |mu_1 - mu_2|^2 + tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))``

between Gaussians fitted (float64 mean and unbiased covariance) to two sets of features: for FID
proper the 2048-d pool3 features of :func:`lim_jax.metrics.inception_features.make_feature_fn`;
any ``(N, d)`` features work (the Fréchet distance of another extractor's features).
"""

from __future__ import annotations

import warnings
import zipfile
from typing import Callable

import numpy as np
import scipy.linalg
from numpy.typing import ArrayLike

from lim_jax import storage


def statistics(features: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
  """Mean ``(d,)`` and unbiased covariance ``(d, d)`` (``np.cov``, divisor N-1), float64.

  Warns when ``N < d``: the covariance then has rank < d and the FID is biased (FID is usually
  reported with N = 50000 for d = 2048).
  """
  features = np.asarray(features, np.float64)
  if features.ndim != 2 or features.shape[0] < 2:
    raise ValueError(f"features must be (N >= 2, d), got {features.shape}")
  n, d = features.shape
  if n < d:
    warnings.warn(f"FID statistics from N = {n} < d = {d} features: the covariance is singular "
                  "(rank <= N - 1) and the FID estimate is biased; use N >= d (50000 is the "
                  "usual choice)", stacklevel=2)
  return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike,
                     eps: float = 1e-6) -> float:
  """``|mu1 - mu2|^2 + tr(S1 + S2 - 2 sqrtm(S1 S2))`` in float64 (Dowson & Landau 1982).

  ``sqrtm`` is ``scipy.linalg.sqrtm`` (Schur method). If it is not finite (near-singular
  product), ``eps * I`` is added to both covariances (pytorch-fid's fallback). The product of
  two PSD matrices has real non-negative eigenvalues, so an imaginary part is numerical noise: it
  is dropped when its diagonal is below 1e-3, else ValueError.
  """
  mu1, mu2 = (np.atleast_1d(np.asarray(m, np.float64)) for m in (mu1, mu2))
  s1, s2 = (np.atleast_2d(np.asarray(s, np.float64)) for s in (sigma1, sigma2))
  d = mu1.shape[0]
  if mu1.ndim != 1 or mu2.shape != mu1.shape or s1.shape != (d, d) or s2.shape != (d, d):
    raise ValueError(f"statistics shapes differ: mu1 {mu1.shape}, sigma1 {s1.shape}, "
                     f"mu2 {mu2.shape}, sigma2 {s2.shape}")
  diff = mu1 - mu2
  covmean = scipy.linalg.sqrtm(s1 @ s2)
  if not np.all(np.isfinite(covmean)):
    offset = eps * np.eye(d)
    covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
  if np.iscomplexobj(covmean):
    imag = np.max(np.abs(np.diagonal(covmean).imag))
    if imag > 1e-3:
      raise ValueError(f"sqrtm(S1 S2) has an imaginary component {imag:.3g}: the covariances "
                       "are not positive semi-definite")
    covmean = covmean.real
  return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


def fid_from_features(f_samples: ArrayLike, f_reference: ArrayLike) -> float:
  """FID between two feature sets ``(N, d)`` and ``(M, d)``."""
  f_samples, f_reference = np.asarray(f_samples), np.asarray(f_reference)
  if f_samples.ndim != 2 or f_reference.ndim != 2 or f_samples.shape[1] != f_reference.shape[1]:
    raise ValueError(f"feature shapes differ: {f_samples.shape} vs {f_reference.shape}")
  return frechet_distance(*statistics(f_samples), *statistics(f_reference))


def fid_from_images(feature_fn: Callable[[np.ndarray], np.ndarray], samples: ArrayLike,
                    reference: ArrayLike) -> float:
  """FID between two image sets of the same ``(H, W, C)`` through ``feature_fn``."""
  samples, reference = np.asarray(samples), np.asarray(reference)
  if samples.ndim != 4 or samples.shape[1:] != reference.shape[1:]:
    raise ValueError(f"image shapes differ: samples {samples.shape}, reference {reference.shape}")
  return fid_from_features(feature_fn(samples), feature_fn(reference))


def reference_statistics(cache_path: str,
                         compute: Callable[[], tuple[np.ndarray, np.ndarray]]
                         ) -> tuple[np.ndarray, np.ndarray]:
  """``(mu, sigma)`` from the ``.npz`` at ``cache_path``, else from ``compute()`` (then cached).

  ``cache_path`` is local or ``gs://``. The cache is written atomically
  (:func:`lim_jax.storage.save_npz`: a temporary file + ``os.replace``, or one upload) so an
  interrupted run never leaves a half-written file, and read with ``allow_pickle=False``.
  """
  if storage.isfile(cache_path):
    try:
      npz = storage.load_npz(cache_path)
      mu, sigma = np.asarray(npz["mu"], np.float64), np.asarray(npz["sigma"], np.float64)
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as e:
      raise ValueError(f"reference statistics cache {cache_path!r} is unreadable ({e}); "
                       "delete it to recompute") from e
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
      raise ValueError(f"reference statistics cache {cache_path!r} has mu {mu.shape}, sigma "
                       f"{sigma.shape}; delete it to recompute")
    return mu, sigma
  mu, sigma = compute()
  mu, sigma = np.asarray(mu, np.float64), np.asarray(sigma, np.float64)
  storage.save_npz(cache_path, mu=mu, sigma=sigma)
  return mu, sigma
