"""Training: ``train_and_evaluate(config, workdir)`` and the pure pieces it is built from.

The loop reads top to bottom in banner sections (setup, data, model and state, restore, train step,
loop, final samples). The train step is built once by :func:`make_train_step`, jitted once with the
state donated, and runs ``training.steps_per_call`` optimisation steps per dispatch in a
``lax.scan``. The step key is ``fold_in(base_key, step)`` and the data of step ``n`` is a function
of ``(seed, n)``, so a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lim_jax import checkpoint as ckpt_lib
from lim_jax import config_lib, losses, models, parallel, storage
from lim_jax import data as data_lib
from lim_jax import sample as sample_lib
from lim_jax.metric_writers import MetricWriter, Progress, format_eta, log
# The state lives in lim_jax.state (below both training and sampling); re-exported here.
from lim_jax.state import TrainState, init_state, make_optimizer, make_state_factory

__all__ = ["NonFiniteError", "TrainState", "init_state", "make_optimizer", "make_state_factory",
           "make_train_step", "scan_unroll", "make_jit_train_step", "prepare_workdir",
           "train_and_evaluate"]

Array = jax.Array


class NonFiniteError(RuntimeError):
  """Training met a non-finite loss or gradient and the policy says stop."""


# ---------------------------------------------------------------------------------------------
# Pure building blocks (importable from a notebook).
# ---------------------------------------------------------------------------------------------
def make_train_step(loss_fn, tx: optax.GradientTransformation, ema_decay: float,
                    unroll: bool = False, grad_clip: float = 0.0):
  """Returns the pure ``train_steps(state, batches, base_key) -> (state, metrics)``.

  ``batches`` has shape ``(S, B, *data_shape)`` (or is the pair ``(x0, labels (S, B))`` for a
  class-conditional model): ``S`` steps run in one ``lax.scan``. A step whose
  loss or gradient norm is not finite leaves params, EMA and optimizer state unchanged and is
  counted in ``nonfinite_run`` / ``nonfinite_total`` (no host sync: the host reads the counters at
  its logging boundaries). ``metrics`` are means over the finite steps of the call (``loss``,
  ``loss_median``: the batch median of the per-example losses, a trend that heavy-tailed outliers
  cannot hide; ``grad_norm`` before clipping, ``clipped_fraction``: the share whose gradient norm
  exceeded ``grad_clip``, i.e. that ``optim.grad_clip`` rescaled; 0 when clipping is off) and their
  count ``finite_steps``, so a caller can average over a window of calls.

  ``unroll=True`` traces the ``S`` steps one after another instead of a ``lax.scan`` (compile
  time grows with ``S``). It is the workaround for XLA:CPU running convolution gradients inside a
  loop ~25x slower than outside one (jax-ml/jax#12868, measured in ``benchmarks/bench_unet.py``);
  see :func:`scan_unroll`.
  """

  def one_step(state: TrainState, batch: Array, base_key: Array):
    key = jax.random.fold_in(base_key, state.step)
    args = batch if isinstance(batch, tuple) else (batch,)
    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, key, *args)
    grad_norm = optax.tree.norm(grads)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    # EMA warm-up: the effective decay min(ema_decay, (1+n)/(10+n)) lets the average follow the
    # parameters early on instead of staying at the initialisation for ~1/(1-decay) steps.
    n = state.step.astype(jnp.float32)
    decay = jnp.minimum(ema_decay, (1.0 + n) / (10.0 + n))
    ema = optax.incremental_update(params, state.ema_params, 1.0 - decay)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
    bad = (~finite).astype(jnp.int32)
    new_state = TrainState(
        step=state.step + 1,
        params=keep(params, state.params), ema_params=keep(ema, state.ema_params),
        opt_state=keep(opt_state, state.opt_state),
        nonfinite_run=jnp.where(finite, 0, state.nonfinite_run + 1),
        nonfinite_total=state.nonfinite_total + bad)
    zero = jnp.zeros_like(loss)
    clipped = (grad_norm > grad_clip) if grad_clip > 0 else jnp.zeros((), bool)
    median = jnp.median(aux["per_example"]) if "per_example" in aux else loss
    metrics = {"loss": jnp.where(finite, loss, zero),
               "grad_norm": jnp.where(finite, grad_norm, zero),
               "loss_median": jnp.where(finite, median, zero),
               "clipped": (finite & clipped).astype(jnp.float32),
               "finite": finite.astype(jnp.float32)}
    return new_state, metrics

  def train_steps(state: TrainState, batches: Array, base_key: Array):
    if unroll:
      # A Python loop, not ``lax.scan(..., unroll=True)``: a fully unrolled one-step scan still
      # lowers to a one-trip while loop (jax 0.10), and XLA:CPU ran a U-Net step inside it 21x
      # slower (1.7 s vs 80 ms for the digits DDPM++ at batch 64, steps_per_call = 1).
      length = jax.tree.leaves(batches)[0].shape[0]
      outs = []
      for i in range(length):
        state, m_i = one_step(state, jax.tree.map(lambda b, i=i: b[i], batches), base_key)
        outs.append(m_i)
      m = jax.tree.map(lambda *v: jnp.stack(v), *outs)
    else:
      state, m = jax.lax.scan(lambda s, b: one_step(s, b, base_key), state, batches)
    count = jnp.sum(m["finite"])
    n = jnp.maximum(count, 1.0)
    return state, {"loss": jnp.sum(m["loss"]) / n, "grad_norm": jnp.sum(m["grad_norm"]) / n,
                   "loss_median": jnp.sum(m["loss_median"]) / n,
                   "clipped_fraction": jnp.sum(m["clipped"]) / n, "finite_steps": count}

  return train_steps


def scan_unroll(config) -> bool:
  """``training.unroll``: ``'always'``, ``'never'`` or ``'auto'`` (the default: unroll a U-Net on
  CPU, where XLA runs convolution gradients inside a loop ~25x slower, jax-ml/jax#12868)."""
  value = config.training.get("unroll", "auto")
  if value == "auto":
    return config.model.name != "mlp" and jax.default_backend() == "cpu"
  return value == "always"


def make_jit_train_step(config, process, apply_fn, tx: optax.GradientTransformation, mesh):
  """The jitted ``train_steps(state, batches, key)`` that :func:`train_and_evaluate` runs: the
  config's loss and EMA, the scan unrolled per :func:`scan_unroll`, state replicated and donated,
  batches ``(S, B, ...)`` sharded over ``data`` on their batch axis."""
  loss_fn = losses.loss_fn_from_config(config, process, apply_fn)
  steps = make_train_step(loss_fn, tx, config.optim.ema_decay, unroll=scan_unroll(config),
                          grad_clip=config.optim.grad_clip)
  rep = parallel.replicated(mesh)
  return jax.jit(steps, in_shardings=(rep, parallel.batch_sharding(mesh, 1), rep),
                 out_shardings=(rep, rep), donate_argnums=0)


def prepare_workdir(workdir: str) -> None:
  """Creates ``workdir`` (a local path or ``gs://``) and proves it writable (a probe file) before
  anything compiles.

  Raises:
    ValueError: naming ``--workdir`` when it cannot be created or written (a path under a file,
      no permission, read-only file system; for ``gs://``: no ``gcs`` extra, missing bucket,
      missing credentials, unreachable storage).
  """
  storage.probe_writable(workdir, "--workdir")


def _accumulate(window: dict | None, metrics: dict) -> dict:
  """Adds one call's metrics, weighted by its finite steps, to the window's device-side sums."""
  n = metrics["finite_steps"]
  weighted = {k: v * n for k, v in metrics.items() if k != "finite_steps"}
  weighted["finite_steps"] = n
  if window is None:
    return weighted
  return jax.tree.map(jnp.add, window, weighted)


def _window_means(window: dict) -> dict[str, float]:
  """Means over the finite steps of a logging window (``train/loss``, ``grad_norm``,
  ``clipped_fraction``); one host read."""
  sums = {k: float(v) for k, v in jax.device_get(window).items()}
  n = max(sums.pop("finite_steps"), 1.0)
  return {k: v / n for k, v in sums.items()}


def _boundaries(tr, start: int) -> list[int]:
  """Steps after ``start`` where the loop must stop to log, checkpoint or sample, and the end."""
  marks = {tr.num_steps}
  for every in (tr.log_every, tr.checkpoint_every, tr.sample_every):
    if every:
      marks.update(range((start // every + 1) * every, tr.num_steps, every))
  return sorted(m for m in marks if m > start)


# ---------------------------------------------------------------------------------------------
# The run.
# ---------------------------------------------------------------------------------------------
def train_and_evaluate(config, workdir: str) -> TrainState:
  """Trains (or resumes) the model of ``config`` in ``workdir`` and writes samples at the end.

  Raises:
    ValueError: a bad config field (before anything compiles).
    NonFiniteError: non-finite loss/gradients under the ``stop`` policy (or too many in a row
      under ``skip``); the last checkpoint stays the last good state.
  """
  # ---- setup ---------------------------------------------------------------------------------
  process = config_lib.validate(config)
  mesh = parallel.make_mesh()
  prepare_workdir(workdir)
  if jax.process_index() == 0:
    storage.write_text(os.path.join(workdir, "config.json"), config_lib.to_json(config))
  writer = MetricWriter(workdir)
  try:
    return _train(config, workdir, process, mesh, writer)
  except BaseException:
    # Close the metric files now, while their storage is still reachable: an unclosed
    # TensorBoard writer on gs:// retries its final flush for 120 s at interpreter exit.
    writer.close_quietly()
    raise


def _train(config, workdir: str, process, mesh, writer: MetricWriter) -> TrainState:
  """:func:`train_and_evaluate` after its setup; the caller closes ``writer`` on failure."""
  tr = config.training
  log(f"lim_jax: {process.describe()}")
  log(f"devices: {jax.device_count()} ({jax.devices()[0].platform}) over "
      f"{jax.process_count()} process(es); global batch {tr.batch_size}")
  for note in process.log_notes():
    log(f"note: {note}")

  # ---- data ----------------------------------------------------------------------------------
  data = data_lib.get_dataset(config.data, config.seed)

  # ---- model and state -----------------------------------------------------------------------
  model = models.get_model(config.model, data.data_shape, process.num_outputs)
  apply_fn = models.make_apply(model)
  tx = make_optimizer(config.optim, tr.num_steps)
  rep = parallel.replicated(mesh)
  root = jax.random.PRNGKey(config.seed)
  k_init, k_train = jax.random.split(root)

  create = make_state_factory(model, tx, data.data_shape)
  state = jax.jit(create, out_shardings=rep)(k_init)
  num_params = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(state.params))
  log(f"model: {config.model.name}, {num_params:,} parameters")

  # ---- restore -------------------------------------------------------------------------------
  ckpt = ckpt_lib.Checkpointer(workdir, tr.keep_checkpoints)
  restored = ckpt.restore_latest_good(ckpt_lib.abstract_like(state), config.to_dict())
  if restored is not None:
    state, latest = restored
    log(f"Resuming from checkpoint at step {latest} in {ckpt.directory}")
  start = int(state.step)
  writer.truncate_after(start)  # rows logged after that checkpoint are written again

  # ---- train step ----------------------------------------------------------------------------
  conditional = models.num_classes(config.model) > 0
  jit_steps = make_jit_train_step(config, process, apply_fn, tx, mesh)

  def run(state, step, n):
    local = data.batches(step, n, tr.batch_size, jax.process_index(), jax.process_count(),
                         **({"labels": True} if conditional else {}))
    batch = jax.tree.map(lambda a: parallel.put_batch(a, mesh, leading_axes=1), local)
    return jit_steps(state, batch, k_train)

  # ---- loop ----------------------------------------------------------------------------------
  if start >= tr.num_steps:
    log(f"Training already complete at step {start} (training.num_steps={tr.num_steps}).")
  else:
    log(f"Training steps {start} -> {tr.num_steps}, {tr.steps_per_call} per call")
  progress = Progress(tr.num_steps, start)
  step, t_log, step_log = start, time.time(), start
  window = None  # device-side sums over the calls since the last log line (no host sync)
  for boundary in _boundaries(tr, start):
    while step < boundary:
      n = tr.steps_per_call if boundary - step >= tr.steps_per_call else 1
      state, metrics = run(state, step, n)
      window = _accumulate(window, metrics)
      step += n
      progress.update(step)
    # A boundary: one small host read of the counters (and metrics at log steps).
    run_bad, total_bad = (int(v) for v in jax.device_get(
        (state.nonfinite_run, state.nonfinite_total)))
    if total_bad and (tr.on_nonfinite == "stop" or run_bad >= tr.max_nonfinite):
      progress.close()
      ckpt.close()
      raise NonFiniteError(
          f"non-finite loss or gradient: {total_bad} step(s) up to step {step} "
          f"({run_bad} in a row; training.on_nonfinite={tr.on_nonfinite!r}, "
          f"max_nonfinite={tr.max_nonfinite}). No update was applied for them; the last "
          f"checkpoint is step {ckpt.latest_step()}.")
    if step % tr.log_every == 0 or step == tr.num_steps:
      m = _window_means(window)
      window = None
      now = time.time()
      rate = (step - step_log) / max(now - t_log, 1e-9)
      t_log, step_log = now, step
      m.update(steps_per_sec=rate, nonfinite_total=total_bad)
      writer.write(step, {f"train/{k}": v for k, v in m.items()})
      progress.update(step, m["loss"])
      log(f"step {step}/{tr.num_steps}  loss {m['loss']:.4f} (median {m['loss_median']:.4f})  "
          f"grad_norm {m['grad_norm']:.3f}  "
          + (f"clipped {100 * m['clipped_fraction']:.0f}%  " if config.optim.grad_clip > 0 else "")
          + f"{rate:.1f} steps/s  ETA {format_eta((tr.num_steps - step) / max(rate, 1e-9))}"
          + (f"  (skipped non-finite: {total_bad})" if total_bad else ""))
    if step % tr.checkpoint_every == 0 or step == tr.num_steps:
      writer.flush(strict=False)  # the rows up to a checkpoint are stored before it exists
      ckpt.save(step, state, config.to_dict())
    if tr.sample_every and step % tr.sample_every == 0 and step != tr.num_steps:
      sample_lib.sample_and_write(config, workdir, process, apply_fn, state.ema_params, step,
                                  data, mesh, writer)
  progress.close()
  ckpt.close()

  # ---- final samples -------------------------------------------------------------------------
  sample_lib.sample_and_write(config, workdir, process, apply_fn, state.ema_params,
                              int(state.step), data, mesh, writer)
  writer.close()
  return state

