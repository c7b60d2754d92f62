"""Gaussian family: schedules and the VP/VE perturbation kernels against independent references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ml_collections import ConfigDict
from scipy import integrate

from lim_jax.processes import get_process
from lim_jax.processes.schedules import Schedule


def make(sde="vp", schedule="linear", **kw):
  cfg = ConfigDict(dict(family="gaussian", sde=sde, schedule=schedule, beta_min=0.1, beta_max=20.0,
                        cosine_s=0.008, sigma_min=0.01, sigma_max=50.0, t_max=None, t_min=1e-3,
                        t_min_train=1e-5))
  cfg.update(kw)
  return get_process(cfg)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_int_beta_matches_quadrature(kind):
  """B(t) = int_0^t beta vs 60-point Gauss–Legendre quadrature of beta(t) (reference: quadrature,
  rtol 1e-5: float32 evaluation of the closed form)."""
  sch = Schedule(sde="vp", kind=kind, t_max=0.9946 if kind == "cosine" else 1.0)
  for t in (0.05, 0.3, 0.7, 0.99):
    ref, _ = integrate.fixed_quad(lambda s: np.asarray(sch.beta(jnp.asarray(s, jnp.float32))),
                                  0.0, t, n=60)
    np.testing.assert_allclose(float(sch.int_beta(jnp.float32(t))), ref, rtol=1e-5)


@pytest.mark.parametrize("sde", ["vp", "ve"])
def test_kernel_matches_forward_sde_simulation(sde):
  """Kernel mean m_t x0 and variance s_t^2 vs a 2000-step Euler–Maruyama simulation of the forward
  SDE dx = f(t) x dt + g(t) dW from x0 = 1.5 with 20000 paths.

  Tolerance: 5 Monte-Carlo standard errors (mean: s_t/sqrt(N); variance: s_t^2 sqrt(2/N)) plus 1 %
  for the O(dt) Euler bias (dt = 5e-4).
  """
  proc = make(sde)
  sch = proc.schedule
  n_paths, n_steps, x0 = 20_000, 2000, 1.5
  times = jnp.linspace(0.0, 1.0, n_steps + 1)

  def step(x, inp):
    t, dt, key = inp
    x = x + sch.drift_coeff(t) * x * dt + jnp.sqrt(sch.diffusion_sq(t) * dt) * jax.random.normal(
        key, x.shape)
    return x, x

  keys = jax.random.split(jax.random.PRNGKey(1), n_steps)
  _, path = jax.jit(lambda: jax.lax.scan(step, jnp.full((n_paths,), x0),
                                         (times[:-1], jnp.diff(times), keys)))()
  for t_check in (0.1, 0.5, 1.0):
    i = int(round(t_check * n_steps)) - 1
    xt = np.asarray(path[i], np.float64)
    t = jnp.float32(t_check)
    mean, std = float(sch.mean_coeff(t)) * x0, float(sch.std(t))
    se_mean, se_var = std / np.sqrt(n_paths), std**2 * np.sqrt(2 / n_paths)
    assert abs(xt.mean() - mean) < 5 * se_mean + 0.01 * abs(mean) + 1e-3, (t_check, xt.mean(), mean)
    assert abs(xt.var() - std**2) < 5 * se_var + 0.01 * std**2, (t_check, xt.var(), std**2)


def test_perturb_uses_the_kernel_and_eps_target(key):
  """perturb returns x_t = m_t x0 + s_t eps with target eps (closed form, exact up to fp32)."""
  proc = make("vp", "cosine")
  x0 = jax.random.normal(key, (64, 3))
  t = jnp.linspace(0.01, 0.99, 64)
  pert = proc.perturb(jax.random.PRNGKey(3), x0, t)
  m, s = proc.mean_std(t)
  np.testing.assert_allclose(pert.model_input, m[:, None] * x0 + s[:, None] * pert.target,
                             rtol=1e-5, atol=1e-6)
  assert abs(float(jnp.std(pert.target)) - 1) < 0.15  # N(0,1): SE of std with 192 draws ~0.05


def test_ve_std_is_exact_kernel_std():
  """VE s_t^2 = sigma(t)^2 - sigma_min^2 (integral of g^2 from 0), checked against
  60-point Gauss–Legendre quadrature."""
  sch = Schedule(sde="ve")
  for t in (1e-3, 0.2, 1.0):
    ref, _ = integrate.fixed_quad(
        lambda s: np.asarray(sch.diffusion_sq(jnp.asarray(s, jnp.float32))), 0.0, t, n=60)
    np.testing.assert_allclose(float(sch.std(jnp.float32(t))) ** 2, ref, rtol=1e-4)
