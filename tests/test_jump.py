"""Tests of the jump-diffusion family (lim_jax/processes/jump.py) against independent references.

References: scipy (Poisson tails, float64 adaptive quadrature, exponential integral), closed forms
(the pure-jump point-mass marginal ``p_t = e^{-bt} delta_0 + (1 - e^{-bt}) Laplace(sqrt c)`` and its
velocity ``v = -lambda [sqrt(c) sgn(u) e^{-bt}/(1 - e^{-bt}) + u/2]`` for ``lambda = b``, d = 1),
a numpy fine-step simulation of the forward SDE, a Fourier inversion of the marginal (g2 > 0), and
the Gaussian VP family for ``lambda = 0``. Sizes are chosen for the 2-core CI machine; the larger
versions carry ``@pytest.mark.slow``.
"""

from __future__ import annotations

import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import integrate, special, stats

from lim_jax import config_lib, losses, samplers
from lim_jax.models import get_model, make_apply
from lim_jax.processes import get_process, jump
from lim_jax.processes import jump_quadrature as quad
from lim_jax.processes.gaussian import GaussianProcess
from lim_jax.processes.jump import JumpProcess
from lim_jax.processes.schedules import Schedule
from lim_jax.stable import isotropic_stable

TOY_JUMP = pathlib.Path(__file__).resolve().parent.parent / "configs" / "toy_jump.py"
PURE = dict(b=1.0, g2=0.0, jump_rate=1.0, jump_scale=1.0)  # lambda = b: closed form exists


def closed_form_velocity(u, t, lam=1.0, c=1.0, b=1.0):
  """``v(u, t) = -lambda [sqrt(c) sgn(u) e^{-bt}/(1 - e^{-bt}) + u/2]`` (d = 1, lambda = b;
  docs/families/jump.md §6)."""
  e = np.exp(-b * t)
  return -lam * (np.sqrt(c) * np.sign(u) * e / (1.0 - e) + 0.5 * u)


def closed_form_abs_quantile(levels, t, c=1.0, b=1.0):
  """Quantiles of ``|x_t|`` under ``e^{-bt} delta_0 + (1 - e^{-bt}) Laplace(sqrt c)``."""
  a = math.exp(-b * t)
  levels = np.asarray(levels)
  return np.where(levels > a, -math.sqrt(c) * np.log1p(-(levels - a) / (1.0 - a)), 0.0)


def _config(**fields):
  config = config_lib.default_config()
  config_lib.set_family(config, "jump", **fields)
  return config


# ---- configuration and validation ----------------------------------------------------------------
@pytest.mark.parametrize("field,value", [
    ("jump_rate", -0.5), ("g2", -1.0), ("jump_scale", 0.0), ("jump_scale", -1.0), ("b", 0.0),
    ("b", -2.0), ("max_jumps", 5), ("max_jumps", 33), ("quad_nodes", 3), ("target", "score"),
])
def test_bad_fields_are_refused_naming_the_field(field, value):
  """Reference: the issue's list of bad inputs. ``max_jumps = 33`` at lambda T = 10 leaves a
  Poisson tail 2.1e-9 >= 1e-9 (scipy below), so it must be refused; 34 (6.1e-10) is accepted."""
  config = _config(**{field: value})
  with pytest.raises(ValueError, match=rf"^process\.{field}"):
    get_process(config.process)


def test_zero_noise_and_bad_t_max_are_refused():
  """g2 = lambda = 0 adds no noise at all; t_max <= 0 is meaningless."""
  with pytest.raises(ValueError, match=r"^process\.g2 and process\.jump_rate"):
    get_process(_config(g2=0.0, jump_rate=0.0).process)
  config = _config()
  config.process.t_max = -1.0
  with pytest.raises(ValueError, match=r"^process\.t_max"):
    get_process(config.process)


def test_reference_config_and_jump_cap():
  """Reference: scipy.stats.poisson.sf. The default cap is the smallest with tail < 1e-9 at
  lambda T (34 for lambda T = 10); configs/toy_jump.py builds Baule's reference setting."""
  for mean in (0.5, 3.0, 10.0, 40.0):
    cap = jump.min_jump_cap(mean)
    assert stats.poisson.sf(cap, mean) < 1e-9 <= stats.poisson.sf(cap - 1, mean)
    assert jump.poisson_tail(cap, mean) == pytest.approx(stats.poisson.sf(cap, mean), rel=1e-6)
  config = config_lib.load_file(TOY_JUMP)
  proc = get_process(config.process)
  assert isinstance(proc, JumpProcess)
  assert (proc.b, proc.g2, proc.jump_rate, proc.jump_scale, proc.t_max) == (1, 1, 1, 1, 10)
  assert proc.jump_cap == 34 and config.data.dataset == "sas"
  assert get_process(_config(max_jumps=34).process).jump_cap == 34
  assert set(samplers.available(proc)) >= {"euler", "heun", "em", "ei_ode", "ei_sde", "ei_ode_v",
                                           "ei_sde_v", "ddim", "edm_heun", "dpmpp_2m"}


# ---- special functions and quadrature ------------------------------------------------------------
def test_mixing_densities_match_scipy_and_monte_carlo():
  """References: scipy.special.exp1 (Ein = E1 + log + gamma), scipy quad for the normalisation of
  f_Y and f_S and for the convolution f_S = f_Y * Exp(1), and 2e4 draws of Z e^{-b tau}, whose
  deciles must sit at f_Y's CDF levels. Tolerances: 1e-5 relative on Ein (float32; A&S 5.1.56 is
  good to 2e-8), 2e-5 on the normalisations (float32 densities), 0.012 on CDF levels (3.4 SE)."""
  x = np.exp(np.linspace(-12, 14, 400)).astype(np.float32)
  ein = np.asarray(quad.ein(jnp.asarray(x)))
  x64 = x.astype(np.float64)
  want = np.where(x64 > 1e-4, special.exp1(x64) + np.log(x64) + np.euler_gamma,
                  x64 - x64 * x64 / 4)
  np.testing.assert_allclose(ein, want, rtol=1e-5)
  for bt in (0.01, 1.0, 10.0):
    f_y = lambda y, bt=bt: math.exp(float(quad.log_decayed_jump_density(jnp.log(y),
                                                                         jnp.float32(bt))))
    f_s = lambda s, bt=bt: math.exp(float(quad.log_decayed_plus_fresh_density(jnp.log(s),
                                                                              jnp.float32(bt))))
    lo, hi = 1e-12, 60.0
    pts = [math.exp(-bt), 1.0]
    assert integrate.quad(f_y, lo, hi, points=pts, limit=400,
                          epsabs=1e-7, epsrel=1e-7)[0] == pytest.approx(1.0, abs=2e-5)
    assert integrate.quad(f_s, lo, hi, points=pts, limit=400,
                          epsabs=1e-7, epsrel=1e-7)[0] == pytest.approx(1.0, abs=2e-5)
    for s in (0.05, 0.7, 4.0):
      conv = integrate.quad(lambda y, f_y=f_y, s=s: f_y(y) * math.exp(-(s - y)), 0, s, limit=400,
                            epsabs=1e-9, epsrel=1e-7)[0]
      assert f_s(s) == pytest.approx(conv, rel=1e-4)
  rng = np.random.default_rng(0)
  bt = 3.0
  draws = rng.exponential(size=20_000) * np.exp(-bt * rng.uniform(size=20_000))
  cdf = lambda y: integrate.quad(
      lambda s: math.exp(s + float(quad.log_decayed_jump_density(jnp.float32(s), jnp.float32(bt)))),
      -60, math.log(y), limit=400)[0]
  grid = np.quantile(draws, [0.1, 0.3, 0.5, 0.7, 0.9])
  # The CDF at the empirical deciles is ~ the decile level with binomial SE <= 0.0035.
  np.testing.assert_allclose([cdf(g) for g in grid], [0.1, 0.3, 0.5, 0.7, 0.9], atol=0.012)


