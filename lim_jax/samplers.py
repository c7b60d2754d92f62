"""Generic reverse-time integrators over a Process; the loop is one ``lax.scan`` inside ``jit``.

Time runs from ``t_max`` down to ``t_min`` on the grid of ``sampling.grid``
(:mod:`lim_jax.processes.grids`: uniform in time, or EDM's rho-spaced / log-uniform grid in the
shared noise level). The network is wrapped once by :func:`lim_jax.precondition.wrap`, so every
family's steps see its native output whatever ``model.parameterization`` is. Sampler names:

* ``euler``: explicit Euler on the probability-flow ODE ``d state/dt = process.ode_drift``
  (1 NFE/step).
* ``heun``: Heun's 2nd-order method on the same ODE (Karras et al. 2022, Alg. 1); 2 NFE per step.
* ``em``: the family's reverse-SDE Euler–Maruyama step ``process.sde_step`` (1 NFE/step).
* ``pc``: predictor–corrector (score SDE, Song et al. 2021, Alg. 1): ``em`` predictor then one
  Langevin corrector ``process.corrector_step`` at the new time; 2 NFE per step.
* any name in ``process.extra_steps()``: a family rule with one evaluation per step (``ei_ode``,
  ``ei_sde`` exponential integrators, DLIM's ``dlim``, ...).
* denoiser form, for every location-scale family (:attr:`Process.location_scale`: the channel is
  ``gamma (x0 + r n)`` with a fixed law of ``n``), on ``y = channel / gamma`` and the noise level
  ``r``. Keeping ``n`` fixed, ``y(r) = x0 + r n`` has the family's marginal at every ``r``, so the
  velocity ``dy/dr = E[n | y] = (y - D(y, r)) / r`` transports them (flow-matching argument), also
  where ``n`` has no mean:

  - ``ddim``: ``y_s = D + (r_s / r_t)(y_t - D)`` (Song et al. 2021a, eq. 13 with eta = 0; Euler in
    ``r``; exact for point-mass data);
  - ``edm_heun``: Heun's method on ``dy/dr`` (Karras et al. 2022, Alg. 1), 2 NFE per step;
  - ``edm_sde``: EDM's stochastic sampler (Karras et al. 2022, Alg. 2), 2 NFE per step: first
    raise the noise level from ``r_t`` to ``r_hat = r_t (1 + g)`` by adding fresh unit noise of the
    family, ``y_hat = y + S_noise (r_hat^alpha - r_t^alpha)^{1/alpha} z`` (for a point mass
    ``y_hat = x0 + r_hat n'`` with ``n'`` unit noise again, as in ``ancestral``), then one
    ``edm_heun`` step from ``r_hat`` to ``r_s``. ``g = min(S_churn / N, sqrt 2 - 1)`` on the
    steps with ``S_tmin <= r_t <= S_tmax`` (``N`` steps; noise levels on the shared axis), else 0,
    and ``r_hat`` is capped at the grid's top. With ``S_churn = 0`` it is ``edm_heun``. Offered
    where :attr:`Process.has_churn` (the fresh noise's law does not depend on the state);
  - ``dpmpp_2m``: the second-order multistep DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++",
    Alg. 2) in ``lambda = -log r``: ``D' = (1 + 1/(2q)) D_i - D_{i-1}/(2q)``,
    ``q = h_{i-1}/h_i``, then the ``ddim`` step with ``D'`` (first step: ``ddim``);
  - ``dpmpp_2m_sde``: its stochastic counterpart, SDE-DPM-Solver++(2M) (Lu et al. 2022,
    "DPM-Solver++", §4 / App. B, the midpoint form): the ``ancestral`` step below with ``D'`` in
    place of ``D``. In ``y`` units the ancestral step is ``y_s = a^2 y_t + (1 - a^2) D + r_s b z``
    for every ``alpha`` (``a = r_s/r_t = e^{-h}``), the exact solution of
    ``dy = 2 (D - y) d lambda + noise`` with ``D`` frozen over the step; with ``D`` linear in
    ``lambda`` through the previous evaluation the drift integral gains
    ``(1 - a^2) (D_i - D_{i-1}) / (2q)``, the same ``D'``. The noise term is unchanged, so it stays
    exact for point-mass data (``D_i = D_{i-1}``) and draws the family's own noise;
  - ``ancestral``: ``y_s = D + r_s (a n_hat + b z)`` with ``n_hat = (y_t - D)/r_t``,
    ``a = r_s/r_t`` and ``b = (1 - a^alpha)^{1/alpha}``, ``z`` the family's own unit noise
    (:meth:`Process.ancestral_noise`) of stability ``alpha`` (2 for Gaussian noise): for Gaussian
    noise the DDPM posterior step (Ho et al. 2020, eq. 7), for alpha-stable noise the same budget of
    scale^alpha (a sum ``a n + b z`` of independent unit SaS is unit SaS);
    exact for point-mass data.

  - ``restart``: Restart sampling (Xu et al. 2023, "Restart Sampling for Improving Generative
    Processes", Alg. 1) with ``edm_heun`` steps, 2 NFE per step. The main grid is integrated
    with the deterministic rule; at its point ``r_j`` below ``r_hi`` nearest (in ``log r``) to
    the restart interval's bottom ``r_lo``, ``K`` times: raise the noise level from ``r_j`` to
    ``r_hi`` with fresh unit noise, ``y <- y + (r_hi^alpha - r_j^alpha)^{1/alpha} z`` (the
    forward kernel from ``r_j`` to ``r_hi``: exact for a point mass, as in ``edm_sde``), and
    integrate back to ``r_j`` on a rho-spaced grid of ``restart_nfe / 2`` steps; then finish the
    main grid. The noise injections contract the errors accumulated above the interval (the
    paper's argument; one restart shrinks a Gaussian variance error by ``(v + r_j^2)/(v +
    r_hi^2)``), while every step is an ODE step. ``K = 0`` is ``edm_heun``. Offered where
    :attr:`Process.has_churn`. NFE: ``2 x main steps + K x restart_nfe (+ 1 final)``;
  - ``restart_2m``: the same with ``dpmpp_2m`` steps (1 NFE each; the multistep history restarts
    after each noise injection). ``K = 0`` is ``dpmpp_2m``.

  This flow differs from a family's own probability-flow ODE where the noise is not Gaussian (LIM's
  fractional PF-ODE moves a point along another path with the same marginals); both are offered.
  jump is not location-scale, but its own PF-ODE has the same form, ``dy/dr = r_hat`` with the
  velocity head ``r_hat`` (:meth:`lim_jax.processes.jump.JumpProcess.flow_denoise`): the
  deterministic ``ddim`` (there identical to ``ei_ode``), ``edm_heun`` and ``dpmpp_2m`` integrate
  it with ``D = y - r r_hat``; the stochastic ones need a fixed noise law and are not offered.
* any name in ``process.trajectory_samplers()``: a family sampler that needs per-trajectory latents
  and builds its own loop (DLPM's ``dlpm``, which draws the stable mixing variables of the whole
  chain up front).

NFE is counted honestly: ``make_sampler`` returns the number of network evaluations it will spend,
which is ``nfe`` rounded down to a multiple of the evaluations per step. With ``final_denoise`` the
last evaluation returns ``E[x0 | x_{t_min}]`` (:meth:`Process.denoise`) instead of the state at
``t_min``: EDM's last step to ``sigma = 0`` (Karras et al. 2022, Alg. 1: 18 Heun steps are 35 NFE),
counted as one NFE.
"""

