"""The train state: :class:`TrainState`, the optimizer, the state factory and the abstract state.

Training and sampling both build the state from here (``create(key) -> TrainState``), so a sampler
restores a checkpoint without knowing the trainer; the abstract state (shapes, dtypes, shardings,
no values) is what Orbax restores into.
"""

from __future__ import annotations

from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import optax

Array = jax.Array


@flax.struct.dataclass
class TrainState:
  """Everything a resumed run needs (all arrays; replicated over the mesh).

  Attributes:
    step: number of optimisation steps taken (including skipped non-finite ones).
    params: network parameters.
    ema_params: exponential moving average of ``params`` (used for sampling).
    opt_state: optax state.
    nonfinite_run: consecutive steps with a non-finite loss or gradient (update skipped).
    nonfinite_total: all such steps so far.
  """

  step: Array
  params: Any
  ema_params: Any
  opt_state: Any
  nonfinite_run: Array
  nonfinite_total: Array


def make_optimizer(optim_cfg, num_steps: int) -> optax.GradientTransformation:
  """Adam/AdamW with linear warmup (then constant or cosine decay) and global-norm clipping."""
  lr, warm = optim_cfg.learning_rate, optim_cfg.warmup_steps
  if optim_cfg.lr_schedule == "cosine":
    schedule = optax.warmup_cosine_decay_schedule(0.0, lr, max(warm, 1), max(num_steps, warm + 1))
  else:
    schedule = optax.warmup_constant_schedule(0.0, lr, max(warm, 1))
  kwargs = dict(b1=optim_cfg.b1, b2=optim_cfg.b2, eps=optim_cfg.eps)
  if optim_cfg.optimizer == "adamw":
    opt = optax.adamw(schedule, weight_decay=optim_cfg.weight_decay, **kwargs)
  else:
    opt = optax.adam(schedule, **kwargs)
  parts = [optax.clip_by_global_norm(optim_cfg.grad_clip)] if optim_cfg.grad_clip > 0 else []
  return optax.chain(*parts, opt)


def init_state(params, tx: optax.GradientTransformation) -> TrainState:
  """The state at step 0: ``ema_params = params``, fresh optimizer state, no non-finite steps."""
  zero = jnp.zeros((), jnp.int32)
  return TrainState(step=zero, params=params, ema_params=params, opt_state=tx.init(params),
                    nonfinite_run=zero, nonfinite_total=zero)


def make_state_factory(model, tx: optax.GradientTransformation,
                       data_shape: tuple[int, ...]) -> Callable[[Array], TrainState]:
  """Returns ``create(key) -> TrainState`` initialising ``model`` on a dummy batch of one
  (``(1, *data_shape)`` zeros, time ``(1,)``, and label ``(1,)`` for a class-conditional model)."""

  def create(key: Array) -> TrainState:
    x = jnp.zeros((1,) + tuple(data_shape), jnp.float32)
    cond = {"y": jnp.zeros((1,), jnp.int32)} if getattr(model, "num_classes", 0) else {}
    return init_state(model.init(key, x, jnp.zeros((1,)), **cond)["params"], tx)

  return create


def abstract_state(create: Callable[[Array], TrainState], sharding=None) -> TrainState:
  """The state ``create`` would build, as ``jax.ShapeDtypeStruct`` leaves (no computation), each
  with ``sharding`` (e.g. replicated over the mesh) when given: the target of a checkpoint
  restore."""
  abstract = jax.eval_shape(create, jax.random.PRNGKey(0))
  if sharding is None:
    return abstract
  return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding),
                      abstract)