def _reference_log_integral(density, rho, omega, ref, bt, a):
  """float64 adaptive quadrature in ``s = log z`` of the same integrand, with breakpoints."""
  def log_f(s):
    z = math.exp(s)
    var = z + omega
    if density == "fresh":
      log_d = -z
    elif density == "decayed":
      log_d = -z + math.log(-math.expm1(-math.expm1(bt) * z)) - math.log(bt) - s
    else:
      x = math.expm1(bt) * z
      ein = special.exp1(x) + math.log(x) + np.euler_gamma if x > 1e-3 else x - x * x / 4
      log_d = -z + math.log(ein) - math.log(bt)
    return s + log_d - a * math.log(var / ref) + 0.5 * rho * (1.0 - ref / var)
  grid = np.linspace(-90, 5, 3000)
  vals = np.array([log_f(s) for s in grid])
  peak, top = grid[np.argmax(vals)], vals.max()
  pts = sorted({peak + d for d in (-20, -5, -2, -1, -0.3, 0, 0.3, 1, 2, 5)} | {-bt, math.log(ref)})
  pts = [p for p in pts if -90 < p < 5]
  val = integrate.quad(lambda s: math.exp(log_f(s) - top), -90, 5, points=pts, epsabs=0,
                       epsrel=1e-12, limit=4000)[0]
  return math.log(val) + top


def _quadrature_cases(dim, stride=3):
  """The grid of (b t, omega, ref, rho) cases of the quadrature tests (see the test below)."""
  cases = []
  for bt in (1e-4, 0.3, 10.0):
    for omega in (0.0, 1e-5, 1.0):
      for extra in (1e-6, 0.3, 2.0):
        for q in (1e-6, 0.5, 1 - 1e-6):
          rho = stats.chi2.ppf(q, dim) if q < 0.9 else stats.chi2.isf(1 - q, dim)
          cases.append((bt, omega, omega + extra, float(np.float32(rho))))
  return cases[::stride]


def _worst_quadrature_error(cases, dim, dtype=jnp.float32):
  """Largest relative error of the family's integrals against the float64 reference."""
  bt, omega, ref, rho = (jnp.asarray([c[i] for c in cases], dtype) for i in range(4))
  panels = quad.quadrature_panels(rho, omega, ref, bt, dim)
  requests = tuple((name, a) for name in quad.MIXING_DENSITIES for a in (dim / 2, dim / 2 + 1))
  got = quad.log_mixture_integrals(requests, panels, rho, omega, ref, bt, JumpProcess().quad_nodes)
  worst = 0.0
  for (name, a), values in zip(requests, got):
    want = np.array([_reference_log_integral(name, c[3], c[1], c[2], c[0], a) for c in cases])
    assert np.all(np.isfinite(np.asarray(values))), (name, a)
    worst = max(worst, float(np.max(np.abs(np.expm1(np.asarray(values, np.float64) - want)))))
  return worst


@pytest.mark.parametrize("dim,tol", [(1, 1e-5), (2, 1e-5), (16, 1e-5), (3072, 2e-5)])
def test_mixture_quadrature_matches_float64_adaptive_quadrature(dim, tol):
  """Reference: scipy.integrate.quad in float64 (breakpoints around the integrand's peak, relative
  tolerance 1e-12). Cases: b t in {1e-4, 0.3, 10}, omega in {0, 1e-5, 1}, ref - omega in {1e-6,
  0.3, 2}, rho at the 1e-6, 0.5 and 1 - 1e-6 chi^2_d quantiles (every third of the 81), the three
  mixing densities and a = d/2, d/2 + 1, at the default 5 nodes on each of the 23 panels.
  Tolerance 1e-5 relative (the documented bound); 2e-5 at d = 3072, where float32 rounding of
  exponents of size ~d/2 alone reaches 1e-5 (measured on all 81 cases: 2.5e-6, 2.6e-6, 4.3e-6 and
  9.8e-6 for d = 1, 2, 16, 3072; the previous 3-panel rule with 128 nodes: 3.8e-6 .. 9.8e-6)."""
  assert _worst_quadrature_error(_quadrature_cases(dim), dim) < tol


@pytest.mark.slow
@pytest.mark.parametrize("dim", [2, 3, 64])
def test_mixture_quadrature_on_random_cases(dim):
  """As above on 40 random cases a dimension: b t log-uniform on [1e-5, 10], omega 0 (20 %) or
  e^{U(-14, 2)}, ref - omega = e^{U(-14, 2)}, rho a chi^2_d quantile at U(1e-6, 1 - 1e-6) (the
  domain of the documented bound). Tolerance 1e-5 (measured over 60 cases each for d = 1, 2, 3,
  16, 64, 3072: at most 7.4e-6)."""
  rng = np.random.default_rng(dim)
  n = 40
  bt = np.exp(rng.uniform(np.log(1e-5), np.log(10.0), n))
  omega = np.where(rng.uniform(size=n) < 0.2, 0.0, np.exp(rng.uniform(-14, 2, n)))
  ref = omega + np.exp(rng.uniform(-14, 2, n))
  rho = stats.chi2.ppf(rng.uniform(1e-6, 1 - 1e-6, n), dim).astype(np.float32).astype(float)
  cases = list(zip(bt, omega, ref, rho))
  assert _worst_quadrature_error(cases, dim) < 1e-5