from __future__ import annotations

import dataclasses
import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np

from lim_jax import precondition
from lim_jax.processes import grids
from lim_jax.processes.base import Process, Sampler, bcast

Array = jax.Array
GENERIC = ("euler", "heun", "em", "pc")
DENOISER_SAMPLERS = ("ddim", "edm_heun", "edm_sde", "dpmpp_2m", "dpmpp_2m_sde", "ancestral")
FLOW_SAMPLERS = ("ddim", "edm_heun", "dpmpp_2m")  # deterministic: Process.has_flow_form suffices
RESTART_SAMPLERS = ("restart", "restart_2m")  # Xu et al. 2023; where Process.has_churn
EVALS_PER_STEP = {"heun": 2, "pc": 2, "edm_heun": 2, "edm_sde": 2, "restart": 2}
MIN_STEPS = {"dpmpp_2m": 2, "dpmpp_2m_sde": 2}  # a multistep method needs a previous step
time_grid = grids.time_grid  # re-exported: the uniform_t grid


@dataclasses.dataclass(frozen=True)
class Churn:
  """``edm_sde``'s noise injection (Karras et al. 2022, Alg. 2; ``sampling.s_*``).

  The defaults are EDM's ImageNet-64 setting (Table 5: ``S_churn = 40``, ``[S_tmin, S_tmax] =
  [0.05, 50]``) with ``S_noise = 1`` (their 1.003 offsets one network's error; 1 keeps the
  sampler exact for point-mass data). The best amount depends on the model and the NFE (EDM
  tunes it per model; benchmarks/RESULTS.md, "The EDM baseline").

  Attributes:
    s_churn: total churn; each step in the window raises the noise level by the factor
      ``1 + min(s_churn / N, sqrt 2 - 1)``.
    s_tmin, s_tmax: the window of noise levels ``r_t`` (shared axis) where noise is added.
    s_noise: scale of the added noise (> 1 offsets a network that removes too much noise).
  """

  s_churn: float = 40.0
  s_tmin: float = 0.05
  s_tmax: float = 50.0
  s_noise: float = 1.0

  def gamma(self, num_steps: int) -> float:
    """The per-step factor ``g`` of ``r_hat = r_t (1 + g)`` inside the window."""
    return min(self.s_churn / max(num_steps, 1), math.sqrt(2.0) - 1.0)


