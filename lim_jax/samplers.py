"""Generic reverse-time integrators over a Process; the loop is one ``lax.scan`` inside ``jit``.

Time runs from ``t_max`` down to ``t_min`` on a uniform grid. Sampler names:

* ``euler``: explicit Euler on the probability-flow ODE ``d state/dt = process.ode_drift`` (1 NFE/step).
* ``heun``: Heun's 2nd-order method on the same ODE (Karras et al. 2022, Alg. 1); 2 NFE per step.
* ``em``: the family's reverse-SDE Euler–Maruyama step ``process.sde_step`` (1 NFE/step).
* ``pc``: predictor–corrector (score SDE, Song et al. 2021, Alg. 1): ``em`` predictor then one
  Langevin corrector ``process.corrector_step`` at the new time; 2 NFE per step.
* any name in ``process.extra_steps()``: a family rule with one evaluation per step (``ei_ode``,
  ``ei_sde`` exponential integrators, DLIM's ``dlim``, ...).
* any name in ``process.trajectory_samplers()``: a family sampler that needs per-trajectory latents
  and builds its own loop (DLPM's ``dlpm``, which draws the stable mixing variables of the whole
  chain up front).

NFE is counted honestly: ``make_sampler`` returns the number of network evaluations it will spend,
which is ``nfe`` rounded down to a multiple of the evaluations per step.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from lim_jax.processes.base import Process, bcast

Array = jax.Array
GENERIC = ("euler", "heun", "em", "pc")
EVALS_PER_STEP = {"heun": 2, "pc": 2}


def available(process: Process) -> tuple[str, ...]:
  """Sampler names valid for ``process``."""
  names = ["euler", "heun", "em"] + (["pc"] if process.has_corrector() else [])
  return tuple(names) + tuple(process.extra_steps()) + tuple(process.trajectory_samplers())


def time_grid(t_max: float, t_min: float, num_steps: int, power: float = 1.0) -> Array:
  """Descending grid ``t_max = t_0 > ... > t_N = t_min``, shape ``(N+1,)``.

  ``t_i = (t_max^{1/p} + i/N (t_min^{1/p} - t_max^{1/p}))^p``: ``p = 1`` is uniform (score SDE);
  ``p = 2`` is DDIM's "quadratic" spacing (Song et al. 2021a, App. D.2), ``p = 7`` the EDM grid
  (Karras et al. 2022, eq. 5) in time; larger ``p`` spends more steps near the data.
  """
  u = jnp.linspace(0.0, 1.0, num_steps + 1)
  lo, hi = t_min ** (1.0 / power), t_max ** (1.0 / power)
  grid = (hi + u * (lo - hi)) ** power
  return grid.at[0].set(t_max).at[-1].set(t_min)  # exact ends despite float32 powers


class Sampler(NamedTuple):
  """``sample(params, key, shape) -> x`` (jitted; ``shape`` static) and the NFE it spends."""

  sample: Callable[..., Array]
  nfe: int
  num_steps: int


def _axpy(a: Array, x, y):
  """``a * x + y`` over pytrees, ``a`` per example ``(B,)``."""
  return jax.tree.map(lambda xi, yi: bcast(a, xi) * xi + yi, x, y)


def make_sampler(process: Process, apply_fn, sampler: str, nfe: int, *, snr: float = 0.16,
                 time_power: float = 1.0, batch_sharding=None,
                 save_trajectory: bool = False) -> Sampler:
  """Builds a jitted sampler.

  Args:
    process: the noise family.
    apply_fn: ``apply_fn(params, x, t, train=False, rng=None) -> model_out``.
    sampler: a name from :func:`available`.
    nfe: network-evaluation budget.
    snr: corrector signal-to-noise ratio (``pc`` only).
    time_power: exponent ``p`` of :func:`time_grid` (1 = uniform).
    batch_sharding: optional sharding of the batch axis (samples spread over devices).
    save_trajectory: if True the sampler returns ``(x, trajectory)`` with the data part of the state
      after every step, shape ``(num_steps, B, *data_shape)``.
  """
  names = available(process)
  if sampler not in names:
    raise ValueError(f"sampling.sampler must be one of {names} for family "
                     f"{process.family!r}, got {sampler!r}")
  custom = process.trajectory_samplers()
  if sampler in custom:
    return custom[sampler](apply_fn, nfe, time_power=time_power, batch_sharding=batch_sharding,
                           save_trajectory=save_trajectory)
  per_step = EVALS_PER_STEP.get(sampler, 1)
  num_steps = nfe // per_step
  if num_steps < 1:
    raise ValueError(f"sampling.nfe={nfe} is too small for {sampler!r} ({per_step} per step)")

  def net(params, state, t):
    return apply_fn(params, process.model_input(state, t), t, train=False, rng=None)

  extra = process.extra_steps()

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

  def sample(params, key, shape):
    k_prior, k_steps = jax.random.split(key)
    state = process.prior(k_prior, shape)
    if batch_sharding is not None:
      state = jax.lax.with_sharding_constraint(state, batch_sharding)
    grid = time_grid(process.t_max, process.t_min, num_steps, time_power)
    batch = shape[0]

    def body(state, xs):
      i, t_cur, t_next = xs
      tc = jnp.full((batch,), t_cur)
      tn = jnp.full((batch,), t_next)
      state = step(params, jax.random.fold_in(k_steps, i), state, tc, tn)
      return state, (process.readout(state) if save_trajectory else None)

    state, traj = jax.lax.scan(body, state, (jnp.arange(num_steps), grid[:-1], grid[1:]))
    x = process.readout(state)
    return (x, traj) if save_trajectory else x

  return Sampler(sample=jax.jit(sample, static_argnums=2), nfe=num_steps * per_step,
                 num_steps=num_steps)