# ---- the forward kernel --------------------------------------------------------------------------
def _simulate_forward(rng, x0, times, b, g2, lam, c, dt, numpy_laplace):
  """Euler–Maruyama of ``dx = -(b/2) x dt + sqrt(b g2) dW + dJ``, Poisson(lambda dt) jumps a step.

  Jumps: ``numpy_laplace`` (d = 1): numpy's Laplace(scale sqrt c), an independent generator;
  otherwise ``sqrt(2 c G) xi`` with ``G ~ Gamma(count)`` (the sum of ``count`` Laplace vectors).
  Returns ``{t: x_t}`` for the requested ``times``.
  """
  x = np.array(x0, np.float64)
  n, d = x.shape
  out, t, k = {}, 0.0, 0
  stops = sorted(times)
  while k < len(stops):
    x += -0.5 * b * x * dt + math.sqrt(b * g2 * dt) * rng.standard_normal((n, d))
    count = rng.poisson(lam * dt, n)
    hit = np.nonzero(count)[0]
    if numpy_laplace:
      for i in hit:
        x[i, 0] += rng.laplace(scale=math.sqrt(c), size=count[i]).sum()
    else:
      mix = rng.gamma(count[hit])
      x[hit] += np.sqrt(2.0 * c * mix)[:, None] * rng.standard_normal((len(hit), d))
    t += dt
    if t >= stops[k] - 1e-9:
      out[stops[k]] = x.copy()
      k += 1
  return out


def _kernel_draw(proc, key, x0, t):
  pert = proc.perturb(key, x0, jnp.full((x0.shape[0],), t))
  return np.asarray(pert.model_input, np.float64)


def test_kernel_matches_fine_step_simulation():
  """Reference: numpy Euler–Maruyama simulation (dt = 5e-3, 2e4 paths) of the forward SDE with
  Poisson jumps, d = 2 reference setting (lambda = g2 = c = b = 1) from x0 = (2, 0). At t = 0.3, 1,
  3: two-sample KS on |x_t| (p > 1e-3; the Euler bias, ~b dt/2 = 0.25% in variance, is far below
  the KS resolution 0.014),
  and E|x_t|^2 against the closed form m_t^2 |x0|^2 + d q (1 - e^{-bt}) (4 SE of the sample
  mean)."""
  proc = JumpProcess(b=1.0, g2=1.0, jump_rate=1.0, jump_scale=1.0, target="conditional_w")
  n, times = 20_000, (0.3, 1.0, 3.0)
  x0 = np.tile([2.0, 0.0], (n, 1))
  sim = _simulate_forward(np.random.default_rng(1), x0, times, 1.0, 1.0, 1.0, 1.0, 5e-3, False)
  for i, t in enumerate(times):
    ker = _kernel_draw(proc, jax.random.PRNGKey(i), jnp.asarray(x0, jnp.float32), t)
    r_ker, r_sim = np.linalg.norm(ker, axis=1), np.linalg.norm(sim[t], axis=1)
    assert stats.ks_2samp(r_ker, r_sim).pvalue > 1e-3, t
    want = math.exp(-t) * 4.0 + 2 * proc.noise_var * -math.expm1(-t)
    for r in (r_ker, r_sim):
      sq = r**2
      assert abs(sq.mean() - want) < 4 * sq.std() / math.sqrt(n), (t, sq.mean(), want)


def test_pure_jump_kernel_matches_closed_form_and_laplace_simulation():
  """References: the closed form ``e^{-bt} delta_0 + (1 - e^{-bt}) Laplace(sqrt c)`` (lambda = b,
  d = 1), and a numpy simulation with numpy's Laplace generator for lambda = 2 b (no closed form).
  Atom mass within 4 binomial SE; KS p > 1e-3 for the continuous part and for kernel vs simulation.
  Also: both targets draw the same W for the same key (the kernel does not depend on the target)."""
  n, t = 20_000, 1.0
  proc = JumpProcess(**PURE, target="conditional_w")
  x = _kernel_draw(proc, jax.random.PRNGKey(3), jnp.zeros((n, 1)), t)[:, 0]
  atom = math.exp(-t)
  assert abs(np.mean(x == 0) - atom) < 4 * math.sqrt(atom * (1 - atom) / n)
  assert stats.kstest(x[x != 0], stats.laplace(scale=1.0).cdf).pvalue > 1e-3
  tt = jnp.full((n,), t)
  np.testing.assert_allclose(JumpProcess(**PURE).kernel_variance(jax.random.PRNGKey(3), tt),
                             proc.kernel_variance(jax.random.PRNGKey(3), tt), rtol=1e-6)
  fast = JumpProcess(b=1.0, g2=0.0, jump_rate=2.0, jump_scale=0.5, target="conditional_w")
  x = _kernel_draw(fast, jax.random.PRNGKey(4), jnp.zeros((n, 1)), t)[:, 0]
  sim = _simulate_forward(np.random.default_rng(2), np.zeros((n, 1)), (t,), 1.0, 0.0, 2.0, 0.5,
                          2e-3, True)[t][:, 0]
  assert abs(np.mean(x == 0) - math.exp(-2 * t)) < 4 * math.sqrt(math.exp(-2) / n)
  assert stats.ks_2samp(x, sim).pvalue > 1e-3


# ---- the jump latents: the count, the slots and the law of the previous kernel ------------------
def _arrival_time_jump_sum(key, duration, lam, cap, growth):
  """The previous kernel's compound Poisson draw (lim_jax before the inversion count), kept as a
  reference: ``cap`` arrival times ``cumsum(Exp(1))/lambda``, the count is how many fall before
  ``duration``, and the sum is ``sum_i Z_i exp(growth (duration - tau_i))``.

  Returns (count, sum)."""
  k_times, k_sizes = jax.random.split(key)
  shape = duration.shape + (cap,)
  arrivals = jnp.cumsum(jax.random.exponential(k_times, shape), axis=-1) / lam
  sizes = jax.random.exponential(k_sizes, shape)
  active = arrivals < duration[:, None]
  lag = jnp.where(active, duration[:, None] - arrivals, 0.0)
  return (jnp.sum(active, axis=-1),
          jnp.sum(jnp.where(active, sizes * jnp.exp(growth * lag), 0.0), axis=-1))


def _within_se(samples, want_mean, want_var, n_se=5.0):
  """Sample mean and variance against closed forms within ``n_se`` standard errors (the variance's
  SE from the sample fourth central moment)."""
  x = np.asarray(samples, np.float64)
  n = x.size
  mean, var = x.mean(), x.var()
  m4 = np.mean((x - mean) ** 4)
  assert abs(mean - want_mean) < n_se * math.sqrt(var / n), (mean, want_mean)
  assert abs(var - want_var) < n_se * math.sqrt((m4 - var * var) / n), (var, want_var)


