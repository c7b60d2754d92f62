"""Gaussian scale-mixture integrals of the jump family's Rao–Blackwellised target.

The target of :mod:`lim_jax.processes.jump` needs, per example, one-dimensional integrals

    I = int_0^inf f(z) (ref/var)^{a - d/2} N(u; 2c var) / N(u; 2c ref) dz,   var = z + omega,

with a mixing density ``f`` (:data:`MIXING_DENSITIES`: ``Exp(1)``, the decayed jump size ``f_Y`` and
``f_S = f_Y * Exp(1)``), ``a = d/2`` (a density) or ``d/2 + 1`` (its gradient over ``-u``), the
conditioned variance ``omega`` and any reference variance ``ref > 0`` (all over ``2c``), and
``rho = |u|^2/(2c ref)``. In ``s = log z`` the integrand is analytic and unimodal; it is the
product of the mixing density's part ``z f(z)`` (features at ``z = e^{-bt}``, where ``f_Y`` turns
from flat to ``1/z``, and at ``z ~ 1``, where ``e^{-z}`` cuts it off) and the Gaussian factor
``G(x) = -a x + (rho/2)(1 - e^{-x})``, ``x = log(var/ref)``: concave, with its peak at
``x* = log(rho/(2a))``, a double-exponential left side and a right side of slope ``-a`` (in high
dimension a spike of width ``sqrt(2/d)``).

Rule (:func:`quadrature_panels`, :func:`log_mixture_integrals`): Gauss–Legendre with a few nodes on
each of :data:`NUM_PANELS` panels whose edges are placed, per example, where the integrand's shape
changes (they are not tuned to a case):

* the Gaussian factor's peak on the domain (``x_m = max(x*, log(omega/ref))``) and the points where
  it has fallen by :data:`RIGHT_DROPS` to its right and (when its peak lies inside the domain)
  :data:`LEFT_DROPS` to its left, solved by Newton's method on ``G`` (convex residuals, monotone
  convergence from an upper bound);
* the mixing densities' features ``-bt + KINK`` and ``CUTOFF`` (in ``s``);
* geometric tails (``- TAILS``) left of the three places where the bulk can start (``-bt``, ``0``,
  the Gaussian factor's right edge), since left of the bulk the integrand falls like ``z`` or
  ``z^2``;
* ``log omega`` (where ``var`` stops being ``omega``); the window is ``[lowest - 20, log 45]``:
  below it the integrand is ``O(z)`` (``e^{-20}`` relatively), above it ``e^{-z}`` is ``e^{-45}``.

Measured against a float64 adaptive quadrature (scipy ``quad`` with breakpoints at the integrand's
peak) on 5076 cases (d = 1, 2, 3, 16, 64, 3072; the grid of tests/test_jump.py and random
``bt in [1e-5, 10]``, ``omega`` (0 or ``e^{U(-14, 2)}``), ``ref - omega = e^{U(-14, 2)}``, ``rho``
between the 1e-6 and 1 - 1e-6 quantiles of ``chi^2_d`` times ``e^{U(-2, 2)}``): with 5 nodes per
panel (115 nodes on the 23 panels) the rule's own error is below 3.1e-6 in float64 and the float32
result below 1e-5 relative (float32 rounding of exponents of size ~d/2 dominates at d = 3072).
The previous rule (3 panels x 128 nodes) reached 8e-4 on some cases (d <= 16, tiny ``rho``).

Shapes: per-example inputs ``(B,)``; panel edges ``(B, NUM_PANELS + 1)``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

_Z_MAX = 45.0  # upper end of the integrals: the mixing densities have fallen by e^{-45}
_LEFT_SPAN = 20.0  # log-z span below the lowest bulk edge: the integrand is O(z) there, e^{-20}
_S_FLOOR = -80.0  # smallest log z on a grid (e^{-80} is still a normal float32)
_EULER_GAMMA = 0.5772156649015329

#: Drops of the Gaussian factor ``G`` below its peak at which panel edges sit, right and left.
RIGHT_DROPS = (0.5, 2.0, 6.0, 16.0)
LEFT_DROPS = (0.5, 2.0, 6.0, 16.0)
#: Offsets in ``s`` from ``-bt`` (the decayed density's kink) and from 0 (the ``e^{-z}`` cutoff).
KINK = (0.0, 2.5)
CUTOFF = (-1.0, 0.8, 1.8)
#: Geometric tail offsets left of the bulk edges ``-bt``, ``0`` and the Gaussian factor's right
#: edge.
KINK_TAILS = (3.0, 9.0)
CUTOFF_TAILS = (4.0,)
GAUSS_TAILS = (1.0, 3.0, 7.0, 15.0)
NUM_PANELS = (1 + len(RIGHT_DROPS) + len(LEFT_DROPS) + len(KINK) + len(CUTOFF) + len(KINK_TAILS)
              + len(CUTOFF_TAILS) + len(GAUSS_TAILS) + 1) + 1
_NEWTON_STEPS = 4


# ---- special functions and mixing densities ---------------------------------------------------
def _exp1_large(x: Array) -> Array:
  """``E1(x)`` for ``x >= 1``: Abramowitz & Stegun 5.1.56, ``x e^x E1(x)`` as a quartic ratio (error
  below 2e-8); ``jax.scipy.special.exp1`` is exact but takes milliseconds per element on CPU."""
  num = (((x + 8.5733287401) * x + 18.0590169730) * x + 8.6347608925) * x + 0.2677737343
  den = (((x + 9.5733223454) * x + 25.6329561486) * x + 21.0996530827) * x + 3.9584969228
  return jnp.exp(-x) * num / (den * x)


def ein(x: Array) -> Array:
  """``Ein(x) = int_0^x (1 - e^{-v})/v dv``: series if ``x <= 1``, else ``E1(x) + ln x + gamma``."""
  xs = jnp.minimum(x, 1.0)
  series = jnp.zeros_like(xs)
  for k in reversed(range(1, 13)):
    series = series * xs + (-1.0) ** (k + 1) / (k * math.factorial(k))
  series = series * xs
  xl = jnp.maximum(x, 1.0)
  large = _exp1_large(xl) + jnp.log(xl) + _EULER_GAMMA
  return jnp.where(x <= 1.0, series, large)


def _log_expm1(bt: Array) -> Array:
  """``log(e^{bt} - 1)`` for ``bt > 0`` without overflow."""
  return bt + jnp.log(-jnp.expm1(-bt))


def log_decayed_jump_density(s: Array, bt: Array) -> Array:
  """``log f_Y(e^s)``: ``Y = Z e^{-b tau}``, ``Z ~ Exp(1)``, ``tau ~ U(0, t)``, ``bt = b t``.

  ``f_Y(y) = (e^{-y} - e^{-y e^{bt}}) / (b t y)``: the variance (over ``2c``) that one jump at a
  uniform time in ``[0, t]`` still carries at ``t``. Evaluated in ``s = log y`` so any ``bt`` works.
  """
  y = jnp.exp(s)
  return -y + jnp.log(-jnp.expm1(-jnp.exp(_log_expm1(bt) + s))) - jnp.log(bt) - s


def log_decayed_plus_fresh_density(s: Array, bt: Array) -> Array:
  """``log f_S(e^s)`` for ``S = Y + Z'``, ``Z' ~ Exp(1)``:
  ``f_S(s) = e^{-s} Ein((e^{bt}-1) s)/(b t)``."""
  return -jnp.exp(s) + jnp.log(ein(jnp.exp(_log_expm1(bt) + s))) - jnp.log(bt)


def log_exp_density(s: Array, bt: Array) -> Array:
  """``log`` of the ``Exp(1)`` density at ``e^s`` (a fresh, undecayed jump)."""
  del bt
  return -jnp.exp(s)


MIXING_DENSITIES = {"fresh": log_exp_density, "decayed": log_decayed_jump_density,
                    "decayed_plus_fresh": log_decayed_plus_fresh_density}


# ---- the Gaussian factor ----------------------------------------------------------------------
class GaussRatio(NamedTuple):
  """Pieces of ``log[N(u; 2c var)/N(u; 2c ref)]``, ``var = z + omega``, shared by all ``a``."""

  w: Array  # 1 - ref/var
  log_or_gap: Array  # g(w) = -log(1-w) - w where ``near``, else log(var/ref)
  near: Array  # -1 <= w <= 1/2, as 0./1.

  def log_ratio(self, rho: Array, a: float) -> Array:
    """``log[(ref/var)^{a - d/2} N(u; 2c var) / N(u; 2c ref)] = -a log(var/ref) + (rho/2) w``.

    Near ``w = 0`` it is summed as ``-a g(w) + (rho/2 - a) w``, which avoids cancelling two terms
    of size ``d`` in float32 (``a = d/2`` for a density, ``d/2 + 1`` for its gradient over ``-u``).
    """
    return -a * self.log_or_gap + (0.5 * rho - a * self.near) * self.w


def gauss_ratio(z: Array, omega: Array, ref: Array) -> GaussRatio:
  """``g(w) = w^2/(2-w) + 2 r^3 sum_k r^{2k}/(2k+3)``, ``r = w/(2-w)`` (``|r| <= 1/3`` where used,
  10 terms reach 1e-10); elsewhere ``log(var/ref)`` directly, which then has no cancellation.

  ``w = (z - (ref - omega))/var``: for ``z << omega`` this keeps the float32 rounding of
  ``var - ref`` relative to ``z`` instead of to ``omega``."""
  var = z + omega
  w = (z - (ref - omega)) / var
  r = w / (2.0 - w)
  r2 = r * r
  series = jnp.zeros_like(r)
  for k in reversed(range(10)):
    series = series * r2 + 1.0 / (2 * k + 3)
  gap = w * w / (2.0 - w) + 2.0 * r * r2 * series
  near = (w >= -1.0) & (w <= 0.5)
  log_or_gap = jnp.where(near, gap, jnp.log(var) - jnp.log(ref))
  return GaussRatio(w=w, log_or_gap=log_or_gap, near=near.astype(w.dtype))


def log_gauss_ratio(z, omega: Array, ref: Array, rho: Array, a: float) -> Array:
  """``log[(ref/var)^{a - d/2} N(u; 2c var)/N(u; 2c ref)]`` at one ``z`` (:class:`GaussRatio`)."""
  return gauss_ratio(jnp.asarray(z, ref.dtype), omega, ref).log_ratio(rho, a)


def _right_drop(a: float, beta: Array, drop: float) -> Array:
  """``delta > 0`` with ``a delta - beta (1 - e^{-delta}) = drop`` (``0 <= beta <= a``): where
  ``G(x_m) - G(x_m + delta) = drop`` for ``G(x) = -a x + (rho/2)(1 - e^{-x})``,
  ``beta = (rho/2) e^{-x_m}``. Start: the root of the quadratic upper bound of the residual
  (``1 - e^{-d} >= d - d^2/2``), a lower bound of the root; the residual is convex and increasing,
  so Newton's method steps above the root once and then decreases monotonically to it. The edges
  need no precision (any edges give a valid rule); a few steps put them within 1e-3."""
  gap = a - beta
  delta = 2.0 * drop / (gap + jnp.sqrt(gap * gap + 2.0 * beta * drop))
  for _ in range(_NEWTON_STEPS):
    resid = a * delta + beta * jnp.expm1(-delta) - drop
    delta = delta - resid / (a - beta * jnp.exp(-delta))
  return delta


def _left_drop(a: float, drop: float) -> float:
  """``delta > 0`` with ``a (e^delta - 1 - delta) = drop``: ``G(x*) - G(x* - delta) = drop``.

  Independent of the example (``G`` around its peak depends on ``a`` only), so solved once in
  float64; Newton from the upper bound ``sqrt(2 drop / a)`` (``e^d - 1 - d >= d^2/2``)."""
  delta = math.sqrt(2.0 * drop / a)
  for _ in range(60):
    delta -= (a * (math.expm1(delta) - delta) - drop) / (a * math.expm1(delta))
  return delta


class Panels(NamedTuple):
  """Per-example quadrature panels in ``s = log z``, stored relative to an anchor.

  Attributes:
    anchor: ``(B,)``, the Gaussian factor's peak on the domain (clipped to the window).
    edges: ``(B, NUM_PANELS + 1)`` ascending edges minus ``anchor``: nodes near the peak are then
      small numbers, so float32 places them to ~1e-7 instead of ~1e-6 at ``|s| ~ 14``, where the
      integrand can change by ``e^{10}`` per unit of ``s`` (measured: 1.2e-5 -> 4e-6 at d = 64).
  """

  anchor: Array
  edges: Array


def _merge_exchange_pairs(n: int) -> tuple[tuple[int, int], ...]:
  """Comparator pairs ``(i, j)``, ``i < j``, of Batcher's odd–even merge sort for ``n`` values.

  Built for the next power of two ``m``; pairs that touch an index ``>= n`` are dropped, which is
  the network for ``n`` values padded with ``+inf`` (those never move). ``jnp.sort`` of a
  ``(512, 27)`` array takes 1.5 ms on the development CPU, the network's 2 x ~190 elementwise
  ``min``/``max`` a few microseconds (they fuse into one loop).
  """
  m = 1 << max(0, (n - 1).bit_length())
  pairs = []

  def merge(lo: int, size: int, stride: int) -> None:
    # Merge the two sorted halves of the stride-``stride`` subsequence of [lo, lo + size).
    step = 2 * stride
    if step < size:
      merge(lo, size, step)
      merge(lo + stride, size, step)
      pairs.extend((i, i + stride) for i in range(lo + stride, lo + size - stride, step))
    else:
      pairs.append((lo, lo + stride))

  def sort(lo: int, size: int) -> None:
    if size > 1:
      half = size // 2
      sort(lo, half)
      sort(lo + half, half)
      merge(lo, size, 1)

  sort(0, m)
  return tuple((i, j) for i, j in pairs if j < n)


def sort_columns(columns: list[Array]) -> list[Array]:
  """The values of ``columns`` (equal-shaped arrays) sorted ascending elementwise, by a sorting
  network (:func:`_merge_exchange_pairs`)."""
  cols = list(columns)
  for i, j in _merge_exchange_pairs(len(cols)):
    cols[i], cols[j] = jnp.minimum(cols[i], cols[j]), jnp.maximum(cols[i], cols[j])
  return cols


def quadrature_panels(rho: Array, omega: Array, ref: Array, bt: Array, dim: int) -> Panels:
  """Per-example panels (:class:`Panels`; edges placed as in the module docstring).

  ``G`` is placed with ``a = (d + 1)/2``, between the density's and the gradient's exponents. A
  point of ``G`` at ``x`` maps to ``z = omega expm1(x - x0)`` (``x0 = log(omega/ref)``; no
  cancellation of ``ref e^x - omega``) or ``ref e^x`` if ``omega = 0``; points outside the domain
  (``z <= 0``) and beyond the window are clipped to its ends (empty panels weigh 0).
  """
  a = 0.5 * dim + 0.5
  tiny = 1e-37
  has_omega = omega > 0
  log_omega = jnp.log(jnp.where(has_omega, omega, 1.0))
  log_ref = jnp.log(ref)
  x0 = jnp.where(has_omega, log_omega - log_ref, -jnp.inf)
  x_star = jnp.log(jnp.maximum(rho, 1e-30) / (2.0 * a))
  x_m = jnp.maximum(x_star, x0)
  beta = 0.5 * rho * jnp.exp(-x_m)

  def to_s(x: Array) -> Array:
    gap = x - jnp.where(has_omega, x0, 0.0)  # x - x0 >= 0 on the domain
    safe = jnp.maximum(gap, 1e-30)
    log_em1 = safe + jnp.log(jnp.maximum(-jnp.expm1(-safe), tiny))  # log(e^gap - 1)
    on_omega = jnp.where(gap > 0, log_omega + log_em1, -jnp.inf)
    return jnp.where(has_omega, on_omega, log_ref + x)

  peak = to_s(x_m)
  right = [to_s(x_m + _right_drop(a, beta, drop)) for drop in RIGHT_DROPS]
  has_left = x_star > x0
  left = [jnp.where(has_left, to_s(x_star - _left_drop(a, drop)), -jnp.inf) for drop in LEFT_DROPS]
  left_edge = left[0]  # -inf where the Gaussian factor has no left side on the domain
  zero = jnp.zeros_like(bt)
  points = [peak] + right + left
  points += [-bt + c for c in KINK] + [zero + c for c in CUTOFF]
  points += [jnp.maximum(-bt, left_edge) - c for c in KINK_TAILS]
  points += [jnp.maximum(zero, left_edge) - c for c in CUTOFF_TAILS]
  points += [jnp.maximum(right[0], left_edge) - c for c in GAUSS_TAILS]
  points.append(jnp.where(has_omega, log_omega, -jnp.inf))
  bulk_start = jnp.minimum(jnp.minimum(jnp.maximum(-bt, left_edge), right[0]), 0.0)
  s_lo = jnp.maximum(bulk_start - _LEFT_SPAN, _S_FLOOR)
  s_hi = jnp.full_like(s_lo, math.log(_Z_MAX))
  anchor = jnp.clip(peak, s_lo, s_hi)
  inner = sort_columns([jnp.clip(p, s_lo, s_hi) - anchor for p in points])
  edges = jnp.stack([s_lo - anchor] + inner + [s_hi - anchor], axis=-1)
  return Panels(anchor=anchor, edges=edges)


_SERIES_MIN_A = 8.0  # below this exponent log(var/ref) needs no cancellation-free series


def _log_gauss_factor(z: Array, omega: Array, ref: Array, rho: Array, a: float) -> Array:
  """``log[(ref/var)^{a - d/2} N(u; 2c var)/N(u; 2c ref)]`` for a static ``a`` at nodes ``z``
  (:class:`GaussRatio`). For ``a < 8`` the direct form ``-a log(var/ref) + (rho/2) w`` loses at
  most ``a`` ulps of ``log(var/ref)`` (below 1e-6), so the series (20 flops and 2 divisions a
  node) is only evaluated for larger ``a``."""
  if a < _SERIES_MIN_A:
    var = z + omega
    w = (z - (ref - omega)) / var
    return -a * jnp.log(var / ref) + 0.5 * rho * w
  return gauss_ratio(z, omega, ref).log_ratio(rho, a)


def _jump_factors(k_z: Array, log_k_z: Array, need_ein: bool) -> tuple[Array, Array | None]:
  """``phi1(kz) = (1 - e^{-kz})/(kz)`` and ``Ein(kz)/(kz)`` at the nodes, from one ``expm1``.

  ``Ein(x) = ln x + gamma + E1(x)`` above ``x = 1`` with ``ln x = log k + log z`` (no ``log``) and
  ``E1(x) = e^{-x} R(x)/x`` (:func:`_exp1_large`'s ratio ``R``) with ``e^{-x} = 1 + expm1(-x)``
  (absolute error 6e-8, where ``E1 < 0.22``); the series below (9 terms: 3e-8). Both factors lie in
  ``(e^{-bt}/46, 1]`` on the window ``z <= 45``.
  """
  em1 = jnp.expm1(-k_z)
  safe = jnp.maximum(k_z, 1e-30)
  phi1 = jnp.where(k_z < 1e-3, 1.0 - k_z * (0.5 - k_z / 6.0), -em1 / safe)
  if not need_ein:
    return phi1, None
  xs = jnp.minimum(k_z, 1.0)
  series = jnp.zeros_like(xs)
  for k in reversed(range(1, 10)):
    series = series * xs + (-1.0) ** (k + 1) / (k * math.factorial(k))
  xl = jnp.maximum(k_z, 1.0)
  num = (((xl + 8.5733287401) * xl + 18.0590169730) * xl + 8.6347608925) * xl + 0.2677737343
  den = (((xl + 9.5733223454) * xl + 25.6329561486) * xl + 21.0996530827) * xl + 3.9584969228
  large = ((1.0 + em1) * num / (den * xl) + log_k_z + _EULER_GAMMA) / xl
  return phi1, jnp.where(k_z <= 1.0, series, large)


def log_mixture_integrals(requests: tuple[tuple[str, float], ...], panels: Panels, rho: Array,
                          omega: Array, ref: Array, bt: Array, num_nodes: int) -> list[Array]:
  """``log int_0^inf f(z) (ref/var)^{a-d/2} N(u; 2c var)/N(u; 2c ref) dz``, ``var = z + omega``.

  One value ``(B,)`` per ``(density name, a)`` request (:data:`MIXING_DENSITIES`). Rule:
  Gauss–Legendre with ``num_nodes`` nodes on each panel of ``panels`` (:func:`quadrature_panels`),
  in ``s = log z``; nodes sit at ``s = anchor + s_rel`` with ``z = e^{anchor} e^{s_rel}``
  (:class:`Panels`). With ``k = e^{bt} - 1`` the integrands ``z f(z) G_a(z)`` are written as a
  shared base times bounded factors and summed in the linear domain after one shift:

  * ``z e^{-z} G_a`` times ``1`` (fresh), ``(k/bt) phi1(kz)`` (decayed: ``z f_Y =
    z e^{-z} (1 - e^{-kz})/(bt z)``, ``phi1(u) = (1 - e^{-u})/u`` in ``(e^{-bt}/46, 1]``);
  * ``z^2 e^{-z} G_a`` times ``(k/bt) Ein(kz)/(kz)`` (decayed + fresh: ``z f_S = z e^{-z}
    Ein(kz)/bt``; ``Ein(u)/u`` in ``(e^{-bt}/46, 1]``),

  and ``G_a = G_{a_top} (var/ref)^{a_top - a}`` for an exponent below the largest requested one
  ``a_top`` (``var/ref`` exactly, no cancellation). So the whole rule costs two ``exp`` a node
  (``z`` and the shared base ``z e^{-z} G_{a_top}``, shifted by its largest node value), one
  ``log``, one ``expm1`` and the ``Ein`` rational for the factors, and one sum per request; the
  factors ``z <= 45`` and ``var/ref`` are bounded on the window, so no product overflows
  (measured: the float32 error against the float64 reference is the same as with one shifted
  exponential per base, tests/test_jump.py).

  Args:
    requests: static ``((name, a), ...)``.
    panels: the per-example panels.
    rho, omega, ref, bt: ``(B,)``: ``|u|^2/(2c ref)``, the conditioned variance ``W_r/(2c)``, the
      reference variance over ``2c``, and ``b t``.
    num_nodes: static node count per panel.
  """
  for name, _ in requests:
    if name not in MIXING_DENSITIES:
      raise ValueError(f"unknown mixing density {name!r}; choose from {tuple(MIXING_DENSITIES)}")
  nodes, weights = np.polynomial.legendre.leggauss(num_nodes)
  edges = panels.edges
  batch = edges.shape[0]
  lo, hi = edges[:, :-1, None], edges[:, 1:, None]  # (B, P, 1)
  half = 0.5 * (hi - lo)
  # Flattened to (B, P n): the long minor axis vectorises (a minor axis of n = 5 costs 30 %).
  s_rel = ((lo + hi) * 0.5 + half * jnp.asarray(nodes, edges.dtype)).reshape(batch, -1)
  log_w = jnp.log(jnp.maximum(half, 1e-30)) + jnp.log(jnp.asarray(weights, edges.dtype))
  log_w = jnp.where(half > 0, log_w, -jnp.inf).reshape(batch, -1)
  col = lambda v: v[:, None]
  anchor = col(panels.anchor)
  z = jnp.exp(anchor) * jnp.exp(s_rel)
  log_z = anchor + s_rel
  log_k = _log_expm1(bt)
  k_z = jnp.exp(col(log_k)) * z
  omega_c, ref_c = col(omega), col(ref)
  a_top = max(a for _, a in requests)
  gauss_top = _log_gauss_factor(z, omega_c, ref_c, col(rho), a_top)
  log_k_bt = log_k - jnp.log(bt)
  # (power of z, jump factor, per-example log constant) for each density.
  forms = {"fresh": (1, None, 0.0), "decayed": (1, "phi1", log_k_bt),
           "decayed_plus_fresh": (2, "ein", log_k_bt)}
  names = {n for n, _ in requests}
  factors = {}
  if names - {"fresh"}:
    factors["phi1"], factors["ein"] = _jump_factors(k_z, col(log_k) + log_z,
                                                    "decayed_plus_fresh" in names)
  # One exponential a node: every integrand is the shared base ``z e^{-z} G_{a_top}`` (shifted
  # by its maximum) times bounded factors, ``z`` for power 2 and ``(var/ref)^{a_top - a}`` for a
  # smaller exponent (``G_a / G_{a+1} = var/ref`` exactly; both factors lie in ``[0, 45]`` and
  # ``[omega/ref, (45 + omega)/ref]`` on the window, so nothing overflows; the float32 error
  # against the float64 reference is unchanged, tests/test_jump.py).
  base = log_w + log_z - z + gauss_top
  top = jnp.max(base, axis=-1, keepdims=True)
  top = jnp.where(jnp.isfinite(top), top, 0.0)
  weight = jnp.exp(base - top)
  ratio = (z + omega_c) / ref_c
  # One buffer for everything the sums read: without the barrier XLA fuses the node
  # computations into each sum and evaluates them several times.
  weight, ratio, z, factors = jax.lax.optimization_barrier(
      (weight, ratio, z, {k: v for k, v in factors.items() if v is not None}))
  out = []
  for name, a in requests:
    power, factor, const = forms[name]
    term = weight if factor is None else weight * factors[factor]
    if power == 2:
      term = term * z
    steps = a_top - a
    if steps != int(steps) or steps < 0:
      raise ValueError(f"exponents must differ from the largest by whole numbers, got {a}")
    for _ in range(int(steps)):
      term = term * ratio
    out.append(top[:, 0] + const + jnp.log(jnp.sum(term, axis=-1)))
  return out