@dataclasses.dataclass(frozen=True)
class Restart:
  """The ``restart`` / ``restart_2m`` settings (Xu et al. 2023, Alg. 1; ``sampling.restart_*``).

  The defaults are the paper's CIFAR-10 setting (EDM's VP model, 43 NFE: 18 Heun steps, then
  ``K = 2`` restarts of 2 Heun steps on ``sigma`` in [0.06, 0.30]) with the interval stated
  relative to the data's scale: [0.12, 0.6] x ``model.sigma_data`` (CIFAR-10's ``sigma_data`` is
  0.5; :func:`restart_from_config` applies the factor, this class holds absolute levels).

  Attributes:
    k: restarts (0: the plain deterministic rule).
    nfe: network evaluations per restart (a multiple of the rule's evaluations per step).
    r_lo, r_hi: the restart interval on the shared noise-level axis, ``0 < r_lo < r_hi``.
  """

  k: int = 2
  nfe: int = 4
  r_lo: float = 0.12
  r_hi: float = 0.6

  def steps(self, sampler: str) -> int:
    """Steps of one restart's descent from ``r_hi``."""
    return self.nfe // EVALS_PER_STEP.get(sampler, 1)


def restart_nfe(sampler: str, restart: Restart | None) -> int:
  """The evaluations ``sampler`` spends on restarts (0 for every other sampler)."""
  if sampler not in RESTART_SAMPLERS:
    return 0
  restart = restart or Restart()
  return restart.k * restart.nfe


def check_restart(sampler: str, restart: Restart) -> None:
  """Refuses restart settings ``sampler`` cannot use, naming the ``sampling`` field."""
  per = EVALS_PER_STEP.get(sampler, 1)
  if not (isinstance(restart.k, numbers.Integral) and restart.k >= 0):
    raise ValueError(f"sampling.restart_k must be an integer >= 0, got {restart.k!r}")
  if not (isinstance(restart.nfe, numbers.Integral) and restart.nfe >= per
          and restart.nfe % per == 0):
    raise ValueError(f"sampling.restart_nfe must be a positive multiple of {per} for {sampler!r} "
                     f"({per} evaluation(s) per step), got {restart.nfe!r}")
  if not 0 < restart.r_lo < restart.r_hi:
    raise ValueError(f"sampling.restart_min must be > 0 and below sampling.restart_max, got "
                     f"[{restart.r_lo:g}, {restart.r_hi:g}] (in noise level)")