@pytest.mark.parametrize("mean", [0.02, 0.3, 1.0, 4.0, 10.0])
def test_jump_count_matches_scipy_poisson(mean):
  """Reference: scipy.stats.poisson (pmf, sf). 2e5 inversion draws at the default cap (34 at
  lambda T = 10): each count whose expected frequency is >= 20, and the pooled tails beyond them,
  within 5 binomial SE; chi^2 goodness of fit p > 1e-4 on the same bins. A mean of 0 gives 0."""
  proc = JumpProcess()
  n = 200_000
  means = jnp.full((n,), mean, jnp.float32)
  count = np.asarray(proc.jump_count(jax.random.PRNGKey(round(100 * mean)), means))
  assert count.dtype == np.int32 and 0 <= count.min() and count.max() <= proc.jump_cap
  ks = np.arange(proc.jump_cap + 1)
  pmf = stats.poisson.pmf(ks, mean)
  bulk = ks[pmf * n >= 20]
  lo, hi = bulk.min(), bulk.max()
  obs = np.bincount(count, minlength=proc.jump_cap + 1)
  got = np.concatenate([[obs[:lo].sum()], obs[lo:hi + 1], [obs[hi + 1:].sum()]])
  want = np.concatenate([[stats.poisson.cdf(lo - 1, mean)], pmf[lo:hi + 1],
                         [stats.poisson.sf(hi, mean)]])
  keep = want > 0
  got, want = got[keep], want[keep]
  se = np.sqrt(want * (1 - want) / n)
  assert np.all(np.abs(got / n - want) < 5 * se + 0.5 / n), (got / n, want)
  assert stats.chisquare(got, want / want.sum() * n).pvalue > 1e-4
  zero = proc.jump_count(jax.random.PRNGKey(0), jnp.zeros((8,), jnp.float32))
  assert np.all(np.asarray(zero) == 0)


@pytest.mark.parametrize("duration,growth", [(0.2, 1.0), (0.2, 0.0), (3.0, -1.0), (10.0, 1.0)])
def test_jump_sum_matches_closed_form_moments_and_previous_kernel(duration, growth):
  """References: closed-form moments of ``S = sum_{i <= N} Z_i e^{g l_i}``, ``N ~ Poisson(lambda
  h)``, ``l_i ~ U(0, h)``, ``Z ~ Exp(1)``: ``E S = lambda (e^{gh} - 1)/g``, ``Var S = lambda
  (e^{2gh} - 1)/g`` (``lambda h``, ``2 lambda h`` at g = 0), mean and variance within 5 SE (1e5
  draws); and the previous arrival-time kernel (:func:`_arrival_time_jump_sum`, 1e5 draws):
  two-sample KS p > 1e-3 and the fraction of zero sums within 5 SE of each other. ``g = b`` is the
  exponential integrators' noise, 0 Euler–Maruyama's, ``-b`` the forward kernel's jump variance."""
  proc = JumpProcess()
  lam, n = proc.jump_rate, 100_000
  h = jnp.full((n,), duration, jnp.float32)
  got = np.asarray(jax.jit(proc._jump_sum, static_argnums=2)(jax.random.PRNGKey(5), h, growth))
  if growth == 0:
    want_mean, want_var = lam * duration, 2 * lam * duration
  else:
    want_mean = lam * math.expm1(growth * duration) / growth
    want_var = lam * math.expm1(2 * growth * duration) / growth
  _within_se(got, want_mean, want_var)
  _, old = _arrival_time_jump_sum(jax.random.PRNGKey(6), h, lam, proc.jump_cap, growth)
  old = np.asarray(old)
  assert stats.ks_2samp(got, old).pvalue > 1e-3
  p0 = math.exp(-lam * duration)
  assert abs(np.mean(got == 0) - np.mean(old == 0)) < 5 * math.sqrt(2 * p0 * (1 - p0) / n)


@pytest.mark.parametrize("target", ["rao_blackwell", "conditional_w"])
def test_training_latents_match_closed_forms(target):
  """References: closed forms for the latents of :meth:`JumpProcess.draw_latents` at t in {0.3, 3}
  (1e5 draws, lambda = b = c = g2 = 1): ``P(N <= 1) = e^{-lambda t}(1 + lambda t)`` (5 binomial
  SE), ``W = 2c (omega + y0)`` with ``E W = g2 s_t^2 + 2 c lambda (1 - e^{-bt})/b`` and
  ``Var W = 4 c^2 lambda (1 - e^{-2bt})/b`` (5 SE); ``rao_blackwell``: the set-aside jump ``y0``
  given ``N >= 1`` has mean ``(1 - e^{-bt})/(bt)`` (5 SE) and is 0 when ``N = 0``."""
  proc = JumpProcess(target=target)
  n, c, lam, b = 100_000, proc.jump_scale, proc.jump_rate, proc.b
  for i, t in enumerate((0.3, 3.0)):
    lat = proc.draw_latents(jax.random.PRNGKey(30 + i), jnp.full((n,), t, jnp.float32))
    few, omega, y0 = (np.asarray(v, np.float64) for v in lat)
    p_few = math.exp(-lam * t) * (1 + lam * t)
    assert abs(few.mean() - p_few) < 5 * math.sqrt(p_few * (1 - p_few) / n), (t, few.mean())
    w = 2 * c * (omega + y0)
    _within_se(w, proc.g2 * -math.expm1(-b * t) + 2 * c * lam * -math.expm1(-b * t) / b,
               4 * c * c * lam * -math.expm1(-2 * b * t) / b)
    if target == "rao_blackwell":
      # y0 > 0 exactly when N >= 1 (an Exp(1) size times a positive factor).
      some = y0 > 0
      p_none = math.exp(-lam * t)
      assert abs(1 - some.mean() - p_none) < 5 * math.sqrt(p_none * (1 - p_none) / n)
      y = y0[some]
      assert abs(y.mean() + math.expm1(-b * t) / (b * t)) < 5 * y.std() / math.sqrt(y.size)
    else:
      assert np.all(y0 == 0)


