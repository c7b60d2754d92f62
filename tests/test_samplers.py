"""Samplers with the exact score of Gaussian data x0 ~ N(mu, s0^2): every sampler must reproduce the
law at t_min, N(m mu, m^2 s0^2 + s^2) (m, s at t_min).

References: for the probability-flow ODE the exact flow map of Gaussian data is affine,
``x_t - m_t mu = sqrt(v_t / v_T) (x_T - m_T mu)``, ``v_t = m_t^2 s0^2 + s_t^2``, so deterministic
samplers are compared path by path with it; stochastic samplers are compared in law (mean, std,
Kolmogorov–Smirnov).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ml_collections import ConfigDict
from scipy import stats

from lim_jax import samplers
from lim_jax.processes import get_process

MU, S0, N = 0.5, 0.3, 20_000
# The natural grids: VP spends steps near the data (p=2, DDIM's quadratic spacing); VE time is
# already log-sigma, so uniform t is geometric in sigma (p=1).
POWER = {"vp": 2.0, "ve": 1.0}


def gaussian_process(sde):
  return get_process(ConfigDict(dict(
      family="gaussian", sde=sde, schedule="linear", beta_min=0.1, beta_max=20.0, cosine_s=0.008,
      sigma_min=0.01, sigma_max=50.0, t_max=None, t_min=1e-3, t_min_train=1e-5)))


def exact_eps(process):
  sch = process.schedule

  def apply_fn(params, x, t, train=False, rng=None):
    del params, train, rng
    m, s = sch.mean_coeff(t)[:, None], sch.std(t)[:, None]
    return s * (x - m * MU) / (m**2 * S0**2 + s**2)

  return apply_fn


def moments(process, t):
  t = jnp.float32(t)
  m, s = float(process.schedule.mean_coeff(t)), float(process.schedule.std(t))
  return m * MU, np.sqrt(m**2 * S0**2 + s**2)


def run(process, name, nfe, seed=0, time_power=1.0):
  smp = samplers.make_sampler(process, exact_eps(process), name, nfe, time_power=time_power)
  return np.asarray(smp.sample(None, jax.random.PRNGKey(seed), (N, 1)))[:, 0].astype(np.float64)


def exact_flow(process, seed=0):
  """The exact PF-ODE image of the sampler's own prior draws (same key split as make_sampler)."""
  k_prior, _ = jax.random.split(jax.random.PRNGKey(seed))
  x_T = np.asarray(process.prior(k_prior, (N, 1)))[:, 0].astype(np.float64)
  mean_T, sd_T = moments(process, process.t_max)
  mean_0, sd_0 = moments(process, process.t_min)
  return mean_0 + sd_0 / sd_T * (x_T - mean_T)


@pytest.mark.parametrize("sde", ["vp", "ve"])
@pytest.mark.parametrize("name", ["euler", "heun", "ei_ode"])
def test_ode_samplers_follow_exact_flow(sde, name):
  """Deterministic samplers at NFE 1000 vs the exact affine flow map, per path.

  Tolerance: RMS error < 3 % of the target std. First-order rules have an O(1/NFE) error; measured:
  Euler 0.05 % (VP) / 2.4 % (VE, whose g^2 spans 7 decades), DDIM 0.2 %, Heun < 0.01 %.
  """
  proc = gaussian_process(sde)
  x = run(proc, name, 1000, time_power=POWER[sde])
  ref = exact_flow(proc)
  _, sd = moments(proc, proc.t_min)
  assert np.sqrt(np.mean((x - ref) ** 2)) < 0.03 * sd


@pytest.mark.parametrize("sde", ["vp", "ve"])
def test_heun_beats_euler_at_equal_nfe(sde):
  """At NFE 100 Heun (50 steps, 2nd order) has under half the path error of Euler (100 steps).

  Measured: VP 0.05 % vs 0.5 %, VE 2.4 % vs 22 % of the target std.
  """
  proc = gaussian_process(sde)
  ref = exact_flow(proc)
  err = {n: np.sqrt(np.mean((run(proc, n, 100, time_power=POWER[sde]) - ref) ** 2))
         for n in ("euler", "heun")}
  assert err["heun"] < 0.5 * err["euler"], err


@pytest.mark.parametrize("sde", ["vp", "ve"])
@pytest.mark.parametrize("name", ["em", "pc", "ei_sde"])
def test_sde_samplers_reproduce_data_law(sde, name):
  """Stochastic samplers at NFE 1000, 20000 samples, vs N(m mu, v) at t_min.

  Tolerances: mean within 4 standard errors (sd/sqrt(N)) + 0.01 sd of discretisation bias; std
  within 3 % (SE of the std is 0.5 %); KS p-value > 1e-3.
  """
  proc = gaussian_process(sde)
  x = run(proc, name, 1000, seed=1, time_power=POWER[sde])
  mean, sd = moments(proc, proc.t_min)
  assert abs(x.mean() - mean) < 4 * sd / np.sqrt(N) + 0.01 * sd
  assert abs(x.std() / sd - 1) < 0.03
  assert stats.kstest((x - mean) / sd, "norm").pvalue > 1e-3


def test_nfe_is_counted_honestly():
  """Heun and PC spend 2 evaluations per step: nfe=41 gives 20 steps and reports 40."""
  proc = gaussian_process("vp")
  calls = []

  def counting(params, x, t, train=False, rng=None):
    calls.append(1)  # traced once per call site in the scan body
    return exact_eps(proc)(params, x, t)

  for name, steps, nfe in (("heun", 20, 40), ("pc", 20, 40), ("em", 41, 41)):
    calls.clear()
    smp = samplers.make_sampler(proc, counting, name, 41)
    assert (smp.num_steps, smp.nfe) == (steps, nfe)
    jax.eval_shape(smp.sample, None, jax.random.PRNGKey(0), (4, 1))
    assert len(calls) == nfe // steps  # network calls per step in the traced body


def test_time_grid_ends_and_order():
  """Grid runs from t_max to t_min, strictly decreasing, for p = 1 and p = 2."""
  for p in (1.0, 2.0):
    g = np.asarray(samplers.time_grid(1.0, 1e-3, 10, p))
    np.testing.assert_allclose([g[0], g[-1]], [1.0, 1e-3], rtol=1e-5)
    assert np.all(np.diff(g) < 0)


def test_unknown_sampler_is_refused():
  with pytest.raises(ValueError, match="sampling.sampler"):
    samplers.make_sampler(gaussian_process("vp"), exact_eps(gaussian_process("vp")), "nope", 10)
