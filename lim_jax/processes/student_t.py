"""Student-t noise: t-EDM and t-Flow ("Heavy-Tailed Diffusion Models", Pandey, Pathak, Xu, Mandt,
Pritchard, Vahdat, Mardani; ICLR 2025, arXiv 2410.14171; equation numbers of arXiv v2).

Kernel (the paper's perturbation kernel ``q(x_t | x0) = t_d(mu_t x0, sigma_t^2 I_d, nu)``, with the
multivariate Student-t of eq. 2), forward time ``t`` from data (``t = 0``) to noise:

    x_t = gamma(t) x0 + sigma(t) eps,   eps ~ t_nu(0, I_d),   eps = G / sqrt(W),
    G ~ N(0, I_d),   W ~ Gamma(nu/2, rate nu/2)   (W = chi^2_nu / nu),

with ONE ``W`` per example (the whole data vector is one multivariate t, not a product of 1-D
t's), drawn exactly (``jax.random.loggamma``, the log of ``jax.random.gamma``'s law: ``W`` cannot
underflow to 0 for small ``nu``). ``process.variant``:

* ``'edm'``, t-EDM (Table 1): ``gamma = 1``, ``sigma(t) = t`` on EDM's ``[0.002, 80]`` (Karras et
  al. 2022, Table 1); time *is* the noise scale.
* ``'flow'``, t-Flow: the linear interpolant of flow matching / rectified flow with a Student-t
  source, ``gamma = 1 - t``, ``sigma(t) = t``. ``process.t_max`` defaults to ``80/81``
  (``sigma/gamma = 80``, t-EDM's top) instead of 1, because the shared noise-level axis needs a
  finite ``r(t_max)``; the prior drops ``(1 - t_max) x0 = x0/81`` as EDM drops ``x0`` beside
  ``80 eps``. With ``t_min = sigma_min/(1 + sigma_min)`` both variants cover the same noise levels
  and have the same marginals up to the factor ``gamma``; they differ in the clock (the
  ``uniform_t`` allocation and grid, the generic ``euler`` / ``heun`` in ``t``).

Noise level (the shared axis of :mod:`lim_jax.processes.base`): for ``nu > 2`` one coordinate of
``eps`` has std ``c = sqrt(nu/(nu-2))``, so ``r(t) = c sigma(t)/gamma(t)`` and the unit-variance
network target is ``n = eps / c`` (``x_t/gamma = x0 + r n``, ``head_units = 1``). For ``nu <= 2``
the std is infinite: then ``c = 1``, ``r`` is the scale ratio ``sigma/gamma`` and ``n = eps``.
The paper needs ``nu > 2`` exactly there (Table 1's ``nu/(nu-2)``; the authors' code refuses
``nu <= 2``): for ``nu <= 2`` the preconditioning is EDM's in the scale, not t-EDM's, and a note is
logged; nothing else needs ``nu > 2``, so only ``nu <= 0`` is refused.

Preconditioning (Table 1, t-EDM): EDM's ``c_skip, c_out, c_in`` with ``sigma^2`` replaced by the
noise variance ``nu/(nu-2) sigma^2``, ``c_noise = log(sigma sqrt(nu/(nu-2)))/4`` and the loss weight
``lambda = 1/c_out^2``. This is the generic ``model.parameterization = 'edm'`` of
:mod:`lim_jax.precondition` written in ``r = c sigma``, with no family code: checked against the
authors' reference implementation (NVIDIA PhysicsNeMo's t-EDM preconditioner and loss rescale
``sigma`` by ``sqrt(nu/(nu-2))`` before EDM's formulas) and by a test that writes Table 1 out.

Training objective (eqs. 5-8). The forward denoising posterior ``q(x_{t-dt} | x_t, x0)`` is
the conditional Student-t ``t_d(mu_bar, (nu + d1)/(nu + d) sigma_bar^2 I, nu + d)`` with
``d1 = |x_t - mu_t x0|^2 / sigma_t^2``; the model's reverse step is ``t_d(mu_theta, sigma_bar^2 I,
nu + d)`` (the data-dependent factor dropped), ``mu_theta`` being ``mu_bar`` at ``x0 = D_theta``.
Replacing the ELBO's KL by the gamma-power divergence (``gamma`` set by the degrees of freedom and
the dimension) between two t's of equal degrees of freedom, the model's scale fixed, leaves a
``theta``-free term plus a ``t``-only multiple of ``|mu_bar - mu_theta|^2 ∝ |x0 - D_theta|^2``: the
objective is the weighted denoiser MSE ``E lambda(sigma) |D_theta(x0 + sigma n, sigma) - x0|^2``
(eq. 8, EDM's loss with Student-t noise). It is a weighted MSE, so it needs no special loss: its
minimiser is ``E[x0 | x_t]`` (tests/test_student_t.py checks it against a quadrature over ``W`` for
Gaussian data), and :meth:`StudentTProcess.perturb` returns the channel, the noise ``n`` as the
target and weight 1; the generic loss supplies ``lambda(r) |D - x0|^2``. With ``'eps'`` the network
regresses ``n`` itself (same minimiser; ``n`` has no second moment for ``nu <= 2``, no fourth for
``nu <= 4``).

Sampling. ``prior``: ``sigma(t_max) eps`` (the paper's ``x_T ~ t_d(0, sigma_max^2 I, nu)``). With
``eps`` fixed, ``x_t`` has the kernel's marginal at every ``t``, so the velocity
``E[dx_t/dt | x_t] = gamma' D + sigma' c n_hat`` (``n_hat = E[n | x_t]``, finite even where ``n``
has no mean) transports the marginals (flow-matching argument): the probability-flow ODE
``dx/dsigma = (x - D)/sigma`` for t-EDM (EDM's, Karras et al. eq. 1 with ``sigma(t) = t``) and
``dx/dt = (x - D)/t`` for t-Flow (:meth:`ode_drift`). Samplers:

* the paper's: t-EDM is Heun on the rho = 7 grid, i.e. the shared ``edm_heun`` with
  ``sampling.grid = 'edm'`` (the grid in ``r = c sigma`` is ``c`` times the grid in ``sigma``, Heun
  on ``dy/dr`` is Heun on ``dx/dsigma``, the generic ``heun`` on that grid is the same rule, and
  with ``sampling.final_denoise`` the last step to ``sigma = 0`` is EDM Alg. 1's Euler step);
  t-Flow is the generic ``euler`` / ``heun`` in ``t`` (``sampling.grid = 'uniform_t'`` for a
  uniform grid); Euler in ``t`` coincides with ``ddim``, exact for point-mass data;
* the shared denoiser-form ``ddim``, ``edm_heun``, ``dpmpp_2m``, ``ancestral``, and the aliases
  ``ei_ode = ddim`` (no ``ei_sde``: see below);
* ``ancestral``'s fresh noise (:meth:`ancestral_noise`): given ``W`` the noise is Gaussian, so
  ``a n + b z`` with ``a^2 + b^2 = 1`` keeps the law if ``z`` shares the sample's ``W``. ``W`` is
  drawn from its posterior given the noise estimate, ``W | eps ~ Gamma((nu + d)/2, rate (nu +
  |eps|^2)/2)`` with ``eps = c n_hat`` (Gamma-Gaussian conjugacy), and ``z = xi / (c sqrt(W))``.
  Then ``xi / sqrt(W)`` is ``t_{nu+d}`` with scale^2 ``(nu + d1)/(nu + d)``: the step is the
  forward posterior at ``x0 = D`` *with* the factor that the paper's reverse step drops, which
  makes it exact for point-mass data (it is not without the factor);
* ``em``: Euler–Maruyama of the SDE whose exact point-mass step is ``ancestral``, in
  ``y = x/gamma``: ``y_s = y - 2 (r_t - r_s) n_hat + sqrt(2 r_t (r_t - r_s)) z``; for ``nu -> inf``
  it is EDM's reverse SDE (Karras et al. eq. 6 with ``beta = sigma'/sigma``), the gaussian
  family's ``em``.

Both stochastic rules estimate the sample's ``W`` from ``n_hat``, which is the noise itself only
for point-mass data. For spread-out data the marginal-preserving reverse SDE needs the injected
variance ``2 r dr E[1/(c^2 W) | x_t]``, which exceeds the plug-in value by the posterior spread of
the noise (it would need a second head regressing ``1/W``; not built). So they are exact for point
masses and biased for spread-out data: Gaussian data ``N(0.3, 0.25 I_2)``, ``nu = 3``, exact
denoiser, 400 NFE: std ratio 0.85 (``ancestral``) and 0.86 (``em``), vs <= 0.6 % off for the
deterministic samplers at 100-400 NFE (tests/test_student_t.py). Prefer ``edm_heun`` / ``heun``.

Where this differs from the paper: (i) ``training.noise_levels = 'lognormal'`` draws ``log r``, the
paper ``log sigma ~ N(P_mean, P_std^2)``: the same law with ``p_mean = P_mean + log(c)``, truncated
to the family's range; (ii) ``ancestral`` / ``em`` keep the factor of the forward posterior
(above); (iii) t-Flow's ``t_max < 1`` (above); (iv) ``nu <= 2`` is accepted with ``r`` the scale
(above). ``nu -> inf`` gives the gaussian family with ``process.sde = 'edm'`` for the same keys
(kernel, loss and samples, to float32 rounding at ``nu = 1e12``; at ``nu = 1e6`` each ``W`` is
still ``1 +- 1.4e-3``).

Key convention (:mod:`base`): ``G`` and every Gaussian draw from ``split(key)[0]``, ``W`` from
``split(key)[1]``. Shapes: ``x0`` and states ``(B, *data_shape)``, ``t`` ``(B,)``.
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

VARIANTS = ("edm", "flow")
EDM_SIGMA_MAX = 80.0  # Karras et al. 2022, Table 1 (t-EDM keeps it)


def default_t_max(variant: str) -> float:
  """``t_max`` when ``process.t_max`` is None: 80 (t-EDM) or 80/81 (t-Flow: ``t/(1-t) = 80``)."""
  return EDM_SIGMA_MAX / (1.0 + EDM_SIGMA_MAX) if variant == "flow" else EDM_SIGMA_MAX


@dataclasses.dataclass(frozen=True, kw_only=True)
class StudentTProcess(base.Process):
  """Student-t kernel ``x_t = gamma(t) x0 + t eps``, ``eps ~ t_nu(0, I)`` (module docstring).

  Attributes:
    nu: degrees of freedom ``nu > 0`` (``process.nu``); ``nu -> inf`` is the Gaussian.
    variant: ``'edm'`` (``gamma = 1``) or ``'flow'`` (``gamma = 1 - t``) (``process.variant``).
    horizon: ``t_max`` (``process.t_max``; None: :func:`default_t_max`).
  """

  nu: float = 3.0
  variant: str = "edm"
  horizon: float | None = None
  family: ClassVar[str] = "student_t"
  location_scale: ClassVar[bool] = True
  # Every finite nu has polynomial tails (moments of order >= nu are infinite): one draw with a
  # small W lands arbitrarily far out, so the preconditioned input is bounded (the squash is the
  # identity on typical draws).
  heavy_tailed: ClassVar[bool] = True

  @property
  def t_max(self) -> float:
    return default_t_max(self.variant) if self.horizon is None else float(self.horizon)

  def validate(self) -> None:
    if self.variant not in VARIANTS:
      raise ValueError(f"process.variant must be one of {VARIANTS}, got {self.variant!r}")
    nu = self.nu
    if (isinstance(nu, bool) or not isinstance(nu, numbers.Real)
        or not (math.isfinite(nu) and nu > 0)):
      raise ValueError(f"process.nu must be a finite number > 0, got {nu!r}")
    t_max = self.horizon
    if t_max is not None:
      if (isinstance(t_max, bool) or not isinstance(t_max, numbers.Real)
          or not (math.isfinite(t_max) and t_max > 0)):
        raise ValueError(f"process.t_max must be a finite number > 0, got {t_max!r}")
      if self.variant == "flow" and not t_max < 1:
        raise ValueError("process.t_max must be < 1 for process.variant='flow' (the signal scale "
                         f"1 - t vanishes at t = 1), got {t_max!r}")
    super().validate()

  def log_notes(self) -> list[str]:
    if self.nu > 2:
      return []
    return [f"student_t: process.nu={self.nu:g} <= 2 has infinite variance; the noise level is "
            "the scale ratio sigma/gamma (not a standard deviation) and the preconditioning is "
            "EDM's in that scale (t-EDM's needs nu > 2)"]

  # ---- static numbers ------------------------------------------------------------------------
  @property
  def std_factor(self) -> float:
    """``c``: the std ``sqrt(nu/(nu-2))`` of one coordinate of ``eps`` (1 for ``nu <= 2``)."""
    return math.sqrt(self.nu / (self.nu - 2.0)) if self.nu > 2 else 1.0

  def kernel(self, t: Array) -> tuple[Array, Array]:
    """``(gamma(t), sigma(t))`` ``(B,)``: ``x_t = gamma x0 + sigma eps`` (``sigma = t``)."""
    t = jnp.asarray(t)
    gamma = jnp.ones_like(t) if self.variant == "edm" else 1.0 - t
    return gamma, t

  # ---- the shared noise-level axis -----------------------------------------------------------
  def signal_scale(self, t: Array) -> Array:
    return self.kernel(t)[0]

  def noise_level(self, t: Array) -> Array:
    """``r = c sigma(t)/gamma(t)``: ``c t`` (t-EDM) or ``c t/(1 - t)`` (t-Flow)."""
    gamma, sigma = self.kernel(t)
    return self.std_factor * sigma / gamma

  def time_at_noise_level(self, r: Array) -> Array:
    ratio = jnp.asarray(r) / self.std_factor
    return ratio if self.variant == "edm" else ratio / (1.0 + ratio)

  # ---- noise ---------------------------------------------------------------------------------
  def log_mixing(self, key: base.PRNGKey, batch: int) -> Array:
    """``log W`` ``(batch,)``, ``W ~ Gamma(nu/2, rate nu/2)``."""
    half = 0.5 * self.nu
    return jax.random.loggamma(key, half, (batch,)) - math.log(half)

  def noise(self, key: base.PRNGKey, shape: tuple[int, ...]) -> Array:
    """Unit-scale ``eps = G / sqrt(W)`` of ``shape = (B, *data_shape)``, one ``W`` per example."""
    k_gauss, k_latent = base.split_noise_key(key)
    g = jax.random.normal(k_gauss, shape)
    log_w = self.log_mixing(k_latent, shape[0])
    return g * base.bcast(jnp.exp(-0.5 * log_w), g)

  def perturb(self, key, x0, t) -> base.Perturbed:
    eps = self.noise(key, x0.shape).astype(x0.dtype)
    gamma, sigma = self.kernel(t)
    xt = base.bcast(gamma, x0) * x0 + base.bcast(sigma, x0) * eps
    return base.Perturbed(model_input=xt, target=eps / self.std_factor, weight=jnp.ones_like(t))

  def ancestral_noise(self, key, n_hat):
    """``xi / (c sqrt(W))`` with ``W ~ Gamma((nu + d)/2, rate (nu + c^2 |n_hat|^2)/2)``, the
    posterior of the sample's ``W`` given its noise ``c n_hat`` (module docstring)."""
    k_gauss, k_latent = base.split_noise_key(key)
    c = self.std_factor
    dim = math.prod(n_hat.shape[1:])
    sq = jnp.sum(n_hat.reshape(n_hat.shape[0], -1) ** 2, axis=-1)
    shape = 0.5 * (self.nu + dim)
    log_w = jax.random.loggamma(k_latent, shape, (n_hat.shape[0],)) - jnp.log(
        0.5 * (self.nu + c * c * sq))
    xi = jax.random.normal(k_gauss, n_hat.shape, n_hat.dtype)
    return xi * base.bcast(jnp.exp(-0.5 * log_w), xi) / c

  # ---- the network output --------------------------------------------------------------------
  def denoise(self, x: Array, t: Array, model_out: Array) -> Array:
    """``E[x0 | x_t] = (x_t - c sigma n_hat)/gamma`` (``model_out = n_hat = E[n | x_t]``)."""
    gamma, sigma = self.kernel(t)
    return (x - base.bcast(self.std_factor * sigma, x) * model_out) / base.bcast(gamma, x)

  # ---- sampling ------------------------------------------------------------------------------
  def prior(self, key, shape):
    """``sigma(t_max) eps`` (the ``gamma(t_max) x0`` term dropped, as EDM drops ``x0``)."""
    return self.t_max * self.noise(key, shape)

  def ode_drift(self, state, t, model_out):
    """``dx/dt = gamma' D + sigma' c n_hat``: ``c n_hat = (x - D)/sigma`` (t-EDM), ``(x - D)/t``
    (t-Flow)."""
    velocity = self.std_factor * model_out
    if self.variant == "edm":
      return velocity
    return velocity - self.denoise(state, t, model_out)

  def sde_step(self, key, state, t_cur, t_next, model_out):
    """Euler–Maruyama in ``y = x/gamma``: ``y - 2 dr n_hat + sqrt(2 r dr) z`` (module docstring)."""
    gamma_t, _ = self.kernel(t_cur)
    gamma_s, _ = self.kernel(t_next)
    r_t, r_s = self.noise_level(t_cur), self.noise_level(t_next)
    dr = base.bcast(r_t - r_s, state)
    y = state / base.bcast(gamma_t, state)
    z = self.ancestral_noise(key, model_out)
    y_next = y - 2.0 * dr * model_out + jnp.sqrt(2.0 * base.bcast(r_t, state) * dr) * z
    return base.bcast(gamma_s, state) * y_next

  def sampler_aliases(self) -> dict[str, str]:
    """``ei_ode`` = the exact-for-point-mass ``ddim`` (the gaussian EDM family's ``ei_ode`` in the
    limit nu -> inf). There is no ``ei_sde``: the stochastic rules ``ancestral`` / ``em`` stay
    under their own names because they are biased for spread-out data (module docstring), and a
    comparison that asks every family for ``ei_sde`` must not get a biased rule silently."""
    return {"ei_ode": "ddim"}

  @property
  def has_churn(self) -> bool:
    """False: the fresh noise of ``ancestral_noise`` is drawn from the posterior of ``W`` given the
    state's noise estimate, which ``edm_sde`` does not have before its step's first evaluation."""
    return False

  def missing_samplers(self) -> dict[str, str]:
    why = ("student_t has no consistent stochastic sampler (ancestral and em keep the spread of "
           "the noise too small for spread-out data, docs/families/student_t.md); use ei_ode, "
           "dpmpp_2m or edm_heun")
    return {"ei_sde": why, "edm_sde": why, "restart": why, "restart_2m": why}


def config_fields() -> dict:
  """The family's own ``process`` fields and their defaults, read off :class:`StudentTProcess`
  (``process.nu``, ``process.variant``; ``horizon`` is the shared ``process.t_max``)."""
  return base.config_fields_of(StudentTProcess, exclude=("horizon",))


def from_config(cfg) -> StudentTProcess:
  """``process`` ConfigDict -> :class:`StudentTProcess` (validated, before anything compiles);
  ``horizon`` is ``process.t_max`` (None: :func:`default_t_max` of the variant)."""
  t_max = cfg.get("t_max", None)
  return base.from_config_of(StudentTProcess, cfg,
                             horizon=None if t_max is None else base.as_float(t_max))
