"""The shared design space vs the papers' own designs: allocation, gradient health, EDM baseline.

  python benchmarks/bench_design_space.py                       # every part, default size
  python benchmarks/bench_design_space.py --parts=allocation    # no training: seconds
  python benchmarks/bench_design_space.py --tiny                # smoke test

Every family runs its own ``configs/toy_<family>.py`` in two designs that differ only in the
shared fields: ``paper`` (:func:`lim_jax.config_lib.paper_settings`: times uniform in the family's
clock, eps-prediction with the family's weight, the uniform time grid, clip 1 -- today's behaviour
of the papers) and ``shared`` (the configs' defaults: log-normal noise levels, EDM preconditioning
with the bounded input, the rho = 7 grid in the noise level, clip 10). Parts:

* ``allocation``: the share of 100000 training draws, and of the 200 points of the sampler's grid,
  at noise level ``r < 0.5`` (no training);
* ``gradients``: ``--steps`` training steps (one per dispatch, metrics read once at the end) of each
  default toy config in both designs: quantiles of the per-step global gradient norm over the last
  quarter, its share above ``optim.grad_clip`` (``train/clipped_fraction``), the share of the
  squared gradient carried by the top 1 % of steps, and the batch-median loss over quarters;
* ``choice``: the allocation choice (``uniform_t`` / ``lognormal`` / ``loguniform``) under the
  shared parameterisation and grid, for every family on ``sas``, ``grid_imbalanced`` and ``moons``,
  scored by sliced W1 at 35 NFE (generic Heun on the rho grid + final denoise) and at 200 NFE of
  the family's ``ei_ode`` (every family has it; student_t has no ``ei_sde``), mean +- std over
  ``--seeds``;
* ``edm``: ``configs/toy_edm.py`` on ``moons`` and ``ring8``, sliced W1 at 35 (Heun, rho grid) vs
  255 NFE, against the VP score SDE (``toy_gaussian.py`` in the paper design) sampled with
  ``ei_sde`` at 200 NFE after the same training budget, over ``--seeds``;
* ``edm_sampling``: the same models (restored from ``--out`` when part ``edm`` ran there), sampled
  with Heun, with EDM's stochastic sampler ``edm_sde`` (two churn settings fixed in
  ``EDM_SAMPLING``) and with SDE-DPM-Solver++(2M) at 35 and 255 NFE, with EDM's sigma_max = 80
  and a toy-scale sigma_max = 10 (prior ``N(0, sigma_max^2)``; same training), each against the VP
  score SDE at 200 NFE.

Parts ``edm`` and ``edm_sampling`` end each dataset with a ``data vs data`` row: fresh data scored
against the same reference (:func:`data_floor`), what an exact sampler of the data law scores at
``--num_samples``. It is a reference, not a bound: a slightly under-dispersed model can land below
it, since the estimate's fluctuation depends on the law; differences within its seed spread are not
resolved.

Outputs: Markdown tables on stdout and ``--out/design_space.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
FAMILIES = ("gaussian", "levy", "jump", "fbm", "mixture", "student_t")
DATASETS = ("sas", "grid_imbalanced", "moons")
ALLOCATIONS = ("uniform_t", "lognormal", "loguniform")


def machine_line() -> str:
  import jax  # pylint: disable=g-import-not-at-top
  return (f"{platform.platform()}, {os.cpu_count()} cores, python {sys.version.split()[0]}, "
          f"jax {jax.__version__}, {jax.device_count()} x {jax.devices()[0].device_kind}")


def load(family: str, design: str, dataset: str | None = None):
  """``configs/toy_<family>.py`` (levy: its ``sas`` variant on sas, else ``grid_imbalanced``)."""
  from lim_jax import config_lib  # pylint: disable=g-import-not-at-top
  arg = None
  if family == "levy" and dataset is not None:
    arg = "sas" if dataset == "sas" else "grid_imbalanced"
  cfg = config_lib.load_file(ROOT / "configs" / f"toy_{family}.py", arg)
  if dataset is not None:
    cfg.data.dataset = dataset
  if design == "paper":
    config_lib.paper_settings(cfg)
  return cfg


# ---- allocation ---------------------------------------------------------------------------------
def part_allocation(args) -> list[dict]:
  import jax  # pylint: disable=g-import-not-at-top
  from lim_jax import config_lib, losses  # pylint: disable=g-import-not-at-top
  from lim_jax.processes import grids  # pylint: disable=g-import-not-at-top
  rows = []
  for family in FAMILIES:
    for design in ("paper", "shared"):
      cfg = load(family, design)
      proc = config_lib.validate(cfg)
      t = losses.training_times(proc, cfg.training, jax.random.PRNGKey(0), args.draws)
      share = float(np.mean(np.asarray(proc.noise_level(t)) < 0.5))
      g = grids.make_grid(proc, 200, cfg.sampling.grid, cfg.sampling.rho, cfg.sampling.time_power)
      low = int(np.sum(np.asarray(proc.noise_level(g)) < 0.5))
      rows.append(dict(family=family, design=design, train_share_below_half=share,
                       grid_points_below_half=low, r_range=proc.noise_level_range()))
  return rows


def table_allocation(rows) -> str:
  lines = ["| family | design | training draws with r < 0.5 | grid points (of 201) with r < 0.5 "
           "| training range of r |", "|---|---|---|---|---|"]
  for r in rows:
    lo, hi = r["r_range"]
    lines.append(f"| {r['family']} | {r['design']} | {100 * r['train_share_below_half']:.1f} % | "
                 f"{r['grid_points_below_half']} | {lo:.2g} .. {hi:.3g} |")
  return "\n".join(lines)


# ---- gradients ----------------------------------------------------------------------------------
def grad_trace(cfg, steps: int):
  """Per-step ``(grad_norm, loss_median)`` of ``steps`` steps of ``cfg`` (host read at the end)."""
  import jax  # pylint: disable=g-import-not-at-top
  from lim_jax import config_lib, models, parallel, train  # pylint: disable=g-import-not-at-top
  from lim_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  process = config_lib.validate(cfg)
  data = data_lib.get_dataset(cfg.data, cfg.seed)
  model = models.get_model(cfg.model, data.data_shape, process.num_outputs)
  tx = train.make_optimizer(cfg.optim, steps)
  mesh = parallel.make_mesh()
  k_init, k_train = jax.random.split(jax.random.PRNGKey(cfg.seed))
  state = jax.jit(train.make_state_factory(model, tx, data.data_shape),
                  out_shardings=parallel.replicated(mesh))(k_init)
  step_fn = train.make_jit_train_step(cfg, process, models.make_apply(model), tx, mesh)
  out = []
  for step in range(steps):
    batch = parallel.put_batch(data.batches(step, 1, cfg.training.batch_size), mesh,
                               leading_axes=1)
    state, m = step_fn(state, batch, k_train)
    out.append((m["grad_norm"], m["loss_median"], m["loss"]))
  host = np.asarray(jax.device_get(out), np.float64)
  return host[:, 0], host[:, 1], host[:, 2]


def part_gradients(args) -> list[dict]:
  rows = []
  for family in FAMILIES:
    for design in ("paper", "shared"):
      cfg = load(family, design)
      t0 = time.perf_counter()
      gn, med, mean = grad_trace(cfg, args.steps)
      last = gn[3 * len(gn) // 4:]
      sq = np.sort(last**2)[::-1]
      top = sq[:max(1, len(sq) // 100)].sum() / sq.sum()
      quarters = np.array_split(np.arange(len(gn)), 4)
      rows.append(dict(
          family=family, design=design, dataset=cfg.data.dataset, clip=cfg.optim.grad_clip,
          clipped_last_quarter=float(np.mean(last > cfg.optim.grad_clip)),
          grad_norm_quantiles=[float(np.quantile(last, q)) for q in (0.5, 0.95, 0.99)],
          grad_norm_max=float(last.max()), top1_share=float(top),
          loss_median_quarters=[float(np.mean(med[q])) for q in quarters],
          loss_mean_quarters=[float(np.mean(mean[q])) for q in quarters],
          seconds=time.perf_counter() - t0))
      print(f"# gradients {family} {design}: {rows[-1]['seconds']:.0f} s", flush=True)
  return rows


def table_gradients(rows) -> str:
  lines = ["| family (data) | design | clip | clipped, last quarter | grad norm median / p95 / "
           "p99 / max | top 1 % share of squared grad | batch-median loss by quarter | "
           "batch-mean loss by quarter |", "|---|---|---|---|---|---|---|---|"]
  for r in rows:
    q = r["grad_norm_quantiles"]
    lines.append(
        f"| {r['family']} ({r['dataset']}) | {r['design']} | {r['clip']:g} | "
        f"{100 * r['clipped_last_quarter']:.1f} % | {q[0]:.3g} / {q[1]:.3g} / {q[2]:.3g} / "
        f"{r['grad_norm_max']:.3g} | {100 * r['top1_share']:.0f} % | "
        + ", ".join(f"{v:.3g}" for v in r["loss_median_quarters"]) + " | "
        + ", ".join(f"{v:.3g}" for v in r["loss_mean_quarters"]) + " |")
  return "\n".join(lines)


# ---- training runs shared by "choice" and "edm" -------------------------------------------------
def train_and_score(cfg, workdir: str, sweeps, num_samples: int) -> dict[str, float]:
  """Trains ``cfg`` in ``workdir`` (or restores it from there) and returns sliced W1 of each
  ``(label, sampler, nfe, grid, final_denoise[, overrides])`` in ``sweeps``, on ``num_samples``
  samples against fresh data; ``overrides`` maps dotted sampling-time fields (e.g.
  ``process.t_max``, ``sampling.s_churn``) to values."""
  import jax  # pylint: disable=g-import-not-at-top
  from lim_jax import config_lib, models, samplers, train  # pylint: disable=g-import-not-at-top
  from lim_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  from lim_jax.metrics import toy  # pylint: disable=g-import-not-at-top
  state = train.train_and_evaluate(cfg, workdir)
  process = config_lib.validate(cfg)
  data = data_lib.get_dataset(cfg.data, cfg.seed)
  apply_fn = models.make_apply(models.get_model(cfg.model, data.data_shape, process.num_outputs))
  reference = data.reference(num_samples, salt=7)
  out = {}
  for label, sampler, nfe, grid, final, *more in sweeps:
    sc = cfg.copy_and_resolve_references()
    sc.sampling.grid, sc.sampling.final_denoise = grid, final
    for field, value in (more[0] if more else {}).items():
      section, name = field.split(".")
      sc[section][name] = value
    proc = config_lib.validate(sc) if more else process
    smp = samplers.sampler_from_config(sc, proc, apply_fn, sampler, nfe)
    x = np.asarray(smp.sample(state.ema_params, jax.random.PRNGKey(cfg.seed + 11),
                              (num_samples,) + data.data_shape))
    finite = np.all(np.isfinite(x), axis=1)
    out[label] = (toy.sliced_wasserstein(x[finite], reference, seed=cfg.seed)
                  if finite.mean() > 0.99 else float("nan"))
  return out


def _budget(cfg, args):
  cfg.training.num_steps = args.train_steps
  cfg.training.checkpoint_every = args.train_steps
  cfg.training.log_every = max(args.train_steps // 4, 1)
  cfg.training.steps_per_call = min(cfg.training.steps_per_call, args.train_steps)
  cfg.sampling.num_samples = cfg.sampling.batch_size = 256  # the end-of-training sample: cheap
  cfg.sampling.nfe = max(cfg.sampling.nfe if cfg.sampling.sampler != "em" else 10, 10)
  return cfg


def part_choice(args) -> list[dict]:
  rows = []
  for seed in range(args.seeds):
    for dataset in DATASETS:
      for family in FAMILIES:
        for alloc in ALLOCATIONS:
          cfg = _budget(load(family, "shared", dataset), args)
          cfg.seed = seed
          cfg.training.noise_levels = alloc
          wd = os.path.join(args.out, "runs", f"choice_{dataset}_{family}_{alloc}_{seed}")
          scores = train_and_score(cfg, wd, [("heun@35", "heun", 35, "edm", True),
                                             ("ei_ode@200", "ei_ode", 200, "edm", True)],
                                   args.num_samples)
          rows.append(dict(seed=seed, dataset=dataset, family=family, allocation=alloc,
                           **scores))
          print(f"# choice {dataset} {family} {alloc} seed {seed}: {scores}", flush=True)
  return rows


def table_choice(rows) -> str:
  lines = ["| dataset | family | " + " | ".join(f"{a}: heun@35 / ei_ode@200" for a in ALLOCATIONS)
           + " |", "|---|---|" + "---|" * len(ALLOCATIONS)]
  for dataset in DATASETS:
    for family in FAMILIES:
      cells = []
      for alloc in ALLOCATIONS:
        sel = [r for r in rows if (r["dataset"], r["family"], r["allocation"]) ==
               (dataset, family, alloc)]
        if not sel:
          cells.append("-")
          continue
        parts = []
        for k in ("heun@35", "ei_ode@200"):
          v = np.array([r[k] for r in sel], float)
          parts.append(f"{np.nanmean(v):.3f} ± {np.nanstd(v):.3f}")
        cells.append(" / ".join(parts))
      if any(c != "-" for c in cells):
        lines.append(f"| {dataset} | {family} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def vp_baseline(args, dataset: str, seed: int) -> float:
  """Sliced W1 of the 2021 VP score SDE (``toy_gaussian.py`` in the papers' design) with ``ei_sde``
  at 200 NFE, trained (or restored) in ``--out/runs/vp_<dataset>_<seed>``."""
  vp = _budget(load("gaussian", "paper", dataset), args)
  vp.seed = seed
  return train_and_score(vp, os.path.join(args.out, "runs", f"vp_{dataset}_{seed}"),
                         [("vp", "ei_sde", 200, "uniform_t", False)], args.num_samples)["vp"]


def part_edm(args) -> list[dict]:
  from lim_jax import config_lib  # pylint: disable=g-import-not-at-top
  rows = []
  for seed in range(args.seeds):
    for dataset in ("moons", "ring8"):
      edm = _budget(config_lib.load_file(ROOT / "configs" / "toy_edm.py", dataset), args)
      edm.seed = seed
      s_edm = train_and_score(edm, os.path.join(args.out, "runs", f"edm_{dataset}_{seed}"),
                              [("heun@35", "heun", 35, "edm", True),
                               ("heun@255", "heun", 255, "edm", True)], args.num_samples)
      rows.append(dict(seed=seed, dataset=dataset, edm_heun35=s_edm["heun@35"],
                       edm_heun255=s_edm["heun@255"],
                       vp_ei_sde200=vp_baseline(args, dataset, seed),
                       floor=data_floor(edm, args.num_samples)))
      print(f"# edm {dataset} seed {seed}: {rows[-1]}", flush=True)
  return rows


def table_edm(rows) -> str:
  from lim_jax.study import stats  # pylint: disable=g-import-not-at-top
  lines = ["| dataset | EDM heun@35 | EDM heun@255 | 35 vs 255 | VP score SDE ei_sde@200 "
           "| EDM@35 - VP@200, paired [95 % CI] | EDM@35 - EDM@255, paired [95 % CI] "
           "| data vs data (floor) |", "|---|---|---|---|---|---|---|---|"]
  for dataset in ("moons", "ring8"):
    sel = [r for r in rows if r["dataset"] == dataset]
    if not sel:
      continue
    a, b, c = (np.array([r[k] for r in sel]) for k in ("edm_heun35", "edm_heun255",
                                                         "vp_ei_sde200"))
    diff = stats.t_interval(a - c)  # seed i of both designs shares data and evaluation keys
    gap = stats.t_interval(a - b)
    floor = np.array([r["floor"] for r in sel])
    lines.append(f"| {dataset} | {a.mean():.4f} ± {a.std():.4f} | {b.mean():.4f} ± {b.std():.4f} "
                 f"| {100 * (a.mean() / b.mean() - 1):+.1f} % | {c.mean():.4f} ± {c.std():.4f} "
                 f"| {diff.mean:+.4f} [{diff.low:+.4f}, {diff.high:+.4f}] "
                 f"| {gap.mean:+.4f} [{gap.low:+.4f}, {gap.high:+.4f}] "
                 f"| {floor.mean():.4f} ± {floor.std():.4f} |")
  return "\n".join(lines)


# Sampling settings of "edm_sampling", fixed before the run (not selected on its results):
# (label, sampler, sampling overrides). "churn 40" is EDM's ImageNet-64 setting with S_noise = 1
# (the sampler's default), "churn 4" the per-step factor ~0.24 everywhere on 17 steps.
EDM_SAMPLING = [
    ("heun", "heun", {}),
    ("edm_sde churn 40 [0.05, 50]", "edm_sde", {}),
    ("edm_sde churn 4", "edm_sde", {"sampling.s_churn": 4.0, "sampling.s_tmin": 0.0,
                                    "sampling.s_tmax": 0.0}),
    ("dpmpp_2m_sde", "dpmpp_2m_sde", {}),
]
EDM_SIGMA_MAX = (80.0, 10.0)


def part_edm_sampling(args) -> list[dict]:
  """The models of part ``edm`` (trained here if absent), sampled with Heun, EDM's stochastic
  sampler and SDE-DPM-Solver++(2M) at 35 and 255 NFE, with EDM's sigma_max = 80 and a toy-scale
  sigma_max = 10."""
  from lim_jax import config_lib  # pylint: disable=g-import-not-at-top
  rows = []
  for seed in range(args.seeds):
    for dataset in ("moons", "ring8"):
      edm = _budget(config_lib.load_file(ROOT / "configs" / "toy_edm.py", dataset), args)
      edm.seed = seed
      sweeps = [(f"{label} @{nfe} sigma_max {smax:g}", sampler, nfe, "edm", True,
                 {"process.t_max": smax, **over})
                for smax in EDM_SIGMA_MAX for label, sampler, over in EDM_SAMPLING
                for nfe in (35, 255) if sampler in args.edm_samplers.split(",")]
      scores = train_and_score(edm, os.path.join(args.out, "runs", f"edm_{dataset}_{seed}"),
                               sweeps, args.num_samples)
      rows.append(dict(seed=seed, dataset=dataset, vp=vp_baseline(args, dataset, seed),
                       floor=data_floor(edm, args.num_samples), **scores))
      print(f"# edm_sampling {dataset} seed {seed}: {rows[-1]}", flush=True)
  return rows


def data_floor(cfg, num_samples: int) -> float:
  """Sliced W1 of fresh data against the reference ``train_and_score`` scores a model's samples
  against (salt 7; ``evaluate.data_floor``): what an exact sampler of the data law scores at this
  sample size."""
  from lim_jax import data as data_lib, evaluate  # pylint: disable=g-import-not-at-top
  data = data_lib.get_dataset(cfg.data, cfg.seed)
  return evaluate.data_floor(data, data.reference(num_samples, salt=7), cfg,
                             metrics=("sliced_wasserstein",))["sliced_wasserstein"]


def table_edm_sampling(rows) -> str:
  from lim_jax.study import stats  # pylint: disable=g-import-not-at-top
  lines = ["| dataset | sigma_max | sampler | @35 NFE | @255 NFE | 35 vs 255 "
           "| @35 - VP ei_sde@200, paired [95 % CI] |", "|---|---|---|---|---|---|---|"]
  for dataset in ("moons", "ring8"):
    sel = [r for r in rows if r["dataset"] == dataset]
    if not sel:
      continue
    vp = np.array([r["vp"] for r in sel])
    for smax in EDM_SIGMA_MAX:
      for label, _, _ in EDM_SAMPLING:
        if f"{label} @35 sigma_max {smax:g}" not in sel[0]:
          continue  # not in --edm_samplers
        a, b = (np.array([r[f"{label} @{n} sigma_max {smax:g}"] for r in sel]) for n in (35, 255))
        diff = stats.t_interval(a - vp)
        lines.append(f"| {dataset} | {smax:g} | {label} | {a.mean():.4f} ± {a.std():.4f} | "
                     f"{b.mean():.4f} ± {b.std():.4f} | {100 * (a.mean() / b.mean() - 1):+.1f} % | "
                     f"{diff.mean:+.4f} [{diff.low:+.4f}, {diff.high:+.4f}] |")
    lines.append(f"| {dataset} | VP | ei_sde@200 | {vp.mean():.4f} ± {vp.std():.4f} | | | |")
    floor = np.array([r["floor"] for r in sel])
    diff = stats.t_interval(floor - vp)
    lines.append(f"| {dataset} | - | data vs data (floor) | {floor.mean():.4f} ± {floor.std():.4f} "
                 f"| | | {diff.mean:+.4f} [{diff.low:+.4f}, {diff.high:+.4f}] |")
  return "\n".join(lines)


PARTS = {"allocation": (part_allocation, table_allocation),
         "gradients": (part_gradients, table_gradients),
         "choice": (part_choice, table_choice), "edm": (part_edm, table_edm),
         "edm_sampling": (part_edm_sampling, table_edm_sampling)}


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--parts", default=",".join(PARTS))
  p.add_argument("--tiny", action="store_true", help="smoke-test size")
  p.add_argument("--steps", type=int, default=4000, help="gradients: steps per run")
  p.add_argument("--train_steps", type=int, default=2000, help="choice / edm: steps per model")
  p.add_argument("--seeds", type=int, default=3)
  p.add_argument("--num_samples", type=int, default=4096)
  p.add_argument("--draws", type=int, default=100_000)
  p.add_argument("--out", default="")
  edm_samplers = list(dict.fromkeys(s for _, s, _ in EDM_SAMPLING))
  p.add_argument("--edm_samplers", default=",".join(edm_samplers),
                 help="edm_sampling: the samplers of EDM_SAMPLING to run (default all)")
  args = p.parse_args()
  unknown = set(args.edm_samplers.split(",")) - set(edm_samplers)
  if unknown:
    p.error(f"--edm_samplers: unknown {sorted(unknown)}")
  if args.tiny:
    args.steps, args.train_steps, args.seeds, args.num_samples, args.draws = 8, 8, 1, 128, 2000
  args.out = args.out or tempfile.mkdtemp(prefix="lim_design_space_")
  os.makedirs(args.out, exist_ok=True)
  from lim_jax.study import study  # pylint: disable=g-import-not-at-top
  study.enable_compilation_cache(os.path.join(args.out, "jax_cache"))  # later seeds reuse programs
  from absl import logging  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.WARNING)
  print(f"# {machine_line()}", flush=True)
  results = {}
  path = os.path.join(args.out, "design_space.json")
  for name in args.parts.split(","):
    fn, table = PARTS[name]
    t0 = time.perf_counter()
    results[name] = fn(args)
    print(f"\n### {name} ({time.perf_counter() - t0:.0f} s)\n\n{table(results[name])}\n",
          flush=True)
    with open(path, "w", encoding="utf-8") as f:
      json.dump(dict(args=vars(args), machine=machine_line(), results=results), f, indent=1)
  print(f"# wrote {path}")


if __name__ == "__main__":
  main()