def restart_schedule(grid, levels, restart: Restart, restart_grid) -> tuple:
  """The restart sampler's steps as arrays ``(t_from, t_cur, t_next, raise)``, each ``(L,)``.

  ``grid`` ``(M + 1,)`` is the main grid in time, ``levels`` its noise levels (numpy), and
  ``restart_grid(r_j) -> (n + 1,)`` the times of one restart's descent from ``r_hi`` to ``r_j``.
  A step moves the state from ``t_from`` to ``t_cur`` (adding fresh noise when ``raise``; otherwise
  ``t_from = t_cur``) and then integrates from ``t_cur`` to ``t_next``. The restart point ``j`` is
  the main grid point (after the first) below ``r_hi`` nearest ``r_lo`` in ``log r`` (Xu et al.
  move ``t_min`` to the nearest main grid point likewise).
  """
  grid, levels = np.asarray(grid, np.float64), np.asarray(levels, np.float64)
  below = levels[1:] < restart.r_hi
  if restart.k > 0 and not below.any():
    raise ValueError(f"sampling.restart_max = {restart.r_hi:g} must lie above the sampling "
                     f"range's bottom r = {levels[-1]:g}: no main grid point to restart from")
  distance = np.where(below, np.abs(np.log(levels[1:]) - math.log(restart.r_lo)), np.inf)
  j = 1 + int(np.argmin(distance))
  rows = [(grid[i], grid[i], grid[i + 1], False) for i in range(j)]
  if restart.k > 0:
    inner = np.asarray(restart_grid(float(levels[j])), np.float64)
    inner[-1] = grid[j]
    for _ in range(restart.k):
      rows.append((grid[j], inner[0], inner[1], True))
      rows += [(inner[s], inner[s], inner[s + 1], False) for s in range(1, len(inner) - 1)]
  rows += [(grid[i], grid[i], grid[i + 1], False) for i in range(j, len(grid) - 1)]
  t_from, t_cur, t_next, flag = (np.asarray(c) for c in zip(*rows))
  return (jnp.asarray(t_from, jnp.float32), jnp.asarray(t_cur, jnp.float32),
          jnp.asarray(t_next, jnp.float32), jnp.asarray(flag, bool))


def restart_plan(process: Process, sampler: str, main_grid, restart: Restart,
                 rho: float = 7.0) -> tuple:
  """:func:`restart_schedule` on ``main_grid`` with each restart's descent rho-spaced in the noise
  level (``sampling.rho``, as EDM's grid), ``restart.steps(sampler)`` steps from ``r_hi``."""
  return restart_schedule(
      main_grid, process.noise_level(main_grid), restart,
      lambda r_j: process.time_at_noise_level(
          grids.power_grid(restart.r_hi, r_j, restart.steps(sampler), rho)))


def check_restart_config(config, process: Process, nfe: int | None = None) -> None:
  """``config_lib.validate``'s check of a restart sampler: the settings and the restart point on
  the run's own main grid at ``nfe`` (default ``sampling.nfe``), before anything compiles."""
  sp = config.sampling
  restart = restart_from_config(config)
  check_restart(sp.sampler, restart)
  final = bool(sp.get("final_denoise", False))
  nfe = sp.nfe if nfe is None else nfe
  num_steps = (nfe - int(final) - restart_nfe(sp.sampler, restart)) // EVALS_PER_STEP.get(
      sp.sampler, 1)
  if num_steps < 1:
    return  # the nfe check names sampling.nfe
  span = sampling_span(process, sp.sampler, float(sp.get("noise_min", 0.0)),
                       float(sp.get("noise_max", 0.0)))
  rho = float(sp.get("rho", 7.0))
  main = grids.make_grid(process, num_steps, sp.get("grid", "uniform_t"), rho, sp.time_power,
                         span)
  restart_plan(process, sp.sampler, main, restart, rho)


def sampling_span(process: Process, sampler: str, noise_min: float = 0.0,
                  noise_max: float = 0.0) -> grids.Range:
  """:func:`lim_jax.processes.grids.sampling_range` for ``sampler``: a trajectory sampler (DLPM's
  ``dlpm``) draws its own prior at ``t_max`` and ends at ``t_min``, so it refuses a narrower span.
  ``config_lib.validate`` calls this too, so a bad span is refused before anything compiles."""
  span = grids.sampling_range(process, noise_min, noise_max)
  if (process.sampler_aliases().get(sampler, sampler) in process.trajectory_samplers()
      and span != grids.sampling_range(process)):
    raise ValueError(f"sampling.noise_min / noise_max are not supported by {sampler!r} (it draws "
                     "its own prior at t_max and ends at t_min); leave them 0")
  return span


def available(process: Process) -> tuple[str, ...]:
  """Sampler names valid for ``process``."""
  names = ["euler", "heun", "em"] + (["pc"] if process.has_corrector() else [])
  if process.location_scale:
    names += [n for n in DENOISER_SAMPLERS
              if (n not in ("ancestral", "dpmpp_2m_sde") or process.has_ancestral)
              and (n != "edm_sde" or process.has_churn)]
    names += list(RESTART_SAMPLERS) if process.has_churn else []
  elif process.has_flow_form:
    names += list(FLOW_SAMPLERS)
  names += [n for n in process.extra_steps() if n not in names]
  names += [n for n in process.sampler_aliases() if n not in names]
  return tuple(names) + tuple(process.trajectory_samplers())


