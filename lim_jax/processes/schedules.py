"""Noise schedules shared by the families that live on a VP or VE path.

Time runs forward from ``t = 0`` (data) to ``t = t_max`` (prior), in the units of Song et al.
(2021), "Score-based generative modeling through SDEs" (score SDE), §3.4 and App. B:

* VP:  ``dx = -beta(t)/2 x dt + sqrt(beta(t)) dW``  (eq. 11), kernel ``N(m_t x0, s_t^2 I)`` with
  ``m_t = exp(-B(t)/2)``, ``B(t) = int_0^t beta``, ``s_t^2 = 1 - m_t^2`` (eq. 29).
  ``linear``: ``beta(t) = beta_min + t (beta_max - beta_min)``.
  ``cosine``: ``m_t^2 = alphabar(t) = cos^2(pi/2 (t+s)/(1+s)) / cos^2(pi/2 s/(1+s))`` (Nichol &
  Dhariwal 2021, eq. 17), so ``beta(t) = pi/(1+s) tan(pi/2 (t+s)/(1+s))``; it diverges at t=1, so
  ``t_max = 0.9946`` as in LIM (Yoon et al. 2023, App. C).
* VE:  ``dx = sqrt(d sigma^2/dt) dW`` with ``sigma(t) = sigma_min (sigma_max/sigma_min)^t`` (eq. 9);
  we use the exact kernel variance ``s_t^2 = sigma(t)^2 - sigma_min^2`` (score SDE approximates it
  by ``sigma(t)^2``), so ``s_0 = 0`` and the K=0 / one-component limits of other families match
  exactly.
* EDM: ``dx = sqrt(2t) dW``, i.e. ``m_t = 1``, ``s_t = t`` (Karras et al. 2022, "Elucidating the
  design space of diffusion-based generative models", Table 1: ``sigma(t) = t``, ``s(t) = 1``); time
  *is* the noise level, ``t in [t_min, t_max] = [0.002, 80]`` by default.

Every path is invertible in its noise-to-signal ratio ``s_t / m_t``: :meth:`Schedule.time_at_ratio`
(used by the shared noise-level axis, :mod:`lim_jax.processes.base`).

All methods are elementwise in ``t`` and jit-safe; a schedule is a frozen, hashable dataclass.
"""

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp

Array = jnp.ndarray

SDES = ("vp", "ve", "edm")
EDM_T_MAX = 80.0  # Karras et al. 2022, Table 1: sigma_max
VP_SCHEDULES = ("linear", "cosine")


