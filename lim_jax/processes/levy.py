"""Lévy–Itô model (LIM; Yoon et al., NeurIPS 2023): score-based generation with alpha-stable noise.

Forward SDE (LIM; docs/families/levy.md §2), forward time ``t in [0, t_max]``:

    dx = -(beta(t)/alpha) x dt + beta(t)^{1/alpha} dL_t,

``L`` the isotropic alpha-stable Lévy process with ``E exp(i k.L_1) = exp(-|k|^alpha)``. Kernel:

    x_t = gamma_t x0 + sigma_t eps,   gamma_t = exp(-int_0^t beta/alpha),
    sigma_t = (1 - gamma_t^alpha)^{1/alpha},   eps = sqrt(A) G  (lim_jax.stable.isotropic_stable),

with one mixing variable ``A`` per example (the whole data vector/image is one isotropic vector, as
in LIM and DLPM). Schedules (LIM's ``VPSDE``), built on the shared :class:`Schedule`:

* ``linear``: ``beta(t) = beta_min + t (beta_max - beta_min)`` and ``log gamma_t = -B(t)/alpha``;
* ``cosine``: ``gamma_t = sqrt(alphabar_t)`` of Nichol & Dhariwal (``s = 0.008``,
  ``t_max = 0.9946``), i.e. ``beta(t) = (alpha/2) beta_VP(t)``.

At alpha = 2 both give the VP SDE's ``m_t, s_t`` and the noise is ``N(0, 2I)``: the model on data
``x0`` is exactly ``sqrt(2)`` times the Gaussian VP model on ``x0/sqrt(2)`` (tests/test_levy.py).

Score and flux (docs/families/levy.md §3): the fractional score
``S = (-lap)^{(alpha-2)/2} grad p / p`` and the flux velocity ``v = beta S``. For the kernel
``S(x_t | x0) = -eps / (alpha sigma_t^{alpha-1})``
(LIM's fractional denoising score matching); ``S p`` is linear in ``p``, so
``S(x_t) = -E[eps | x_t] / (alpha sigma_t^{alpha-1})``. The network predicts
``eps_hat = E[eps | x_t]`` (the Gaussian family's parametrisation; LIM regresses ``-eps/alpha``, a
constant factor), and ``frac_score = -eps_hat sigma_t^{1-alpha} / alpha``.

Training (``process.target``; the penalty is the generic ``training.loss``):

* ``target = eps`` (default): regress ``eps`` (LIM, DLPM). Its conditional mean is exactly what
  every sampler needs; its second moment is infinite for alpha < 2 (the residual at the optimum is
  not, for light-tailed data). Penalties seen in the field: squared ``l2`` (LIM's public code; the
  only one whose minimiser is ``E[eps | x_t]``), ``huber`` (LIM's supplementary code:
  ``smooth_l1(out, -eps/alpha, beta=1)`` is ``huber`` with ``huber_delta = alpha``, divided by
  ``alpha^2``) and ``l2_norm`` (DLPM); the last two bound the gradient but estimate a conditional
  Huber centre / geometric median instead of the mean.
* ``target = a_conditioned``: given ``A`` the noise is Gaussian, ``eps | A ~ N(0, 2A I)``; each
  example's loss is weighted by ``1/(A E[1/A])`` (``|out - eps|^2 / A = |out/sqrt(A) - G|^2``:
  finite variance), DLPM's ``lambda ~ 1/A`` weighting. Its minimiser is the mean under the
  ``1/A``-tilted posterior, which is ``E[eps | x_t]`` only where the posterior of ``x0`` is a point
  mass: it is biased, offered for comparison.

Default and evidence (toy benchmark: 2-D ``sas``, data alpha = 1.7, process alpha = 1.7, 4000 steps
of the toy MLP, 16384 samples, ``ei_sde`` at 200 NFE; seeds 0 / 1; the data-vs-data floor is MMD
0.0032-0.0039 and tail-quantile log error 0.04-0.07): ``eps`` + ``l2`` MMD 0.0039 / 0.0032, tail
error 0.11 / 0.03 (at the floor); ``l2_norm`` 0.0053 / 0.0053 and 0.25 / 0.19; ``huber``
(delta = alpha, seed 0) 0.0063 and 0.29; ``a_conditioned`` (seed 0) 0.031 and 2.2, its bias. The
Gaussian VP family, same data and sampler: 0.0035 / 0.0040 and 0.12 / 0.20. Hence the default
``eps`` + ``l2`` (the shared gradient clipping absorbs the rare huge draws). On the imbalanced grid
(seed 0, ``ei_sde``): ``l2`` kept all 25 modes (alpha 1.7 / 1.9: in-mode fraction 0.63 / 0.75, MMD
0.024 / 0.015, weight TV 0.15 / 0.12) while ``l2_norm`` concentrated more mass on modes but lost
rare ones at alpha 1.9 (24 of 25 with ``ei_sde``, 23 with DLPM; weight TV 0.16-0.19), as a
median-type estimator would; all behind the Gaussian family here (0.91, MMD 0.0037, TV 0.06).

Reverse steps from ``s = t_cur`` to ``t = t_next < s``, ``a = gamma_t/gamma_s > 1``, ``S`` the
fractional score at ``(x_s, s)``, ``eps_L`` an exact stable draw and ``c`` the reverse SDE's score
coefficient: ``c = 2`` (docs/families/levy.md §4: ``dx/dtau = -f + 2 v + noise`` preserves the
marginals)
or, with ``lim_compat``, LIM's published ``c = alpha`` (its sampler's ``alpha^2 (a - 1) S``; it
changes ``em`` and ``lim_sde``), which is biased (point mass, alpha = 1.5: interquartile range 1.19
instead of 0.79; tests/test_levy.py).

* ``euler``/``heun`` (generic): PF-ODE ``dx/dt = -(beta/alpha) x - beta S`` (forward time).
* ``em``: Euler–Maruyama of ``dx/dtau = (beta/alpha) x + c beta S``, noise
  ``(beta h)^{1/alpha} eps_L``.
* ``lim_ode``: exponential integrator with ``S`` frozen (LIM's published ODE sampler):
  ``x_t = a x_s + alpha (a - 1) S``. Inexact even for a point mass, since ``S`` scales as
  ``sigma^{-alpha}``: at 10 / 50 / 200 NFE its final scale is x34 / x6.6 / x2.2 the true one.
* ``lim_sde``: exponential integrator with ``S`` frozen (LIM's SDE sampler, with ``c = 2``; with
  ``lim_compat`` LIM's ``c = alpha``): ``x_t = a x_s + c alpha (a - 1) S + (a^alpha - 1)^{1/alpha}
  eps_L``; x68 / x11.6 / x3.4 at 10 / 50 / 200 NFE.
* ``ei_ode`` = ``dlim`` = the shared ``ddim``: DLIM of Shariatian et al. (ICLR 2025) with eta = 0,
  the exponential integrator with ``eps_hat`` frozen: ``x_t = gamma_t x0_hat + sigma_t eps_hat``
  (DDIM with stable scales; exact for a point mass at any NFE).
* ``ei_sde`` = the shared ``ancestral`` step with stable noise (:mod:`lim_jax.samplers`):
  ``y_t = D + r_t (a n_hat + b z)``, ``a = r_t/r_s``, ``a^alpha + b^alpha = 1``, exact for a point
  mass at any NFE.
* DLPM ancestral sampling (Shariatian et al. 2025): given the mixing variables ``A_{0:N}`` of one
  trajectory the chain is Gaussian and each step draws from the exact Gaussian posterior. It needs
  per-trajectory latent state sized by the number of steps, which the one-step interface cannot
  carry (``prior`` does not know the grid, and the state must suit every sampler), so it is the
  standalone :func:`make_dlpm_sampler`.

State layout: the data array itself, ``(B, *data_shape)``, as in the Gaussian family.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import ClassVar

import jax
import jax.numpy as jnp

from lim_jax import stable
from lim_jax.processes import base, grids

Array = jax.Array
TARGETS = ("eps", "a_conditioned")


@dataclasses.dataclass(frozen=True, kw_only=True)
class LevyProcess(base.ScheduledProcess):
  """LIM's alpha-stable VP process.

  Attributes:
    schedule: VP ``linear`` or ``cosine`` schedule (the shared :class:`Schedule`).
    alpha: stability index in ``(0, 2]``; 2 is the Gaussian VP model with ``N(0, 2I)`` noise.
    clamp_a: cap on the mixing variable ``A`` (LIM supplementary code / DLPM); None = exact tails.
    clamp_eps: elementwise clip of the stable noise (DLPM); None = exact tails.
    lim_compat: reverse-SDE score coefficient ``alpha`` (LIM's published sampler) instead of 2.
    target: ``eps`` or ``a_conditioned`` (module docstring).
  """

  alpha: float = 1.8
  clamp_a: float | None = None
  clamp_eps: float | None = None
  lim_compat: bool = False
  target: str = "eps"
  family: ClassVar[str] = "levy"
  location_scale: ClassVar[bool] = True

  def validate(self) -> None:
    stable.validate_alpha(self.alpha, "process.alpha")
    if self.schedule.sde != "vp":
      raise ValueError("process.sde must be 'vp' for the levy family (LIM's linear and cosine "
                       f"schedules), got {self.schedule.sde!r}")
    stable.validate_clamp(self.clamp_a, "process.clamp_a")
    stable.validate_clamp(self.clamp_eps, "process.clamp_eps")
    if not isinstance(self.lim_compat, bool):
      raise ValueError(f"process.lim_compat must be a bool, got {self.lim_compat!r}")
    if self.target not in TARGETS:
      raise ValueError(f"process.target must be one of {TARGETS}, got {self.target!r}")
    super().validate()

  def log_notes(self) -> list[str]:
    notes = []
    if self.clamp_a is not None or self.clamp_eps is not None:
      notes.append(
          f"levy: tails are TRUNCATED (clamp_a={self.clamp_a}, clamp_eps={self.clamp_eps}); the "
          "noise is not alpha-stable (reproduces the LIM supplementary / DLPM codes).")
    if self.lim_compat:
      notes.append(
          f"levy: lim_compat=True uses LIM's reverse-SDE score coefficient alpha={self.alpha} "
          "instead of 2 in em and lim_sde; their samples are over-dispersed "
          "(docs/families/levy.md).")
    if self.target == "a_conditioned":
      notes.append("levy: target=a_conditioned weights the loss by 1/A; its minimiser is biased "
                   "away from E[eps|x_t] where the posterior of x0 is spread.")
    if self.alpha < 1.0:
      notes.append(f"levy: alpha={self.alpha} < 1: the noise has no mean; float32 losses may "
                   "overflow on the largest draws.")
    return notes

  # ---- schedule ------------------------------------------------------------------------------
  def log_gamma(self, t: Array) -> Array:
    """``log gamma_t = -int_0^t beta/alpha`` (linear) or ``log sqrt(alphabar_t)`` (cosine)."""
    divisor = self.alpha if self.schedule.kind == "linear" else 2.0
    return -self.schedule.int_beta(t) / divisor

  def gamma(self, t: Array) -> Array:
    return jnp.exp(self.log_gamma(t))

  def sigma(self, t: Array) -> Array:
    """``sigma_t = (1 - gamma_t^alpha)^{1/alpha}``, via ``expm1`` (accurate as ``t -> 0``)."""
    return (-jnp.expm1(self.alpha * self.log_gamma(t))) ** (1.0 / self.alpha)

  # ---- the shared noise-level axis (lim_jax.processes.base) ------------------------------------
  @property
  def heavy_tailed(self) -> bool:  # overrides the base ClassVar
    return self.alpha < 2.0

  @property
  def head_units(self) -> tuple[float, ...]:
    """``k = sqrt(2)``: ``x_t/gamma_t = x0 + (r/sqrt(2)) eps`` (the alpha = 2 noise is N(0, 2I))."""
    return (math.sqrt(2.0),)

  def signal_scale(self, t: Array) -> Array:
    return self.gamma(t)

  @property
  def noise_stability(self) -> float:
    return float(self.alpha)

  def ancestral_noise(self, key, n_hat):
    """Unit noise in denoiser units: ``eps / sqrt(2)``, ``eps`` isotropic SaS (clamps apply)."""
    eps, _ = self.noise(key, n_hat.shape)
    return eps / math.sqrt(2.0)

  def noise_level(self, t: Array) -> Array:
    """``r = sqrt(2) sigma_t/gamma_t = sqrt(2) (gamma_t^{-alpha} - 1)^{1/alpha}``: the stable scale
    over the signal scale, equal to the Gaussian VP ``s_t/m_t`` (times the std sqrt(2) of its noise)
    at alpha = 2."""
    return math.sqrt(2.0) * jnp.expm1(-self.alpha * self.log_gamma(t)) ** (1.0 / self.alpha)

  def time_at_noise_level(self, r: Array) -> Array:
    """Inverse of :meth:`noise_level`: ``-alpha log gamma = log1p((r/sqrt(2))^alpha)``, then the
    schedule's inverse of ``B(t)`` (linear: ``B = -alpha log gamma``; cosine:
    ``B = -2 log gamma``)."""
    neg_alpha_log_gamma = jnp.log1p((jnp.asarray(r) / math.sqrt(2.0)) ** self.alpha)
    divisor = self.alpha if self.schedule.kind == "linear" else 2.0
    return self.schedule.time_at_int_beta(neg_alpha_log_gamma * divisor / self.alpha)

  def rate(self, t: Array) -> Array:
    """The SDE's ``beta(t) = -alpha d/dt log gamma_t``."""
    factor = 1.0 if self.schedule.kind == "linear" else self.alpha / 2.0
    return factor * self.schedule.beta(t)

  # ---- noise and kernel ----------------------------------------------------------------------
  def noise(self, key: jax.Array, shape: tuple[int, ...]) -> tuple[Array, Array]:
    """``(eps, A)``: one isotropic stable vector per example (``A`` of shape ``(B,)``)."""
    return stable.isotropic_stable_parts(key, self.alpha, shape, event_ndim=len(shape) - 1,
                                         clamp_a=self.clamp_a, clamp_eps=self.clamp_eps)

  def perturb(self, key, x0, t) -> base.Perturbed:
    eps, mix = self.noise(key, x0.shape)
    xt = base.bcast(self.gamma(t), x0) * x0 + base.bcast(self.sigma(t), x0) * eps
    if self.target == "a_conditioned":
      weight = 1.0 / (mix * stable.mixing_inverse_mean(self.alpha))
    else:
      weight = jnp.ones_like(t)
    return base.Perturbed(model_input=xt, target=eps, weight=weight)

  def frac_score(self, x: Array, t: Array, model_out: Array) -> Array:
    """Fractional score ``S = -eps_hat sigma_t^{1-alpha} / alpha`` (module docstring)."""
    del x
    scale = self.sigma(t) ** (1.0 - self.alpha) / self.alpha
    return -base.bcast(scale, model_out) * model_out

  def denoise(self, x: Array, t: Array, model_out: Array) -> Array:
    """``x0_hat = (x_t - sigma_t eps_hat) / gamma_t`` (``E[x0 | x_t]``, since ``x_t`` is affine)."""
    return (x - base.bcast(self.sigma(t), x) * model_out) / base.bcast(self.gamma(t), x)

  # ---- sampling ------------------------------------------------------------------------------
  @property
  def score_coeff(self) -> float:
    """Reverse-SDE score coefficient: 2 (exact), or alpha with ``lim_compat``."""
    return self.alpha if self.lim_compat else 2.0

  def prior(self, key, shape):
    """``sigma_{t_max} eps`` (the kernel at ``t_max`` without the ``gamma_T x0`` term)."""
    eps, _ = self.noise(key, shape)
    return self.sigma(jnp.asarray(self.t_max)) * eps

  def ode_drift(self, state, t, model_out):
    """``dx/dt = f x - v = -(beta/alpha) x - beta S`` (forward time)."""
    beta = base.bcast(self.rate(t), state)
    return -beta / self.alpha * state - beta * self.frac_score(state, t, model_out)

  def sde_step(self, key, state, t_cur, t_next, model_out):
    """Euler–Maruyama: ``dx/dtau = (beta/alpha) x + c beta S``, noise ``(beta h)^{1/alpha} eps``."""
    eps_l, _ = self.noise(key, state.shape)
    beta_h = base.bcast(self.rate(t_cur) * (t_cur - t_next), state)
    score = self.frac_score(state, t_cur, model_out)
    return (state + beta_h * (state / self.alpha + self.score_coeff * score)
            + beta_h ** (1.0 / self.alpha) * eps_l)

  def _growth(self, t_cur: Array, t_next: Array) -> tuple[Array, Array]:
    """``(a, a - 1)`` with ``a = gamma_t/gamma_s``, ``a - 1`` via ``expm1``."""
    log_a = self.log_gamma(t_next) - self.log_gamma(t_cur)
    return jnp.exp(log_a), jnp.expm1(log_a)

  def ei_ode_step(self, key, state, t_cur, t_next, model_out):
    """``x_t = a x_s + alpha (a - 1) S``: exact flow of the PF-ODE for ``S`` frozen on the step."""
    del key
    a, a_m1 = self._growth(t_cur, t_next)
    score = self.frac_score(state, t_cur, model_out)
    return base.bcast(a, state) * state + base.bcast(self.alpha * a_m1, state) * score

  def ei_sde_step(self, key, state, t_cur, t_next, model_out):
    """``x_t = a x_s + c alpha (a-1) S + (a^alpha - 1)^{1/alpha} eps_L`` (``S`` frozen per step)."""
    eps_l, _ = self.noise(key, state.shape)
    a, a_m1 = self._growth(t_cur, t_next)
    log_a = self.log_gamma(t_next) - self.log_gamma(t_cur)
    noise_scale = jnp.expm1(self.alpha * log_a) ** (1.0 / self.alpha)
    score = self.frac_score(state, t_cur, model_out)
    return (base.bcast(a, state) * state
            + base.bcast(self.score_coeff * self.alpha * a_m1, state) * score
            + base.bcast(noise_scale, state) * eps_l)

  def dlim_step(self, key, state, t_cur, t_next, model_out):
    """DLIM (eta = 0): ``x_t = gamma_t x0_hat + sigma_t eps_hat``.

    Equivalently ``a x_s + (sigma_t - a sigma_s) eps_hat``: the exact PF-ODE flow for ``eps_hat``
    frozen (``d(x/gamma) = eps_hat d(sigma/gamma)``).
    """
    del key
    a, _ = self._growth(t_cur, t_next)
    coeff = self.sigma(t_next) - a * self.sigma(t_cur)
    return base.bcast(a, state) * state + base.bcast(coeff, state) * model_out

  def extra_steps(self):
    """LIM's published rules (``lim_ode`` / ``lim_sde``: the fractional score frozen over a step,
    inexact even for a point mass) and DLIM; ``ei_ode`` / ``ei_sde`` are the exact exponential
    integrators (:meth:`sampler_aliases`)."""
    return {"lim_ode": self.ei_ode_step, "lim_sde": self.ei_sde_step, "dlim": self.dlim_step}

  def sampler_aliases(self) -> dict[str, str]:
    """``ei_ode``: ``eps_hat`` frozen (= DLIM = ``ddim``), exact for a point mass; ``ei_sde``: the
    stable ``ancestral`` step, exact for a point mass."""
    return {"ei_ode": "ddim", "ei_sde": "ancestral"}

  def trajectory_samplers(self) -> dict:
    """Whole-trajectory samplers by name: ``factory(apply_fn, nfe, **sampler_options)``.

    ``samplers.make_sampler`` dispatches these names here: DLPM needs per-trajectory latent state.
    """
    return {"dlpm": functools.partial(make_dlpm_sampler, self)}


