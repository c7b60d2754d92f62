"""Throughput of the toy configs: train steps/s and sampler samples/s, per family.

  python benchmarks/bench_toy.py [--families=gaussian,levy] [--steps=400] [--devices=1]

Each family is measured with its ``configs/toy_<family>.py`` (same MLP for all), after a warm-up
call that compiles. Prints one Markdown table row per family, with ratios to ``gaussian`` when it
is in the list; the machine and versions head the output. Not a test: numbers go to RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import platform
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent


def load_config(family: str):
  from lim_jax import config_lib  # pylint: disable=g-import-not-at-top
  return config_lib.load_file(ROOT / "configs" / f"toy_{family}.py")


def measure(family: str, steps: int, num_samples: int):
  import jax  # pylint: disable=g-import-not-at-top
  from lim_jax import config_lib, data as data_lib, models, parallel, samplers, train
  cfg = load_config(family)
  process = config_lib.validate(cfg)
  mesh = parallel.make_mesh()
  data = data_lib.ToyData(cfg.data, cfg.seed)
  model = models.get_model(cfg.model, data.data_shape, process.num_outputs)
  apply_fn = models.make_apply(model)
  tx = train.make_optimizer(cfg.optim, cfg.training.num_steps)
  rep = parallel.replicated(mesh)
  state = jax.jit(train.make_state_factory(model, tx, data.data_shape), out_shardings=rep)(
      jax.random.PRNGKey(0))
  step_fn = train.make_jit_train_step(cfg, process, apply_fn, tx, mesh)
  spc = cfg.training.steps_per_call
  batch = parallel.put_batch(data.batches(0, spc, cfg.training.batch_size), mesh, 1)
  key = jax.random.PRNGKey(1)
  state, m = step_fn(state, batch, key)
  jax.block_until_ready(m)
  calls = max(steps // spc, 1)
  t0 = time.perf_counter()
  for _ in range(calls):
    state, m = step_fn(state, batch, key)
  jax.block_until_ready(m)
  train_rate = calls * spc / (time.perf_counter() - t0)

  smp = samplers.make_sampler(process, apply_fn, cfg.sampling.sampler, cfg.sampling.nfe,
                              batch_sharding=parallel.batch_sharding(mesh))
  shape = (num_samples,) + data.data_shape
  jax.block_until_ready(smp.sample(state.ema_params, key, shape))
  t0 = time.perf_counter()
  jax.block_until_ready(smp.sample(state.ema_params, jax.random.PRNGKey(2), shape))
  sample_rate = num_samples / (time.perf_counter() - t0)
  return dict(family=family, batch=cfg.training.batch_size, train=train_rate,
              sampler=f"{cfg.sampling.sampler}@{smp.nfe}", samples=sample_rate)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--families", default="gaussian,levy,jump,fbm,mixture")
  parser.add_argument("--steps", type=int, default=400)
  parser.add_argument("--num_samples", type=int, default=4096)
  parser.add_argument("--devices", type=int, default=1, help="forced host devices (CPU)")
  args = parser.parse_args()
  if args.devices > 1:
    os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={args.devices}"
  import jax  # pylint: disable=g-import-not-at-top
  print(f"# {platform.platform()}, {os.cpu_count()} cores, python {sys.version.split()[0]}, "
        f"jax {jax.__version__}, {jax.device_count()} x {jax.devices()[0].device_kind}")
  rows = []
  for fam in args.families.split(","):
    if not (ROOT / "configs" / f"toy_{fam}.py").exists():
      print(f"# skipping {fam}: no configs/toy_{fam}.py")
      continue
    rows.append(measure(fam, args.steps, args.num_samples))
  base = next((r for r in rows if r["family"] == "gaussian"), None)
  print("| family | batch | train steps/s | vs gaussian | sampler@NFE | samples/s | vs gaussian |")
  print("|---|---|---|---|---|---|---|")
  for r in rows:
    rel_t = f"{r['train'] / base['train']:.2f}" if base else "-"
    rel_s = f"{r['samples'] / base['samples']:.2f}" if base else "-"
    print(f"| {r['family']} | {r['batch']} | {r['train']:.1f} | {rel_t} | {r['sampler']} | "
          f"{r['samples']:.0f} | {rel_s} |")


if __name__ == "__main__":
  main()