def min_nfe(sampler: str, final_denoise: bool = False, restart: Restart | None = None) -> int:
  """The smallest ``sampling.nfe`` the sampler accepts (restarts included, :class:`Restart`)."""
  return (EVALS_PER_STEP.get(sampler, 1) * MIN_STEPS.get(sampler, 1)) + int(final_denoise) + (
      restart_nfe(sampler, restart))


def _axpy(a: Array, x, y):
  """``a * x + y`` over pytrees, ``a`` per example ``(B,)``."""
  return jax.tree.map(lambda xi, yi: bcast(a, xi) * xi + yi, x, y)


def make_sampler(process: Process, apply_fn, sampler: str, nfe: int, *, snr: float = 0.16,
                 time_power: float = 1.0, grid: str = "uniform_t", rho: float = 7.0,
                 precond: precondition.Preconditioning = precondition.Preconditioning(),
                 final_denoise: bool = False, churn: Churn | None = None,
                 restart: Restart | None = None, noise_min: float = 0.0,
                 noise_max: float = 0.0, batch_sharding=None,
                 save_trajectory: bool = False) -> Sampler:
  """Builds a jitted sampler.

  Args:
    process: the noise family.
    apply_fn: the raw network ``apply_fn(params, x, t, train=False, rng=None) -> out``.
    sampler: a name from :func:`available`.
    nfe: network-evaluation budget (including the final denoising evaluation, if any).
    snr: corrector signal-to-noise ratio (``pc`` only).
    time_power: exponent ``p`` of the ``uniform_t`` grid (1 = uniform).
    grid: ``sampling.grid`` (:mod:`lim_jax.processes.grids`).
    rho: exponent of the ``edm`` grid.
    precond: the network parameterisation the model was trained with.
    final_denoise: spend the last evaluation on ``E[x0 | x_{t_min}]`` (module docstring).
    churn: the ``edm_sde`` settings (default :class:`Churn`).
    restart: the ``restart`` / ``restart_2m`` settings (default :class:`Restart`).
    noise_min, noise_max: a shared sampling range in the noise level (> 0: raise the grid's
      bottom / lower its top, :func:`lim_jax.processes.grids.sampling_range`); below its own top
      the sampler starts from :meth:`Process.prior_at` there.
    batch_sharding: optional sharding of the batch axis (samples spread over devices).
    save_trajectory: if True the sampler returns ``(x, trajectory)`` with the data part of the state
      after every step, shape ``(num_steps, B, *data_shape)``.
  """
  names = available(process)
  if sampler not in names:
    why = process.missing_samplers().get(sampler)
    raise ValueError(f"sampling.sampler must be one of {names} for family "
                     f"{process.family!r}" + (f" ({why})" if why else "") + f", got {sampler!r}")
  if grid not in grids.GRIDS:
    raise ValueError(f"sampling.grid must be one of {grids.GRIDS}, got {grid!r}")
  apply_fn = precondition.wrap(process, apply_fn, precond)
  sampler = process.sampler_aliases().get(sampler, sampler)

  span = sampling_span(process, sampler, noise_min, noise_max)

  def grid_fn(num_steps: int) -> Array:
    return grids.make_grid(process, num_steps, grid, rho, time_power, span)

  custom = process.trajectory_samplers()
  spare = 1 if final_denoise else 0
  if sampler in custom:
    inner = custom[sampler](apply_fn, nfe - spare, grid_fn=grid_fn,
                            batch_sharding=batch_sharding, save_trajectory=save_trajectory)
    return _with_final_denoise(process, apply_fn, inner) if final_denoise else inner
  per_step = EVALS_PER_STEP.get(sampler, 1)
  restart = restart or Restart()
  if sampler in RESTART_SAMPLERS:
    check_restart(sampler, restart)
  extra_nfe = restart_nfe(sampler, restart)
  num_steps = (nfe - spare - extra_nfe) // per_step  # main-grid steps
  if nfe < min_nfe(sampler, final_denoise, restart):
    raise ValueError(f"sampling.nfe={nfe} is too small for {sampler!r} ({per_step} per step, "
                     f"at least {MIN_STEPS.get(sampler, 1)} step(s)"
                     + (f" + {extra_nfe} on restarts" if extra_nfe else "")
                     + (" + 1 final denoising evaluation" if final_denoise else "") + ")")

  def net(params, state, t):
    return apply_fn(params, process.model_input(state, t), t, train=False, rng=None)

  extra = process.extra_steps()

  def denoised(params, state, t):
    """``(y, D)``: the channel in denoiser units and the flow's ``D`` at ``state``
    (:meth:`Process.flow_denoise`: ``E[x0 | x_t]`` for the location-scale families)."""
    channel = process.model_input(state, t)
    y = channel / bcast(process.signal_scale(t), channel)
    return y, process.flow_denoise(state, t, net(params, state, t))

  def move(state, t, y):
    """The state at ``t`` whose channel is ``gamma(t) y`` (latents such as GFDM's kept)."""
    return process.with_channel(state, t, bcast(process.signal_scale(t), y) * y)

  def heun(params, state, y, d, r_t, r_s, t_next):
    """Heun on ``dy/dr = n(y, r) = (y - D)/r`` from ``(y, D)`` at ``r_t`` to ``r_s``, written as
    ``y_s = D + r_s n1 + (r_s - r_t)(n2 - n1)/2`` (the same update as ``y + (r_s - r_t)(n1 +
    n2)/2``, without cancelling ``y`` against ``D`` when ``r_s << r_t``)."""
    n1 = (y - d) / bcast(r_t, y)
    guess = d + bcast(r_s, y) * n1
    _, d2 = denoised(params, move(state, t_next, guess), t_next)
    n2 = (guess - d2) / bcast(r_s, y)
    return move(state, t_next, guess + bcast(0.5 * (r_s - r_t), y) * (n2 - n1))

  churn = churn or Churn()
  churn_gamma = churn.gamma(num_steps)
  r_top = span.r_hi

  def churned(params, key, state, t_cur, r_t):
    """``edm_sde``'s first half: the state at ``r_hat = r_t (1 + g)`` with fresh noise added, and
    ``(state, y_hat, D(y_hat), r_hat)`` for the Heun step (module docstring)."""
    inside = (r_t >= churn.s_tmin) & (r_t <= churn.s_tmax)
    r_hat = jnp.where(inside, jnp.minimum(r_t * (1.0 + churn_gamma), r_top), r_t)
    t_hat = process.time_at_noise_level(r_hat)
    channel = process.model_input(state, t_cur)
    y = channel / bcast(process.signal_scale(t_cur), channel)
    alpha = process.noise_stability
    b = churn.s_noise * jnp.maximum(r_hat**alpha - r_t**alpha, 0.0) ** (1.0 / alpha)
    y_hat = y + bcast(b, y) * process.ancestral_noise(key, y)
    state = move(state, t_hat, y_hat)
    _, d = denoised(params, state, t_hat)
    return state, y_hat, d, r_hat

  def multistep(d, prev, r_t, r_s, fresh=False):
    """DPM-Solver++(2M)'s ``D' = (1 + 1/(2q)) D_i - D_{i-1}/(2q)``, ``q = h_{i-1}/h_i`` in
    ``lambda = -log r``, and the next carry. ``prev = (D_{i-1}, h_{i-1}, whether it exists)``;
    the first step, and a step right after a restart's noise injection (``fresh``), use ``D``."""
    d_prev, h_prev, has_prev = prev
    h = jnp.log(r_t / r_s)
    q = bcast(h_prev / h, d)
    corrected = (1.0 + 0.5 / q) * d - (0.5 / q) * d_prev
    use = jnp.logical_and(has_prev, jnp.logical_not(fresh))
    return jnp.where(use, corrected, d), (d, h, jnp.ones((), bool))

  def denoiser_step(params, key, state, prev, t_cur, t_next):
    r_t, r_s = process.noise_level(t_cur), process.noise_level(t_next)
    if sampler == "edm_sde":
      return heun(params, *churned(params, key, state, t_cur, r_t), r_s, t_next), prev
    y, d = denoised(params, state, t_cur)
    ratio = bcast(r_s / r_t, y)
    if sampler == "ddim":
      return move(state, t_next, d + ratio * (y - d)), prev
    if sampler == "edm_heun":
      return heun(params, state, y, d, r_t, r_s, t_next), prev
    if sampler == "ancestral":
      return ancestral(key, state, y, d, r_t, r_s, t_next), prev
    d_eff, carry = multistep(d, prev, r_t, r_s)
    if sampler == "dpmpp_2m_sde":
      return ancestral(key, state, y, d_eff, r_t, r_s, t_next), carry
    return move(state, t_next, d_eff + ratio * (y - d_eff)), carry

  def ancestral(key, state, y, d, r_t, r_s, t_next):
    """``y_s = d + r_s (a n_hat + b z)``, ``n_hat = (y - d)/r_t``, ``a = r_s/r_t``,
    ``b = (1 - a^alpha)^{1/alpha}``, ``z`` the family's own unit noise (module docstring)."""
    n_hat = (y - d) / bcast(r_t, y)
    alpha = process.noise_stability
    b = bcast((-jnp.expm1(alpha * jnp.log(r_s / r_t))) ** (1.0 / alpha), y)
    z = process.ancestral_noise(key, n_hat)
    return move(state, t_next, d + bcast(r_s, y) * (bcast(r_s / r_t, y) * n_hat + b * z))

  def restart_step(params, key, state, prev, t_from, t_cur, t_next, lift):
    """One step of ``restart`` / ``restart_2m``: where ``lift``, first raise the noise level from
    ``r(t_from)`` to ``r(t_cur)`` with fresh unit noise (the forward kernel), then one ``edm_heun``
    or ``dpmpp_2m`` step from ``t_cur`` to ``t_next`` (module docstring)."""
    r_from, r_t, r_s = (process.noise_level(t) for t in (t_from, t_cur, t_next))
    channel = process.model_input(state, t_from)
    y = channel / bcast(process.signal_scale(t_from), channel)
    alpha = process.noise_stability
    b = jnp.where(lift, jnp.maximum(r_t**alpha - r_from**alpha, 0.0) ** (1.0 / alpha), 0.0)
    y = y + bcast(b, y) * process.ancestral_noise(key, y)
    state = move(state, t_cur, y)
    y, d = denoised(params, state, t_cur)
    if sampler == "restart":
      return heun(params, state, y, d, r_t, r_s, t_next), prev
    d_eff, carry = multistep(d, prev, r_t, r_s, fresh=lift)
    return move(state, t_next, d_eff + bcast(r_s / r_t, y) * (y - d_eff)), carry

  def step(params, key, state, t_cur, t_next):
    if sampler == "euler":
      drift = process.ode_drift(state, t_cur, net(params, state, t_cur))
      return _axpy(t_next - t_cur, drift, state)
    if sampler == "heun":
      h = t_next - t_cur
      d1 = process.ode_drift(state, t_cur, net(params, state, t_cur))
      guess = _axpy(h, d1, state)
      d2 = process.ode_drift(guess, t_next, net(params, guess, t_next))
      return _axpy(0.5 * h, jax.tree.map(jnp.add, d1, d2), state)
    if sampler == "em":
      return process.sde_step(key, state, t_cur, t_next, net(params, state, t_cur))
    if sampler == "pc":
      k_pred, k_corr = jax.random.split(key)
      state = process.sde_step(k_pred, state, t_cur, t_next, net(params, state, t_cur))
      return process.corrector_step(k_corr, state, t_next, net(params, state, t_next), snr)
    return extra[sampler](key, state, t_cur, t_next, net(params, state, t_cur))

  if sampler in RESTART_SAMPLERS:
    schedule = restart_plan(process, sampler, grid_fn(num_steps), restart, rho)

  def sample(params, key, shape):
    k_prior, k_steps = jax.random.split(key)
    if span.starts_below_the_top(process):
      state = process.prior_at(k_prior, shape, jnp.full((shape[0],), span.t_hi))
    else:
      state = process.prior(k_prior, shape)
    if batch_sharding is not None:
      state = jax.lax.with_sharding_constraint(state, batch_sharding)
    grid = grid_fn(num_steps)
    batch = shape[0]

    data_shape = tuple(shape)

    def body(carry, xs):
      state, prev = carry
      i, t_from, t_cur, t_next, lift = xs
      full = lambda v: jnp.full((batch,), v)  # noqa: E731
      k = jax.random.fold_in(k_steps, i)
      if sampler in RESTART_SAMPLERS:
        state, prev = restart_step(params, k, state, prev, full(t_from), full(t_cur),
                                   full(t_next), lift)
      elif sampler in DENOISER_SAMPLERS:
        state, prev = denoiser_step(params, k, state, prev, full(t_cur), full(t_next))
      else:
        state = step(params, k, state, full(t_cur), full(t_next))
      return (state, prev), (process.readout(state) if save_trajectory else None)

    if sampler in RESTART_SAMPLERS:
      xs = schedule
    else:
      xs = (grid[:-1], grid[:-1], grid[1:], jnp.zeros((num_steps,), bool))
    prev = (jnp.zeros(data_shape), jnp.ones((batch,)), jnp.zeros((), bool))
    (state, _), traj = jax.lax.scan(body, (state, prev),
                                    (jnp.arange(xs[0].shape[0]),) + tuple(xs))
    if final_denoise:
      t_end = jnp.full((batch,), grid[-1])
      x = process.denoise(state, t_end, net(params, state, t_end))
    else:
      x = process.readout(state)
    return (x, traj) if save_trajectory else x

  return Sampler(sample=jax.jit(sample, static_argnums=2),
                 nfe=num_steps * per_step + extra_nfe + spare,
                 num_steps=num_steps + restart.k * restart.steps(sampler) * (extra_nfe > 0))