# ---- DLPM ancestral sampler -------------------------------------------------------------------
def dlpm_chain_variances(process: LevyProcess, key: jax.Array, grid: Array,
                         batch: int) -> Array:
  """Per-trajectory variances of DLPM's Gaussian-given-``A`` chain on a descending time grid.

  Forward increments: increment ``k`` carries the noise of ``(grid[k+1], grid[k]]`` (and of
  ``(0, grid[N]]`` for ``k = N``), with its own mixing variable ``A_k``. In the coordinates
  ``y = x / gamma`` the increment is ``N(0, 2 w_k A_k I)`` with
  ``w_k^{alpha/2} = E(grid[k]) - E(grid[k+1])``,
  ``E(t) = (sigma_t/gamma_t)^alpha = gamma_t^{-alpha} - 1``, so that ``D_k = sum_{j >= k} w_j A_j``
  has the law of ``(sigma/gamma)^2 A`` at every grid time (sums of independent positive
  ``alpha/2``-stables are stable) and ``x_{grid[k]} | x0, A ~ N(gamma x0, 2 gamma^2 D_k I)``: DLPM's
  ``Sigma_t`` recursion in ``y`` units.

  Returns:
    ``D`` of shape ``(N + 1, batch)``, summed from the small-time end (positive terms, no
    cancellation).
  """
  e_t = jnp.expm1(-process.alpha * process.log_gamma(grid))  # (N+1,), decreasing
  incr = e_t - jnp.concatenate([e_t[1:], jnp.zeros((1,), e_t.dtype)])
  weights = jnp.maximum(incr, 0.0) ** (2.0 / process.alpha)
  mix = stable.positive_stable_mixing(key, process.alpha, (grid.shape[0], batch),
                                      clamp=process.clamp_a)
  terms = weights[:, None] * mix
  return jnp.flip(jnp.cumsum(jnp.flip(terms, 0), axis=0), 0)


