"""Alpha-stable random variates as pure ``jax.random``-style functions.

(Initial version: the Lévy issue hardens it for float32 edge cases and tests it against scipy.)
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

Array = jax.Array


def positive_stable_mixing(key: jax.Array, alpha: float, shape, dtype=jnp.float32) -> Array:
  """Positive (alpha/2)-stable ``A`` with ``E exp(-s A) = exp(-s^{alpha/2})`` (Kanter's formula).

  With ``a = alpha/2``, ``V ~ U(-pi/2, pi/2)``, ``W ~ Exp(1)``:
  ``A = sin(a(V+pi/2)) / cos(V)^{1/a} * (cos(V - a(V+pi/2)) / W)^{(1-a)/a}`` (DESIGN.md §3.2).
  ``alpha = 2`` gives ``A = 1``.
  """
  if alpha == 2.0:
    return jnp.ones(shape, dtype)
  a = alpha / 2.0
  k_v, k_w = jax.random.split(key)
  v = jax.random.uniform(k_v, shape, dtype, minval=-math.pi / 2, maxval=math.pi / 2)
  w = jax.random.exponential(k_w, shape, dtype)
  u = a * (v + math.pi / 2)
  log_a = (jnp.log(jnp.sin(u)) - jnp.log(jnp.cos(v)) / a
           + (1 - a) / a * (jnp.log(jnp.cos(v - u)) - jnp.log(w)))
  return jnp.exp(log_a)


def isotropic_stable(key: jax.Array, alpha: float, shape, event_ndim: int = 1,
                     dtype=jnp.float32) -> Array:
  """Isotropic SaS vectors ``eps = sqrt(A) G``, ``G ~ N(0, 2 I)``, char. fn ``exp(-|k|^alpha)``.

  One ``A`` per event: the last ``event_ndim`` axes of ``shape`` form one isotropic vector.
  Key convention (processes/base.py): ``G`` from ``split(key)[0]``, ``A`` from ``split(key)[1]``.
  """
  k_gauss, k_latent = jax.random.split(key)
  batch_shape = tuple(shape[: len(shape) - event_ndim])
  mix = positive_stable_mixing(k_latent, alpha, batch_shape, dtype)
  g = math.sqrt(2.0) * jax.random.normal(k_gauss, shape, dtype)
  return jnp.sqrt(mix).reshape(batch_shape + (1,) * event_ndim) * g
