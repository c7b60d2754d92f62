"""Tests of lim_jax.stable against independent references.

References: ``scipy.stats.levy_stable`` (S1 parametrisation, numerical integration of the
characteristic function; its ``cdf`` is evaluated on a grid and interpolated, its ``rvs`` is never
used), closed forms (Laplace transform of the positive stable law, 2-D/3-D Cauchy radial laws),
Hankel-type quadratures of ``exp(-|k|^alpha)`` for the radial law of the isotropic vector, and a
float64 NumPy evaluation of the textbook formulas at extreme inputs.

Sample sizes are fixed and seeds are fixed. KS tests use the level 1e-3 (chosen before running; with
~20 KS tests in the file the family-wise false-alarm rate of a correct sampler is ~2 %), quantile
tests use 4 asymptotic standard errors.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, special, stats

from lim_jax import stable

KS_LEVEL = 1e-3
ALPHAS = (0.8, 1.2, 1.5, 1.8, 1.95)


def _key(*ints: int) -> jax.Array:
  key = jax.random.PRNGKey(20240)
  for i in ints:
    key = jax.random.fold_in(key, i)
  return key


def _grid_cdf(cdf, sample: np.ndarray, num: int = 1200):
  """``cdf`` evaluated on ``num`` points spanning the sample's 0.05 %..99.95 % quantiles (in asinh
  space) and linearly interpolated; outside, the end values. Interpolation error is < 1e-5 (smooth
  cdf, ~1e-3 probability per cell) and the clamped tails carry < 5e-4 probability, both far below
  the KS critical value (~0.014 at n = 2e4)."""
  lo, hi = np.quantile(sample, [5e-4, 1 - 5e-4])
  xs = np.sinh(np.linspace(np.arcsinh(lo), np.arcsinh(hi), num))
  fs = cdf(xs)
  return lambda x: np.interp(x, xs, fs)


def _ks_pvalue(sample: np.ndarray, cdf) -> float:
  sample = np.asarray(sample, np.float64)
  return stats.kstest(sample, _grid_cdf(cdf, sample)).pvalue


# ---- 1-D symmetric law (Chambers–Mallows–Stuck) ------------------------------------------------
@pytest.mark.parametrize("alpha", ALPHAS)
def test_symmetric_ks_vs_scipy(alpha):
  """KS of 2e4 CMS draws vs ``scipy.stats.levy_stable(alpha, 0).cdf`` at level 1e-3.

  Power: a scale error ``c`` moves the cdf by ``max_x x f(x) |c - 1| ~ 0.2 |c - 1|``, so errors of
  ~10 % are caught (critical value 0.014); smaller scale errors are the job of the quantile test
  below (a 5 % error was checked to fail it).
  """
  x = np.asarray(stable.symmetric_stable(_key(1, int(alpha * 100)), alpha, (20_000,)))
  assert _ks_pvalue(x, stats.levy_stable(alpha, 0.0).cdf) > KS_LEVEL


@pytest.mark.parametrize("alpha", ALPHAS)
def test_symmetric_tail_quantiles(alpha):
  """0.99 and 0.999 quantiles of 2^20 draws vs scipy ``ppf``, within 4 standard errors.

  By symmetry the p-quantile of X is the (2p-1)-quantile of |X|; its asymptotic standard error is
  ``sqrt(p'(1-p')/n) / (2 f(q))`` with ``f`` the scipy density (Bahadur). At alpha = 0.8 the 0.999
  quantile is ~1500, so the check reaches far into the tail.
  """
  n = 2**20
  x = np.abs(np.asarray(stable.symmetric_stable(_key(2, int(alpha * 100)), alpha, (n,))))
  law = stats.levy_stable(alpha, 0.0)
  for p in (0.99, 0.999):
    q = float(law.ppf(p))
    p_abs = 2 * p - 1
    se = math.sqrt(p_abs * (1 - p_abs) / n) / (2 * float(law.pdf(q)))
    q_hat = float(np.quantile(x, p_abs))
    assert abs(q_hat - q) < 4 * se, (alpha, p, q_hat, q, se)


# ---- positive (alpha/2)-stable mixing variable -------------------------------------------------
@pytest.mark.parametrize("alpha", (0.8, 1.5, 1.95))
def test_mixing_ks_vs_scipy(alpha):
  """KS of 2e4 Kanter draws vs ``levy_stable(alpha/2, 1, scale=cos(pi alpha/4)^{2/alpha})``."""
  a = np.asarray(stable.positive_stable_mixing(_key(3, int(alpha * 100)), alpha, (20_000,)))
  law = stats.levy_stable(alpha / 2, 1.0, scale=math.cos(math.pi * alpha / 4) ** (2 / alpha))
  assert np.all(a > 0)
  assert _ks_pvalue(a, law.cdf) > KS_LEVEL


@pytest.mark.parametrize("alpha", (0.5, 1.2, 1.7, 1.99))
def test_mixing_laplace_transform(alpha):
  """``E exp(-s A) = exp(-s^{alpha/2})`` (closed form) for s in {0.3, 1, 3}; 2^20 draws, the
  Monte Carlo standard error is <= 0.5/1024, tolerance 2e-3 (4 standard errors)."""
  a = stable.positive_stable_mixing(_key(4, int(alpha * 100)), alpha, (2**20,))
  for s in (0.3, 1.0, 3.0):
    mc = float(jnp.mean(jnp.exp(-s * a)))
    assert abs(mc - math.exp(-s ** (alpha / 2))) < 2e-3, (alpha, s, mc)


def test_mixing_inverse_mean():
  """``mixing_inverse_mean = Gamma(1 + 2/alpha)`` vs Monte Carlo ``E[1/A]`` (2^20 draws; 1/A has
  all moments, relative standard error < 0.3 %, tolerance 2 %)."""
  alpha = 1.7
  a = stable.positive_stable_mixing(_key(5), alpha, (2**20,))
  mc = float(jnp.mean(1.0 / a))
  assert abs(mc / stable.mixing_inverse_mean(alpha) - 1) < 0.02


# ---- isotropic vector --------------------------------------------------------------------------
def _radial_cdf_2d(r: float, alpha: float) -> float:
  """``P(|eps| <= r) = r int_0^inf J_1(k r) exp(-k^alpha) dk`` (Hankel transform, d = 2)."""
  f = lambda k: special.j1(k * r) * math.exp(-k**alpha)
  return r * integrate.quad(f, 0.0, 40.0 ** (1 / alpha), limit=2000)[0]


def _radial_cdf_3d(r: float, alpha: float) -> float:
  """``P(|eps| <= r) = (2/pi) int_0^inf (sin kr - kr cos kr)/k exp(-k^alpha) dk`` (d = 3)."""
  f = lambda k: (math.sin(k * r) - k * r * math.cos(k * r)) / k * math.exp(-k**alpha)
  return 2.0 / math.pi * integrate.quad(f, 0.0, 40.0 ** (1 / alpha), limit=2000)[0]


@pytest.mark.parametrize("alpha,dim", [(1.0, 2), (1.5, 2), (1.8, 2), (1.5, 3)])
def test_isotropic_radial_law(alpha, dim):
  """Radius of 2e4 isotropic vectors vs the radial cdf from the characteristic function
  ``exp(-|k|^alpha)`` by quadrature (alpha = 1, d = 2 also checked against the closed form
  ``1 - (1 + r^2)^{-1/2}`` of the bivariate Cauchy law); and each coordinate vs
  ``scipy.stats.levy_stable(alpha, 0)`` (projections of an isotropic SaS vector are SaS with the
  same scale). KS at level 1e-3."""
  radial = np.vectorize(lambda r: (_radial_cdf_2d if dim == 2 else _radial_cdf_3d)(r, alpha))
  if alpha == 1.0 and dim == 2:
    closed_form = lambda r: 1 - 1 / np.sqrt(1 + r * r)
    for r in (0.3, 1.0, 4.0, 20.0):  # the quadrature itself, against the closed form
      assert abs(float(radial(r)) - closed_form(r)) < 1e-6
    radial = closed_form  # the Cauchy radius reaches 1e3: quadrature there is slow and inaccurate
  eps = np.asarray(stable.isotropic_stable(_key(6, dim, int(alpha * 100)), alpha, (20_000, dim)))
  radius = np.linalg.norm(eps.astype(np.float64), axis=-1)
  assert _ks_pvalue(radius, radial) > KS_LEVEL
  assert _ks_pvalue(eps[:, 0], stats.levy_stable(alpha, 0.0).cdf) > KS_LEVEL


def test_isotropic_structure_and_key_convention(key):
  """One mixing variable per event, ``G`` from ``split(key)[0]`` and ``A`` from ``split(key)[1]``
  (processes/base.py): ``eps / sqrt(A)`` equals ``sqrt(2) N(0,1)`` drawn from ``split(key)[0]`` to
  float32 rounding, ``A`` equals ``positive_stable_mixing(split(key)[1])`` exactly."""
  shape = (64, 3, 4)
  eps, mix = stable.isotropic_stable_parts(key, 1.6, shape, event_ndim=2)
  k_gauss, k_latent = jax.random.split(key)
  assert mix.shape == (64,)
  np.testing.assert_array_equal(mix, stable.positive_stable_mixing(k_latent, 1.6, (64,)))
  g = math.sqrt(2.0) * jax.random.normal(k_gauss, shape)
  np.testing.assert_allclose(eps / jnp.sqrt(mix)[:, None, None], g, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(eps, stable.isotropic_stable(key, 1.6, shape, event_ndim=2))


# ---- alpha = 2 and alpha -> 2 ------------------------------------------------------------------
def test_alpha_two_is_exactly_gaussian(key):
  """alpha = 2: ``A == 1`` and ``eps`` is bit-for-bit ``sqrt(2) N(0, 1)`` from ``split(key)[0]``
  (the Gaussian family's draw); the 1-D sampler gives the same numbers."""
  shape = (256, 2)
  gauss = math.sqrt(2.0) * jax.random.normal(jax.random.split(key)[0], shape)
  np.testing.assert_array_equal(stable.isotropic_stable(key, 2.0, shape), gauss)
  np.testing.assert_array_equal(stable.symmetric_stable(key, 2.0, shape), gauss)
  np.testing.assert_array_equal(stable.positive_stable_mixing(key, 2.0, (256,)), np.ones(256))
  np.testing.assert_array_equal(stable.isotropic_stable(key, 2, shape), gauss)  # int alpha


@pytest.mark.parametrize("alpha", (1.9999, 1.999999))
def test_near_two_is_gaussian_in_float32(alpha):
  """Just below 2 the float32 generic paths (CMS and Kanter) must give ``N(0, 2)`` to within KS
  resolution (level 1e-3, n = 2e4; the stable tail mass beyond 4 std is ~(2-alpha), negligible):
  this fails if ``sin(alpha V)`` or ``sin(a phi)`` lose precision near their zeros."""
  ref = stats.norm(scale=math.sqrt(2.0)).cdf
  x = np.asarray(stable.symmetric_stable(_key(7, 1), alpha, (20_000,)), np.float64)
  assert stats.kstest(x, ref).pvalue > KS_LEVEL
  e = np.asarray(stable.isotropic_stable(_key(7, 2), alpha, (20_000,), event_ndim=0), np.float64)
  assert stats.kstest(e, ref).pvalue > KS_LEVEL
  a = stable.positive_stable_mixing(_key(7, 3), alpha, (20_000,))
  assert float(jnp.median(a)) == pytest.approx(1.0, abs=1e-3)


SWEEP = (1e-3, 0.01, 0.1, 0.5, 0.9, 1.0, 1.1, 1.5, 1.9, 1.99, 1.999, 1.9999, 1.99999, 2 - 2**-20,
         2.0)


@pytest.mark.parametrize("alpha", SWEEP)
def test_no_nan_or_inf(alpha):
  """2^16 draws of each sampler are finite for alpha over (0, 2] (small alpha saturates at
  ``finfo.max``, documented), ``A > 0``, and bfloat16 output is finite too."""
  for fn in (stable.symmetric_stable, stable.positive_stable_mixing):
    x = fn(_key(8, int(alpha * 1e6)), alpha, (2**16,))
    assert bool(jnp.all(jnp.isfinite(x))), fn.__name__
  assert bool(jnp.all(stable.positive_stable_mixing(_key(9), alpha, (2**16,)) > 0))
  eps = stable.isotropic_stable(_key(10), alpha, (2**14, 4))
  assert bool(jnp.all(jnp.isfinite(eps)))
  eps16 = stable.isotropic_stable(_key(10), alpha, (2**10, 4), dtype=jnp.bfloat16)
  assert eps16.dtype == jnp.bfloat16
  assert bool(jnp.all(jnp.isfinite(eps16.astype(jnp.float32))))


def _cms_reference(u, w, alpha):
  """Textbook CMS in float64 NumPy (V from the same u)."""
  v = np.pi * (u.astype(np.float64) - 0.5)
  w = w.astype(np.float64)
  return (np.sin(alpha * v) / np.cos(v) ** (1 / alpha)
          * (np.cos((1 - alpha) * v) / w) ** ((1 - alpha) / alpha))


def _kanter_reference(u, w, alpha):
  """Textbook Kanter formula in float64 NumPy (phi from the same u)."""
  phi = np.pi * u.astype(np.float64)
  w = w.astype(np.float64)
  a = alpha / 2
  return (np.sin(a * phi) / np.sin(phi) ** (1 / a)
          * (np.sin((1 - a) * phi) / w) ** ((1 - a) / a))


@pytest.mark.parametrize("alpha", (0.5, 1.3, 1.999))
def test_transforms_accurate_at_extreme_inputs(alpha):
  """The float32 maps agree with float64 textbook formulas to 2e-4 relative at the grid's extreme
  angles (``V -> +-pi/2``, ``V -> 0``) and extreme exponentials, where a naive float32 evaluation
  loses all digits (``cos(pi/2)`` in float32 is -4e-8) or returns NaN."""
  step = 2.0**-24
  u = np.array([step, 3 * step, 0.5 - step, 0.5 + step, 0.25 + step, 1 - 3 * step, 1 - step],
               np.float32)
  for w_val in (6e-8, 1.0, 16.6):
    w = np.full_like(u, w_val)
    x = np.asarray(stable.cms_transform(jnp.asarray(u), jnp.asarray(w), alpha), np.float64)
    np.testing.assert_allclose(x, _cms_reference(u, w, alpha), rtol=2e-4)
    a = np.asarray(stable.kanter_transform(jnp.asarray(u), jnp.asarray(w), alpha), np.float64)
    ref = _kanter_reference(u, w, alpha)
    ok = ref < np.finfo(np.float32).max / 2  # beyond that the float32 result saturates (by design)
    np.testing.assert_allclose(a[ok], ref[ok], rtol=2e-4)


# ---- options and validation --------------------------------------------------------------------
def test_clamps(key):
  """``clamp_a`` caps A and ``clamp_eps`` clips each coordinate (the published codes' truncations);
  off by default (the exact sampler exceeds both thresholds in 2^14 draws at alpha = 1.2)."""
  exact_eps, exact_a = stable.isotropic_stable_parts(key, 1.2, (2**14, 2))
  assert float(jnp.max(exact_a)) > 20 and float(jnp.max(jnp.abs(exact_eps))) > 50
  eps, mix = stable.isotropic_stable_parts(key, 1.2, (2**14, 2), clamp_a=20.0)
  assert float(jnp.max(mix)) == 20.0
  np.testing.assert_array_equal(mix, jnp.minimum(exact_a, 20.0))
  eps = stable.isotropic_stable(key, 1.2, (2**14, 2), clamp_eps=50.0)
  assert float(jnp.max(jnp.abs(eps))) == 50.0


@pytest.mark.parametrize("bad", (0.0, -1.0, 2.5, float("nan"), float("inf"), "1.5", True))
def test_bad_alpha_refused(bad, key):
  """alpha outside (0, 2] (or not a real number) is refused with the field named
  (docs/families/levy.md: ``alpha in (0, 2]``)."""
  with pytest.raises(ValueError, match=r"^alpha must be"):
    stable.isotropic_stable(key, bad, (4, 2))
  with pytest.raises(ValueError, match=r"^process\.alpha must be"):
    stable.validate_alpha(bad, "process.alpha")


@pytest.mark.parametrize("bad", (0.0, -3.0, float("nan")))
def test_bad_clamp_refused(bad, key):
  """Clamp values <= 0 or NaN are refused with the option named (None is the only 'off')."""
  with pytest.raises(ValueError, match=r"^clamp_a must be"):
    stable.isotropic_stable(key, 1.5, (4, 2), clamp_a=bad)
  with pytest.raises(ValueError, match=r"^clamp_eps must be"):
    stable.isotropic_stable(key, 1.5, (4, 2), clamp_eps=bad)
