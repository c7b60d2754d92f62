"""Gaussian baseline: the VP and VE SDEs of Song et al. (2021), with eps-prediction.

Forward kernel ``x_t = m_t x0 + s_t eps``, ``eps ~ N(0, I)`` (score SDE eq. 29; ``m_t, s_t`` from
:mod:`lim_jax.processes.schedules`). The network predicts ``eps``; the score is
``grad log p_t = -eps_hat / s_t`` and the flux velocity ``v = (g^2/2) grad log p_t``
(docs/families/gaussian.md §2).
The DSM loss ``E |eps_hat(x_t, t) - eps|^2`` is Ho et al. (2020) eq. 14 / score SDE eq. 7 with
weighting ``lambda(t) = s_t^2``.

Reverse steps from ``s = t_cur`` to ``t = t_next`` (``h = s - t > 0``):

* ``em``: Euler–Maruyama on ``dx = [f x - g^2 score] dt + g dW_bar`` (score SDE eq. 6).
* ``ei_ode``: exponential integrator of the PF-ODE in the eps parametrisation (DDIM, Song et al.
  2021a eq. 13 with eta = 0): ``x_t = m_t x0_hat + s_t eps_hat``,
  ``x0_hat = (x_s - s_s eps_hat)/m_s``.
* ``ei_sde``: the exact Gaussian posterior ``q(x_t | x_s, x0 = x0_hat)`` (DDPM ancestral step, Ho et
  al. 2020 eq. 7): with ``a = m_s/m_t``, ``r^2 = s_s^2 - a^2 s_t^2``,
  ``mean = (a s_t^2/s_s^2) x_s + (m_t r^2/s_s^2) x0_hat``, ``var = s_t^2 r^2 / s_s^2``.
* corrector: Langevin with the signal-to-noise step rule of score SDE Alg. 4 (written for VE; used
  on both paths, without Alg. 5's VP factor ``alpha_i = 1 - beta_i``, which is ~1 at fine steps).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from lim_jax.processes import base

Array = jax.Array


@dataclasses.dataclass(frozen=True, kw_only=True)
class GaussianProcess(base.ScheduledProcess):
  """VP / VE SDE with eps-prediction; ``schedule`` holds the path."""

  family: ClassVar[str] = "gaussian"
  location_scale: ClassVar[bool] = True

  # ---- kernel --------------------------------------------------------------------------------
  def mean_std(self, t: Array) -> tuple[Array, Array]:
    return self.schedule.mean_coeff(t), self.schedule.std(t)

  def perturb(self, key, x0, t) -> base.Perturbed:
    k_gauss, _ = base.split_noise_key(key)
    eps = jax.random.normal(k_gauss, x0.shape, x0.dtype)
    m, s = self.mean_std(t)
    xt = base.bcast(m, x0) * x0 + base.bcast(s, x0) * eps
    return base.Perturbed(model_input=xt, target=eps, weight=jnp.ones_like(t))

  def score(self, x: Array, t: Array, model_out: Array) -> Array:
    """``grad log p_t(x) = -eps_hat / s_t``."""
    del x
    return -model_out / base.bcast(self.schedule.std(t), model_out)

  def denoise(self, x: Array, t: Array, model_out: Array) -> Array:
    """Tweedie ``E[x0 | x_t] = (x_t - s_t eps_hat) / m_t``."""
    m, s = self.mean_std(t)
    return (x - base.bcast(s, x) * model_out) / base.bcast(m, x)

  # ---- sampling ------------------------------------------------------------------------------
  def prior(self, key, shape):
    k_gauss, _ = base.split_noise_key(key)
    return self.schedule.prior_std() * jax.random.normal(k_gauss, shape)

  def ode_drift(self, state, t, model_out):
    f = base.bcast(self.schedule.drift_coeff(t), state)
    g2 = base.bcast(self.schedule.diffusion_sq(t), state)
    return f * state - 0.5 * g2 * self.score(state, t, model_out)

  def sde_step(self, key, state, t_cur, t_next, model_out):
    k_gauss, _ = base.split_noise_key(key)
    h = base.bcast(t_cur - t_next, state)
    f = base.bcast(self.schedule.drift_coeff(t_cur), state)
    g2 = base.bcast(self.schedule.diffusion_sq(t_cur), state)
    drift = f * state - g2 * self.score(state, t_cur, model_out)
    noise = jax.random.normal(k_gauss, state.shape, state.dtype)
    return state - h * drift + jnp.sqrt(g2 * h) * noise

  def ei_ode_step(self, key, state, t_cur, t_next, model_out):
    del key
    x0_hat = self.denoise(state, t_cur, model_out)
    m_t, s_t = self.mean_std(t_next)
    return base.bcast(m_t, state) * x0_hat + base.bcast(s_t, state) * model_out

  def ei_sde_step(self, key, state, t_cur, t_next, model_out):
    k_gauss, _ = base.split_noise_key(key)
    x0_hat = self.denoise(state, t_cur, model_out)
    m_s, s_s = self.mean_std(t_cur)
    m_t, s_t = self.mean_std(t_next)
    a = m_s / m_t
    r2 = jnp.maximum(s_s**2 - (a * s_t) ** 2, 0.0)
    coef_x = base.bcast(a * s_t**2 / s_s**2, state)
    coef_0 = base.bcast(m_t * r2 / s_s**2, state)
    std = base.bcast(jnp.sqrt(s_t**2 * r2) / s_s, state)
    noise = jax.random.normal(k_gauss, state.shape, state.dtype)
    return coef_x * state + coef_0 * x0_hat + std * noise

  def corrector_step(self, key, state, t, model_out, snr):
    k_gauss, _ = base.split_noise_key(key)
    score = self.score(state, t, model_out)
    noise = jax.random.normal(k_gauss, state.shape, state.dtype)
    axes = tuple(range(1, state.ndim))
    grad_norm = jnp.sqrt(jnp.mean(jnp.sum(score**2, axis=axes)))
    noise_norm = jnp.sqrt(jnp.mean(jnp.sum(noise**2, axis=axes)))
    step = 2.0 * (snr * noise_norm / grad_norm) ** 2
    return state + step * score + jnp.sqrt(2.0 * step) * noise

  def extra_steps(self):
    return {"ei_ode": self.ei_ode_step, "ei_sde": self.ei_sde_step}


def config_fields() -> dict:
  """The family's own ``process`` fields: none (the schedule's and the times' are shared)."""
  return base.config_fields_of(GaussianProcess)


def from_config(cfg) -> GaussianProcess:
  """``process`` ConfigDict -> :class:`GaussianProcess` (validated; :func:`base.from_config_of`)."""
  return base.from_config_of(GaussianProcess, cfg)
