"""Generic training loss built from a Process and a model.

``loss(params) = E_{x0, t, noise} [ w(t) * rho(model(x_t, t) - target) ]`` where the Process supplies
``x_t``, the target and ``w`` (:meth:`Process.perturb`) and ``rho`` is a per-example penalty from
:data:`PENALTIES`:

* ``l2``: ``mean_d r_d^2`` (denoising score matching, Vincent 2011; Ho et al. 2020 eq. 14).
* ``huber``: ``mean_d huber_delta(r_d)`` (LIM supplementary code; robust to infinite-variance targets).
* ``l2_norm``: ``|r|_2 / sqrt(D)``, the non-squared norm of DLPM (Shariatian et al. 2025), whose
  gradient is bounded however heavy the target's tails are.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax

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


def make_loss_fn(process: Process, apply_fn: ApplyFn, loss: str = "l2",
                 huber_delta: float = 1.0, train: bool = True):
  """Returns the pure ``loss_fn(params, key, x0, y=None) -> (loss, aux)``.

  Args:
    process: the noise family.
    apply_fn: ``apply_fn(params, x, t, train=..., rng=...) -> model_out``.
    loss: a key of :data:`PENALTIES`.
    huber_delta: the Huber threshold (``huber`` only).
    train: passed to the model (dropout).

  ``x0`` has shape ``(B, *data_shape)``; ``y`` (``(B,)`` int, optional) are class labels passed to a
  class-conditional model; ``aux`` holds the per-example losses ``(B,)`` and times.
  """
  if loss not in PENALTIES:
    raise ValueError(f"training.loss must be one of {sorted(PENALTIES)}, got {loss!r}")
  penalty = PENALTIES[loss]

  def loss_fn(params, key: jax.Array, x0: Array, y: Array | None = None):
    k_time, k_noise, k_model = jax.random.split(key, 3)
    t = process.sample_time(k_time, x0.shape[0])
    pert = process.perturb(k_noise, x0, t)
    cond = {} if y is None else {"y": y}
    out = apply_fn(params, pert.model_input, t, train=train, rng=k_model, **cond)
    per_example = pert.weight * penalty(out - pert.target, huber_delta)
    return jnp.mean(per_example), {"per_example": per_example, "t": t}

  return loss_fn
