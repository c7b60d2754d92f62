"""Generative fractional diffusion (GFDM, Nobis et al. NeurIPS 2024): MA-fBM driven VP / VE SDEs.

docs/families/fbm.md; float64 numerics in :mod:`lim_jax.processes.fbm_tables`. Time is forward
time in the schedule's units, ``t in [0, t_max]`` (``t_max = 1`` for FVP-linear and FVE).

Forward process, per data coordinate (``K = num_ou`` OU processes sharing one Brownian motion B):

    dY^k = -gamma_k Y^k dt + dB,   dX = mu(t) X dt + g(t) d(sum_k omega_k Y^k),   Y_0 = 0, X_0 = x0,

``mu, g`` from :mod:`schedules` (FVP: ``sde='vp'``, linear beta 0.1..20, ``mu = -beta/2``,
``g = sqrt(beta)``; FVE: ``sde='ve'``, ``mu = 0``, ``g^2 = d sigma^2/dt``). ``gamma`` is geometric
on ``[1/gamma_max, gamma_max]``; ``omega`` are the type-II optimal weights (``A omega = b``),
rescaled when ``normalize_variance`` so that ``Var(X_{t_max} | x0 = 0)`` equals the Gaussian prior
variance (1 for FVP, ``sigma_max^2`` for FVE), as the official code does. ``K = 0`` is exact
Brownian motion and *is* the Gaussian family: every method then delegates to
:class:`GaussianProcess`, so kernel, loss and samples are identical for the same key.

Conditional kernel (paper's augmented score matching). With ``L_t`` the Cholesky factor of
``Sigma_YY(t)``, ``w = L_t^{-1} Y_t ~ N(0, I_K)`` independently of the data, and

    X_t = c_t x0 + rho_t . w + s_c(t) eps,   eps ~ N(0, 1),   rho_t = L_t^{-1} Sigma_YX(t),

i.e. ``u = x - a_t . y = x - rho_t . w = c_t x0 + s_c eps`` (``a_t = Sigma_YY^{-1} Sigma_YX``). The
network sees only ``u`` and predicts ``eps``: training is plain DSM on ``u`` with
``t ~ U(t_min_train, t_max)`` and weight 1 (the official code's choice; no y is drawn at all, so
``u`` is formed exactly instead of as the difference ``x - a.y`` of two large float32 numbers).

Sampler state: ``{'x': (B, *data), 'w': (B, *data, K)}`` with **whitened** OU coordinates ``w``
(``y = L_t w``, see :meth:`FBMProcess.ou_values`). ``Sigma_YY`` is Hilbert-like (condition number
``1e9`` at K=2, t=1e-5; ``1e17`` at K=5, t=1e-2): in raw ``y`` coordinates ``a_t`` and
``Sigma_YY^{-1}`` reach ``1e4`` and ``1e9`` with alternating signs and float32 ``a_t . y`` loses the
conditional signal ``s_c``; in ``w`` coordinates every coefficient is O(1) or ``O(t^{-1/2})``.
The whitened dynamics (``dW = -Phi_low(ell ell^T) W dt + ell dB``, ``ell = L^{-1} 1``,
``Phi_low`` = strict lower triangle + half the diagonal; derived from ``dSigma_YY/dt =
-Gamma Sigma - Sigma Gamma + 1 1^T``, which makes ``L^{-1} Gamma L + L^{-1} dL/dt = Phi_low(ell
ell^T)``) give ``dZ' = F' Z' dt + G' dB`` on ``Z' = (X, W)`` with

    F' = [[mu, -g v^T], [0, -Phi_low(ell ell^T)]],   G' = (G_X, ell),   G_X = g sum_k omega_k,
    v = L^T (omega * gamma).

Score, ``s = -eps_hat / s_c``: ``d/dx log p = s``, ``d/dw log p = -rho s - w``, hence
``G' . grad = s (G_X - ell . rho) - ell . w`` (the official code's ``grad_x = s``,
``grad_y = -a s - Sigma_YY^{-1} y`` written in ``w = L^{-1} y``).

Samplers, ``h = t_cur - t_next > 0``:

* ``em``: reverse SDE ``dZ' = [F' Z' - G' (G' . grad)] dt + G' dB_bar`` (one scalar Brownian
  increment per coordinate drives X and all of W, as in the forward SDE), Euler–Maruyama.
* ``euler`` / ``heun`` (generic): PF-ODE ``dZ'/dt = F' Z' - (1/2) G' (G' . grad)``.
* ``ei_ode``: the DDIM step on ``u`` with ``w`` frozen: ``x0_hat = (u - s_c eps_hat)/c``,
  ``u' = c' x0_hat + s_c' eps_hat``, ``x' = u' + rho' . w``. Because ``u`` and ``w`` are independent
  with ``w ~ N(0, I)`` at every t, the interpolant ``(w, c_t x0 + rho_t . w + s_c(t) eps)`` has the
  true marginals, so this is the DDIM (Song et al. 2021a eq. 13, eta = 0) discretisation of a
  marginal-preserving flow (flow-matching argument); it has none of the ``|ell|^2 ~ K^2/t``
  stiffness of the PF-ODE.
* ``ei_sde``: the DDPM ancestral step (Ho et al. 2020 eq. 7) on ``u`` with schedule
  ``(c_t, s_c(t))``, ``w`` frozen.

Stiffness (measured, FVP, H=0.9): the explicit steps see rates ~ c_K / t as t -> 0 from three
sources: the PF-ODE's ``w`` part ``dw/dt = (1/2)(upper - lower)(ell ell^T) w`` is a rotation of
rate 0.9/t (K=2), 2.4/t (K=3), 7.5/t (K=5), on which Euler and Heun always amplify; the reverse
SDE's ``w`` part has real rates 1.5/t, 2.5/t, 4.5/t; and ``eps_gain^2 t -> 2K + 1`` (BM: 1). With
exact scores of Gaussian data and a uniform grid to ``t_min = 1e-3``, ``em`` is accurate with 1000
steps up to K=5 and with 100-200 steps for K <= 3; ``heun`` is accurate with 50 steps at K=2 and
500 at K=3 (50 steps: variance +16 %) and diverges at K=5 even with 500 steps (variance 19
instead of 0.25); ``euler`` with 1000 steps has variance +4 % at K=2 and 3. ``ei_ode`` /
``ei_sde`` have no such limit. For K=5 (and FVE K >= 3) the prior ``N(0, Sigma_T)`` also misses
the data's share ``c_T x0`` of ``u`` (``s_c(T)`` is 0.019 against ``c_T = 0.0066``), which biases
every sampler; :meth:`FBMProcess.log_notes` reports it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lim_jax.processes import base
from lim_jax.processes import fbm_tables
from lim_jax.processes.gaussian import GaussianProcess

Array = jax.Array


class Coefficients(NamedTuple):
  """Interpolated per-example coefficients at times ``t`` of shape ``(B,)``.

  Attributes:
    cond_std: ``s_c(t)``, ``(B,)``.
    rho: ``L^{-1} Sigma_YX``, ``(B, K)``.
    ell: ``L^{-1} 1``, ``(B, K)``.
    v: ``L^T (omega * gamma)``, ``(B, K)``.
    eps_gain: ``(G_X - ell . rho) / s_c``, ``(B,)``: ``G' . grad log p = -eps_gain eps - ell . w``.
  """

  cond_std: Array
  rho: Array
  ell: Array
  v: Array
  eps_gain: Array


def _per_example(c: Array, like: Array) -> Array:
  """``(B, K)`` -> ``(B, 1, .., 1, K)`` broadcasting against ``w`` of shape ``(B, *data, K)``."""
  return c.reshape((c.shape[0],) + (1,) * (like.ndim - 2) + (c.shape[-1],))


@dataclasses.dataclass(frozen=True, kw_only=True)
class FBMProcess(base.ScheduledProcess):
  """GFDM with MA-fBM noise; static fields only (tables are a cached, non-field attribute).

  Attributes:
    schedule: the VP (FVP) or VE (FVE) path.
    hurst: Hurst index H in (0, 1).
    num_ou: number K >= 0 of OU processes (0 = Brownian motion = the Gaussian family).
    gamma_max: the OU speeds span ``[1/gamma_max, gamma_max]`` (> 1).
    normalize_variance: rescale omega so ``Var(X_{t_max} | x0 = 0)`` is the Gaussian prior variance.
    jitter: ``Sigma_YY + jitter e^{-2 gamma_k t}`` (official code: 1e-4); 0 = exact.
    table_size: number of interpolation times (log-uniform on ``[t_lo, t_max]``).
  """

  hurst: float = 0.9
  num_ou: int = 2
  gamma_max: float = 20.0
  normalize_variance: bool = True
  jitter: float = 0.0
  table_size: int = 1024
  family: ClassVar[str] = "fbm"
  location_scale: ClassVar[bool] = True

  def validate(self) -> None:
    super().validate()
    if self.schedule.sde not in ("vp", "ve"):
      raise ValueError("process.sde must be 'vp' (FVP) or 've' (FVE) for the fbm family, got "
                       f"{self.schedule.sde!r}")
    h = self.hurst
    if isinstance(h, bool) or not isinstance(h, numbers.Real) or not 0.0 < h < 1.0:
      raise ValueError(f"process.hurst must be in (0, 1), got {h!r}")
    k = self.num_ou
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 0:
      raise ValueError(f"process.num_ou must be an integer >= 0, got {k!r}")
    gm = self.gamma_max
    if isinstance(gm, bool) or not isinstance(gm, numbers.Real) or not (
        math.isfinite(gm) and gm > 1.0):
      raise ValueError(f"process.gamma_max must be a finite number > 1, got {gm!r}")
    if not isinstance(self.normalize_variance, bool):
      raise ValueError(
          f"process.normalize_variance must be a bool, got {self.normalize_variance!r}")
    j = self.jitter
    if isinstance(j, bool) or not isinstance(j, numbers.Real) or not (math.isfinite(j) and j >= 0):
      raise ValueError(f"process.jitter must be a finite number >= 0, got {j!r}")
    n = self.table_size
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 16:
      raise ValueError(f"process.table_size must be an integer >= 16, got {n!r}")

  # ---- precomputed constants (not dataclass fields: hashing stays on the static fields) ------
  def __post_init__(self):
    # Validate before the float64 precompute, then build it once, eagerly (never inside a trace).
    self.validate()
    tables = fbm_tables.build_tables(
        self.schedule, float(self.hurst), int(self.num_ou), float(self.gamma_max),
        self.normalize_variance, float(self.jitter), int(self.table_size), self.t_lo)
    object.__setattr__(self, "_tables", tables)
    object.__setattr__(self, "_table32", tables.table.astype(np.float32))
    if self.num_ou:
      # log r = log s_c - log c_t on the table's log-t grid, for time_at_noise_level. s_c/c_t is
      # increasing (the table's floor keeps it so where s_c is unresolved); a running max guards
      # the interpolation against rounding.
      log_t = tables.log_t_lo + tables.log_t_step * np.arange(tables.table.shape[0])
      log_c = np.log(np.asarray(self.schedule.mean_coeff(np.exp(log_t)), np.float64))
      log_r = np.maximum.accumulate(tables.table[:, 0] - log_c)
      object.__setattr__(self, "_log_r_grid", (log_r.astype(np.float32),
                                               log_t.astype(np.float32)))

  @property
  def tables(self) -> fbm_tables.Tables:
    """Float64 speeds, weights and the interpolation table (built at construction)."""
    return self._tables  # pytype: disable=attribute-error

  @functools.cached_property
  def _gauss(self) -> GaussianProcess:
    return GaussianProcess(schedule=self.schedule, t_min=self.t_min, t_min_train=self.t_min_train)

  @property
  def t_lo(self) -> float:
    """First table time; below it the tables hold their ``t_lo`` values."""
    return min(1e-6, 0.5 * self.t_min_train, 0.5 * self.t_min)

  @property
  def omega_sum(self) -> float:
    """``sum_k omega_k`` (X's Brownian loading ``G_X = g sum_k omega_k``; 1 for K=0, plain BM)."""
    return float(self.tables.omega.sum()) if self.num_ou else 1.0

  # ---- interpolation -------------------------------------------------------------------------
  def _rows(self, t: Array) -> tuple[Array, Array]:
    """Table rows linearly interpolated in ``log t``: ``(rows (B, C), t_clamped (B,))``."""
    tb = self.tables
    table = jnp.asarray(self._table32)
    t = jnp.maximum(jnp.asarray(t, jnp.float32), math.exp(tb.log_t_lo))
    pos = jnp.clip((jnp.log(t) - tb.log_t_lo) / tb.log_t_step, 0.0, table.shape[0] - 1.0)
    i0 = jnp.clip(jnp.floor(pos).astype(jnp.int32), 0, table.shape[0] - 2)
    frac = (pos - i0)[:, None]
    return table[i0] * (1.0 - frac) + table[i0 + 1] * frac, t

  def coefficients(self, t: Array) -> Coefficients:
    """``s_c, rho, ell, v`` at ``t`` (``(B,)``; requires ``num_ou >= 1``)."""
    k = self.num_ou
    rows, t = self._rows(t)
    root = jnp.sqrt(t)[:, None]
    return Coefficients(cond_std=jnp.exp(rows[:, 0]), rho=rows[:, 1:1 + k] * root,
                        ell=rows[:, 1 + k:1 + 2 * k] / root, v=rows[:, 1 + 2 * k:1 + 3 * k] * root,
                        eps_gain=rows[:, 1 + 3 * k] / root[:, 0])

  def cond_std(self, t: Array) -> Array:
    """``s_c(t) = sqrt(Var(X_t | Y_t, x0))``, shape ``(B,)`` (``s_t`` of the schedule when K=0)."""
    if self.num_ou == 0:
      return self.schedule.std(t)
    return self.coefficients(t).cond_std

  # ---- the shared noise-level axis (lim_jax.processes.base) ------------------------------------
  def noise_level(self, t: Array) -> Array:
    """``r = s_c(t) / c_t``: the conditional noise of the network channel ``u`` over its signal."""
    if self.num_ou == 0:
      return self.schedule.ratio(t)
    return self.cond_std(t) / self.schedule.mean_coeff(t)

  def time_at_noise_level(self, r: Array) -> Array:
    """Inverse of :meth:`noise_level`, interpolated in ``(log r, log t)`` on the table's grid."""
    if self.num_ou == 0:
      return self.schedule.time_at_ratio(r)
    log_r, log_t = self._log_r_grid
    return jnp.exp(jnp.interp(jnp.log(jnp.asarray(r, jnp.float32)), jnp.asarray(log_r),
                              jnp.asarray(log_t)))

  @property
  def has_churn(self) -> bool:
    """``edm_sde`` only without OU states: its noise increase moves ``u`` up to a higher noise level
    with the whitened OU state ``w`` kept, whose law given ``u`` is that of the lower level."""
    return self.num_ou == 0

  def with_channel(self, state, t: Array, channel: Array):
    """``x = u + rho_t . w`` with the whitened OU state ``w`` kept."""
    if self.num_ou == 0:
      return {"x": channel, "w": state["w"]}
    return self._with_u(state, t, channel)

  def denoise(self, state, t: Array, model_out: Array) -> Array:
    """``E[x0 | x_t, y_t] = (u - s_c eps_hat)/c_t`` (Tweedie on the channel ``u``)."""
    if self.num_ou == 0:
      return self._gauss.denoise(state["x"], t, model_out)
    return self._u_and_x0(state, t, model_out)[1]

  def ou_values(self, state, t: Array) -> Array:
    """The raw OU values ``y = L_t w``, shape ``(B, *data, K)`` (diagnostics; float32)."""
    k = self.num_ou
    rows, t = self._rows(t)
    chol = rows[:, 2 + 3 * k:].reshape(-1, k, k) * jnp.sqrt(t)[:, None, None]
    w = state["w"]
    chol = chol.reshape((chol.shape[0],) + (1,) * (w.ndim - 2) + (k, k))
    return jnp.einsum("...ij,...j->...i", chol, w)

  # ---- training ------------------------------------------------------------------------------
  def perturb(self, key, x0, t) -> base.Perturbed:
    """``u = c_t x0 + s_c(t) eps`` with target ``eps`` (data-shaped, from ``split(key)[0]``)."""
    if self.num_ou == 0:
      return self._gauss.perturb(key, x0, t)
    k_gauss, _ = base.split_noise_key(key)
    eps = jax.random.normal(k_gauss, x0.shape, x0.dtype)
    c = self.schedule.mean_coeff(t)
    u = base.bcast(c, x0) * x0 + base.bcast(self.cond_std(t), x0) * eps
    return base.Perturbed(model_input=u, target=eps, weight=jnp.ones_like(t))

  # ---- sampling ------------------------------------------------------------------------------
  def prior(self, key, shape):
    """``Z_T ~ N(0, Sigma_T)`` per coordinate: ``w ~ N(0, I_K)`` (from ``split(key)[1]``),
    ``x = rho_T . w + s_c(T) eps`` (``eps`` from ``split(key)[0]``); K=0: the Gaussian prior."""
    if self.num_ou == 0:
      return {"x": self._gauss.prior(key, shape), "w": jnp.zeros(tuple(shape) + (0,))}
    return self.prior_at(key, shape, jnp.full((shape[0],), self.t_max))

  def prior_at(self, key, shape, t):
    """The state ``(x, w)`` of :meth:`prior` at times ``t`` ``(B,)``: ``w ~ N(0, I_K)``,
    ``x = rho_t . w + s_c(t) eps`` (the kernel from ``x0 = 0``)."""
    if self.num_ou == 0:
      return {"x": self._gauss.prior_at(key, shape, t), "w": jnp.zeros(tuple(shape) + (0,))}
    k_gauss, k_latent = base.split_noise_key(key)
    eps = jax.random.normal(k_gauss, shape)
    w = jax.random.normal(k_latent, tuple(shape) + (self.num_ou,))
    co = self.coefficients(t)
    x = jnp.sum(_per_example(co.rho, w) * w, axis=-1) + base.bcast(co.cond_std, eps) * eps
    return {"x": x, "w": w}

  def model_input(self, state, t):
    """``u = x - rho_t . w`` (``= x - a_t . y``)."""
    if self.num_ou == 0:
      return state["x"]
    co = self.coefficients(t)
    return state["x"] - jnp.sum(_per_example(co.rho, state["w"]) * state["w"], axis=-1)

  def readout(self, state):
    return state["x"]

  def augmented_score(self, state, t: Array, model_out: Array):
    """``grad log p_t`` in state coordinates: ``{'x': s, 'w': -rho s - w}``,
    ``s = -eps_hat/s_c``."""
    if self.num_ou == 0:
      return {"x": self._gauss.score(state["x"], t, model_out), "w": state["w"]}
    co = self.coefficients(t)
    s = -model_out / base.bcast(co.cond_std, model_out)
    return {"x": s, "w": -_per_example(co.rho, state["w"]) * s[..., None] - state["w"]}

  def _drift(self, state, t, model_out, score_scale: float):
    """``F' Z' - score_scale * G' (G' . grad)`` and ``G'`` at ``t`` (forward time).

    ``G' . grad = s (G_X - ell . rho) - ell . w = -eps_gain eps_hat - ell . w``; the gain is
    tabulated in float64 because ``G_X - ell . rho`` cancels to ~1e-10 relative at small t.
    """
    x, w = state["x"], state["w"]
    co = self.coefficients(t)
    ell, v = _per_example(co.ell, w), _per_example(co.v, w)
    mu = base.bcast(self.schedule.drift_coeff(t), x)
    g = base.bcast(jnp.sqrt(self.schedule.diffusion_sq(t)), x)
    g_x = g * self.omega_sum
    ell_w = ell * w
    g_dot_score = -base.bcast(co.eps_gain, x) * model_out - jnp.sum(ell_w, axis=-1)
    lower = ell * (jnp.cumsum(ell_w, axis=-1) - 0.5 * ell_w)  # Phi_low(ell ell^T) w
    drift = {"x": mu * x - g * jnp.sum(v * w, axis=-1) - score_scale * g_x * g_dot_score,
             "w": -lower - score_scale * ell * g_dot_score[..., None]}
    return drift, g_x, ell

  def ode_drift(self, state, t, model_out):
    if self.num_ou == 0:
      return {"x": self._gauss.ode_drift(state["x"], t, model_out), "w": state["w"]}
    return self._drift(state, t, model_out, 0.5)[0]

  def sde_step(self, key, state, t_cur, t_next, model_out):
    if self.num_ou == 0:
      x = self._gauss.sde_step(key, state["x"], t_cur, t_next, model_out)
      return {"x": x, "w": state["w"]}
    k_gauss, _ = base.split_noise_key(key)
    drift, g_x, ell = self._drift(state, t_cur, model_out, 1.0)
    h = base.bcast(t_cur - t_next, state["x"])
    noise = jnp.sqrt(h) * jax.random.normal(k_gauss, state["x"].shape, state["x"].dtype)
    return {"x": state["x"] - h * drift["x"] + g_x * noise,
            "w": state["w"] - h[..., None] * drift["w"] + ell * noise[..., None]}

  def _u_and_x0(self, state, t, model_out):
    """``u``, ``x0_hat = (u - s_c eps_hat)/c`` and ``s_c`` at ``t``."""
    co = self.coefficients(t)
    u = state["x"] - jnp.sum(_per_example(co.rho, state["w"]) * state["w"], axis=-1)
    s_c = base.bcast(co.cond_std, u)
    return u, (u - s_c * model_out) / base.bcast(self.schedule.mean_coeff(t), u), s_c

  def _with_u(self, state, t, u):
    co = self.coefficients(t)
    x = u + jnp.sum(_per_example(co.rho, state["w"]) * state["w"], axis=-1)
    return {"x": x, "w": state["w"]}

  def ei_ode_step(self, key, state, t_cur, t_next, model_out):
    """DDIM on ``u`` with ``w`` frozen (module docstring)."""
    del key
    _, x0_hat, _ = self._u_and_x0(state, t_cur, model_out)
    u = (base.bcast(self.schedule.mean_coeff(t_next), x0_hat) * x0_hat
         + base.bcast(self.cond_std(t_next), x0_hat) * model_out)
    return self._with_u(state, t_next, u)

  def ei_sde_step(self, key, state, t_cur, t_next, model_out):
    """Exact Gaussian posterior ``q(u_t | u_s, x0 = x0_hat)`` on ``u``, ``w`` frozen."""
    k_gauss, _ = base.split_noise_key(key)
    u, x0_hat, s_s = self._u_and_x0(state, t_cur, model_out)
    c_s = base.bcast(self.schedule.mean_coeff(t_cur), u)
    c_t = base.bcast(self.schedule.mean_coeff(t_next), u)
    s_t = base.bcast(self.cond_std(t_next), u)
    a = c_s / c_t
    r2 = jnp.maximum(s_s**2 - (a * s_t) ** 2, 0.0)
    noise = jax.random.normal(k_gauss, u.shape, u.dtype)
    u_next = (a * s_t**2 / s_s**2) * u + (c_t * r2 / s_s**2) * x0_hat + (s_t * jnp.sqrt(r2) / s_s
                                                                           ) * noise
    return self._with_u(state, t_next, u_next)

  def extra_steps(self):
    if self.num_ou == 0:
      steps = self._gauss.extra_steps()

      def lift(step):
        def lifted(key, state, t_cur, t_next, model_out):
          return {"x": step(key, state["x"], t_cur, t_next, model_out), "w": state["w"]}
        return lifted

      return {name: lift(step) for name, step in steps.items()}
    return {"ei_ode": self.ei_ode_step, "ei_sde": self.ei_sde_step}

  def log_notes(self) -> list[str]:
    notes = []
    if self.num_ou == 0:
      return notes
    tb = self.tables
    if self.jitter > 0:
      notes.append(
          f"process.jitter={self.jitter}: Sigma_YY + {self.jitter} e^(-2 gamma_k t) (the official "
          "GFDM code's regulariser) defines a_t, s_c and the prior; the score is no longer exact.")
    if abs(self.hurst - 0.5) < 1e-12:
      var = float(tb.omega_raw @ fbm_tables.ou_covariance(tb.gamma, self.t_max) @ tb.omega_raw)
      notes.append(f"process.hurst=0.5 with num_ou={self.num_ou} is only approximately Brownian "
                   f"(MA-fBM variance at t_max: {var:.4f} vs {self.t_max:.4f}); num_ou=0 is exact.")
    c_end = float(self._gauss.schedule.mean_coeff(jnp.asarray(self.t_max)))
    ratio = c_end / tb.cond_std_max
    if ratio > 0.05:
      notes.append(
          f"s_c(t_max)={tb.cond_std_max:.3g} while c(t_max)={c_end:.3g}: the N(0, Sigma_T) prior "
          f"ignores a data signal of relative size {ratio:.2f} in u = x - a.y.")
    return notes


def config_fields() -> dict:
  """The fbm family's own ``process`` fields and their defaults, read off :class:`FBMProcess`
  (GFDM's CIFAR10 FVP setting: H = 0.9, K = 2)."""
  return base.config_fields_of(FBMProcess)


def from_config(cfg) -> FBMProcess:
  """``process`` ConfigDict -> validated :class:`FBMProcess` with its tables built.

  Raises:
    ValueError: naming the first bad ``process.*`` field, before any table is computed.
  """
  return base.from_config_of(FBMProcess, cfg)  # validated by __post_init__, before the tables
