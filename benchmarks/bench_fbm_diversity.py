"""Sample diversity of GFDM (fbm) vs the gaussian family on toy data, over a Hurst x K grid.

  python benchmarks/bench_fbm_diversity.py [--dataset=grid_imbalanced] [--hurst=0.5,0.7,0.9]
      [--num_ou=0,2,3] [--seeds=0,1,2] [--steps=1500] [--nfe=200] [--full]

GFDM (Nobis et al. 2024) claims more diverse samples for H > 1/2 (they report pixel Vendi on
images; ``bench_images.py`` does that). Here every model is the same MLP with the same steps and
seeds (``configs/toy_fbm.py`` / ``configs/toy_gaussian.py`` with the dataset and budget
overridden); only the noise differs. K = 0 is exact Brownian motion for every H, so it is run once.
All models sample with ``ei_sde`` (the stiffness-free exponential integrator) at the same NFE.

Diversity metrics (``lim_jax.metrics``): the RBF-kernel Vendi score (bandwidth 0.1, 2000 samples;
the data's own value is the first row), recall and coverage (k = 3) against fresh data; fidelity:
precision and density; distance: sliced W1; rare modes: ``mode_coverage`` on ``grid_imbalanced``
(modes with a sample, of the 12 rarer-than-median ones, the fraction of samples inside a mode,
and the total variation between the per-mode fractions and the true weights).
Prints a Markdown table of mean ± std over seeds. Default size: ~10 min on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import platform
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
METRICS = ("vendi", "prdc", "sliced_wasserstein", "mode_coverage")


def variants(hursts, num_ous) -> list[tuple[str, str, dict]]:
  """``(label, family, process overrides)``: gaussian, fbm K = 0 once, then every (H, K > 0)."""
  out = [("gaussian", "gaussian", {})]
  if 0 in num_ous:
    out.append(("fbm K=0 (BM)", "fbm", {"num_ou": 0}))
  for k in (k for k in num_ous if k > 0):
    for h in hursts:
      out.append((f"fbm H={h} K={k}", "fbm", {"hurst": h, "num_ou": k}))
  return out


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--dataset", default="grid_imbalanced")
  p.add_argument("--hurst", default="0.5,0.7,0.9")
  p.add_argument("--num_ou", default="0,2,3")
  p.add_argument("--seeds", default="0,1,2")
  p.add_argument("--steps", type=int, default=1500)
  p.add_argument("--nfe", type=int, default=200)
  p.add_argument("--num_samples", type=int, default=2000)
  p.add_argument("--full", action="store_true", help="4000 steps, 4000 samples")
  p.add_argument("--out", default="")
  args = p.parse_args()
  if args.full:
    args.steps, args.num_samples = 4000, 4000

  from absl import logging  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.WARNING)
  import jax  # pylint: disable=g-import-not-at-top
  from lim_jax import config_lib, evaluate, sample as sample_lib, train  # pylint: disable=g-import-not-at-top

  hursts = [float(h) for h in args.hurst.split(",")]
  num_ous = [int(k) for k in args.num_ou.split(",")]
  seeds = [int(s) for s in args.seeds.split(",")]
  out_root = args.out or tempfile.mkdtemp(prefix="lim_fbm_div_")
  print(f"# {platform.node()} {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, jax {jax.__version__} ({jax.devices()[0].platform}); "
        f"dataset {args.dataset}, {args.steps} steps, seeds {args.seeds}, ei_sde@{args.nfe}, "
        f"{args.num_samples} samples")
  t0 = time.time()
  rows: dict[str, list[dict[str, float]]] = {}
  data_rows = []
  for label, family, fields in variants(hursts, num_ous):
    for seed in seeds:
      cfg = config_lib.load_file(ROOT / "configs" / f"toy_{family}.py")
      cfg.seed = seed
      cfg.data.dataset = args.dataset
      for k, v in fields.items():
        cfg.process[k] = v
      tr = cfg.training
      tr.num_steps = tr.checkpoint_every = args.steps
      tr.log_every = max(args.steps // 2, 1)
      cfg.sampling.sampler, cfg.sampling.nfe = "ei_sde", args.nfe
      cfg.sampling.num_samples = cfg.sampling.batch_size = args.num_samples
      cfg.eval.metrics = tuple(m for m in METRICS
                               if m != "mode_coverage" or args.dataset == "grid_imbalanced")
      workdir = os.path.join(out_root, f"{label.replace(' ', '_')}_{seed}")
      state = train.train_and_evaluate(cfg, workdir)
      r = sample_lib.restore_for_inference(cfg, workdir)
      reference = r["data"].reference(args.num_samples, salt=7)
      samples, _ = sample_lib.draw_samples(cfg, r["process"], r["apply_fn"], state.ema_params,
                                           r["mesh"], r["data"].data_shape)
      row = evaluate.score(samples, reference, cfg)
      rows.setdefault(label, []).append(row)
      if label == "gaussian":  # the data against fresh data: the ceiling of every metric
        data_rows.append(evaluate.data_floor(r["data"], reference, cfg))
      print(f"# {label} seed {seed}: " + " ".join(f"{k}={v:.4g}" for k, v in row.items()),
            flush=True)

  keys = ["vendi", "recall", "coverage", "precision", "density", "sliced_wasserstein"]
  if args.dataset == "grid_imbalanced":
    keys += ["rare_modes_covered", "in_mode_fraction", "weight_tv"]
  keys = [k for k in keys if k in next(iter(rows.values()))[0]]
  print(f"\n# mean ± std over seeds {args.seeds}; wall time {time.time() - t0:.0f} s")
  print("| model | " + " | ".join(keys) + " |")
  print("|---|" + "---|" * len(keys))
  for label, rs in [("data (fresh draw)", data_rows)] + list(rows.items()):
    cells = []
    for k in keys:
      vals = np.array([row.get(k, np.nan) for row in rs], float)
      cells.append(f"{np.nanmean(vals):.3f} ± {np.nanstd(vals):.3f}")
    print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
  main()
