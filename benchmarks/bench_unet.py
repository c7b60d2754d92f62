"""DDPM++ throughput on CIFAR10 shapes: train images/s and sampler images/s, float32 vs bfloat16.

  nice python benchmarks/bench_unet.py                  # CPU: tiny width (ch 16, 1 block, batch 8)
  python benchmarks/bench_unet.py --full                # GPU: the config's real width and batch
  python benchmarks/bench_unet.py --family=fbm --dtypes=bfloat16 --nfe=10 --repeats=5

Uses ``configs/cifar10_<family>.py`` (default ``levy``) and the library's own pieces:
``train.make_optimizer``, ``train.make_state_factory``, ``losses.make_loss_fn`` and
``train.make_train_step`` (jitted with the state donated, ``training.steps_per_call`` steps per
dispatch in its ``lax.scan``), and ``samplers.make_sampler`` at the config's sampler with ``--nfe``
evaluations. Compute dtype is ``model.dtype`` (parameters stay float32). Random data in [-1, 1]
(throughput does not depend on the pixels). Each measurement: one warm-up call (compile), then
``--repeats`` timed calls each ended by ``block_until_ready``; the median is reported.

On CPU a second train row, ``unrolled``, runs the same update with the scan unrolled
(``make_train_step(..., unroll=True)``, what ``training.unroll='auto'`` picks for a U-Net on CPU):
XLA:CPU runs convolution gradients inside a rolled ``while`` loop ~25-50x slower
(jax-ml/jax#12868), which the ``scan`` row shows.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import platform
import statistics
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent


def median_seconds(fn, repeats: int) -> tuple[float, float]:
  """``(compile + first call seconds, median seconds of `repeats` further calls)``."""
  import jax  # pylint: disable=g-import-not-at-top
  t0 = time.perf_counter()
  jax.block_until_ready(fn())
  first = time.perf_counter() - t0
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t0)
  return first, statistics.median(times)


def time_train_step(step, state, batches, key, repeats: int) -> tuple[float, float]:
  """:func:`median_seconds` of ``state = step(state, batches, key)`` (``step`` donates the state,
  so each call feeds the next its output); the last state is freed on return."""
  box = [state]

  def call():
    box[0], m = step(box[0], batches, key)
    return box[0].step, m

  return median_seconds(call, repeats)


def bench_dtype(cfg, dtype: str, args, variants: list[str]) -> list[dict]:
  """Rows ``{dtype, what, images_per_s, ...}`` for one compute dtype."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from lim_jax import losses, models, samplers, train  # pylint: disable=g-import-not-at-top
  from lim_jax.processes import get_process  # pylint: disable=g-import-not-at-top
  cfg.model.dtype = dtype
  process = get_process(cfg.process)
  size = cfg.data.image_size
  data_shape = (size, size, 3)
  model = models.get_model(cfg.model, data_shape, process.num_outputs)
  apply_fn = models.make_apply(model)
  tr = cfg.training
  tx = train.make_optimizer(cfg.optim, tr.num_steps)
  create = jax.jit(train.make_state_factory(model, tx, data_shape))
  loss_fn = losses.make_loss_fn(process, apply_fn, tr.loss, tr.huber_delta)
  rng = np.random.default_rng(0)
  spc = args.steps_per_call
  batches = jnp.asarray(rng.uniform(-1, 1, (spc, tr.batch_size) + data_shape), jnp.float32)
  key = jax.random.PRNGKey(1)
  num_params = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(
      jax.eval_shape(create, jax.random.PRNGKey(0)).params))
  rows = []
  for what in variants:
    steps = train.make_train_step(loss_fn, tx, cfg.optim.ema_decay, unroll=what != "scan")
    step = jax.jit(steps, donate_argnums=0)
    first, sec = time_train_step(step, create(jax.random.PRNGKey(0)), batches, key, args.repeats)
    rows.append(dict(dtype=dtype, what=f"train ({what}, {spc} steps/call, batch {tr.batch_size})",
                     images_per_s=spc * tr.batch_size / sec, seconds=sec, first=first,
                     params=num_params))
  params = create(jax.random.PRNGKey(0)).ema_params
  smp = samplers.make_sampler(process, apply_fn, cfg.sampling.sampler, args.nfe)
  shape = (args.sample_batch,) + data_shape
  first, sec = median_seconds(lambda: smp.sample(params, key, shape), args.repeats)
  rows.append(dict(dtype=dtype, what=f"sample ({cfg.sampling.sampler}@{smp.nfe}, batch "
                   f"{args.sample_batch})", images_per_s=args.sample_batch / sec, seconds=sec,
                   first=first, params=num_params))
  return rows