def test_jump_latents_of_an_example_do_not_depend_on_the_rest_of_the_batch():
  """Reference: the same draw with the other examples changed. A sampler step's slot loop runs as
  many passes as the batch's largest count needs; example 0's sampler noise and training latents
  (same key, same row) must be bitwise the same whether its neighbours have almost no jumps
  (t = 0.01: one pass) or many (t = 10: several passes)."""
  proc = JumpProcess()
  key = jax.random.PRNGKey(9)
  t_small = jnp.array([2.0, 0.01, 0.01, 0.01], jnp.float32)
  t_large = jnp.array([2.0, 10.0, 10.0, 10.0], jnp.float32)
  for a, b in zip(proc.draw_latents(key, t_small), proc.draw_latents(key, t_large)):
    assert np.asarray(a)[0] == np.asarray(b)[0]
  for growth in (0.0, proc.b):
    s_small = proc._jump_sum(key, t_small, growth)
    s_large = proc._jump_sum(key, t_large, growth)
    assert np.asarray(s_small)[0] == np.asarray(s_large)[0]
  counts = np.asarray(proc.jump_count(jax.random.split(key)[0], t_large))
  assert 1 <= counts[0] <= 4 < counts.max()  # example 0 has jumps; one pass vs several


# ---- the generalized score -----------------------------------------------------------------------
@pytest.mark.parametrize("lam,c,t", [(1.0, 1.0, 1.0), (0.5, 2.0, 2.0)])
def test_tower_average_of_training_target_matches_closed_form(lam, c, t):
  """Reference: the closed-form velocity of the pure-jump point mass (lambda = b, d = 1). The
  Monte-Carlo mean of the training target (converted to v) over examples whose x_t falls in a bin
  must equal the closed form averaged over the same x_t (tower property). 3e4 examples; tolerance
  4 SE of the bin mean (the Rao–Blackwellised target has finite variance, so the SE is honest) +
  0.5% for float32. Examples on the atom x_t = 0 (probability e^{-bt}) carry target 0."""
  proc = JumpProcess(b=lam, g2=0.0, jump_rate=lam, jump_scale=c)
  n = 30_000
  tt = jnp.full((n,), t)
  pert = jax.jit(proc.perturb)(jax.random.PRNGKey(11), jnp.zeros((n, 1)), tt)
  u = np.asarray(pert.model_input[:, 0], np.float64)
  v = np.asarray(proc.velocity(pert.target, tt)[:, 0], np.float64)
  assert np.all(np.asarray(pert.weight) == 1) and np.all(v[u == 0] == 0)
  edges = np.sqrt(c) * np.array([-3.0, -1.0, -0.3, 0.0, 0.1, 0.4, 1.0, 2.0, 4.0])
  for lo, hi in zip(edges[:-1], edges[1:]):
    m = (u > lo) & (u < hi)
    assert m.sum() > 500
    mc, se = v[m].mean(), v[m].std() / math.sqrt(m.sum())
    want = closed_form_velocity(u[m], t, lam, c, lam).mean()
    assert abs(mc - want) < 4 * se + 5e-3 * abs(want), (lo, hi, mc, want, se)


def _posterior_velocity(proc, u_values, t, num_latents, key):
  """``v(u) = sum_j grad V_j(u) / sum_j p_j(u)`` over latent draws j, with p_j and grad V_j from the
  family's quadratures at fixed u (no sampling of u): the tower property as a quadrature."""
  c = proc.jump_scale
  tt = jnp.full((num_latents,), t)
  lat = proc.draw_latents(key, tt)
  ref = lat.omega + 1.0  # any reference variance works
  out = []
  for u in u_values:
    rho = (u * u / (2 * c)) / ref
    log_p, log_grad, log_jump = proc.mixture_logs(rho, tt, lat.omega, ref, lat.few, 1)
    log_n = -0.5 * jnp.log(2 * math.pi * 2 * c * ref) - 0.5 * rho
    num = jnp.exp(log_n - jnp.log(ref)) * (0.5 * proc.b * proc.g2 * jnp.exp(log_grad)
                                           + proc.jump_rate * c * jnp.exp(log_jump))
    out.append(-(u / (2 * c)) * float(jnp.sum(num) / jnp.sum(jnp.exp(log_n + log_p))))
  return np.array(out)


@pytest.mark.parametrize("target,times,num_latents,rtol", [
    ("rao_blackwell", (0.5, 2.0), 8_000, 0.04), ("conditional_w", (1.0,), 20_000, 0.05)])
def test_quadrature_velocity_matches_closed_form(target, times, num_latents, rtol):
  """Reference: the closed-form velocity (lambda = b = c = 1, g2 = 0, d = 1). The family's
  conditional p_c and grad V_c (quadratures at the default nodes: error < 1e-5, far below the
  tolerance) averaged over latent draws at fixed u. The latent Monte Carlo is light-tailed;
  measured max errors over 5 seeds: rao_blackwell 2.9% at 6e3 draws, conditional_w 4.5% at 1.2e4
  (its small-W latents weigh more); tolerances 4% and 5%. Both decompositions are exact, including
  the atom (W = 0) of conditional_w. The slow variant uses 5e4 draws and 1.5%."""
  proc = JumpProcess(**PURE, target=target)
  u = np.array([-0.7, 0.3, 1.0, 2.0])
  for i, t in enumerate(times):
    got = _posterior_velocity(proc, u, t, num_latents, jax.random.PRNGKey(20 + i))
    np.testing.assert_allclose(got, closed_form_velocity(u, t), rtol=rtol)


@pytest.mark.slow
def test_quadrature_velocity_matches_closed_form_precisely():
  """As above with 5e4 latent draws (measured error 0.1-0.3% with 2e5 draws, so
  ~0.5% here); tolerance 1.5%."""
  proc = JumpProcess(**PURE)
  u = np.array([-2.0, 0.1, 0.4, 1.5, 3.0])
  for i, t in enumerate((0.3, 3.0)):
    got = _posterior_velocity(proc, u, t, 50_000, jax.random.PRNGKey(30 + i))
    np.testing.assert_allclose(got, closed_form_velocity(u, t), rtol=0.015)


def test_rao_blackwell_target_has_finite_variance():
  """Reference: the second-moment integrand ``p_c(u) v_c(u)^2`` of one latent (d = 1, N >= 2,
  omega = 0.5, t = 1, reference setting). Given W (conditional_w) it grows without bound in |u|
  (Gaussian p_c against the Laplace tails of f_A * p_c: infinite variance); Rao–Blackwellised it
  decays (both Laplace-tailed). Deterministic, from the quadratures."""
  u = np.array([3.0, 6.0, 12.0, 24.0])
  for target in jump.TARGETS:
    proc = JumpProcess(target=target)
    omega = 0.5 if target == "rao_blackwell" else 0.8  # conditional_w: the full W / 2c
    ref = jnp.full((len(u),), 1.0)
    rho = jnp.asarray(u**2 / 2.0, jnp.float32)  # |u|^2/(2c ref), c = ref = 1
    ones = jnp.ones((len(u),))
    log_p, log_grad, log_jump = proc.mixture_logs(rho, ones, 0.5 * ones + (omega - 0.5), ref,
                                                  jnp.zeros((len(u),), bool), 1)
    kappa = 0.5 * jnp.exp(log_grad - log_p) + jnp.exp(log_jump - log_p)
    log_integrand = np.asarray(log_p - 0.5 * rho + 2 * jnp.log(kappa * jnp.asarray(u) / 2.0))
    if target == "rao_blackwell":
      assert np.all(np.diff(log_integrand) < -1.0), log_integrand
    else:
      assert np.all(np.diff(log_integrand) > 1.0), log_integrand


