"""Alpha-stable random variates as pure ``jax.random``-style functions.

Conventions (Samorodnitsky & Taqqu 1994, S1 parametrisation = ``scipy.stats.levy_stable`` default):

* :func:`symmetric_stable`: 1-D symmetric alpha-stable ``X`` with ``E exp(ikX) = exp(-|k|^alpha)``
  (``scipy.stats.levy_stable(alpha, 0)``), by Chambers, Mallows & Stuck (1976), JASA 71, eq. (2.3).
* :func:`positive_stable_mixing`: totally skewed positive ``(alpha/2)``-stable ``A`` with Laplace
  transform ``E exp(-s A) = exp(-s^{alpha/2})``, by Kanter's (1975) representation
  (``A ~ levy_stable(alpha/2, 1, scale=cos(pi alpha/4)^{2/alpha})``).
* :func:`isotropic_stable`: isotropic ``d``-dimensional SaS vector with ``E exp(i k.eps) =
  exp(-|k|^alpha)``, as the sub-Gaussian mixture ``eps = sqrt(A) G``, ``G ~ N(0, 2 I)``
  (Samorodnitsky & Taqqu Prop. 2.5.2; docs/families/levy.md §1; LIM, Yoon et al. 2023, eq. 3).

Numerics (float32 and float64). All three samplers are exact in law; they are written so that no
``alpha`` in ``(0, 2]`` can produce NaN or Inf:

* the uniform angle is drawn on the symmetric open grid ``(k + 1/2) 2^-p`` (never 0, never 1) and
  every ``sin``/``cos`` near a zero is evaluated as ``sin(pi * min(x, 1-x))`` with ``1-x`` formed
  without cancellation, so ``V -> +-pi/2`` and ``alpha -> 2`` keep full relative accuracy;
* the exponential ``W = -log U`` is drawn from the same open grid, so ``W > 0``;
* the product is formed in log space and saturated at the largest finite float: for small alpha
  the exact law puts visible mass beyond float32's range (``P(A > 3e38) ~ 1 %`` at alpha = 0.1), and
  such a draw is returned as ``finfo.max`` (a saturation of the number format, not a truncation of
  the law below it);
* ``alpha == 2`` short-circuits to the Gaussian, so ``isotropic_stable(key, 2., ...)`` is
  bit-for-bit ``sqrt(2) * jax.random.normal(split(key)[0], ...)``.

``alpha`` must be a Python number (it is static: it selects code paths).

Truncated tails (opt-in, default off): ``clamp_a`` caps ``A`` as the LIM supplementary code and DLPM
do (20, resp. 10-20), ``clamp_eps`` clips each coordinate of ``eps`` as DLPM does (50-200). The
official LIM code instead rejects ``A >= 20``; with either option the noise is no longer stable.
"""

from __future__ import annotations

import math
import numbers
from typing import Sequence

import jax
import jax.numpy as jnp

Array = jax.Array
Shape = Sequence[int]


def validate_alpha(alpha, name: str = "alpha") -> float:
  """Returns ``float(alpha)``; raises ``ValueError`` naming ``name`` unless ``0 < alpha <= 2``."""
  if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
    raise ValueError(f"{name} must be a real number in (0, 2], got {alpha!r}")
  alpha = float(alpha)
  if not (math.isfinite(alpha) and 0.0 < alpha <= 2.0):
    raise ValueError(f"{name} must be in (0, 2], got {alpha}")
  return alpha


def validate_clamp(value, name: str) -> float | None:
  """``None`` (off) or a finite float ``> 0``; raises ``ValueError`` naming ``name`` otherwise."""
  if value is None:
    return None
  if isinstance(value, bool) or not isinstance(value, numbers.Real):
    raise ValueError(f"{name} must be a number > 0 or None (off), got {value!r}")
  value = float(value)
  if not (math.isfinite(value) and value > 0.0):
    raise ValueError(f"{name} must be > 0 or None (off, the exact law), got {value}")
  return value


