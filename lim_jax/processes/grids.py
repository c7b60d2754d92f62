"""Sampling time grids, in the family's own clock or on the shared noise-level axis.

``sampling.grid``:

* ``uniform_t``: ``t_i = (t_max^{1/p} + i/N (t_min^{1/p} - t_max^{1/p}))^p`` in the family's own
  time (``p = sampling.time_power``; ``p = 1`` is the uniform grid of score SDE, ``p = 2`` DDIM's
  "quadratic" spacing, Song et al. 2021a, App. D.2);
* ``edm``: the same rule with exponent ``rho`` (``sampling.rho``, default 7) applied to the noise
  level ``r`` between ``r(t_max)`` and ``r(t_min)`` (Karras et al. 2022, eq. 5), mapped to time by
  :meth:`Process.time_at_noise_level`;
* ``loguniform``: ``log r`` uniform between the same ends.

Every grid is descending, has ``N + 1`` points, and starts and ends exactly at ``t_max`` and
``t_min``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from lim_jax.processes.base import Process

Array = jax.Array
GRIDS = ("uniform_t", "edm", "loguniform")


def power_grid(hi: float, lo: float, num_steps: int, power: float = 1.0) -> Array:
  """Descending ``(hi^{1/p} + i/N (lo^{1/p} - hi^{1/p}))^p``, ``i = 0..N``, shape ``(N+1,)``."""
  u = jnp.linspace(0.0, 1.0, num_steps + 1)
  a, b = lo ** (1.0 / power), hi ** (1.0 / power)
  return (b + u * (a - b)) ** power


def time_grid(t_max: float, t_min: float, num_steps: int, power: float = 1.0) -> Array:
  """The ``uniform_t`` grid (power ``p`` in time), exact ends despite float32 powers."""
  grid = power_grid(t_max, t_min, num_steps, power)
  return grid.at[0].set(t_max).at[-1].set(t_min)


def make_grid(process: Process, num_steps: int, grid: str = "uniform_t", rho: float = 7.0,
              time_power: float = 1.0) -> Array:
  """The descending time grid ``(num_steps + 1,)`` of ``process`` for ``sampling.grid``."""
  if grid == "uniform_t":
    return time_grid(process.t_max, process.t_min, num_steps, time_power)
  if grid not in GRIDS:
    raise ValueError(f"sampling.grid must be one of {GRIDS}, got {grid!r}")
  r_lo, r_hi = process.sampling_noise_range()
  if grid == "edm":
    levels = power_grid(r_hi, r_lo, num_steps, rho)
  else:
    levels = jnp.exp(jnp.linspace(math.log(r_hi), math.log(r_lo), num_steps + 1))
  times = process.time_at_noise_level(levels)
  return times.at[0].set(process.t_max).at[-1].set(process.t_min)