# ---- lambda = 0: the Gaussian VP model -----------------------------------------------------------
def _gaussian_twin(b=1.0, t_max=10.0):
  """GaussianProcess on the constant-rate VP path beta = b (linear with beta_max - beta_min = 1e-7,
  which Schedule requires > 0: its effect on m_t is < 5e-7 relative up to t = 10)."""
  schedule = Schedule(sde="vp", kind="linear", beta_min=b, beta_max=b + 1e-7, t_max=t_max)
  return GaussianProcess(schedule=schedule, t_min=1e-3, t_min_train=1e-5)


def test_zero_jump_rate_reduces_to_gaussian_vp():
  """Reference: GaussianProcess (eps-prediction) with beta = b = 1, g2 = 1, for the same keys:
  identical kernel and target (eps), prior up to the factor s_T = sqrt(1 - e^{-10}), the same PF-ODE
  drift, EM step and DDIM (ei_ode) step, and ei_sde equal to the first-order noise-prediction SDE
  solver written in half-log-SNR h:
  x_t = (m_t/m_s) x_s - 2 s_t (e^h - 1) eps + s_t sqrt(e^{2h}-1) z.
  Tolerance 2e-5 relative (float32 and the 1e-7 rate offset of the twin)."""
  proc = get_process(_config(jump_rate=0.0, g2=1.0, b=1.0).process)
  gauss = _gaussian_twin()
  key = jax.random.PRNGKey(5)
  x0 = jax.random.normal(jax.random.PRNGKey(6), (64, 3))
  t = jax.random.uniform(jax.random.PRNGKey(7), (64,), minval=1e-3, maxval=10.0)
  mine, theirs = proc.perturb(key, x0, t), gauss.perturb(key, x0, t)
  np.testing.assert_allclose(mine.model_input, theirs.model_input, rtol=2e-5, atol=1e-6)
  np.testing.assert_array_equal(mine.target, theirs.target)
  np.testing.assert_array_equal(mine.weight, theirs.weight)
  np.testing.assert_allclose(proc.prior(key, (64, 3)),
                             math.sqrt(-math.expm1(-10.0)) * gauss.prior(key, (64, 3)), rtol=1e-6)
  out = jax.random.normal(jax.random.PRNGKey(8), (64, 3))
  x = jax.random.normal(jax.random.PRNGKey(9), (64, 3))
  s_cur, s_next = t, t * 0.9
  np.testing.assert_allclose(proc.ode_drift(x, t, out), gauss.ode_drift(x, t, out), rtol=2e-5,
                             atol=1e-5)
  np.testing.assert_allclose(proc.sde_step(key, x, s_cur, s_next, out),
                             gauss.sde_step(key, x, s_cur, s_next, out), rtol=2e-5, atol=1e-5)
  np.testing.assert_allclose(proc.ei_ode_step(key, x, s_cur, s_next, out),
                             gauss.ei_ode_step(key, x, s_cur, s_next, out), rtol=2e-5, atol=1e-5)
  m = lambda s: np.exp(-0.5 * np.asarray(s, np.float64))[:, None]
  sd = lambda s: np.sqrt(-np.expm1(-np.asarray(s, np.float64)))[:, None]
  e_h = (m(s_next) / sd(s_next)) / (m(s_cur) / sd(s_cur))
  z = np.asarray(jax.random.normal(jax.random.split(key)[0], x.shape), np.float64)
  want = (m(s_next) / m(s_cur) * np.asarray(x) - 2 * sd(s_next) * (e_h - 1) * np.asarray(out)
          + sd(s_next) * np.sqrt(e_h**2 - 1) * z)
  np.testing.assert_allclose(proc.ei_sde_step(key, x, s_cur, s_next, out), want, rtol=1e-4,
                             atol=1e-5)


def test_zero_jump_rate_samplers_reproduce_gaussian_samplers():
  """Reference: the Gaussian family's generic samplers (euler, heun, em) and its DDIM (ei_ode),
  driven by the same analytic eps of N(0.5, 0.3^2) data through make_sampler, same key: same
  samples (2e-4 absolute after 50 steps from t = 10)."""
  proc = get_process(_config(jump_rate=0.0).process)
  gauss = _gaussian_twin()

  def apply_fn(params, x, t, train=False, rng=None):
    del params, train, rng
    m = jnp.exp(-0.5 * t)[:, None]
    var = m**2 * 0.09 + -jnp.expm1(-t)[:, None]
    return jnp.sqrt(-jnp.expm1(-t))[:, None] * (x - 0.5 * m) / var  # -s_t * score

  for name in ("euler", "heun", "em", "ei_ode"):
    mine = samplers.make_sampler(proc, apply_fn, name, 50).sample(None, jax.random.PRNGKey(1),
                                                                  (256, 2))
    theirs = samplers.make_sampler(gauss, apply_fn, name, 50).sample(None, jax.random.PRNGKey(1),
                                                                     (256, 2))
    # The priors differ by s_T = 0.99998; the flows contract it further.
    np.testing.assert_allclose(mine, theirs, atol=2e-4, err_msg=name)


# ---- samplers with exact velocities --------------------------------------------------------------
def _quantile_tolerance(reference, levels, n, spread=4.0):
  """``spread`` standard errors of a sample quantile from ``n`` draws: sqrt(p(1-p)/n) / f(q), with
  1/f(q) estimated from the reference quantile function by a central difference (+-0.01)."""
  levels = np.asarray(levels)
  upper = np.minimum(levels + 0.01, 0.999)
  dq = ((np.quantile(reference, upper) - np.quantile(reference, levels - 0.01))
        / (upper - levels + 0.01))
  return spread * np.sqrt(levels * (1 - levels) / n) * dq


@pytest.mark.parametrize("name,n", [
    ("euler", 20_000), ("heun", 20_000), ("ei_ode", 20_000), ("ei_ode_v", 20_000),
    ("edm_heun", 20_000), ("dpmpp_2m", 20_000), ("em", 4_000), ("ei_sde", 4_000),
    pytest.param("ei_sde_v", 4_000, marks=pytest.mark.slow)])
