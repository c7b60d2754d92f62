"""Weak scaling of the train step over 1, 2, 4, 8 devices at a fixed per-device batch.

  python benchmarks/bench_scaling.py [--devices=1,2,4,8] [--per_device_batch=128] \
      [--models=mlp,unet]
  python benchmarks/bench_scaling.py --tiny          # smoke test

Each device count runs in its own subprocess (the device count is fixed when jax starts). On a CPU
machine the child gets ``XLA_FLAGS=--xla_force_host_platform_device_count=N``: N *forced host
devices*, which share the same physical cores, so the table measures the data-parallel machinery
(sharded batch, gradient all-reduce over the ``data`` mesh axis) and not extra hardware -- with C
cores, total work grows N-fold while compute stays fixed, so steps/s can at best stay flat up to
N = C and then falls like C/N. On a GPU machine the script runs unchanged and uses the first N real
devices (counts above the device count are skipped).

The train step is the one ``train.train_and_evaluate`` jits (``train.make_jit_train_step``: batch
sharded over the mesh and the state replicated, ``training.steps_per_call`` steps per dispatch), for
``configs/toy_<family>.py``'s MLP and, with ``--models=...,unet``, a tiny DDPM++ U-Net
(``configs/cifar10_<family>.py`` at width 32, 32x32 images). Reported: steps/s (median over
``--repeats`` timed dispatches after a compile call), examples/s and the weak-scaling efficiency
``steps/s(N) / steps/s(1)`` (1.0 is perfect weak scaling), next to the ideal one for the hardware
(``min(1, cores / N)`` for forced host devices, 1 for real devices).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
TINY_UNET = dict(ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(8,))


def child(args) -> None:
  """Measures one (model, N) point in this process and prints ``RESULT <json>``."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from absl import logging  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.WARNING)
  from lim_jax import config_lib, models, parallel, train  # pylint: disable=g-import-not-at-top
  n = args.n
  devices = jax.devices()[:n]
  if len(devices) < n:
    raise ValueError(f"--devices asks for {n} devices, only {len(devices)} present")
  mesh = parallel.make_mesh(devices)
  model_name = args.models
  if model_name == "mlp":
    cfg = config_lib.load_file(ROOT / "configs" / f"toy_{args.family}.py")
    shape = (2,)
  else:
    cfg = config_lib.load_file(ROOT / "configs" / f"cifar10_{args.family}.py")
    cfg.model.update(TINY_UNET)
    cfg.training.steps_per_call = 1
    shape = (cfg.data.image_size, cfg.data.image_size, 3)
  cfg.training.batch_size = args.per_device_batch * n
  if args.tiny:
    cfg.training.steps_per_call = min(cfg.training.steps_per_call, 2)
  process = config_lib.validate(cfg, num_devices=n, num_processes=1)
  net = models.get_model(cfg.model, shape, process.num_outputs)
  apply_fn = models.make_apply(net)
  tx = train.make_optimizer(cfg.optim, cfg.training.num_steps)
  rep = parallel.replicated(mesh)
  state = jax.jit(train.make_state_factory(net, tx, shape), out_shardings=rep)(
      jax.random.PRNGKey(0))
  step_fn = train.make_jit_train_step(cfg, process, apply_fn, tx, mesh)
  spc = cfg.training.steps_per_call
  rng = np.random.default_rng(0)
  batch = parallel.put_batch(
      rng.standard_normal((spc, cfg.training.batch_size) + shape).astype(np.float32), mesh, 1)
  key = jax.random.PRNGKey(1)
  state, m = step_fn(state, batch, key)  # compile
  jax.block_until_ready(m)
  times = []
  for _ in range(args.repeats):
    t0 = time.perf_counter()
    for _ in range(args.calls):
      state, m = step_fn(state, batch, key)
    jax.block_until_ready(m)
    times.append((time.perf_counter() - t0) / (args.calls * spc))
  t = statistics.median(times)
  print("RESULT " + json.dumps(dict(
      model=model_name, devices=n, kind=devices[0].device_kind, platform=devices[0].platform,
      global_batch=cfg.training.batch_size, steps_per_s=1.0 / t,
      examples_per_s=cfg.training.batch_size / t)),
        flush=True)