def environment() -> str:
  import flax  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  dev = jax.devices()[0]
  return (f"{platform.node()} | {platform.processor() or platform.machine()} | "
          f"{os.cpu_count()} CPUs | {jax.device_count()} x {dev.platform} ({dev.device_kind}) | "
          f"jax {jax.__version__} | flax {flax.__version__} | python {platform.python_version()}")


def main(argv: list[str] | None = None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--family", default="levy")
  p.add_argument("--full", action="store_true", help="the config's width and batch (GPU)")
  p.add_argument("--ch", type=int, default=16, help="width when not --full")
  p.add_argument("--num_res_blocks", type=int, default=1, help="when not --full")
  p.add_argument("--batch", type=int, default=0, help="train batch (default: 8; full: config's)")
  p.add_argument("--sample_batch", type=int, default=0, help="default: 8; full: 64")
  p.add_argument("--nfe", type=int, default=20)
  p.add_argument("--steps_per_call", type=int, default=0,
                 help="default: 2 on CPU, the config's training.steps_per_call otherwise")
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--dtypes", default="float32,bfloat16")
  p.add_argument("--variants", default="", help="train variants: scan,unrolled (default: scan "
                 "on accelerators, scan,unrolled on CPU)")
  args = p.parse_args(argv)

  import jax  # pylint: disable=g-import-not-at-top
  from lim_jax import config_lib  # pylint: disable=g-import-not-at-top
  path = ROOT / "configs" / f"cifar10_{args.family}.py"
  if not path.exists():
    print(f"error: --family={args.family!r}: no {path}", file=sys.stderr)
    return 2
  cfg = config_lib.load_file(path)
  on_cpu = jax.devices()[0].platform == "cpu"
  if not args.full:
    cfg.model.ch, cfg.model.num_res_blocks = args.ch, args.num_res_blocks
  cfg.training.batch_size = args.batch or (cfg.training.batch_size if args.full else 8)
  args.sample_batch = args.sample_batch or (64 if args.full else 8)
  args.steps_per_call = args.steps_per_call or (2 if on_cpu else cfg.training.steps_per_call)
  variants = (args.variants or ("scan,unrolled" if on_cpu else "scan")).split(",")
  cmd = " ".join(["python benchmarks/bench_unet.py"] + (argv if argv is not None else sys.argv[1:]))
  print(f"# {environment()}")
  print(f"# command: {cmd}")
  print(f"# GPU run: python benchmarks/bench_unet.py --full --family={args.family}")
  m = cfg.model
  print(f"# cifar10_{args.family}: DDPM++ ch {m.ch}, ch_mult {tuple(m.ch_mult)}, "
        f"{m.num_res_blocks} blocks, attention at {tuple(m.attn_resolutions)}; loss "
        f"{cfg.training.loss}; median of {args.repeats} after one warm-up call", flush=True)
  rows = []
  t_start = time.time()
  for dtype in args.dtypes.split(","):
    for r in bench_dtype(cfg, dtype, args, variants):
      rows.append(r)
      print(f"# {r['dtype']} {r['what']}: {r['images_per_s']:.3g} images/s "
            f"({r['seconds']:.3g} s per call; first call incl. compile {r['first']:.1f} s)",
            flush=True)
  print("\n| dtype | measurement | images/s | s/call | first call (compile) s |")
  print("|---|---|---|---|---|")
  for r in rows:
    print(f"| {r['dtype']} | {r['what']} | {r['images_per_s']:.3g} | {r['seconds']:.3g} | "
          f"{r['first']:.1f} |")
  print(f"\n# {rows[0]['params']:,} parameters; wall {time.time() - t_start:.0f} s")
  return 0


if __name__ == "__main__":
  sys.exit(main())
