"""Sample quality of the noise families on one embedded toy dataset, same network, steps and seeds.

  python benchmarks/bench_toy_quality.py --dataset=sas --families=gaussian,levy,jump \
      --steps=3000 --seeds=0,1,2 --nfe=20,100 [--samplers=ei_sde,euler] [--out=DIR]

For each family, its ``configs/toy_<family>.py`` is used with ``data.dataset`` and the training
budget overridden, so only the noise process (and its own defaults, e.g. alpha) differ. Every
(family, seed) is trained once; then each sampler/NFE draws ``--num_samples`` points, scored against
fresh data with the toy metrics (sliced W1, tail-quantile log error of |x| over q in [0.95, 0.999],
mode coverage on ``grid_imbalanced``). Prints a Markdown table of mean ± std over seeds.
"""

from __future__ import annotations

import argparse
import collections
import os
import pathlib
import tempfile

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent


def load_config(family: str):
  from lim_jax import config_lib  # pylint: disable=g-import-not-at-top
  return config_lib.load_file(ROOT / "configs" / f"toy_{family}.py")


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--dataset", default="sas")
  p.add_argument("--families", default="gaussian,levy,jump,fbm,mixture")
  p.add_argument("--steps", type=int, default=3000)
  p.add_argument("--seeds", default="0")
  p.add_argument("--nfe", default="100")
  p.add_argument("--samplers", default="", help="comma list; default: each family's configured one")
  p.add_argument("--num_samples", type=int, default=4000)
  p.add_argument("--out", default="")
  args = p.parse_args()

  from absl import logging  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.WARNING)
  from lim_jax import evaluate, sample as sample_lib, train  # pylint: disable=g-import-not-at-top

  out_root = args.out or tempfile.mkdtemp(prefix="lim_quality_")
  metrics = ["sliced_wasserstein", "tail_quantile_log_error"] + (
      ["mode_coverage"] if args.dataset == "grid_imbalanced" else [])
  results = collections.defaultdict(list)
  for family in args.families.split(","):
    if not (ROOT / "configs" / f"toy_{family}.py").exists():
      print(f"# skipping {family}: no configs/toy_{family}.py")
      continue
    for seed in (int(s) for s in args.seeds.split(",")):
      cfg = load_config(family)
      cfg.seed = seed
      cfg.data.dataset = args.dataset
      cfg.training.num_steps = args.steps
      cfg.training.checkpoint_every = args.steps
      cfg.training.log_every = max(args.steps // 4, 1)
      cfg.sampling.num_samples = cfg.sampling.batch_size = cfg.eval.num_samples = args.num_samples
      cfg.eval.metrics = tuple(metrics)
      workdir = os.path.join(out_root, f"{family}_{args.dataset}_{seed}")
      state = train.train_and_evaluate(cfg, workdir)
      r = sample_lib.restore_for_inference(cfg, workdir)
      reference = r["data"].reference(args.num_samples, salt=7)
      for sampler in (args.samplers.split(",") if args.samplers else [cfg.sampling.sampler]):
        for nfe in (int(n) for n in args.nfe.split(",")):
          samples, used = sample_lib.draw_samples(
              cfg, r["process"], r["apply_fn"], state.ema_params, r["mesh"],
              r["data"].data_shape, sampler=sampler, nfe=nfe)
          row = evaluate.score(samples, reference, cfg)
          results[(family, sampler, used)].append(row)
          print(f"# {family} seed {seed} {sampler}@{used}: " +
                " ".join(f"{k}={v:.4g}" for k, v in row.items()))

  keys = sorted({k for rows in results.values() for row in rows for k in row})
  print(f"\n# dataset {args.dataset}, {args.steps} steps, seeds {args.seeds}, "
        f"{args.num_samples} samples; mean ± std over seeds")
  print("| family | sampler@NFE | " + " | ".join(keys) + " |")
  print("|---|---|" + "---|" * len(keys))
  for (family, sampler, nfe), rows in results.items():
    cells = []
    for k in keys:
      vals = np.array([row.get(k, np.nan) for row in rows], float)
      cells.append(f"{np.nanmean(vals):.4g} ± {np.nanstd(vals):.2g}" if len(vals) > 1
                   else f"{vals[0]:.4g}")
    print(f"| {family} | {sampler}@{nfe} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
  main()