def probe() -> tuple[str, int, str]:
  """``(platform, device count, jax version)`` of a fresh jax process (the parent
  never initialises jax)."""
  out = subprocess.run([sys.executable, "-c", "import jax; print(jax.default_backend(), "
                        "jax.device_count(), jax.__version__)"], capture_output=True, text=True,
                       check=True).stdout.split()
  return out[0], int(out[1]), out[2]


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--devices", default="1,2,4,8")
  p.add_argument("--per_device_batch", type=int, default=None,
                 help="default: 128 (mlp) / 2 (unet); tiny: 16 / 1")
  p.add_argument("--models", default="mlp", help="mlp and/or unet (tiny DDPM++)")
  p.add_argument("--family", default="gaussian")
  p.add_argument("--calls", type=int, default=None, help="dispatches per timed repeat")
  p.add_argument("--repeats", type=int, default=None)
  p.add_argument("--tiny", action="store_true", help="smoke-test size")
  p.add_argument("--out", default="", help="also write the table to OUT/scaling.md")
  p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  p.add_argument("--n", type=int, default=1, help=argparse.SUPPRESS)
  args = p.parse_args()
  args.calls = args.calls or (1 if args.tiny else 10)
  args.repeats = args.repeats or (1 if args.tiny else 5)
  if args.child:
    child(args)
    return

  backend, count, jax_version = probe()
  t_start = time.perf_counter()
  rows = []
  for model in args.models.split(","):
    if model not in ("mlp", "unet"):
      raise ValueError(f"--models: unknown model {model!r}; choose from ('mlp', 'unet')")
    pdb = args.per_device_batch or {("mlp", False): 128, ("unet", False): 2,
                                    ("mlp", True): 16, ("unet", True): 1}[(model, args.tiny)]
    for n in (int(d) for d in args.devices.split(",")):
      env = dict(os.environ)
      if backend == "cpu":
        flags = [f for f in env.get("XLA_FLAGS", "").split()
                 if not f.startswith("--xla_force_host_platform_device_count")]
        env["XLA_FLAGS"] = " ".join(flags + [f"--xla_force_host_platform_device_count={n}"])
      elif n > count:
        print(f"# skipping {n} devices: only {count} {backend} devices")
        continue
      cmd = [sys.executable, __file__, "--child", f"--n={n}", f"--models={model}",
             f"--family={args.family}", f"--per_device_batch={pdb}", f"--calls={args.calls}",
             f"--repeats={args.repeats}"] + (["--tiny"] if args.tiny else [])
      proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
      lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
      if proc.returncode or not lines:
        sys.stderr.write(proc.stderr[-3000:])
        raise RuntimeError(f"child for {model} on {n} devices failed (rc {proc.returncode})")
      rows.append(json.loads(lines[-1][len("RESULT "):]))
      print(f"# {model} x{n}: {rows[-1]['steps_per_s']:.3g} steps/s", flush=True)

  forced = backend == "cpu"
  header = (f"Weak scaling, family {args.family}, {args.repeats} repeats x {args.calls} dispatches "
            f"(median); {(time.perf_counter() - t_start) / 60:.1f} min wall on "
            f"{platform.platform()}, "
            f"{os.cpu_count()} cores, python {sys.version.split()[0]}, jax {jax_version}, "
            f"{backend} backend." + (
                f" Devices are forced host devices sharing the same {os.cpu_count()} cores: with C "
                "cores, steps/s can at best stay flat up to N = C and fall like C/N beyond (the "
                "'ideal' column; an upper bound, since one device may already use several cores "
                "for intra-op parallelism)." if forced
                else ""))
  cores = os.cpu_count() or 1
  lines = [header, "", "| model | devices | global batch | steps/s | examples/s | efficiency | "
           "ideal |", "|---|---|---|---|---|---|---|"]
  for r in rows:
    base = next(b for b in rows if b["model"] == r["model"])
    lines.append(f"| {r['model']} | {r['devices']} x {r['kind']} | {r['global_batch']} | "
                 f"{r['steps_per_s']:.3g} | {r['examples_per_s']:.3g} | "
                 f"{r['steps_per_s'] / base['steps_per_s']:.2f} | "
                 f"{min(1.0, cores / r['devices']) if forced else 1.0:.2f} |")
  md = "\n".join(lines)
  print(md)
  if args.out:
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "scaling.md"), "w", encoding="utf-8") as f:
      f.write(md + "\n")


if __name__ == "__main__":
  main()
