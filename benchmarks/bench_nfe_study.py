"""Quality vs NFE of the five noise families on three embedded toy datasets, ODE and SDE samplers.

  python benchmarks/bench_nfe_study.py [--out=DIR] [--figures=benchmarks/figures]   # default size
  python benchmarks/bench_nfe_study.py --full [--out=DIR] [--figures=benchmarks/figures]
  python benchmarks/bench_nfe_study.py --tiny --datasets=grid_imbalanced --families=gaussian
  python benchmarks/bench_nfe_study.py --design=paper --nfe=20,200 --seeds=0,1,2   # before/after

``--design=shared`` (default) runs the configs as they are: the shared design space (log-normal
noise levels, EDM preconditioning, the rho = 7 grid in the noise level, final denoising);
``--design=paper`` applies :func:`lim_jax.config_lib.paper_settings` (the papers' own designs:
uniform times in each family's clock, eps-prediction, the uniform time grid, clip 1).
``--noise_max`` / ``--noise_min`` (default 0: each family's own ends) sample every family over one
shared noise-level range (``sampling.noise_max`` / ``noise_min``; training is unchanged).

Every (family, dataset, seed) is trained once with ``train.train_and_evaluate`` from
``configs/toy_<family>.py`` with only ``data.dataset``, ``seed`` and the training budget overridden
(same MLP, optimiser, batch and steps for all families; each family keeps its own process defaults;
``toy_levy.py`` is loaded with its ``sas`` variant, alpha = 1.7, on ``sas`` and its
``grid_imbalanced`` variant, alpha = 1.9, on the other two sets). The EMA parameters are then
sampled at every NFE with one probability-flow ODE sampler and one reverse-SDE sampler
(:data:`SAMPLERS`: the exponential integrators ``ei_ode`` / ``ei_sde``, which every family has, so
the comparison is like for like) and scored against fresh data (``evaluate.score``). Every NFE of
a (dataset, family, sampler, seed) is sampled with the same key (common random numbers: the same
prior draw), so differences along the NFE axis are paired: with a key per NFE (before 2026-12-02)
the draw alone moved sliced W1 on ``grid_imbalanced`` at 1000 samples by up to 0.03 (ei_ode@30:
0.054, 0.079 or 0.087 with three keys), more than the seed spread, and the key of NFE 35 was a
bad one for every family. Metrics:

* ``sliced_wasserstein``: sliced W1 (256 projections) -- the bulk of the distribution;
* ``tail_quantile_log_error``: mean |log Q_|x|(q) - log Q_|y|(q)| over q in [0.95, 0.999]
  (Baule 2025);
* on ``grid_imbalanced``: ``rare_modes_covered`` (of the 12 modes with weight below the median)
  beside its fidelity pair ``in_mode_fraction`` (the share of samples within 4 mode stds of a mode:
  a sampler that sprays points everywhere "covers" every mode), and ``weight_tv`` (total variation
  between the per-mode sample fractions and the true weights).

Every row also carries ``data_floor``: the sliced W1 of fresh data against the same reference
(``evaluate.data_floor``), what an exact sampler scores at ``--num_samples``. With 35 and 500 NFE in
``--nfe``, ``nfe_study.md`` ends with issue #17's goal table (:func:`goal_table`: best sampler at 35
NFE against best at 500, paired over seeds, beside the floor).

Outputs into ``--out`` (default: a new temp dir): ``nfe_study.md`` (Markdown tables, mean ± std
over seeds; also printed), ``nfe_study.json`` (every row) and ``nfe_<dataset>.png`` (metric vs NFE,
one colour per family, ODE solid, SDE dashed, std as error bars); with ``--figures=DIR`` the PNGs
are also written there (small, for committing). Sizes (2 CPU cores):

* default: 800 steps, seeds 0,1, NFE 10,20,50,100,200, 1500 samples (30 models; about 12 min on
  a quiet 2-core machine, 15.5 CPU-minutes; 52 min wall when the cores were shared with other jobs);
* ``--full``: 2000 steps, seeds 0,1,2, NFE 10,20,50,100,200,500, 2000 samples (45 models, about
  0.8 CPU-minutes each: roughly 25-30 min on a quiet 2-core machine);
* ``--tiny`` (smoke test): 20 steps, seed 0, NFE 10, 256 samples.

Explicit ``--steps/--seeds/--nfe/--num_samples`` override the preset. Tables and rows are rewritten
after every trained model, so a stopped run leaves a partial ``nfe_study.json``;
``--from_json=OUT/nfe_study.json`` redoes the tables and PNGs from it without training.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import pathlib
import platform
import resource
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATASETS = ("sas", "grid_imbalanced", "moons")
FAMILIES = ("gaussian", "levy", "jump", "fbm", "mixture", "student_t")
SAMPLERS = {"ode": "ei_ode", "sde": "ei_sde"}
# --samplers=exact: every exact / denoiser-form sampler a family has (plus its own PF-ODE Heun).
EXACT = ("ddim", "edm_heun", "dpmpp_2m", "dpmpp_2m_sde", "ancestral", "restart", "restart_2m",
         "ei_ode", "ei_sde", "dlpm", "heun")
DETERMINISTIC = frozenset({"euler", "heun", "ei_ode", "ddim", "edm_heun", "dpmpp_2m", "dlim",
                           "lim_ode", "ei_ode_v"})
PRESETS = {
    "tiny": dict(steps=20, seeds="0", nfe="10", num_samples=256),
    "default": dict(steps=800, seeds="0,1", nfe="10,20,50,100,200", num_samples=1500),
    "full": dict(steps=2000, seeds="0,1,2", nfe="10,20,50,100,200,500", num_samples=2000),
}
# Metrics in the tables and plots, per dataset (mode metrics only where modes are known).
PLOT_METRICS = {
    "sas": ("sliced_wasserstein", "tail_quantile_log_error"),
    "moons": ("sliced_wasserstein", "tail_quantile_log_error"),
    "grid_imbalanced": ("sliced_wasserstein", "tail_quantile_log_error", "rare_modes_covered"),
}
TABLE_METRICS = {
    "sas": ("sliced_wasserstein", "tail_quantile_log_error", "finite_fraction"),
    "moons": ("sliced_wasserstein", "tail_quantile_log_error", "finite_fraction"),
    "grid_imbalanced": ("sliced_wasserstein", "tail_quantile_log_error", "in_mode_fraction",
                        "rare_modes_covered", "weight_tv", "finite_fraction"),
}
SHORT = {"sliced_wasserstein": "sliced W1", "tail_quantile_log_error": "tail log err",
         "rare_modes_covered": "rare modes (of 12)", "weight_tv": "weight TV",
         "in_mode_fraction": "on-mode",
         "finite_fraction": "finite"}
COLORS = {"gaussian": "tab:gray", "levy": "tab:blue", "jump": "tab:orange", "fbm": "tab:green",
          "mixture": "tab:purple"}


def machine_line() -> str:
  import jax  # pylint: disable=g-import-not-at-top
  import flax  # pylint: disable=g-import-not-at-top
  return (f"{platform.platform()}, {os.cpu_count()} cores, python {sys.version.split()[0]}, "
          f"jax {jax.__version__}, flax {flax.__version__}, "
          f"{jax.device_count()} x {jax.devices()[0].device_kind}")


def family_config(family: str, dataset: str, seed: int, steps: int, num_samples: int,
                  design: str = "shared"):
  """``configs/toy_<family>.py`` on ``dataset`` with the shared budget; only the process differs
  (``design='paper'``: :func:`lim_jax.config_lib.paper_settings` applied)."""
  from lim_jax import config_lib  # pylint: disable=g-import-not-at-top
  path = ROOT / "configs" / f"toy_{family}.py"
  arg = None
  if family == "levy":  # its config picks alpha by dataset: the data's own 1.7 on sas, else 1.9
    arg = "sas" if dataset == "sas" else "grid_imbalanced"
  cfg = config_lib.load_file(path, arg)
  if design == "paper":
    config_lib.paper_settings(cfg)
  cfg.seed = seed
  cfg.data.dataset = dataset
  cfg.training.num_steps = steps
  cfg.training.checkpoint_every = steps
  cfg.training.log_every = max(steps // 2, 1)
  cfg.training.steps_per_call = min(cfg.training.steps_per_call, steps)
  # The end-of-training sample written by train_and_evaluate: keep it cheap (the study samples
  # itself below).
  cfg.sampling.sampler = SAMPLERS["ode"]
  cfg.sampling.nfe = 10
  cfg.sampling.num_samples = cfg.sampling.batch_size = min(num_samples, 512)
  cfg.eval.num_samples = num_samples
  cfg.eval.metrics = ("sliced_wasserstein", "tail_quantile_log_error") + (
      ("mode_coverage",) if dataset == "grid_imbalanced" else ())
  return cfg


def run_study(args, on_progress=None) -> tuple[list[dict], float]:
  """Trains and sweeps; returns the rows (one per family/dataset/seed/sampler/NFE) and seconds.

  Seeds are the outer loop, so a run stopped early still has every (dataset, family) at the
  seeds it finished; ``on_progress(rows)`` is called after every trained model.
  """
  import jax  # pylint: disable=g-import-not-at-top
  from lim_jax import config_lib, evaluate, models, samplers, train  # pylint: disable=g-import-not-at-top
  from lim_jax import data as data_lib  # pylint: disable=g-import-not-at-top

  t_start = time.perf_counter()
  nfes = [int(n) for n in args.nfe.split(",")]
  rows = []
  cache = {}  # one jitted sampler per (dataset, family, sampler, NFE), reused over seeds
  for seed in (int(s) for s in args.seeds.split(",")):
    for dataset in args.datasets.split(","):
      for family in args.families.split(","):
        t0 = time.perf_counter()
        cfg = family_config(family, dataset, seed, args.steps, args.num_samples, args.design)
        workdir = os.path.join(args.out, "runs", f"{dataset}_{family}_{seed}")
        state = train.train_and_evaluate(cfg, workdir)
        process = config_lib.validate(cfg)
        data = data_lib.get_dataset(cfg.data, cfg.seed)
        apply_fn = models.make_apply(models.get_model(cfg.model, data.data_shape,
                                                      process.num_outputs))
        reference = data.reference(args.num_samples, salt=7)
        floor = evaluate.data_floor(data, reference, cfg,
                                    metrics=("sliced_wasserstein",))["sliced_wasserstein"]
        t_train = time.perf_counter() - t0
        for name in sampler_names(args.samplers, process):
          kind = "ode" if name in DETERMINISTIC else "sde"
          for nfe in nfes:
            ck = (dataset, family, name, nfe)
            if ck not in cache:
              scfg = cfg.copy_and_resolve_references()  # sampling-time fields only
              scfg.sampling.noise_min, scfg.sampling.noise_max = args.noise_min, args.noise_max
              cache[ck] = samplers.sampler_from_config(scfg, process, apply_fn, name, nfe)
            smp = cache[ck]
            key = jax.random.fold_in(jax.random.PRNGKey(seed), 1000)  # the same at every NFE
            x = np.asarray(smp.sample(state.ema_params, key, (args.num_samples,) + data.data_shape),
                           np.float32)
            rows.append(dict(dataset=dataset, family=family, seed=seed, kind=kind, sampler=name,
                             nfe=smp.nfe, data_floor=floor, **evaluate.score(x, reference, cfg)))
        print(f"# {dataset} {family} seed {seed}: trained {args.steps} steps + swept in "
              f"{time.perf_counter() - t0:.0f} s (train {t_train:.0f} s)", flush=True)
        if on_progress is not None:
          on_progress(rows)
  return rows, time.perf_counter() - t_start


def goal_table(rows: list[dict], low: int = 35, high: int = 500, slack: float = 0.05) -> str:
  """Issue #17's goal per (dataset, family): the best sampler at ``low`` NFE (lowest mean sliced
  W1 over seeds) within ``slack`` of the best at ``high`` NFE. Columns: both bests, their ratio,
  the ratio of the best @``low`` to its own value @``high`` (its discretisation error alone),
  the per-seed paired difference best@low - best@high with its 95 % t-interval, and the data
  floor (``evaluate.data_floor``, mean over seeds) beside them, so a reader sees whether a 5 %
  difference is resolved at this sample size. The verdict is the ratio's ("met" when it is <= 1 +
  ``slack``), "resolved" when the interval lies wholly on one side of the goal's margin
  ``slack * best@high`` (below it: met at the 95 % level; above: missed), else "not resolved".
  Picking the best of several samplers by its mean favours each column by the same selection;
  ``high`` matches an NFE within 1 (edm_sde's count is odd)."""
  from lim_jax.study import stats  # pylint: disable=g-import-not-at-top
  lines = [f"| data | family | best @{low} (sampler) | best @{high} (sampler) | ratio | "
           f"same sampler @{high} | @{low} - @{high}, paired [95 % CI] | goal (<= {1 + slack:.2f}; "
           f"CI against the margin {slack:g} x best @{high}) | data floor |",
           "|---|---|---|---|---|---|---|---|---|"]
  for dataset in dict.fromkeys(r["dataset"] for r in rows):
    for family in FAMILIES:
      sel = [r for r in rows if r["dataset"] == dataset and r["family"] == family]
      if not sel:
        continue
      def by_sampler(nfe, sel=sel):
        by = collections.defaultdict(dict)
        for r in sel:
          if abs(r["nfe"] - nfe) <= 1:
            by[r["sampler"]][r["seed"]] = r["sliced_wasserstein"]
        return {k: (float(np.mean(list(v.values()))), k, v) for k, v in by.items()}
      at_low, at_high = by_sampler(low), by_sampler(high)
      if not at_low or not at_high:
        continue
      b_low, b_high = min(at_low.values()), min(at_high.values())
      own = at_high.get(b_low[1])
      own_ratio = f"{b_low[0] / own[0]:.2f}" if own else "-"
      diff = stats.paired_difference(b_low[2], b_high[2])
      ratio = b_low[0] / b_high[0]
      floor = float(np.mean([r["data_floor"] for r in sel if "data_floor" in r] or [np.nan]))
      margin = slack * b_high[0]
      verdict = ("met" if ratio <= 1 + slack else "missed") + (
          ", resolved" if diff.high <= margin or diff.low > margin else ", not resolved")
      lines.append(f"| {dataset} | {family} | {b_low[0]:.4f} ({b_low[1]}) | {b_high[0]:.4f} "
                   f"({b_high[1]}) | {ratio:.2f} | {own_ratio} | {diff.mean:+.4f} "
                   f"[{diff.low:+.4f}, {diff.high:+.4f}] | {verdict} | {floor:.4f} |")
  return "\n".join(lines)


def sampler_names(spec: str, process) -> list[str]:
  """``--samplers``: a comma list, ``exact`` (:data:`EXACT`) or ``all``, kept where the family
  has the sampler."""
  from lim_jax import samplers  # pylint: disable=g-import-not-at-top
  have = samplers.available(process)
  if spec == "all":
    return list(have)
  wanted = EXACT if spec == "exact" else spec.split(",")
  return [n for n in wanted if n in have]


def aggregate(rows: list[dict]) -> dict:
  """``{(dataset, family, kind, sampler, nfe): {metric: (mean, std, n)}}`` over seeds."""
  groups = collections.defaultdict(list)
  for r in rows:
    groups[(r["dataset"], r["family"], r["kind"], r["sampler"], r["nfe"])].append(r)
  out = {}
  for k, rs in groups.items():
    metrics = sorted({m for r in rs for m in r if m not in ("dataset", "family", "seed", "kind",
                                                               "sampler", "nfe")})
    out[k] = {}
    for m in metrics:
      v = np.array([r.get(m, np.nan) for r in rs], float)
      out[k][m] = (float(np.nanmean(v)) if np.isfinite(v).any() else float("nan"),
                   float(np.nanstd(v)) if np.isfinite(v).any() else float("nan"), len(v))
  return out


def markdown(agg: dict, header: str) -> str:
  lines = [header, ""]
  for dataset in dict.fromkeys(k[0] for k in agg):
    keys = TABLE_METRICS.get(dataset, ("sliced_wasserstein", "tail_quantile_log_error"))
    lines += [f"### {dataset}", "",
              "| family | sampler@NFE | " + " | ".join(SHORT.get(m, m) for m in keys) + " |",
              "|---|---|" + "---|" * len(keys)]
    for k in sorted((k for k in agg if k[0] == dataset),
                    key=lambda k: (FAMILIES.index(k[1]) if k[1] in FAMILIES else 99, k[2], k[4])):
      cells = []
      for m in keys:
        mean, std, n = agg[k].get(m, (float("nan"), float("nan"), 0))
        cells.append(f"{mean:.3g} ± {std:.2g}" if n > 1 else f"{mean:.3g}")
      lines.append(f"| {k[1]} | {k[3]}@{k[4]} | " + " | ".join(cells) + " |")
    lines.append("")
  return "\n".join(lines)


def tables(rows: list[dict], header: str) -> str:
  """The per-dataset tables, and the goal table when the run has 35 and 500 NFE."""
  md = markdown(aggregate(rows), header)
  nfes = {r["nfe"] for r in rows}
  if 35 in nfes and nfes & {499, 500, 501}:
    md += "\n### Best at 35 NFE against best at 500 NFE (sliced W1)\n\n" + goal_table(rows) + "\n"
  return md


def plot(agg: dict, dataset: str, paths: list[str], title: str) -> None:
  """Metric vs NFE (log x), one colour per family, ODE solid, SDE dashed, ± std error bars."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  metrics = PLOT_METRICS.get(dataset, ("sliced_wasserstein", "tail_quantile_log_error"))
  fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), dpi=72)
  for ax, m in zip(np.atleast_1d(axes), metrics):
    for family in FAMILIES:
      for kind, style in (("ode", "-"), ("sde", "--")):
        name = SAMPLERS[kind]
        ks = sorted((k for k in agg if k[0] == dataset and k[1] == family and k[2] == kind
                     and k[3] == name), key=lambda k: k[4])
        if not ks:
          continue
        x = [k[4] for k in ks]
        y = [agg[k].get(m, (np.nan,) * 3)[0] for k in ks]
        e = [agg[k].get(m, (np.nan,) * 3)[1] for k in ks]
        ax.errorbar(x, y, yerr=e, fmt="o" + style, ms=3, lw=1.2, capsize=2,
                    color=COLORS.get(family), label=f"{family} {kind}")
    ax.set_xscale("log")
    if m != "rare_modes_covered":
      ax.set_yscale("log")
    ax.set_xlabel("NFE")
    ax.set_title(SHORT.get(m, m), fontsize=9)
    ax.grid(alpha=0.3, which="both")
  np.atleast_1d(axes)[0].legend(fontsize=6, ncol=2)
  fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  for p in paths:
    fig.savefig(p)
  plt.close(fig)


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--datasets", default=",".join(DATASETS))
  p.add_argument("--families", default=",".join(FAMILIES))
  p.add_argument("--samplers", default="ei_ode,ei_sde",
                 help="comma list, 'exact' (every exact/denoiser-form sampler) or 'all'; the plots "
                      "show ei_ode and ei_sde")
  p.add_argument("--design", default="shared", choices=("shared", "paper"),
                 help="the configs' shared design space, or the papers' own designs")
  p.add_argument("--noise_min", type=float, default=0.0,
                 help="shared sampling range: lowest noise level (0: each family's own)")
  p.add_argument("--noise_max", type=float, default=0.0,
                 help="shared sampling range: highest noise level (0: each family's own)")
  size = p.add_mutually_exclusive_group()
  size.add_argument("--full", action="store_true",
                    help="the full grid (3 seeds, 6 NFE, 2000 steps)")
  size.add_argument("--tiny", action="store_true", help="smoke-test size")
  p.add_argument("--steps", type=int, default=None)
  p.add_argument("--seeds", default=None)
  p.add_argument("--nfe", default=None)
  p.add_argument("--num_samples", type=int, default=None)
  p.add_argument("--out", default="", help="output folder (default: a new temp dir)")
  p.add_argument("--figures", default="", help="also write the PNGs here (e.g. benchmarks/figures)")
  p.add_argument("--from_json", default="",
                 help="redo tables and PNGs from an earlier run's nfe_study.json (no training)")
  args = p.parse_args()
  preset = PRESETS["full" if args.full else "tiny" if args.tiny else "default"]
  for k, v in preset.items():
    if getattr(args, k) is None:
      setattr(args, k, v)
  for fam in args.families.split(","):
    if fam not in FAMILIES:
      raise ValueError(f"--families: unknown family {fam!r}; choose from {FAMILIES}")
  for ds in args.datasets.split(","):
    if ds not in DATASETS:
      raise ValueError(f"--datasets: unknown dataset {ds!r}; choose from {DATASETS}")
  args.out = args.out or tempfile.mkdtemp(prefix="lim_nfe_study_")
  os.makedirs(args.out, exist_ok=True)

  from absl import logging  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.WARNING)
  from lim_jax.study import study  # pylint: disable=g-import-not-at-top
  study.enable_compilation_cache(os.path.join(args.out, "jax_cache"))  # later seeds reuse programs
  machine = machine_line()
  print(f"# {machine}", flush=True)

  def write(rows, seconds=None):
    """Tables and raw rows so far (rewritten after every model, so a stopped run leaves them)."""
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    cpu_min = (cpu.ru_utime + cpu.ru_stime) / 60
    done = "" if seconds is not None else " PARTIAL (run still going or stopped)"
    span = (f", sampled over noise levels [{args.noise_min or 'own'}, {args.noise_max or 'own'}]"
            if args.noise_min or args.noise_max else "")
    header = (f"NFE study{done} ({args.design} design{span}): {args.steps} training steps, "
              f"seeds {args.seeds}, "
              f"{args.num_samples} samples per point, samplers {args.samplers}; "
              f"mean ± std over seeds"
              + (f"; {seconds / 60:.1f} min wall, {cpu_min:.1f} min CPU (user+sys)"
                 if seconds is not None else "") + f" on {machine}.")
    md = tables(rows, header)
    with open(os.path.join(args.out, "nfe_study.md"), "w", encoding="utf-8") as f:
      f.write(md + "\n")
    with open(os.path.join(args.out, "nfe_study.json"), "w", encoding="utf-8") as f:
      json.dump(dict(args=vars(args), machine=machine, seconds=seconds, cpu_minutes=cpu_min,
                     rows=rows), f, indent=1)
    return md

  if args.from_json:  # tables and plots of an earlier (possibly stopped) run, no training
    with open(args.from_json, encoding="utf-8") as f:
      saved = json.load(f)
    rows, seconds = saved["rows"], saved["seconds"]
    args.steps, args.seeds = saved["args"]["steps"], saved["args"]["seeds"]
    md = tables(rows, f"NFE study from {args.from_json} ({len(rows)} rows)")
    print(md)
    with open(os.path.join(args.out, "nfe_study.md"), "w", encoding="utf-8") as f:
      f.write(md + "\n")
  else:
    rows, seconds = run_study(args, on_progress=write)
    print(write(rows, seconds))
  agg = aggregate(rows)
  for dataset in dict.fromkeys(r["dataset"] for r in rows):
    paths = [os.path.join(args.out, f"nfe_{dataset}.png")]
    if args.figures:
      os.makedirs(args.figures, exist_ok=True)
      paths.append(os.path.join(args.figures, f"nfe_{dataset}.png"))
    plot(agg, dataset, paths, f"{dataset}: {args.steps} steps, seeds {args.seeds}, "
         f"ODE {SAMPLERS['ode']} (solid), SDE {SAMPLERS['sde']} (dashed)")
  print(f"# wrote {args.out}/nfe_study.md" + ("" if args.from_json else ", nfe_study.json")
        + ", nfe_<dataset>.png"
        + (f" and {args.figures}/nfe_<dataset>.png" if args.figures else ""))


if __name__ == "__main__":
  main()