def make_dlpm_sampler(process: LevyProcess, apply_fn, nfe: int, *, grid_fn=None,
                      batch_sharding=None, save_trajectory: bool = False):
  """DLPM ancestral sampler (Shariatian et al. 2025) on the samplers' time grid.

  Per trajectory, ``A_{0:N}`` are drawn once (:func:`dlpm_chain_variances`); the prior is drawn from
  the same chain, ``x_T ~ N(0, 2 gamma_T^2 D_0 I)`` (equal in law to ``sigma_T eps``; DLPM draws it
  independently, which only decouples the first step). Each step ``s -> t`` draws from the exact
  Gaussian posterior given ``x0 = x0_hat``: with ``r = D_t / D_s``,
  ``x_t / gamma_t = x0_hat + r sigma_s eps_hat / gamma_s + sqrt(2 D_t (1 - r)) z``
  (DLPM's ``(x_t - sigma_t Gamma_t eps)/gamma_t`` with ``Gamma = 1 - r``).
  ``clamp_a`` applies to the chain's ``A``; ``clamp_eps`` has no counterpart here.

  ``grid_fn(num_steps) -> (num_steps + 1,)`` is the descending time grid (default: uniform in t).

  Returns:
    :class:`lim_jax.processes.base.Sampler` with ``sample(params, key, shape)`` (jitted), ``nfe``.
  """
  if grid_fn is None:
    grid_fn = functools.partial(grids.time_grid, process.t_max, process.t_min)
  num_steps = int(nfe)
  if num_steps < 1:
    raise ValueError(f"sampling.nfe={nfe} is too small for 'dlpm' (1 per step)")

  def sample(params, key, shape):
    k_chain, k_prior, k_steps = jax.random.split(key, 3)
    batch = shape[0]
    grid = grid_fn(num_steps)
    chain = dlpm_chain_variances(process, k_chain, grid, batch)  # (N+1, B)
    z = jax.random.normal(k_prior, shape)
    state = base.bcast(process.gamma(grid[0]) * jnp.sqrt(2.0 * chain[0]), z) * z
    if batch_sharding is not None:
      state = jax.lax.with_sharding_constraint(state, batch_sharding)

    def body(x, xs):
      i, t_cur, t_next, d_cur, d_next = xs
      tc = jnp.full((batch,), t_cur)
      out = apply_fn(params, x, tc, train=False, rng=None)
      ratio = d_next / d_cur
      x0_hat = process.denoise(x, tc, out)
      mean = x0_hat + base.bcast(ratio * process.sigma(t_cur) / process.gamma(t_cur), x) * out
      std = base.bcast(jnp.sqrt(2.0 * d_next * jnp.maximum(1.0 - ratio, 0.0)), x)
      noise = jax.random.normal(jax.random.fold_in(k_steps, i), x.shape, x.dtype)
      x = process.gamma(t_next) * (mean + std * noise)
      return x, (x if save_trajectory else None)

    xs = (jnp.arange(num_steps), grid[:-1], grid[1:], chain[:-1], chain[1:])
    x, traj = jax.lax.scan(body, state, xs)
    return (x, traj) if save_trajectory else x

  return base.Sampler(sample=jax.jit(sample, static_argnums=2), nfe=num_steps,
                      num_steps=num_steps)


# ---- config ------------------------------------------------------------------------------------
def config_fields() -> dict:
  """The levy family's own ``process`` fields and defaults, read off :class:`LevyProcess`
  (``alpha`` 1.8: LIM's CIFAR10 setting; ``clamp_a`` / ``clamp_eps`` None: exact tails, LIM's
  supplementary code and DLPM clamp ``A`` at 20 and the noise at 50-200; ``lim_compat``: LIM's
  biased reverse-SDE score coefficient ``alpha``; ``target``: ``eps`` or ``a_conditioned``)."""
  return base.config_fields_of(LevyProcess)


def from_config(cfg) -> LevyProcess:
  """``process`` ConfigDict -> :class:`LevyProcess` (validated, before anything is compiled)."""
  return base.from_config_of(LevyProcess, cfg)
