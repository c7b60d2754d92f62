"""Overheads of each noise family: train step vs gaussian, noise+target cost, sampler vs bare
network.

  python benchmarks/bench_overheads.py                    # toy MLP + tiny U-Net on CPU (default)
  python benchmarks/bench_overheads.py --full_width       # the configs' own U-Net (for a GPU)
  python benchmarks/bench_overheads.py --tiny --models=mlp --families=gaussian,levy   # smoke test
  git show REV:lim_jax/processes/jump.py > /tmp/jump_rev.py    # a jump version to compare with
  python benchmarks/bench_overheads.py --models=mlp --families=gaussian,jump \
      --reference_jump=/tmp/jump_rev.py --samplers=ei_ode,ei_sde,em   # before/after in one run

For each model -- the toy residual MLP of ``configs/toy_<family>.py`` and the DDPM++ U-Net of
``configs/cifar10_<family>.py`` -- every family is measured with the *same* network and batch (the
gaussian config's model section is copied into every family, so only the process differs; the
mixture family's second output head doubles the last conv's channels, which it needs):

(a) train step: one optimisation step (loss, gradient, Adam, EMA) on a fixed batch, per step, and
    its ratio to gaussian;
(b) noise + target: the train step's training times (``losses.training_times``, the config's
    ``training.noise_levels``) + ``process.perturb`` alone on the same batch, jitted, as a fraction
    of that family's train step (issue goal: <= 10 %);
(c) sampler: ``ei_ode`` and ``ei_sde`` (``--samplers``) at a fixed NFE (:data:`SIZES`: 50 for the
    MLP, 10 for the U-Net) vs a ``lax.scan`` of the same number of bare network evaluations
    (``x <- x - h * net(x, t)``) on the same batch; overhead in % (issue goal: <= 5 %).

``--reference_jump FILE`` adds a row ``jump@ref`` built from the ``JumpProcess`` of another version
of ``lim_jax/processes/jump.py`` (a standalone copy, e.g. from ``git show``), with the same config,
network and batch, timed in the same interleaved rounds: before/after ratios from one run.

Every timed function is jitted and called once to compile; then ``--repeats`` rounds each time every
function of every family once (``block_until_ready``), interleaved, so each ratio is formed from
calls made moments apart under the same machine load (the development machine is shared); the
median over rounds of each time and each ratio is reported. Absolute times hold only for the
machine printed in the header. Data are standard-normal arrays of the data shape (the cost of
every family is independent of the data values). The MLP runs
``training.steps_per_call`` steps per dispatch (a ``lax.scan``, as training does), and (b) runs the
same number of noise draws in a scan, so dispatch overhead cancels.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import platform
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
FAMILIES = ("gaussian", "levy", "jump", "fbm", "mixture")
# Tiny CPU U-Net: same DDPM++ code path (res blocks, attention, up/down), a fraction of the width.
TINY_UNET = dict(ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(8,))
SIZES = {  # model -> (default, tiny): train batch, NFE and batch for (c); U-Net images 32x32
    "mlp": (dict(batch=512, nfe=50, sample_batch=512), dict(batch=64, nfe=10, sample_batch=64)),
    "unet": (dict(batch=8, nfe=10, sample_batch=8), dict(batch=1, nfe=2, sample_batch=1)),
}


def machine_line() -> str:
  import jax  # pylint: disable=g-import-not-at-top
  return (f"{platform.platform()}, {os.cpu_count()} cores, python {sys.version.split()[0]}, "
          f"jax {jax.__version__}, {jax.device_count()} x {jax.devices()[0].device_kind}")


def timed(fn) -> float:
  """Seconds of one call of ``fn`` (which must block until its result is ready)."""
  t0 = time.perf_counter()
  fn()
  return time.perf_counter() - t0


def load(model: str, family: str, args):
  """The family's config with the shared network and batch of ``model``."""
  from lim_jax import config_lib  # pylint: disable=g-import-not-at-top
  size = SIZES[model][1 if args.tiny else 0]
  if model == "mlp":
    cfg = config_lib.load_file(ROOT / "configs" / f"toy_{family}.py")
    base = config_lib.load_file(ROOT / "configs" / "toy_gaussian.py")
  else:
    cfg = config_lib.load_file(ROOT / "configs" / f"cifar10_{family}.py")
    base = config_lib.load_file(ROOT / "configs" / "cifar10_gaussian.py")
  with cfg.unlocked():
    cfg.model = base.model
    if model == "unet" and not args.full_width:
      cfg.model.update(TINY_UNET)
    cfg.training.batch_size = size["batch"] if not (model == "unet" and args.full_width) else 128
    cfg.training.steps_per_call = cfg.training.steps_per_call if model == "mlp" else 1
    if args.tiny:
      cfg.training.steps_per_call = min(cfg.training.steps_per_call, 2)
  return cfg, size