def _with_final_denoise(process: Process, apply_fn, inner: Sampler) -> Sampler:
  """A trajectory sampler followed by one denoising evaluation at ``t_min`` (on the data state)."""

  def sample(params, key, shape):
    out = inner.sample(params, key, shape)
    x, traj = out if isinstance(out, tuple) else (out, None)
    t_end = jnp.full((shape[0],), process.t_min)
    x = process.denoise(x, t_end, apply_fn(params, process.model_input(x, t_end), t_end,
                                           train=False, rng=None))
    return x if traj is None else (x, traj)

  return Sampler(sample=jax.jit(sample, static_argnums=2), nfe=inner.nfe + 1,
                 num_steps=inner.num_steps)


def sampler_from_config(config, process: Process, apply_fn, sampler: str | None = None,
                        nfe: int | None = None, batch_sharding=None,
                        save_trajectory: bool = False) -> Sampler:
  """:func:`make_sampler` with the run's ``sampling.*`` and ``model.*`` settings (``sampler`` and
  ``nfe`` override ``sampling.sampler`` / ``sampling.nfe``)."""
  sp = config.sampling
  return make_sampler(
      process, apply_fn, sampler or sp.sampler, nfe or sp.nfe, snr=sp.snr,
      time_power=sp.time_power, grid=sp.get("grid", "uniform_t"), rho=sp.get("rho", 7.0),
      precond=precondition.from_config(config.model, process),
      final_denoise=bool(sp.get("final_denoise", False)), churn=churn_from_config(sp),
      restart=restart_from_config(config),
      noise_min=float(sp.get("noise_min", 0.0)), noise_max=float(sp.get("noise_max", 0.0)),
      batch_sharding=batch_sharding,
      save_trajectory=save_trajectory)