def _compute_dtype(dtype) -> jnp.dtype:
  """float64 when asked for (and enabled), float32 otherwise (bf16/f16 are cast at the end)."""
  dtype = jnp.dtype(dtype)
  if not jnp.issubdtype(dtype, jnp.floating):
    raise ValueError(f"dtype must be a floating type, got {dtype}")
  return jnp.dtype(jnp.float64) if (dtype == jnp.float64 and jax.config.jax_enable_x64) \
      else jnp.dtype(jnp.float32)


def _open_uniform(key: jax.Array, shape: Shape, dtype) -> Array:
  """``U`` on the open interval ``(0, 1)``, symmetric: ``1 - U`` is exact and never 0.

  ``jax.random.uniform`` returns ``k 2^-p`` (p = mantissa bits), which can be exactly 0; shifting by
  half a grid step gives ``(k + 1/2) 2^-p``, a grid symmetric about 1/2 with both ends excluded.
  """
  half_step = float(jnp.finfo(dtype).eps) / 2.0
  u = jax.random.uniform(key, tuple(shape), dtype) + half_step
  return jnp.clip(u, half_step, 1.0 - half_step)


def _log_sinpi(x: Array, one_minus_x: Array) -> Array:
  """``log sin(pi x)`` for ``x in (0, 1)`` given an accurate ``1 - x``: uses the nearer zero."""
  return jnp.log(jnp.sin(math.pi * jnp.minimum(x, one_minus_x)))


def _log_range(dtype) -> tuple[float, float]:
  """``(lo, hi)`` such that ``exp`` of any value in between is a finite normal number of ``dtype``.

  The margins keep clear of float rounding (``exp(log(finfo.max))`` rounds to Inf in float32) and of
  flush-to-zero of subnormals.
  """
  info = jnp.finfo(dtype)
  return math.log(float(info.tiny)) + 1.0, math.log(float(info.max)) - 1e-3


def _saturating_exp(log_x: Array) -> Array:
  """``exp`` with ``log_x`` clipped above so the result stays finite (see module docstring)."""
  return jnp.exp(jnp.minimum(log_x, _log_range(log_x.dtype)[1]))


def cms_transform(u: Array, w: Array, alpha: float) -> Array:
  """Chambers–Mallows–Stuck map ``(U, W) -> X`` of the symmetric law (:func:`symmetric_stable`).

  Args:
    u: uniforms in the open interval ``(0, 1)`` such that ``u - 1/2`` is exact (the half-step grid).
    w: positive ``Exp(1)`` draws.
    alpha: stability index in ``(0, 2)``.
  """
  centred = u - 0.5  # exact on the half-step grid
  h = jnp.abs(centred)  # |V| / pi, in (0, 1/2)
  half_minus_h = 0.5 - h  # exact, > 0
  # sin(alpha pi h): 1 - alpha h = 2 (1/2 - h) + (2 - alpha) h, no cancellation near alpha = 2.
  log_sin_av = _log_sinpi(alpha * h, 2.0 * half_minus_h + (2.0 - alpha) * h)
  log_cos_v = jnp.log(jnp.sin(math.pi * half_minus_h))
  # cos((1 - alpha) pi h) = sin(pi (1/2 - |1 - alpha| h)); 1/2 - |1 - alpha| h written as a sum of
  # non-negative terms: (1/2 - h) + min(alpha, 2 - alpha) h.
  log_cos_rest = jnp.log(jnp.sin(math.pi * (half_minus_h + min(alpha, 2.0 - alpha) * h)))
  log_abs = (log_sin_av - log_cos_v / alpha
             + (1.0 - alpha) / alpha * (log_cos_rest - jnp.log(w)))
  return jnp.sign(centred) * _saturating_exp(log_abs)