def test_samplers_with_closed_form_velocity_reproduce_pure_jump_marginal(name, n):
  """Reference: the closed-form marginal of the pure-jump point mass (lambda = b = c = 1, g2 = 0,
  d = 1) at t_min = 0.5, e^{-1/2} delta_0 + (1 - e^{-1/2}) Laplace(1), sampled from T = 3 (exact
  prior) with the closed-form velocity, 200 NFE. Checks: mass of |x| < 0.05 (the atom plus the
  Laplace's 3%; the ODE's finite-speed collapse onto 0 leaves ~0.02 of chatter), and |x| quantiles
  at 0.75, 0.9, 0.97. Tolerances: 4 SE + a discretisation allowance of 0.01 (atom) and 3% (measured
  <= 1% for the ODEs, <= 4% for the SDEs' 0.97 quantile, i.e. within 2 SE at n = 4e3)."""
  proc = JumpProcess(**PURE, horizon=3.0, t_min=0.5)

  def apply_fn(params, x, t, train=False, rng=None):
    del params, train, rng
    e = jnp.exp(-t)[:, None]
    return proc.output_from_velocity(-(jnp.sign(x) * e / (1 - e) + 0.5 * x), t)

  x = np.abs(np.asarray(samplers.make_sampler(proc, apply_fn, name, 200).sample(
      None, jax.random.PRNGKey(0), (n, 1)))[:, 0])
  a = math.exp(-0.5)
  atom = a + (1 - a) * -math.expm1(-0.05)
  assert abs(np.mean(x < 0.05) - atom) < 4 * math.sqrt(atom * (1 - atom) / n) + 0.01
  levels = np.array([0.75, 0.9, 0.97])
  want = closed_form_abs_quantile(levels, 0.5)
  density = (1 - a) * np.exp(-want)
  tol = 4 * np.sqrt(levels * (1 - levels) / n) / density + 0.03 * want
  np.testing.assert_array_less(np.abs(np.quantile(x, levels) - want), tol)


_K = np.linspace(0.0, 24.0, 513)


def _fourier_velocity(proc, x, t):
  """Marginal velocity of the point mass at 0 for g2 > 0, d = 1, by Fourier inversion (an
  independent route from the latent decomposition): ``phi_t(k) = exp(-g2 (1-e^{-bt}) k^2/2)
  ((1 + c e^{-bt} k^2)/(1 + c k^2))^{lambda/b}``, ``p = (1/pi) int cos(kx) phi``,
  ``grad V = -(1/pi) int k sin(kx) (b g2/2 + lambda c/(1 + c k^2)) phi`` (trapezoid on [0, 24]; the
  Gaussian factor is below e^{-37} at the end for t >= 0.3)."""
  b, g2, lam, c = proc.b, proc.g2, proc.jump_rate, proc.jump_scale
  k = jnp.asarray(_K, jnp.float32)[None, :]
  w = jnp.asarray(np.full_like(_K, _K[1]) * np.r_[0.5, np.ones(len(_K) - 2), 0.5] / np.pi,
                  jnp.float32)
  e = jnp.exp(-b * t)[:, None]
  phi = jnp.exp(-0.5 * g2 * (1 - e) * k * k) * ((1 + c * e * k * k) / (1 + c * k * k)) ** (lam / b)
  arg = x[:, :1] * k
  dens = jnp.sum(w * jnp.cos(arg) * phi, axis=-1)
  grad_v = -jnp.sum(w * k * jnp.sin(arg) * (0.5 * b * g2 + lam * c / (1 + c * k * k)) * phi,
                    axis=-1)
  return (grad_v / dens)[:, None]


@pytest.mark.parametrize("name,nfe", [
    ("ei_sde", 100), ("dpmpp_2m", 35), pytest.param("ei_ode", 100, marks=pytest.mark.slow),
    pytest.param("em", 200, marks=pytest.mark.slow),
    pytest.param("heun", 100, marks=pytest.mark.slow),
    pytest.param("edm_heun", 35, marks=pytest.mark.slow)])
def test_samplers_with_fourier_velocity_reproduce_jump_diffusion_marginal(name, nfe):
  """Reference: exact kernel draws (2e5, the kernel is tested above) of the jump-diffusion with
  g2 = lambda = c = b = 1 from the point mass at 0, at t_min = 0.3; sampler from T = 5 with the
  Fourier-inverted marginal velocity, 3000 paths. |x| quantiles at 0.25..0.99 within 4 SE + 3%
  (measured deviations <= 1.5% for ei_ode, <= 2.3% for ei_sde at these settings)."""
  proc = JumpProcess(b=1.0, g2=1.0, jump_rate=1.0, jump_scale=1.0, horizon=5.0, t_min=0.3)

  apply_fn = _fourier_apply(proc)
  n_ref, n = 200_000, 3_000
  w = proc.kernel_variance(jax.random.PRNGKey(7), jnp.full((n_ref,), 0.3))
  ref = np.abs(np.asarray(jnp.sqrt(w) * jax.random.normal(jax.random.PRNGKey(8), (n_ref,))))
  x = np.abs(np.asarray(samplers.make_sampler(proc, apply_fn, name, nfe).sample(
      None, jax.random.PRNGKey(0), (n, 1)))[:, 0])
  levels = np.array([0.25, 0.5, 0.75, 0.9, 0.97, 0.99])
  want = np.quantile(ref, levels)
  tol = _quantile_tolerance(ref, levels, n) + 0.03 * want
  np.testing.assert_array_less(np.abs(np.quantile(x, levels) - want), tol)


def _fourier_apply(proc):
  def apply_fn(params, x, t, train=False, rng=None):
    del params, train, rng
    return proc.output_from_velocity(_fourier_velocity(proc, x, t), t)
  return apply_fn


@pytest.mark.parametrize("grid", ("uniform_t", "edm"))
def test_flow_form_ddim_is_ei_ode(grid):
  """Reference: ``ei_ode`` (``r_hat`` frozen, exact OU integration in t). In ``y = x/m_t`` and the
  noise level the PF-ODE is ``dy/dr = r_hat``, so the denoiser-form ``ddim`` with ``D_v = y - r
  r_hat`` (JumpProcess.flow_denoise) is the same rule: same end points (float32: 1e-4 absolute on
  |x| up to ~5; measured 2e-5) with the Fourier velocity of the jump-diffusion, 40 steps."""
  proc = JumpProcess(b=1.0, g2=1.0, jump_rate=1.0, jump_scale=1.0, horizon=5.0, t_min=0.3)
  key, shape = jax.random.PRNGKey(0), (400, 1)
  ddim, ei = (np.asarray(samplers.make_sampler(proc, _fourier_apply(proc), name, 40,
                                               grid=grid).sample(None, key, shape))
              for name in ("ddim", "ei_ode"))
  np.testing.assert_allclose(ddim, ei, atol=1e-4)
  assert np.abs(ddim).max() > 2


