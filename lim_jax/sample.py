"""Sampling: restore the EMA parameters, run the configured sampler, write the outputs.

Outputs (README): ``samples/step_<N>.npz`` (``samples``: float32 ``(n, *data_shape)`` for toy
data, uint8 ``(n, H, W, C)`` for images; plus the sampler name and NFE), ``samples/step_<N>.png``
(scatter of samples over fresh data for 2-D sets, an image grid for images) and a ``sample/*`` line
in ``metrics.jsonl`` (sliced W1 to fresh data for toy sets).
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

from lim_jax import checkpoint as ckpt_lib
from lim_jax import config_lib, models, parallel, samplers, storage
from lim_jax import data as data_lib
from lim_jax import state as state_lib
from lim_jax.metric_writers import MetricWriter, log
from lim_jax.metrics import toy as toy_metrics
from lim_jax.plotting import image_grid, scatter_plot, to_uint8

__all__ = ["SAMPLE_SALT", "draw_samples", "sample_labels", "sample_and_write",
           "restore_for_inference", "sample",
           "image_grid", "scatter_plot", "to_uint8"]  # the last three: from lim_jax.plotting

SAMPLE_SALT = 0x5A3B1E


def draw_samples(config, process, apply_fn, params, mesh, data_shape: tuple[int, ...],
                 num: int | None = None,
                 sampler: str | None = None, nfe: int | None = None,
                 key: jax.Array | None = None) -> tuple[np.ndarray, int]:
  """``num`` samples in batches of ``sampling.batch_size`` sharded over the mesh.

  Returns:
    ``(samples (num, *data_shape) float32 numpy, nfe actually spent per sample)``.
  """
  sp = config.sampling
  num = sp.num_samples if num is None else num
  sharding = parallel.batch_sharding(mesh)
  conditional = models.num_classes(config.model) > 0
  if conditional:  # the labels travel with the parameters: (params, labels of this chunk)
    labels = sample_labels(config, -(-num // sp.batch_size) * sp.batch_size)
    net = apply_fn
    apply_fn = lambda p, x, t, **kw: net(p[0], x, t, y=p[1], **kw)  # noqa: E731
  smp = samplers.sampler_from_config(config, process, apply_fn, sampler, nfe,
                                     batch_sharding=sharding)
  key = jax.random.fold_in(jax.random.PRNGKey(config.seed), SAMPLE_SALT) if key is None else key
  chunks = []
  for i in range(-(-num // sp.batch_size)):
    args = params
    if conditional:
      chunk = labels[i * sp.batch_size:(i + 1) * sp.batch_size]
      # The callback runs inside make_array_from_callback, before `chunk` is rebound.
      args = (params, jax.make_array_from_callback(chunk.shape, sharding,
                                                   lambda s: chunk[s]))  # noqa: B023
    x = smp.sample(args, jax.random.fold_in(key, i), (sp.batch_size,) + data_shape)
    chunks.append(parallel.to_host(x))
  return np.concatenate(chunks)[:num].astype(np.float32), smp.nfe


def sample_labels(config, num: int) -> np.ndarray | None:
  """The class labels ``(num,)`` int32 of the samples of a class-conditional model (else None):
  ``sampling.class_label`` for all when it is >= 0, otherwise the classes in turn
  (``i mod num_classes``, a class-balanced set as conditional FID evaluations use)."""
  c = models.num_classes(config.model)
  if not c:
    return None
  fixed = int(config.sampling.get("class_label", -1))
  return np.full((num,), fixed, np.int32) if fixed >= 0 else (np.arange(num) % c).astype(np.int32)


def sample_and_write(config, workdir: str, process, apply_fn, params, step: int,
                     data: data_lib.ToyData, mesh, writer: MetricWriter) -> dict[str, float]:
  """Draws ``sampling.num_samples`` samples, writes npz + png + a metrics line (process 0)."""
  samples, nfe = draw_samples(config, process, apply_fn, params, mesh, data.data_shape)
  is_image = samples.ndim == 4
  finite = np.all(np.isfinite(samples), axis=tuple(range(1, samples.ndim)))
  metrics = {"sample/finite_fraction": float(finite.mean()), "sample/nfe": float(nfe)}
  reference = None if is_image else data.reference(len(samples))
  if finite.any() and not is_image:
    metrics["sample/sliced_wasserstein"] = toy_metrics.sliced_wasserstein(
        samples[finite], reference, seed=config.seed)
  if jax.process_index() == 0:
    out_dir = os.path.join(workdir, "samples")
    labels = sample_labels(config, len(samples))
    storage.save_npz(os.path.join(out_dir, f"step_{step}.npz"),
                     samples=to_uint8(samples) if is_image else samples,
                     sampler=config.sampling.sampler, nfe=nfe,
                     **({} if labels is None else {"labels": labels}))
    if is_image:
      image_grid(os.path.join(out_dir, f"step_{step}.png"), to_uint8(samples))
    elif samples.ndim == 2 and samples.shape[1] == 2:
      scatter_plot(os.path.join(out_dir, f"step_{step}.png"), samples, reference,
                   f"{process.family} · {config.data.dataset} · step {step} · "
                   f"{config.sampling.sampler} NFE {nfe}")
  writer.write(step, metrics)
  sw = metrics.get("sample/sliced_wasserstein", float("nan"))
  log(f"samples at step {step}: {len(samples)} with {config.sampling.sampler} (NFE {nfe}), "
      f"sliced W1 to data {sw:.4f}, finite {100 * metrics['sample/finite_fraction']:.1f}% "
      f"-> {os.path.join(workdir, 'samples', f'step_{step}.npz')}")
  return metrics


def restore_for_inference(config, workdir: str) -> dict[str, Any]:
  """Builds process, data, model and mesh, and restores the latest checkpoint's state.

  Raises:
    FileNotFoundError: no checkpoint in ``workdir/checkpoints``.
  """
  process = config_lib.validate(config)
  mesh = parallel.make_mesh()
  data = data_lib.get_dataset(config.data, config.seed)
  model = models.get_model(config.model, data.data_shape, process.num_outputs)
  tx = state_lib.make_optimizer(config.optim, config.training.num_steps)

  create = state_lib.make_state_factory(model, tx, data.data_shape)
  abstract = state_lib.abstract_state(create, parallel.replicated(mesh))
  ckpt = ckpt_lib.Checkpointer(workdir, config.training.keep_checkpoints, async_save=False)
  restored = ckpt.restore_latest_good(abstract, config.to_dict())
  ckpt.close()
  if restored is None:
    raise FileNotFoundError(f"no checkpoint in {ckpt.directory}: train first (--mode=train)")
  state, step = restored
  log(f"Restored checkpoint at step {step} from {ckpt.directory}")
  return dict(process=process, mesh=mesh, data=data, apply_fn=models.make_apply(model),
              state=state, step=step)


def sample(config, workdir: str) -> dict[str, float]:
  """``--mode=sample``: samples from the latest checkpoint's EMA parameters."""
  r = restore_for_inference(config, workdir)
  writer = MetricWriter(workdir)
  try:
    return sample_and_write(config, workdir, r["process"], r["apply_fn"], r["state"].ema_params,
                            r["step"], r["data"], r["mesh"], writer)
  finally:
    writer.close()
