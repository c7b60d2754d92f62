"""One mesh over every device: batch sharded on ``data``, state replicated (README, Parallelism).

The same code runs on 1 CPU, 8 GPUs or a multi-host pod: the mesh spans ``jax.devices()`` (all
processes' devices), each process feeds its slice of the global batch through
``jax.make_array_from_process_local_data``, and XLA inserts the gradient all-reduce.
"""

from __future__ import annotations

import os
from typing import Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def maybe_initialize_distributed(flag: bool = False) -> None:
  """Starts JAX's multi-controller runtime when asked or when the environment says multi-host.

  ``jax.distributed.initialize()`` finds the coordinator itself on Cloud TPU pods and SLURM, and
  elsewhere reads ``JAX_COORDINATOR_ADDRESS``; it is called when ``flag`` is set or
  ``LIM_JAX_DISTRIBUTED=1``.

  Raises:
    ValueError: the runtime could not start (the message says what to set).
  """
  if flag or os.environ.get("LIM_JAX_DISTRIBUTED") == "1":
    try:
      jax.distributed.initialize()
    except (ValueError, RuntimeError) as e:
      raise ValueError(
          f"--distributed: jax.distributed.initialize() failed on process "
          f"{os.environ.get('JAX_PROCESS_ID', os.environ.get('SLURM_PROCID', '?'))} ({e}). On "
          "Cloud TPU pods and SLURM the coordinator is found automatically; elsewhere set "
          "JAX_COORDINATOR_ADDRESS=host:port, JAX_NUM_PROCESSES and JAX_PROCESS_ID") from e


def make_mesh(devices: Sequence[jax.Device] | None = None) -> jax.sharding.Mesh:
  """A 1-D mesh named ``data`` over ``devices`` (default: all devices of all processes).

  The axis is ``Auto`` (XLA propagates shardings from the annotated inputs and outputs).
  """
  devices = list(jax.devices() if devices is None else devices)
  return jax.make_mesh((len(devices),), (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,),
                       devices=devices)


def replicated(mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh, leading_axes: int = 0) -> NamedSharding:
  """Sharding of a batch whose batch axis comes after ``leading_axes`` unsharded axes."""
  return NamedSharding(mesh, P(*([None] * leading_axes), DATA_AXIS))


def put_batch(local: np.ndarray, mesh, leading_axes: int = 0) -> jax.Array:
  """Assembles the global batch from this process's slice ``local``.

  ``local`` has shape ``(*lead, B_local, ...)``; the global array has ``B_local * process_count``
  on the batch axis, sharded over ``data``.
  """
  sharding = batch_sharding(mesh, leading_axes)
  global_shape = list(local.shape)
  global_shape[leading_axes] *= jax.process_count()
  return jax.make_array_from_process_local_data(sharding, local, tuple(global_shape))


def to_host(x: jax.Array) -> np.ndarray:
  """The full value of a (possibly multi-host sharded) array on every process."""
  if jax.process_count() > 1:
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return np.asarray(jax.device_get(x))
