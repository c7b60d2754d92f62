"""Generic training loss built from a Process and a model.

``loss(params) = E_{x0, t, noise} [ w(t) * rho(res) ]`` where the Process supplies ``x_t``, the
target and ``w`` (:meth:`Process.perturb`), ``res`` is the residual of the (preconditioned) network
against the target (:func:`lim_jax.precondition.normalized_residual`: ``model - target`` for the
``'eps'`` parameterisation, the denoiser error in units of its optimal spread for ``'x0'`` and
``'edm'``, the same rule for every family) and ``rho`` is a per-example penalty from
:data:`PENALTIES`:

* ``l2``: ``mean_d r_d^2`` (denoising score matching, Vincent 2011; Ho et al. 2020 eq. 14).
* ``huber``: ``mean_d huber_delta(r_d)`` (LIM supplementary code; robust to infinite-variance
  targets).
* ``l2_norm``: ``|r|_2 / sqrt(D)``, the non-squared norm of DLPM (Shariatian et al. 2025), whose
  gradient is bounded however heavy the target's tails are.

Training times (``training.noise_levels``, :func:`training_times`), drawn on the shared noise-level
axis ``r`` of :mod:`lim_jax.processes.base` so every family gets the same allocation:

* ``uniform_t``: ``t ~ U(t_min_train, t_max)`` in the family's own clock (as in the papers);
* ``lognormal``: ``log r ~ N(p_mean, p_std^2)`` (EDM, Karras et al. 2022, §5: -1.2, 1.2), truncated
  to the family's range ``[r(t_min_train), r(t_max)]`` (drawn exactly, by inverse CDF);
* ``loguniform``: ``log r`` uniform on that range;

and ``t = time_at_noise_level(r)``.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from lim_jax import precondition
from lim_jax.processes.base import Process

Array = jax.Array
ApplyFn = Callable[..., Array]


def _flat(r: Array) -> Array:
  return r.reshape(r.shape[0], -1)


def _l2(r: Array, delta: float) -> Array:
  del delta
  return jnp.mean(_flat(r) ** 2, axis=-1)


def _huber(r: Array, delta: float) -> Array:
  return jnp.mean(optax.huber_loss(_flat(r), delta=delta), axis=-1)


def _l2_norm(r: Array, delta: float) -> Array:
  del delta
  flat = _flat(r)
  # sqrt(. + tiny) keeps the gradient finite at r = 0.
  return jnp.sqrt(jnp.mean(flat**2, axis=-1) + 1e-12)


PENALTIES: dict[str, Callable[[Array, float], Array]] = {
    "l2": _l2, "huber": _huber, "l2_norm": _l2_norm}


NOISE_LEVELS = ("uniform_t", "lognormal", "loguniform")


class Allocation(NamedTuple):
  """Static settings of the training-time distribution (``training.noise_levels`` etc.)."""

  noise_levels: str = "uniform_t"
  p_mean: float = -1.2
  p_std: float = 1.2


def allocation_from_config(training_cfg) -> Allocation:
  return Allocation(noise_levels=training_cfg.get("noise_levels", "uniform_t"),
                    p_mean=float(training_cfg.get("p_mean", -1.2)),
                    p_std=float(training_cfg.get("p_std", 1.2)))


def validate_allocation(training_cfg) -> None:
  """Raises ``ValueError`` naming the bad ``training.*`` allocation field."""
  kind = training_cfg.get("noise_levels", "uniform_t")
  if kind not in NOISE_LEVELS:
    raise ValueError(f"training.noise_levels must be one of {NOISE_LEVELS}, got {kind!r}")
  for name, positive in (("p_mean", False), ("p_std", True)):
    v = training_cfg.get(name, 1.0)
    ok = (not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
          and (v > 0 or not positive))
    if not ok:
      raise ValueError(f"training.{name} must be a finite number{' > 0' if positive else ''}, "
                       f"got {v!r}")


def sample_times(process: Process, key: jax.Array, batch: int,
                 allocation: Allocation = Allocation()) -> Array:
  """Training times ``(batch,)`` under ``allocation`` (module docstring); pure and jit-able."""
  if allocation.noise_levels == "uniform_t":
    return process.sample_time(key, batch)
  r_lo, r_hi = process.noise_level_range()
  log_lo, log_hi = math.log(r_lo), math.log(r_hi)
  if allocation.noise_levels == "lognormal":
    lower = (log_lo - allocation.p_mean) / allocation.p_std
    upper = (log_hi - allocation.p_mean) / allocation.p_std
    z = jax.random.truncated_normal(key, lower, upper, (batch,))
    log_r = allocation.p_mean + allocation.p_std * z
  else:
    log_r = jax.random.uniform(key, (batch,), minval=log_lo, maxval=log_hi)
  t = process.time_at_noise_level(jnp.exp(log_r))
  return jnp.clip(t, process.t_min_train, process.t_max)


def training_times(process: Process, training_cfg, key: jax.Array, batch: int) -> Array:
  """``(batch,)`` training times for ``training.noise_levels`` / ``p_mean`` / ``p_std``: the one
  function the train step, scripts and tests draw them with."""
  return sample_times(process, key, batch, allocation_from_config(training_cfg))


def make_loss_fn(process: Process, apply_fn: ApplyFn, loss: str = "l2",
                 huber_delta: float = 1.0, train: bool = True,
                 precond: precondition.Preconditioning = precondition.Preconditioning(),
                 allocation: Allocation = Allocation()):
  """Returns the pure ``loss_fn(params, key, x0, y=None) -> (loss, aux)``.

  Args:
    process: the noise family.
    apply_fn: the raw network ``apply_fn(params, x, t, train=..., rng=...) -> out``; it is wrapped
      by :func:`lim_jax.precondition.wrap` here.
    loss: a key of :data:`PENALTIES`.
    huber_delta: the Huber threshold (``huber`` only).
    train: passed to the model (dropout).
    precond: the network parameterisation (``model.parameterization`` and friends).
    allocation: the training-time distribution (``training.noise_levels`` and friends).

  ``x0`` has shape ``(B, *data_shape)``; ``y`` (``(B,)`` int, optional) are class labels passed to a
  class-conditional model; ``aux`` holds the per-example losses ``(B,)`` and times.
  """
  if loss not in PENALTIES:
    raise ValueError(f"training.loss must be one of {sorted(PENALTIES)}, got {loss!r}")
  penalty = PENALTIES[loss]
  net = precondition.wrap(process, apply_fn, precond)

  def loss_fn(params, key: jax.Array, x0: Array, y: Array | None = None):
    k_time, k_noise, k_model = jax.random.split(key, 3)
    t = sample_times(process, k_time, x0.shape[0], allocation)
    pert = process.perturb(k_noise, x0, t)
    cond = {} if y is None else {"y": y}
    out = net(params, pert.model_input, t, train=train, rng=k_model, **cond)
    residual = precondition.normalized_residual(process, precond, t, out, pert.target)
    per_example = pert.weight * penalty(residual, huber_delta)
    return jnp.mean(per_example), {"per_example": per_example, "t": t}

  return loss_fn


def loss_fn_from_config(config, process: Process, apply_fn: ApplyFn, train: bool = True):
  """:func:`make_loss_fn` with the run's ``training.*`` and ``model.*`` settings."""
  tr = config.training
  return make_loss_fn(process, apply_fn, tr.loss, tr.huber_delta, train=train,
                      precond=precondition.from_config(config.model, process),
                      allocation=allocation_from_config(tr))
