"""One process of a local multi-process run (used by test_multihost.py).

  python tests/multihost_worker.py PORT NUM_PROCESSES PROCESS_ID LOCAL_DEVICES WORKDIR OUT.npz

Trains the tiny toy config for 20 steps (or resumes a finished run), samples with ``em`` and writes
this process's view of the final parameters and the samples to OUT.npz.
"""

import os
import sys

os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={int(sys.argv[4])}"
os.environ["JAX_PLATFORMS"] = "cpu"

import jax  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position


def main():
  port, nproc, pid, _, workdir, out = sys.argv[1:7]
  if int(nproc) > 1:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f"127.0.0.1:{port}", int(nproc), int(pid))
  sys.path.insert(0, os.path.dirname(__file__))
  from test_train import tiny_config  # pylint: disable=g-import-not-at-top
  from lim_jax import sample as sample_lib, train  # pylint: disable=g-import-not-at-top
  cfg = tiny_config(num_steps=20, checkpoint_every=20)
  cfg.sampling.sampler = "em"
  state = train.train_and_evaluate(cfg, workdir)
  r = sample_lib.restore_for_inference(cfg, workdir)
  samples, _ = sample_lib.draw_samples(cfg, r["process"], r["apply_fn"], r["state"].ema_params,
                                       r["mesh"], r["data"].data_shape)
  leaves = [np.asarray(x) for x in jax.tree.leaves(
      jax.device_get(jax.tree.map(lambda a: a.addressable_data(0), state.params)))]
  np.savez(out, samples=samples, devices=jax.device_count(),
           **{f"p{i}": leaf for i, leaf in enumerate(leaves)})


if __name__ == "__main__":
  main()