@dataclasses.dataclass(frozen=True)
class Schedule:
  """A VP (``linear``/``cosine``) or VE path.

  Attributes:
    sde: ``"vp"``, ``"ve"`` or ``"edm"``.
    kind: VP schedule name (``"linear"`` or ``"cosine"``); ignored for VE.
    beta_min, beta_max: linear VP rates.
    cosine_s: the offset ``s`` of the cosine schedule.
    sigma_min, sigma_max: VE noise scales.
    t_max: end of the forward time interval (1, 0.9946 for cosine, 80 for EDM).
  """

  sde: str = "vp"
  kind: str = "linear"
  beta_min: float = 0.1
  beta_max: float = 20.0
  cosine_s: float = 0.008
  sigma_min: float = 0.01
  sigma_max: float = 50.0
  t_max: float = 1.0

  def validate(self, prefix: str = "process") -> None:
    if self.sde not in SDES:
      raise ValueError(f"{prefix}.sde must be one of {SDES}, got {self.sde!r}")
    if self.sde == "vp":
      if self.kind not in VP_SCHEDULES:
        raise ValueError(f"{prefix}.schedule must be one of {VP_SCHEDULES}, got {self.kind!r}")
      if self.kind == "linear" and not 0 < self.beta_min < self.beta_max:
        raise ValueError(f"{prefix}.beta_min/beta_max need 0 < beta_min < beta_max, got "
                         f"{self.beta_min}, {self.beta_max}")
      if self.kind == "cosine":
        if not self.cosine_s > 0:
          raise ValueError(f"{prefix}.cosine_s must be > 0, got {self.cosine_s}")
        if not 0 < self.t_max < 1:
          raise ValueError(f"{prefix}.t_max must be in (0, 1) for the cosine schedule "
                           f"(beta diverges at t=1), got {self.t_max}")
    elif self.sde == "ve":
      if not 0 < self.sigma_min < self.sigma_max:
        raise ValueError(f"{prefix}.sigma_min/sigma_max need 0 < sigma_min < sigma_max, got "
                         f"{self.sigma_min}, {self.sigma_max}")
    if not self.t_max > 0:
      raise ValueError(f"{prefix}.t_max must be > 0, got {self.t_max}")

  # --- VP -----------------------------------------------------------------------------------
  def _cos_arg(self, t):
    return 0.5 * math.pi * (t + self.cosine_s) / (1.0 + self.cosine_s)

  def beta(self, t: Array) -> Array:
    """VP rate ``beta(t)`` (VP only)."""
    if self.kind == "linear":
      return self.beta_min + t * (self.beta_max - self.beta_min)
    return math.pi / (1.0 + self.cosine_s) * jnp.tan(self._cos_arg(t))

  def int_beta(self, t: Array) -> Array:
    """``B(t) = int_0^t beta(s) ds`` (VP only); ``m_t = exp(-B/2)``."""
    if self.kind == "linear":
      return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2
    c0 = math.cos(self._cos_arg(0.0))
    return -2.0 * (jnp.log(jnp.cos(self._cos_arg(t))) - math.log(c0))

  # --- VE -----------------------------------------------------------------------------------
  @property
  def log_ratio(self) -> float:
    return math.log(self.sigma_max / self.sigma_min)

  def sigma(self, t: Array) -> Array:
    """VE ``sigma(t) = sigma_min (sigma_max/sigma_min)^t``."""
    return self.sigma_min * jnp.exp(t * self.log_ratio)

  # --- shared -------------------------------------------------------------------------------
  def mean_coeff(self, t: Array) -> Array:
    """``m_t``: ``x_t = m_t x0 + s_t eps``."""
    if self.sde in ("ve", "edm"):
      return jnp.ones_like(t)
    return jnp.exp(-0.5 * self.int_beta(t))

  def std(self, t: Array) -> Array:
    """``s_t``, the kernel standard deviation (exact for every path)."""
    if self.sde == "edm":
      return jnp.asarray(t)
    if self.sde == "ve":
      return self.sigma_min * jnp.sqrt(jnp.expm1(2.0 * t * self.log_ratio))
    return jnp.sqrt(-jnp.expm1(-self.int_beta(t)))

  def drift_coeff(self, t: Array) -> Array:
    """``f(t)`` with forward drift ``f(t) x``: ``-beta/2`` (VP) or 0 (VE, EDM)."""
    if self.sde in ("ve", "edm"):
      return jnp.zeros_like(t)
    return -0.5 * self.beta(t)

  def diffusion_sq(self, t: Array) -> Array:
    """``g(t)^2``: ``beta`` (VP), ``d sigma^2/dt = 2 ln(smax/smin) sigma^2`` (VE), ``2t`` (EDM)."""
    if self.sde == "edm":
      return 2.0 * jnp.asarray(t)
    if self.sde == "ve":
      return 2.0 * self.log_ratio * self.sigma(t) ** 2
    return self.beta(t)

  def prior_std(self) -> float:
    """Std of the ``N(0, s^2 I)`` prior the samplers start from (``m_T x0`` neglected)."""
    if self.sde == "edm":
      return float(self.t_max)
    return 1.0 if self.sde == "vp" else float(self.sigma_max)

  # --- inverses (the shared noise-level axis) ------------------------------------------------
  def ratio(self, t: Array) -> Array:
    """Noise-to-signal ratio ``s_t / m_t`` (increasing in ``t``)."""
    if self.sde == "vp":
      return jnp.sqrt(jnp.expm1(self.int_beta(t)))
    return self.std(t)

  def time_at_int_beta(self, big_b: Array) -> Array:
    """Inverse of ``B(t) = int_0^t beta`` (VP only), closed form for both VP schedules.

    linear: the positive root of ``beta_min t + (beta_max - beta_min) t^2 / 2 = B``, written as
    ``2B / (beta_min + sqrt(beta_min^2 + 2 (beta_max - beta_min) B))`` (no cancellation); cosine:
    ``cos(theta(t)) = cos(theta(0)) e^{-B/2}``.
    """
    if self.kind == "linear":
      slope = self.beta_max - self.beta_min
      return 2.0 * big_b / (self.beta_min + jnp.sqrt(self.beta_min**2 + 2.0 * slope * big_b))
    c0 = math.cos(self._cos_arg(0.0))
    theta = jnp.arccos(jnp.clip(c0 * jnp.exp(-0.5 * big_b), -1.0, 1.0))
    return theta * 2.0 * (1.0 + self.cosine_s) / math.pi - self.cosine_s

  def time_at_ratio(self, ratio: Array) -> Array:
    """Inverse of :meth:`ratio`: the time whose ``s_t / m_t`` is ``ratio`` (> 0)."""
    ratio = jnp.asarray(ratio)
    if self.sde == "edm":
      return ratio
    if self.sde == "ve":
      return jnp.log1p((ratio / self.sigma_min) ** 2) / (2.0 * self.log_ratio)
    return self.time_at_int_beta(jnp.log1p(ratio**2))


def schedule_from_config(cfg) -> Schedule:
  """Builds a :class:`Schedule` from a ``process`` ConfigDict (``sde``, ``schedule``, ...)."""
  sde = cfg.get("sde", "vp")
  kind = cfg.get("schedule", "linear")
  default_t_max = 0.9946 if (sde == "vp" and kind == "cosine") else 1.0
  if sde == "edm":
    default_t_max = EDM_T_MAX
  t_max = cfg.get("t_max", None)
  return Schedule(
      sde=sde, kind=kind,
      beta_min=float(cfg.get("beta_min", 0.1)), beta_max=float(cfg.get("beta_max", 20.0)),
      cosine_s=float(cfg.get("cosine_s", 0.008)),
      sigma_min=float(cfg.get("sigma_min", 0.01)), sigma_max=float(cfg.get("sigma_max", 50.0)),
      t_max=float(default_t_max if t_max is None else t_max))
