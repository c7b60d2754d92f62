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
``t_min``, or, with a shared sampling range (``sampling.noise_min`` / ``noise_max``,
:func:`sampling_range`), at the times of those noise levels.
"""

from __future__ import annotations

import math
from typing import NamedTuple

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


class Range(NamedTuple):
  """A sampler's span: noise levels ``r_lo < r_hi`` and their times ``t_lo < t_hi``."""

  r_lo: float
  r_hi: float
  t_lo: float
  t_hi: float

  def starts_below_the_top(self, process: Process) -> bool:
    return self.t_hi < process.t_max


def sampling_range(process: Process, noise_min: float = 0.0, noise_max: float = 0.0) -> Range:
  """The sampler's span: the family's own ``[r(t_min), r(t_max)]``, with ``noise_min`` /
  ``noise_max > 0`` (``sampling.noise_min`` / ``noise_max``, one value for every family of a
  study) raising its bottom / lowering its top. Levels beyond the family's own range keep the
  family's end (it has no trained model there); an empty span is refused."""
  r_lo, r_hi = process.sampling_noise_range()
  t_lo, t_hi = float(process.t_min), float(process.t_max)
  with jax.ensure_compile_time_eval():
    if 0 < noise_max < r_hi:
      r_hi = float(noise_max)
      t_hi = float(process.time_at_noise_level(jnp.asarray([r_hi], jnp.float32))[0])
    if noise_min > r_lo:
      r_lo = float(noise_min)
      t_lo = float(process.time_at_noise_level(jnp.asarray([r_lo], jnp.float32))[0])
  if not (r_lo < r_hi and t_lo < t_hi):
    raise ValueError(f"sampling.noise_max must be above sampling.noise_min and the family's lowest "
                     f"noise level: the span [{r_lo:g}, {r_hi:g}] is empty")
  return Range(r_lo, r_hi, t_lo, t_hi)


def make_grid(process: Process, num_steps: int, grid: str = "uniform_t", rho: float = 7.0,
              time_power: float = 1.0, span: Range | None = None) -> Array:
  """The descending time grid ``(num_steps + 1,)`` of ``process`` for ``sampling.grid``, over
  ``span`` (default: the family's own :func:`sampling_range`)."""
  if grid not in GRIDS:
    raise ValueError(f"sampling.grid must be one of {GRIDS}, got {grid!r}")
  span = span or sampling_range(process)
  if grid == "uniform_t":
    return time_grid(span.t_hi, span.t_lo, num_steps, time_power)
  if grid == "edm":
    levels = power_grid(span.r_hi, span.r_lo, num_steps, rho)
  else:
    levels = jnp.exp(jnp.linspace(math.log(span.r_hi), math.log(span.r_lo), num_steps + 1))
  times = process.time_at_noise_level(levels)
  return times.at[0].set(span.t_hi).at[-1].set(span.t_lo)
