"""Noise schedules shared by the families that live on a VP or VE path.

Time runs forward from ``t = 0`` (data) to ``t = t_max`` (prior), in the units of Song et al. (2021),
"Score-based generative modeling through SDEs" (score SDE), §3.4 and App. B:

* VP:  ``dx = -beta(t)/2 x dt + sqrt(beta(t)) dW``  (eq. 11), kernel ``N(m_t x0, s_t^2 I)`` with
  ``m_t = exp(-B(t)/2)``, ``B(t) = int_0^t beta``, ``s_t^2 = 1 - m_t^2`` (eq. 29).
  ``linear``: ``beta(t) = beta_min + t (beta_max - beta_min)``.
  ``cosine``: ``m_t^2 = alphabar(t) = cos^2(pi/2 (t+s)/(1+s)) / cos^2(pi/2 s/(1+s))`` (Nichol &
  Dhariwal 2021, eq. 17), so ``beta(t) = pi/(1+s) tan(pi/2 (t+s)/(1+s))``; it diverges at t=1, so
  ``t_max = 0.9946`` as in LIM (Yoon et al. 2023, App. C).
* VE:  ``dx = sqrt(d sigma^2/dt) dW`` with ``sigma(t) = sigma_min (sigma_max/sigma_min)^t`` (eq. 9);
  we use the exact kernel variance ``s_t^2 = sigma(t)^2 - sigma_min^2`` (score SDE approximates it by
  ``sigma(t)^2``), so ``s_0 = 0`` and the K=0 / one-component limits of other families match exactly.

All methods are elementwise in ``t`` and jit-safe; a schedule is a frozen, hashable dataclass.
"""

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp

Array = jnp.ndarray

SDES = ("vp", "ve")
VP_SCHEDULES = ("linear", "cosine")


@dataclasses.dataclass(frozen=True)
class Schedule:
  """A VP (``linear``/``cosine``) or VE path.

  Attributes:
    sde: ``"vp"`` or ``"ve"``.
    kind: VP schedule name (``"linear"`` or ``"cosine"``); ignored for VE.
    beta_min, beta_max: linear VP rates.
    cosine_s: the offset ``s`` of the cosine schedule.
    sigma_min, sigma_max: VE noise scales.
    t_max: end of the forward time interval (1, or 0.9946 for cosine).
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
    else:
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
    if self.sde == "ve":
      return jnp.ones_like(t)
    return jnp.exp(-0.5 * self.int_beta(t))

  def std(self, t: Array) -> Array:
    """``s_t``, the kernel standard deviation (exact for both paths)."""
    if self.sde == "ve":
      return self.sigma_min * jnp.sqrt(jnp.expm1(2.0 * t * self.log_ratio))
    return jnp.sqrt(-jnp.expm1(-self.int_beta(t)))

  def drift_coeff(self, t: Array) -> Array:
    """``f(t)`` with forward drift ``f(t) x``: ``-beta/2`` (VP) or 0 (VE)."""
    if self.sde == "ve":
      return jnp.zeros_like(t)
    return -0.5 * self.beta(t)

  def diffusion_sq(self, t: Array) -> Array:
    """``g(t)^2``: ``beta`` (VP) or ``d sigma^2/dt = 2 ln(smax/smin) sigma^2`` (VE)."""
    if self.sde == "ve":
      return 2.0 * self.log_ratio * self.sigma(t) ** 2
    return self.beta(t)

  def prior_std(self) -> float:
    """Std of the ``N(0, s^2 I)`` prior the samplers start from (``m_T x0`` neglected)."""
    return 1.0 if self.sde == "vp" else float(self.sigma_max)


def schedule_from_config(cfg) -> Schedule:
  """Builds a :class:`Schedule` from a ``process`` ConfigDict (fields ``sde``, ``schedule``, ...)."""
  sde = cfg.get("sde", "vp")
  kind = cfg.get("schedule", "linear")
  default_t_max = 0.9946 if (sde == "vp" and kind == "cosine") else 1.0
  t_max = cfg.get("t_max", None)
  return Schedule(
      sde=sde, kind=kind,
      beta_min=float(cfg.get("beta_min", 0.1)), beta_max=float(cfg.get("beta_max", 20.0)),
      cosine_s=float(cfg.get("cosine_s", 0.008)),
      sigma_min=float(cfg.get("sigma_min", 0.01)), sigma_max=float(cfg.get("sigma_max", 50.0)),
      t_max=float(default_t_max if t_max is None else t_max))
