"""Inception pool3 features of images, with clean-fid's preprocessing (the features of FID and of
PRDC on images).

Images are resized to 299x299 with a bicubic filter (Keys a = -0.5 with antialiasing, as PIL's
BICUBIC that clean-fid uses; Parmar et al. 2022, "On aliased resizing and surprising subtleties in
GAN evaluation") on ``[0, 255]`` values, clipped to ``[0, 255]`` and mapped to ``[-1, 1]`` by
``x / 127.5 - 1`` (pytorch-fid's ``2x - 1``), then run through
:class:`lim_jax.metrics.inception.InceptionV3` (weights from
:func:`lim_jax.metrics.inception_weights.load_inception_params`) to its 2048-d pool3 features.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from lim_jax.metrics import inception as inception_lib


def preprocess(images: jax.Array) -> jax.Array:
  """``(N, H, W, C)`` uint8 or float in ``[-1, 1]``, C in {1, 3} -> ``(N, 299, 299, 3)`` in [-1, 1].

  Resizes ``[0, 255]`` values with ``jax.image.resize(..., 'bicubic')`` (Keys a = -0.5,
  antialiased when shrinking, edge weights renormalised: PIL's BICUBIC on mode 'F' images, which
  clean-fid uses), clips to ``[0, 255]``, then ``x / 127.5 - 1``. One channel is repeated to three.
  """
  if jnp.issubdtype(images.dtype, jnp.integer):
    x = images.astype(jnp.float32)
  else:
    x = (jnp.clip(images.astype(jnp.float32), -1.0, 1.0) + 1.0) * 127.5
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  size = inception_lib.INPUT_SIZE
  if x.shape[1:3] != (size, size):
    x = jax.image.resize(x, (x.shape[0], size, size, 3), method="bicubic", antialias=True)
    x = jnp.clip(x, 0.0, 255.0)
  return x / 127.5 - 1.0


@functools.partial(jax.jit, static_argnums=0)
def _forward(model: inception_lib.InceptionV3, variables: Any, batch: jax.Array) -> jax.Array:
  """Module-level jit: feature functions with equal modules share compilations."""
  return model.apply(variables, preprocess(batch))


def make_feature_fn(variables: Any, batch_size: int = 50,
                    precision: Any = jax.lax.Precision.HIGHEST
                    ) -> Callable[[np.ndarray], np.ndarray]:
  """``fn(images) -> (N, 2048) float64`` pool3 features, one jitted preprocess + forward.

  ``variables``: ``{'params', 'batch_stats'}`` of :class:`InceptionV3`. ``images``:
  ``(N, H, W, C)``, uint8 in ``[0, 255]`` or float in ``[-1, 1]`` (clipped), C in {1, 3}. Images
  go through in batches of ``batch_size``; the last batch is zero-padded to ``batch_size`` so each
  input shape and dtype compiles once.
  """
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  model = inception_lib.InceptionV3(precision=precision)
  variables = jax.device_put(jax.tree_util.tree_map(jnp.asarray, variables))

  def feature_fn(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
      raise ValueError(f"images must be (N, H, W, C) with C in {{1, 3}}, got {images.shape}")
    if np.issubdtype(images.dtype, np.integer):
      if images.dtype != np.uint8:
        raise ValueError(f"integer images must be uint8, got {images.dtype}")
    elif np.issubdtype(images.dtype, np.floating):
      images = images.astype(np.float32)
      if not np.all(np.isfinite(images)):
        raise ValueError("images contain non-finite values")
    else:
      raise ValueError(f"images must be uint8 or float, got {images.dtype}")
    n = images.shape[0]
    out = np.empty((n, inception_lib.FEATURE_DIM), np.float64)
    for start in range(0, n, batch_size):
      batch = images[start:start + batch_size]
      count = batch.shape[0]
      if count < batch_size:
        pad = np.zeros((batch_size - count,) + batch.shape[1:], batch.dtype)
        batch = np.concatenate([batch, pad])
      out[start:start + count] = np.asarray(_forward(model, variables, batch),
                                             np.float64)[:count]
    return out

  return feature_fn