def kanter_transform(u: Array, w: Array, alpha: float) -> Array:
  """Kanter map ``(U, W) -> A`` for the positive ``alpha/2``-stable law (see
  :func:`positive_stable_mixing`); ``u`` on the half-step grid (``1 - u`` exact), ``w > 0``."""
  a = alpha / 2.0
  one_minus_u = 1.0 - u  # exact on the half-step grid
  log_sin_phi = _log_sinpi(u, one_minus_u)
  log_sin_a = _log_sinpi(a * u, one_minus_u + (1.0 - a) * u)
  log_sin_1ma = _log_sinpi((1.0 - a) * u, one_minus_u + a * u)
  log_mix = (log_sin_a - log_sin_phi / a + (1.0 - a) / a * (log_sin_1ma - jnp.log(w)))
  # Lower end: keep A a positive normal number so that 1/A and log A stay finite.
  return _saturating_exp(jnp.maximum(log_mix, _log_range(u.dtype)[0]))


def symmetric_stable(key: jax.Array, alpha: float, shape: Shape, dtype=jnp.float32) -> Array:
  """1-D symmetric alpha-stable draws, ``E exp(ikX) = exp(-|k|^alpha)`` (Chambers–Mallows–Stuck).

  With ``V = pi (U - 1/2)``, ``W ~ Exp(1)`` (CMS 1976, eq. 2.3 with beta = 0):
  ``X = sin(alpha V) / cos(V)^{1/alpha} * (cos((1 - alpha) V) / W)^{(1 - alpha)/alpha}``,
  evaluated as ``sign(V) |X|`` in log space with ``h = |U - 1/2| in (0, 1/2)``:
  ``sin(alpha pi h)``, ``cos(pi h) = sin(pi (1/2 - h))`` and
  ``cos((1 - alpha) pi h) = sin(pi (1/2 - |1 - alpha| h))``, each from its nearer zero.
  alpha = 1 gives ``tan V`` (Cauchy); ``alpha = 2`` returns ``sqrt(2) N(0, 1)`` drawn from
  ``split(key)[0]`` (the same numbers as :func:`isotropic_stable` with ``event_ndim=0``).

  Args:
    key: PRNG key.
    alpha: stability index in ``(0, 2]`` (static).
    shape: output shape.
    dtype: output dtype.

  Returns:
    Array of ``shape``; finite for every alpha (saturated at ``finfo.max``).
  """
  alpha = validate_alpha(alpha)
  shape = tuple(shape)
  cdt = _compute_dtype(dtype)
  k_angle, k_exp = jax.random.split(key)
  if alpha == 2.0:
    return (math.sqrt(2.0) * jax.random.normal(k_angle, shape, cdt)).astype(dtype)
  u = _open_uniform(k_angle, shape, cdt)
  w = -jnp.log(_open_uniform(k_exp, shape, cdt))
  return cms_transform(u, w, alpha).astype(dtype)


def positive_stable_mixing(key: jax.Array, alpha: float, shape: Shape, dtype=jnp.float32, *,
                           clamp: float | None = None) -> Array:
  """Positive ``(alpha/2)``-stable ``A`` with ``E exp(-s A) = exp(-s^{alpha/2})`` (Kanter 1975).

  With ``a = alpha/2``, ``phi = pi U ~ U(0, pi)``, ``W ~ Exp(1)`` (docs/families/levy.md §1 with
  ``phi = V + pi/2``):
  ``A = sin(a phi) / sin(phi)^{1/a} * (sin((1 - a) phi) / W)^{(1 - a)/a}``.
  Each sine is evaluated from its nearer zero with ``1 - a u = (1 - u) + (1 - a) u`` and
  ``1 - (1 - a) u = (1 - u) + a u`` formed without cancellation. ``alpha = 2`` gives ``A = 1``.

  Args:
    key: PRNG key.
    alpha: stability index of the *isotropic* law, in ``(0, 2]`` (so ``A`` is ``alpha/2``-stable).
    shape: output shape.
    dtype: output dtype.
    clamp: optional cap ``A <- min(A, clamp)`` (LIM supplementary code / DLPM); None = exact.

  Returns:
    Positive array of ``shape`` (saturated at ``finfo.max``, see the module docstring).
  """
  alpha = validate_alpha(alpha)
  clamp = validate_clamp(clamp, "clamp")
  shape = tuple(shape)
  cdt = _compute_dtype(dtype)
  if alpha == 2.0:
    mix = jnp.ones(shape, cdt)
  else:
    k_angle, k_exp = jax.random.split(key)
    u = _open_uniform(k_angle, shape, cdt)
    w = -jnp.log(_open_uniform(k_exp, shape, cdt))
    mix = kanter_transform(u, w, alpha)
  if clamp is not None:
    mix = jnp.minimum(mix, clamp)
  return mix.astype(dtype)