def load_module(path: str, name: str):
  """A standalone copy of a lim_jax module (e.g. an older ``jump.py``) under its own name."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  sys.modules[name] = module  # dataclasses resolve their module through sys.modules
  spec.loader.exec_module(module)
  return module


def build(model: str, family: str, args, process_module=None) -> dict:
  """Compiles the timed functions of one family: ``{name: blocking thunk}`` plus sizes.

  ``process_module``: build the process with this module's ``from_config`` instead of the
  registry's (the ``--reference_jump`` row).
  """
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from lim_jax import config_lib, losses, models, parallel, samplers, train  # pylint: disable=g-import-not-at-top
  cfg, size = load(model, family, args)
  process = config_lib.validate(cfg, num_devices=1)
  if process_module is not None:
    # Family fields the config leaves at today's defaults take the reference version's defaults.
    import importlib  # pylint: disable=g-import-not-at-top
    from lim_jax.processes import FAMILIES  # pylint: disable=g-import-not-at-top
    today = importlib.import_module(FAMILIES[family]).config_fields()
    with cfg.unlocked():
      for name, value in process_module.config_fields().items():
        if name in today and cfg.process.get(name) == today[name]:
          cfg.process[name] = value
    process = process_module.from_config(cfg.process)
  shape = ((2,) if model == "mlp" else (cfg.data.image_size, cfg.data.image_size, 3))
  net = models.get_model(cfg.model, shape, process.num_outputs)
  apply_fn = models.make_apply(net)
  tx = train.make_optimizer(cfg.optim, cfg.training.num_steps)
  state = jax.jit(train.make_state_factory(net, tx, shape))(jax.random.PRNGKey(0))
  spc, batch = cfg.training.steps_per_call, cfg.training.batch_size
  rng = np.random.default_rng(0)
  batches = jnp.asarray(rng.standard_normal((spc, batch) + shape), jnp.float32)
  key = jax.random.PRNGKey(1)
  params = jax.tree.map(jnp.copy, state.ema_params)  # the train step donates `state`

  # (a) the train step as training runs it (spc steps per dispatch, state donated, the scan
  # unrolled for a U-Net on CPU), on one device.
  step_fn = train.make_jit_train_step(cfg, process, apply_fn, tx,
                                      parallel.make_mesh(jax.devices()[:1]))
  holder = [state]

  def run_step():
    holder[0], m = step_fn(holder[0], batches, key)
    jax.block_until_ready(m)

  # (b) the training times + perturb alone, spc draws in a scan (as inside the train step).
  def noise(key, xs):
    def body(_, x0_i):
      x0, i = x0_i
      k_time, k_noise = jax.random.split(jax.random.fold_in(key, i))
      t = losses.training_times(process, cfg.training, k_time, x0.shape[0])
      return None, process.perturb(k_noise, x0, t)
    return jax.lax.scan(body, None, (xs, jnp.arange(xs.shape[0])))[1]

  noise_j = jax.jit(noise)

  # (c) samplers vs the same number of bare network evaluations on the same batch.
  nfe, sb = size["nfe"], size["sample_batch"]

  def bare(params, key):
    x = jax.random.normal(key, (sb,) + shape)
    grid = samplers.time_grid(process.t_max, process.t_min, nfe)

    def body(x, ts):
      t_cur, t_next = ts
      y = apply_fn(params, x, jnp.full((sb,), t_cur))[..., :shape[-1]]
      return x + (t_next - t_cur) * y, None
    return jax.lax.scan(body, x, (grid[:-1], grid[1:]))[0]

  bare_j = jax.jit(bare)
  fns = {"step": run_step,
         "noise": lambda: jax.block_until_ready(noise_j(key, batches)),
         "bare": lambda: jax.block_until_ready(bare_j(params, key))}
  for name in args.samplers.split(","):
    smp = samplers.make_sampler(process, apply_fn, name, nfe)
    fns[name] = lambda smp=smp: jax.block_until_ready(smp.sample(params, key, (sb,) + shape))
  for fn in fns.values():  # compile and warm up
    fn()
  name = family if process_module is None else f"{family}@ref"
  print(f"# {model} {name}: compiled", flush=True)
  return dict(model=model, family=name, batch=batch, spc=spc, nfe=nfe, sample_batch=sb,
              fns=fns)


def measure(built: list[dict], args) -> list[dict]:
  """Times every function once per round, ``--repeats`` rounds, all families interleaved.

  Ratios are formed within a round (paired: the same moment's load on a shared machine) and the
  median over rounds is reported, with the median absolute times.
  """
  samplers = args.samplers.split(",")
  rounds = []
  for _ in range(args.repeats):
    rounds.append({b["family"]: {k: timed(fn) for k, fn in b["fns"].items()} for b in built})
  base = "gaussian" if any(b["family"] == "gaussian" for b in built) else None
  rows = []
  for b in built:
    f = b["family"]
    per = lambda fn: float(np.median([fn(r) for r in rounds]))  # noqa: E731
    row = dict(model=b["model"], family=f, batch=b["batch"], nfe=b["nfe"],
               sample_batch=b["sample_batch"],
               step=per(lambda r, f=f, b=b: r[f]["step"] / b["spc"]),
               noise=per(lambda r, f=f, b=b: r[f]["noise"] / b["spc"]),
               noise_frac=per(lambda r, f=f, b=b: r[f]["noise"] / r[f]["step"]),
               bare=per(lambda r, f=f, b=b: r[f]["bare"]),
               vs_gauss=(per(lambda r, f=f: r[f]["step"] / r[base]["step"]) if base
                         else float("nan")))
    for s in samplers:
      row[s] = per(lambda r, s=s, f=f: r[f][s])
      row[s + "_over"] = per(lambda r, s=s, f=f: r[f][s] / r[f]["bare"] - 1.0)
    rows.append(row)
    print(f"# {b['model']} {f}: step {1e3 * row['step']:.3g} ms, noise {1e3 * row['noise']:.3g} ms,"
          f" bare {1e3 * row['bare']:.3g} ms, " + ", ".join(
              f"{s} {1e3 * row[s]:.3g} ms" for s in samplers), flush=True)
  return rows


def table(rows: list[dict], samplers: list[str]) -> str:
  lines = []
  for model in dict.fromkeys(r["model"] for r in rows):
    rs = [r for r in rows if r["model"] == model]
    base = next((r for r in rs if r["family"] == "gaussian"), None)
    r0 = rs[0]
    lines += [f"### {model} (batch {r0['batch']}; samplers: {r0['sample_batch']} samples at "
              f"NFE {r0['nfe']})", "",
              "| family | train step ms | vs gaussian | noise+target ms | % of step | "
              "bare net ms | " + " | ".join(f"{s} ms | {s} overhead" for s in samplers) + " |",
              "|---|---|---|---|---|---|" + "---|---|" * len(samplers)]
    for r in rs:
      rel = f"{r['vs_gauss']:.2f}" if base else "-"
      cells = [f"{1e3 * r[s]:.3g} | {100 * r[s + '_over']:+.1f} %" for s in samplers]
      lines.append(f"| {r['family']} | {1e3 * r['step']:.3g} | {rel} | {1e3 * r['noise']:.3g} | "
                   f"{100 * r['noise_frac']:.1f} % | {1e3 * r['bare']:.3g} | "
                   + " | ".join(cells) + " |")
    lines.append("")
  return "\n".join(lines)


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--models", default="mlp,unet")
  p.add_argument("--families", default=",".join(FAMILIES))
  p.add_argument("--samplers", default="ei_ode,ei_sde")
  p.add_argument("--repeats", type=int, default=None,
                 help="timed rounds (median); default 9, tiny 2")
  p.add_argument("--full_width", action="store_true", help="the configs' full U-Net (GPU)")
  p.add_argument("--tiny", action="store_true", help="smoke-test size")
  p.add_argument("--out", default="", help="also write the table to OUT/overheads.md")
  p.add_argument("--reference_jump", default="",
                 help="a standalone jump.py (e.g. from git show) timed as the row jump@ref")
  args = p.parse_args()
  args.repeats = args.repeats or (2 if args.tiny else 9)
  from absl import logging  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.WARNING)
  machine = machine_line()
  print(f"# {machine}", flush=True)
  t0 = time.perf_counter()
  rows = []
  for model in args.models.split(","):
    if model not in SIZES:
      raise ValueError(f"--models: unknown model {model!r}; choose from {tuple(SIZES)}")
    built = []
    for family in args.families.split(","):
      if family not in FAMILIES:
        raise ValueError(f"--families: unknown family {family!r}; choose from {FAMILIES}")
      built.append(build(model, family, args))
    if args.reference_jump:
      built.append(build(model, "jump", args, load_module(args.reference_jump, "jump_reference")))
    rows += measure(built, args)
  unet = ("U-Net: the configs' own DDPM++ (batch 128)" if args.full_width
          else f"U-Net: tiny DDPM++ {TINY_UNET}")
  md = (f"Overheads ({args.repeats} interleaved rounds, median of per-round values and ratios; "
        f"{unet}); "
        f"{(time.perf_counter() - t0) / 60:.1f} min wall on {machine}.\n\n"
        + table(rows, args.samplers.split(",")))
  print(md)
  if args.out:
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "overheads.md"), "w", encoding="utf-8") as f:
      f.write(md + "\n")


if __name__ == "__main__":
  main()