def test_flow_form_convergence_orders():
  """Reference: the generic ``heun`` in t at 2000 NFE (a different integrator; its error there is
  ~(80/2000)^2 of its 80-NFE error 2e-3, below 1e-5), from the same prior draws, with the
  Fourier velocity of the jump-diffusion on the rho = 7 grid. The RMS end-point error falls with NFE
  in 10..80 at a fitted slope of about 1 for ``ddim`` (0.8..1.3; measured 1.02) and >= 1.8 for the
  second-order ``edm_heun`` and ``dpmpp_2m`` (measured 2.15, 1.90): jump's own PF-ODE gets the
  second-order rules of the location-scale families."""
  proc = JumpProcess(b=1.0, g2=1.0, jump_rate=1.0, jump_scale=1.0, horizon=5.0, t_min=0.3)
  apply_fn = _fourier_apply(proc)
  key, shape = jax.random.PRNGKey(0), (400, 1)
  run = lambda name, nfe: np.asarray(samplers.make_sampler(proc, apply_fn, name, nfe,  # noqa: E731
                                                           grid="edm").sample(None, key, shape))
  ref = run("heun", 2000)
  nfes, slopes = (10, 20, 40, 80), {}
  for name in ("ddim", "edm_heun", "dpmpp_2m"):
    errs = [np.sqrt(np.mean((run(name, nfe) - ref) ** 2)) for nfe in nfes]
    slopes[name] = -np.polyfit(np.log(nfes), np.log(errs), 1)[0]
  assert 0.8 < slopes["ddim"] < 1.3, slopes
  assert slopes["edm_heun"] >= 1.8 and slopes["dpmpp_2m"] >= 1.8, slopes


# ---- training ------------------------------------------------------------------------------------
TAIL_LEVELS = tuple(np.linspace(0.95, 0.995, 10))


def _tail_log_error(samples, data, levels=TAIL_LEVELS):
  """Baule's metric: mean |log| ratio of the 0.95..0.995 quantiles of |x| (samples vs data)."""
  got = np.quantile(np.linalg.norm(samples, axis=1), levels)
  want = np.quantile(np.linalg.norm(data, axis=1), levels)
  return float(np.mean(np.abs(np.log(got / want))))


def _train_toy_jump(steps, batch, hidden, depth, seed=0):
  """Trains ``configs/toy_jump.py``'s process on the ``sas`` draws; ``seed`` picks the network's
  initialisation, the batches and noise, and the sampling key (seed 0: the keys used since the
  test was written). Returns ``(loss, tail error)`` before and after training."""
  config = config_lib.load_file(TOY_JUMP)
  config.model.hidden, config.model.depth = hidden, depth
  proc = get_process(config.process)
  data = isotropic_stable(jax.random.PRNGKey(0), config.data.alpha, (20_000, 2))
  model = get_model(config.model, (2,), proc.num_outputs)
  apply_fn = make_apply(model)
  params = model.init(jax.random.PRNGKey(1 + 100 * seed), data[:2], jnp.ones((2,)))["params"]
  loss_fn = losses.make_loss_fn(proc, apply_fn, config.training.loss, train=False)
  tx = optax.chain(optax.clip_by_global_norm(config.optim.grad_clip), optax.adam(2e-3))

  @jax.jit
  def step(params, opt_state, key):
    k_batch, k_loss = jax.random.split(key)
    x0 = data[jax.random.randint(k_batch, (batch,), 0, data.shape[0])]
    (_, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, k_loss, x0)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  eval_loss = jax.jit(lambda p: loss_fn(p, jax.random.PRNGKey(99), data[:4096])[0])
  sampler = samplers.make_sampler(proc, apply_fn, config.sampling.sampler, 100)
  tail = lambda p: _tail_log_error(
      np.asarray(sampler.sample(p, jax.random.PRNGKey(5 + seed), (2000, 2))), np.asarray(data))
  before = (float(eval_loss(params)), tail(params))
  opt_state = tx.init(params)
  for i in range(steps):
    params, opt_state = step(params, opt_state, jax.random.PRNGKey(1000 + i + 100_000 * seed))
  return before, (float(eval_loss(params)), tail(params))


@pytest.mark.integration
def test_training_toy_jump_lowers_loss_and_tail_error():
  """Reference: the same network at initialisation (zero output layer, so v = 0 and the sampler
  only expands the prior by e^{bT/2}). 300 Adam steps (batch 128, 2x64 MLP) on 2e4 draws of the
  alpha = 1.7 isotropic stable data of configs/toy_jump.py; loss on a fixed held batch of 4096 and
  the tail-quantile log error of 2000 ei_sde samples (100 NFE). Measured: loss 1.61 -> 0.78, tail
  error 5.01 -> 0.32 (0.25 on a 2026-12-03 host; 0.135-0.290 over seeds 0-3); required: loss
  below 75% of the initial one, tail error below half of it and below 1 (a factor e in the tail
  quantiles)."""
  (loss0, tail0), (loss1, tail1) = _train_toy_jump(300, 128, 64, 2)
  assert loss1 < 0.75 * loss0, (loss0, loss1)
  assert tail1 < min(0.5 * tail0, 1.0), (tail0, tail1)


@pytest.mark.slow
def test_training_toy_jump_longer():
  """As above with 3000 steps, batch 512, 4x128 MLP, over seeds 0, 1, 2: every seed's loss below
  70 % of its initial one, and the mean tail error over the seeds below 0.45.

  The bar comes from the seeds' spread, not from one run. Measured on 2026-12-03 (2000 samples,
  the data-vs-data tail error at that size is 0.049), seeds 0-3: 0.405, 0.108, 0.239, 0.240, mean
  0.248, sd 0.12, so a mean over 3 seeds has standard error 0.070; 0.45 is about that mean + 3 SE.
  One seed's value moves with floating-point details between hosts (seed 0 passed a 0.25 bar on
  2026-12-02 and gave 0.355-0.405 on 2026-12-03), which the bar treats as a fresh seed. Ten times
  the integration test's budget does not lower the tail error: 300 steps (batch 128, 2x64) gave
  0.254, 0.159, 0.290, 0.135 on the same seeds, mean 0.210. So this test checks that long training
  stays stable, not that it improves the tail."""
  tails = []
  for seed in (0, 1, 2):
    (loss0, tail0), (loss1, tail1) = _train_toy_jump(3000, 512, 128, 4, seed=seed)
    assert loss1 < 0.7 * loss0, (seed, loss0, loss1)
    tails.append(tail1)
  assert np.mean(tails) < 0.45, tails