def isotropic_stable_parts(key: jax.Array, alpha: float, shape: Shape, event_ndim: int = 1,
                           dtype=jnp.float32, *, clamp_a: float | None = None,
                           clamp_eps: float | None = None) -> tuple[Array, Array]:
  """``(eps, A)`` with ``eps = sqrt(A) G`` as in :func:`isotropic_stable`.

  ``A`` has shape ``shape[:-event_ndim]`` (one mixing variable per event). The Gaussian-given-``A``
  structure is what the A-conditioned loss and the DLPM sampler use.
  """
  alpha = validate_alpha(alpha)
  shape = tuple(shape)
  if not 0 <= event_ndim <= len(shape):
    raise ValueError(f"event_ndim must be in [0, {len(shape)}] for shape {shape}, got {event_ndim}")
  clamp_a = validate_clamp(clamp_a, "clamp_a")
  clamp_eps = validate_clamp(clamp_eps, "clamp_eps")
  cdt = _compute_dtype(dtype)
  k_gauss, k_latent = jax.random.split(key)
  batch_shape = shape[: len(shape) - event_ndim]
  mix = positive_stable_mixing(k_latent, alpha, batch_shape, cdt, clamp=clamp_a)
  g = math.sqrt(2.0) * jax.random.normal(k_gauss, shape, cdt)
  if alpha == 2.0 and clamp_a is None:
    eps = g
  else:
    eps = jnp.sqrt(mix).reshape(batch_shape + (1,) * event_ndim) * g
  if clamp_eps is not None:
    eps = jnp.clip(eps, -clamp_eps, clamp_eps)
  return eps.astype(dtype), mix.astype(dtype)


def isotropic_stable(key: jax.Array, alpha: float, shape: Shape, event_ndim: int = 1,
                     dtype=jnp.float32, *, clamp_a: float | None = None,
                     clamp_eps: float | None = None) -> Array:
  """Isotropic SaS vectors ``eps = sqrt(A) G``, ``G ~ N(0, 2 I)``, char. fn ``exp(-|k|^alpha)``.

  One ``A`` (:func:`positive_stable_mixing`) per event: the last ``event_ndim`` axes of ``shape``
  form one isotropic vector (``event_ndim=0``: iid 1-D SaS coordinates). Key convention
  (processes/base.py): ``G`` from ``split(key)[0]``, ``A`` from ``split(key)[1]``. ``alpha = 2`` is
  exactly ``N(0, 2 I)``.

  Args:
    key: PRNG key.
    alpha: stability index in ``(0, 2]`` (static).
    shape: output shape.
    event_ndim: number of trailing axes forming one isotropic vector.
    dtype: output dtype.
    clamp_a: optional cap on ``A`` (truncated tails; default off).
    clamp_eps: optional elementwise clip of ``eps`` to ``[-clamp_eps, clamp_eps]`` (default off).
  """
  eps, _ = isotropic_stable_parts(key, alpha, shape, event_ndim, dtype, clamp_a=clamp_a,
                                  clamp_eps=clamp_eps)
  return eps


def mixing_inverse_mean(alpha: float) -> float:
  """``E[1/A] = Gamma(1 + 2/alpha)`` for the Kanter ``A`` (from ``E exp(-sA) = exp(-s^{alpha/2})``).

  With ``a = alpha/2``:
  ``E[A^{-p}] = Gamma(p)^{-1} int_0^inf s^{p-1} exp(-s^a) ds = Gamma(1 + p/a) / Gamma(1 + p)``.
  """
  alpha = validate_alpha(alpha)
  return math.gamma(1.0 + 2.0 / alpha)