def churn_from_config(sp) -> Churn:
  """:class:`Churn` from ``sampling.s_churn``, ``s_tmin``, ``s_tmax`` (``<= 0``: no upper end),
  ``s_noise`` (absent fields take the class defaults)."""
  d = Churn()
  s_tmax = float(sp.get("s_tmax", d.s_tmax))
  return Churn(s_churn=float(sp.get("s_churn", d.s_churn)),
               s_tmin=float(sp.get("s_tmin", d.s_tmin)),
               s_tmax=s_tmax if s_tmax > 0 else math.inf,
               s_noise=float(sp.get("s_noise", d.s_noise)))


def restart_from_config(config) -> Restart:
  """:class:`Restart` from ``sampling.restart_k``, ``restart_nfe`` and the interval
  ``sampling.restart_min`` / ``restart_max``, which is in units of ``model.sigma_data`` (absent
  fields take the class defaults)."""
  sp, d = config.sampling, Restart()
  scale = float(config.model.get("sigma_data", 1.0))
  return Restart(k=sp.get("restart_k", d.k), nfe=sp.get("restart_nfe", d.nfe),
                 r_lo=float(sp.get("restart_min", d.r_lo)) * scale,
                 r_hi=float(sp.get("restart_max", d.r_hi)) * scale)
