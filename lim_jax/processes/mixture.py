"""Gaussian-mixture noise (GM-SGM, Ma et al., ICLR 2023 submission; docs/families/mixture.md).

The paper publishes only the idea (train on Gaussian-mixture noise so that sampling alternates
"large jumps" and "small roaming"; empirical-Bayes denoising), no equations or code. This module is
the principled version built in docs/families/mixture.md §1; every choice below is ours and is
stated as such.

Forward kernel, VP or VE path (:mod:`lim_jax.processes.schedules`, time in score-SDE units):

  ``x_t = m_t x0 + s_t kappa eps``,  ``eps ~ N(0, I)``,  ``kappa = kappa_k`` with probability
  ``pi_k``.

``mixture_per='sample'`` (default) draws one ``kappa`` per example: the noise is the d-dimensional
Gaussian mixture ``sum_k pi_k N(0, s_t^2 kappa_k^2 I)``, which is what the paper's "Gaussian mixture
noise" describes (a jump moves the whole sample; it is also the discrete analogue of the
sub-Gaussian mixing ``eps = sqrt(A) G`` of the levy family). ``'coordinate'`` draws ``kappa`` per
element (a product of 1-D mixtures, i.e. ``M^d`` components); every formula below then holds
elementwise.

Each component is a Gaussian diffusion with diffusion ``g^2 kappa_k^2``, so the marginal obeys
``d/dt p = -div(f x p) + lap V`` with ``V = (g^2/2) sum_k pi_k kappa_k^2 p_k`` and the flux velocity
(docs/families/mixture.md §3) is
``v = grad V / p = (g^2/2) sum_k P(k|x) kappa_k^2 grad log p_k(x)``. Per
coordinate the diffusion term is ``sum_i d_i^2 V_i`` with one ``V_i`` per coordinate and ``v_i =
d_i V_i / p``; the conditional targets below are the same elementwise expressions.

Network: two data-shaped heads concatenated on the last axis (``num_outputs = 2``):

* head 1, ``e``: the score in noise units, ``grad log p_t = -e / s_t``. Targets
  (``process.target``): ``'posterior'`` (default) ``kappa eps * sum_k r_k / kappa_k^2`` with
  ``r_k = P(k | x_t, x0)`` ``∝ pi_k N(x_t - m_t x0; 0, s_t^2 kappa_k^2)``, i.e. ``-s_t`` times the
  score of the mixture kernel (docs/families/mixture.md §3); ``'sampled'`` ``eps / kappa`` (the
  drawn component's score). The first is the conditional mean of the second given ``(x_t, x0)``
  (Rao–Blackwell): same minimizer, lower variance.
  Per sample in high dimension ``r`` is almost one-hot (the norm of the noise reveals ``kappa``), so
  the two coincide on images; the gain is in low dimension and per coordinate.
* head 2, ``w / kappa_rms``: ``w = E[kappa eps | x_t] = (x_t - m_t E[x0|x_t]) / s_t``, so
  ``v = -(g^2/2) w / s_t``. The conditional target of docs/families/mixture.md §3,
  ``-(g^2/2) kappa eps / s_t``, is
  a deterministic function of ``(x_t, x0)`` (summing ``r_k kappa_k^2`` times the component score
  gives ``-(x_t - m_t x0)/s_t^2`` for every ``r``), so both targets share it. ``kappa_rms =
  sqrt(sum_k pi_k kappa_k^2)`` makes the target unit-variance.

Why a second head rather than a second model: the velocity and the score are two weightings of the
same per-component scores, ``sum_k P(k|x) kappa_k^2 grad log p_k`` vs ``sum_k P(k|x) grad log p_k``,
and with two or more distinct scales neither follows from the other. A second head shares every
feature for the price of ``d`` outputs. With one distinct scale ``c`` the second head is redundant
(``w = c^2 e``), so :attr:`MixtureProcess.num_outputs` is 1: one component with ``kappa = 1`` is
then the Gaussian family exactly (same network, kernel, target, loss, prior and steps for a key).

Empirical Bayes (:meth:`MixtureProcess.denoise`): ``E[x0 | x_t] = (x_t - s_t w)/m_t``. It equals
``sum_k P(k|x_t) Tweedie_k`` with ``Tweedie_k = (x_t + s_t^2 kappa_k^2 grad log p_k)/m_t``: the
component-posterior-weighted Tweedie estimate, read off head 2 (a single score head cannot give it).

Reverse steps from ``s = t_cur`` to ``t = t_next`` (forward time, ``h = s - t > 0``). The stochastic
steps draw a per-step Langevin scale ``lambda = kappa'^2`` with ``kappa'`` from the mixture
(``process.langevin_noise='mixture'``: a jump of scale ``kappa_k`` with probability ``pi_k``, for
the defaults small roaming 90% and 3x jumps 10% of the steps) or ``lambda = 1`` (``'gaussian'``).
For any ``lambda`` the reverse SDE
``dx/dtau = -f x + v + lambda (g^2/2) grad log p + sqrt(lambda) g dW`` preserves the marginals (its
Fokker–Planck equation is the reversed continuity equation), so each step is consistent whatever
``kappa'`` is drawn; ``lambda = 1`` and one unit component is the score-SDE reverse SDE.

* ``euler``/``heun`` (generic): the PF-ODE ``dx/dt = f x - v`` through head 2.
* ``em``: Euler–Maruyama on the SDE above.
* ``ei_ode``: exponential integrator of the PF-ODE with ``E[x0|x_t]`` frozen (DDIM form):
  ``x_t = m_t D + s_t w``, ``D = (x_s - s_s w)/m_s``.
* ``ei_sde``: the SDE above integrated exactly with ``D`` frozen and the score head linearised as
  ``e(x) = (x - m D)/s + (e_s - w_s)`` (exact for Gaussian noise, where ``e = w``). With
  ``q = (m_s s_t / (m_t s_s))^2``:
  ``x_t = m_t D + s_t [w + (q^{lambda/2} - 1) e + sqrt(1 - q^lambda) xi]``; for one unit component
  and ``lambda = 1`` it is the DDPM ancestral step.
* ``pc`` (generic): ``em`` predictor and the Langevin corrector ``x + lambda eta grad log p +
  sqrt(2 lambda eta) z`` with ``eta`` from the signal-to-noise rule of score SDE Alg. 4/5 (the
  gaussian family's rule) and ``lambda = kappa'^2 / kappa_rms^2`` (mean 1, so ``snr`` keeps its
  meaning): annealed Langevin whose steps are small roaming or, with probability ``pi_k``, jumps
  ``kappa_k^2 / kappa_rms^2`` times longer. Each step targets ``p_t`` only up to the usual
  unadjusted-Langevin bias, which grows with ``E[lambda^2]`` (for a Gaussian target of variance
  ``sigma^2`` the chain's variance is ``sigma^2 / (1 - E[eta_k^2] / (2 sigma^2 E[eta_k]))``): the
  jumps cost accuracy at a fixed ``snr``.

Shapes: ``x0``, states ``(B, *data_shape)``; ``t`` ``(B,)``; ``model_out``
``(B, *data_shape[:-1], data_shape[-1] * num_outputs)``. Key convention of :mod:`base`: Gaussian
noise from ``split(key)[0]``, mixture components from ``split(key)[1]``.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import ClassVar

import jax
import jax.numpy as jnp

from lim_jax.processes import base

Array = jax.Array

MIXTURE_PER = ("sample", "coordinate")
TARGETS = ("posterior", "sampled")
LANGEVIN_NOISE = ("mixture", "gaussian")
WEIGHT_SUM_TOL = 1e-6


@dataclasses.dataclass(frozen=True, kw_only=True)
class MixtureProcess(base.ScheduledProcess):
  """Gaussian-mixture noise ``x_t = m_t x0 + s_t kappa eps`` on a VP/VE ``schedule``.

  Attributes:
    schedule: the VP / VE path (``m_t``, ``s_t``, ``f``, ``g^2``).
    mixture_weights: component probabilities ``pi_k`` (>= 0, sum 1).
    mixture_scales: component scales ``kappa_k`` (> 0), same length.
    mixture_per: ``'sample'`` (one ``kappa`` per example) or ``'coordinate'`` (per element).
    target: score-head target, ``'posterior'`` (Rao–Blackwellised) or ``'sampled'``.
    langevin_noise: per-step scale of the stochastic samplers, ``'mixture'`` or ``'gaussian'``.
  """

  mixture_weights: tuple[float, ...] = (0.9, 0.1)
  mixture_scales: tuple[float, ...] = (1.0, 3.0)
  mixture_per: str = "sample"
  target: str = "posterior"
  # gaussian: converges faster in NFE than the paper-spirit 'mixture' (point mass, E|x|^2/s^2,
  # true 3.6, uniform grid, 200 / 1000 / 4000 NFE: 3.25 / 3.52 / 3.53 vs 3.00 / 3.29 / 3.43).
  langevin_noise: str = "gaussian"
  family: ClassVar[str] = "mixture"
  location_scale: ClassVar[bool] = True

  def validate(self) -> None:
    w, k = self.mixture_weights, self.mixture_scales
    _check_numbers(w, "mixture_weights")
    _check_numbers(k, "mixture_scales")
    if not w:
      raise ValueError("process.mixture_weights must list at least one weight, got ()")
    if any(not math.isfinite(p) or p < 0 for p in w):
      raise ValueError(f"process.mixture_weights must be finite and >= 0, got {w}")
    if abs(math.fsum(w) - 1.0) > WEIGHT_SUM_TOL:
      raise ValueError(f"process.mixture_weights must sum to 1 (within {WEIGHT_SUM_TOL}), got {w} "
                       f"(sum {math.fsum(w)!r})")
    if len(k) != len(w):
      raise ValueError(f"process.mixture_scales must have the same length as "
                       f"process.mixture_weights ({len(w)}), got {k}")
    if any(not math.isfinite(c) or c <= 0 for c in k):
      raise ValueError(f"process.mixture_scales must be finite and > 0, got {k}")
    if self.mixture_per not in MIXTURE_PER:
      raise ValueError(
          f"process.mixture_per must be one of {MIXTURE_PER}, got {self.mixture_per!r}")
    if self.target not in TARGETS:
      raise ValueError(f"process.target must be one of {TARGETS}, got {self.target!r}")
    if self.langevin_noise not in LANGEVIN_NOISE:
      raise ValueError(f"process.langevin_noise must be one of {LANGEVIN_NOISE}, got "
                       f"{self.langevin_noise!r}")
    super().validate()

  # ---- static mixture numbers ----------------------------------------------------------------
  @property
  def active_scales(self) -> tuple[float, ...]:
    """Distinct scales with positive weight."""
    return tuple(sorted({c for c, p in zip(self.mixture_scales, self.mixture_weights) if p > 0}))

  @property
  def num_outputs(self) -> int:  # overrides the base ClassVar: derived from the fields
    """2 heads (score, velocity); 1 when a single scale makes the velocity head redundant."""
    return 1 if len(self.active_scales) == 1 else 2

  @property
  def kappa_rms(self) -> float:
    """``sqrt(sum_k pi_k kappa_k^2)``: the std of ``kappa eps`` per coordinate."""
    return math.sqrt(math.fsum(
        p * c * c for p, c in zip(self.mixture_weights, self.mixture_scales)))

  def _log_weights(self) -> Array:
    return jnp.log(jnp.asarray(self.mixture_weights, jnp.float32))

  def _scales(self) -> Array:
    return jnp.asarray(self.mixture_scales, jnp.float32)

  # ---- the shared noise-level axis (lim_jax.processes.base) ------------------------------------
  def noise_level(self, t: Array) -> Array:
    """``r = kappa_rms s_t / m_t``: the std of the mixture noise ``s_t kappa eps`` over ``m_t``."""
    return self.kappa_rms * self.schedule.ratio(t)

  def time_at_noise_level(self, r: Array) -> Array:
    return self.schedule.time_at_ratio(jnp.asarray(r) / self.kappa_rms)

  @property
  def has_ancestral(self) -> bool:
    """Only with one distinct scale (Gaussian noise). Otherwise fresh noise ``z`` keeps the law of
    ``a n + b z`` only if it has the sample's own ``kappa``, whose posterior given ``x_t`` needs
    the kappa-conditional denoiser ``E[x0 | x_t, kappa]`` that the two heads do not give. Drawing
    ``kappa`` from its posterior given ``x0 = E[x0 | x_t]`` is exact for point-mass data but loses
    10 % of the std of Gaussian data even at 1000 steps (measured), so it is not offered."""
    return len(self.active_scales) == 1

  @property
  def head_units(self) -> tuple[float, ...]:
    """Velocity head ``kappa eps / kappa_rms`` is the unit noise (``k = 1``); the score head is
    scaled like the one-component case, ``k = 1/kappa_rms`` (its target is ``eps / c`` there)."""
    if self.num_outputs == 1:
      return (1.0 / self.active_scales[0],)
    return (1.0 / self.kappa_rms, 1.0)

  @property
  def denoiser_heads(self) -> tuple[bool, ...]:
    """The score head's target ``noise * sum_k r_k / kappa_k^2`` is not the noise: auxiliary."""
    return (True,) if self.num_outputs == 1 else (False, True)

  # ---- mixture latents -----------------------------------------------------------------------
  def sample_scales(self, key: base.PRNGKey, shape: tuple[int, ...]) -> Array:
    """Draws ``kappa`` for data of ``shape = (B, *data_shape)``.

    Returns ``(B,)`` for ``mixture_per='sample'`` and ``shape`` for ``'coordinate'``.
    """
    latent_shape = shape[:1] if self.mixture_per == "sample" else shape
    idx = jax.random.categorical(key, self._log_weights(), shape=latent_shape)
    return self._scales()[idx]

  def _expand(self, kappa: Array, like: Array) -> Array:
    return base.bcast(kappa, like) if self.mixture_per == "sample" else kappa

  def responsibilities(self, noise: Array) -> Array:
    """Component posterior ``r_k = P(k | x_t, x0)`` from ``noise = (x_t - m_t x0)/s_t``.

    ``r_k ∝ pi_k N(noise; 0, kappa_k^2 I)`` over the whole example (``'sample'``, shape ``(B, M)``)
    or per element (``'coordinate'``, shape ``noise.shape + (M,)``). Computed in log space.
    """
    scales = self._scales()
    if self.mixture_per == "sample":
      dim = math.prod(noise.shape[1:])
      sq = jnp.sum(noise.reshape(noise.shape[0], -1) ** 2, axis=-1)[:, None]
      logits = self._log_weights() - dim * jnp.log(scales) - 0.5 * sq / scales**2
    else:
      logits = self._log_weights() - jnp.log(scales) - 0.5 * noise[..., None] ** 2 / scales**2
    return jax.nn.softmax(logits, axis=-1)

  # ---- kernel and training targets -----------------------------------------------------------
  def mean_std(self, t: Array) -> tuple[Array, Array]:
    return self.schedule.mean_coeff(t), self.schedule.std(t)

  def perturb(self, key, x0, t) -> base.Perturbed:
    k_gauss, k_latent = base.split_noise_key(key)
    eps = jax.random.normal(k_gauss, x0.shape, x0.dtype)
    kappa = self._expand(self.sample_scales(k_latent, x0.shape), x0)
    m, s = self.mean_std(t)
    noise = kappa * eps
    xt = base.bcast(m, x0) * x0 + base.bcast(s, x0) * noise
    if self.num_outputs == 1:
      # One scale c: the posterior is trivial and both targets equal eps / c.
      score_target = eps / kappa
      return base.Perturbed(model_input=xt, target=score_target, weight=jnp.ones_like(t))
    if self.target == "sampled":
      score_target = eps / kappa
    else:
      resp = self.responsibilities(noise)
      inv_var = jnp.sum(resp / self._scales() ** 2, axis=-1)
      score_target = noise * self._expand(inv_var, noise)
    target = jnp.concatenate([score_target, noise / self.kappa_rms], axis=-1)
    return base.Perturbed(model_input=xt, target=target, weight=jnp.ones_like(t))

  # ---- heads -> score, velocity, denoiser ----------------------------------------------------
  def split_heads(self, model_out: Array) -> tuple[Array, Array]:
    """``(e, w)``: the score head and ``w = E[kappa eps | x_t]`` (unnormalised)."""
    if self.num_outputs == 1:
      c2 = self.active_scales[0] ** 2
      return model_out, c2 * model_out
    e, w_unit = jnp.split(model_out, 2, axis=-1)
    return e, self.kappa_rms * w_unit

  def score(self, x: Array, t: Array, model_out: Array) -> Array:
    """``grad log p_t(x) = -e / s_t``."""
    del x
    e, _ = self.split_heads(model_out)
    return -e / base.bcast(self.schedule.std(t), e)

  def velocity(self, x: Array, t: Array, model_out: Array) -> Array:
    """Flux velocity ``v = (g^2/2) sum_k P(k|x) kappa_k^2 grad log p_k = -(g^2/2) w / s_t``."""
    g2 = base.bcast(self.schedule.diffusion_sq(t), x)
    return 0.5 * g2 * self._velocity_in_score_units(t, model_out)

  def _velocity_in_score_units(self, t: Array, model_out: Array) -> Array:
    """``(2/g^2) v = -w / s_t`` (equals the score for one unit component)."""
    _, w = self.split_heads(model_out)
    return -w / base.bcast(self.schedule.std(t), w)

  def denoise(self, x: Array, t: Array, model_out: Array) -> Array:
    """Empirical-Bayes ``E[x0 | x_t] = sum_k P(k|x_t) Tweedie_k = (x_t - s_t w)/m_t``."""
    _, w = self.split_heads(model_out)
    m, s = self.mean_std(t)
    return (x - base.bcast(s, x) * w) / base.bcast(m, x)

  # ---- sampling ------------------------------------------------------------------------------
  def prior(self, key, shape):
    """``s_T kappa eps`` (``m_T x0`` neglected as in the gaussian family)."""
    k_gauss, k_latent = base.split_noise_key(key)
    eps = jax.random.normal(k_gauss, shape)
    kappa = self._expand(self.sample_scales(k_latent, shape), eps)
    return self.schedule.prior_std() * kappa * eps

  def langevin_scale(self, key: base.PRNGKey, like: Array, mean_one: bool = False) -> Array:
    """Per-step ``lambda = kappa'^2`` broadcastable to ``like`` (1 for ``'gaussian'`` noise).

    ``mean_one`` divides by ``E[kappa^2] = kappa_rms^2`` (the corrector:
    ``snr`` sets the mean step).
    """
    if self.langevin_noise == "gaussian":
      return jnp.ones((), like.dtype)
    kappa = self.sample_scales(key, like.shape)
    lam = kappa * kappa
    if mean_one:
      lam = lam / self.kappa_rms**2
    return self._expand(lam, like)

  def ode_drift(self, state, t, model_out):
    f = base.bcast(self.schedule.drift_coeff(t), state)
    g2 = base.bcast(self.schedule.diffusion_sq(t), state)
    return f * state - 0.5 * g2 * self._velocity_in_score_units(t, model_out)

  def sde_step(self, key, state, t_cur, t_next, model_out):
    k_gauss, k_latent = base.split_noise_key(key)
    lam = self.langevin_scale(k_latent, state)
    h = base.bcast(t_cur - t_next, state)
    f = base.bcast(self.schedule.drift_coeff(t_cur), state)
    g2 = base.bcast(self.schedule.diffusion_sq(t_cur), state)
    vel = self._velocity_in_score_units(t_cur, model_out)
    drift = f * state - 0.5 * g2 * (vel + lam * self.score(state, t_cur, model_out))
    noise = jax.random.normal(k_gauss, state.shape, state.dtype)
    return state - h * drift + jnp.sqrt(lam * g2 * h) * noise

  def ei_ode_step(self, key, state, t_cur, t_next, model_out):
    del key
    _, w = self.split_heads(model_out)
    x0_hat = self.denoise(state, t_cur, model_out)
    m_t, s_t = self.mean_std(t_next)
    return base.bcast(m_t, state) * x0_hat + base.bcast(s_t, state) * w

  def ei_sde_step(self, key, state, t_cur, t_next, model_out):
    k_gauss, k_latent = base.split_noise_key(key)
    lam = self.langevin_scale(k_latent, state)
    e, w = self.split_heads(model_out)
    x0_hat = self.denoise(state, t_cur, model_out)
    m_s, s_s = self.mean_std(t_cur)
    m_t, s_t = self.mean_std(t_next)
    log_q = base.bcast(2.0 * (jnp.log(m_s * s_t) - jnp.log(m_t * s_s)), state)
    decay = jnp.exp(0.5 * lam * log_q)
    std = jnp.sqrt(-jnp.expm1(lam * log_q))
    noise = jax.random.normal(k_gauss, state.shape, state.dtype)
    y = w + (decay - 1.0) * e + std * noise
    return base.bcast(m_t, state) * x0_hat + base.bcast(s_t, state) * y

  def corrector_step(self, key, state, t, model_out, snr):
    k_gauss, k_latent = base.split_noise_key(key)
    lam = self.langevin_scale(k_latent, state, mean_one=True)
    score = self.score(state, t, model_out)
    noise = jax.random.normal(k_gauss, state.shape, state.dtype)
    axes = tuple(range(1, state.ndim))
    grad_norm = jnp.sqrt(jnp.mean(jnp.sum(score**2, axis=axes)))
    noise_norm = jnp.sqrt(jnp.mean(jnp.sum(noise**2, axis=axes)))
    step = 2.0 * (snr * noise_norm / grad_norm) ** 2 * lam
    return state + step * score + jnp.sqrt(2.0 * step) * noise

  def extra_steps(self):
    return {"ei_ode": self.ei_ode_step, "ei_sde": self.ei_sde_step}


def _check_numbers(value, field: str) -> None:
  """Refuses anything but a tuple of real numbers, naming ``process.<field>``."""
  if not isinstance(value, tuple) or not all(
      isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value):
    raise ValueError(f"process.{field} must be a sequence of numbers, got {value!r}")


def config_fields() -> dict:
  """The family's own ``process`` fields and their defaults, read off :class:`MixtureProcess`."""
  return base.config_fields_of(MixtureProcess)


def from_config(cfg) -> MixtureProcess:
  """``process`` ConfigDict -> :class:`MixtureProcess` (validated, before anything compiles)."""
  return base.from_config_of(MixtureProcess, cfg)
