"""Tail fidelity of Student-t noise (t-EDM) at several nu vs the other families on ``sas``.

  python benchmarks/bench_student_t.py [--out=DIR]                            # default, ~15 min
  python benchmarks/bench_student_t.py --nus=3,5,10 --baselines=edm,gaussian,levy,jump \
      --steps=1000 --seeds=0,1,2 --nfe=50 --samplers=own,ei_ode,ei_sde --num_samples=4000
  python benchmarks/bench_student_t.py --tiny                                  # smoke test

Every model is trained by ``train.train_and_evaluate`` from its ``configs/toy_<name>.py`` on the
heavy-tailed 2-D ``sas`` set (isotropic alpha-stable, alpha = 1.7) with only ``seed`` and the
training budget overridden, so the MLP, optimiser, batch, steps and shared design (log-normal
noise levels, EDM preconditioning, the rho = 7 grid, final denoising) are the same for all:

* ``student_t`` at each ``--nus`` value: ``configs/toy_student_t.py`` (t-EDM) with ``process.nu``;
* ``--baselines``: ``edm`` (``configs/toy_edm.py``: the Gaussian EDM, the limit nu -> inf),
  ``gaussian`` (VP), ``levy`` (``toy_levy.py:sas``, alpha = 1.7) and ``jump`` (Baule's setting).

Each model is sampled with every ``--samplers`` entry at every ``--nfe`` (``own`` = the config's
own sampler: ``edm_heun`` for t-EDM, ``heun`` for EDM, ``ei_sde`` for the others; ``ei_ode``
exists in every family, ``ei_sde`` in all but student_t, whose rows skip it) and scored against
fresh data with ``tail_quantile_log_error`` (mean |log Q_|x|(q) - log Q_|y|(q)| over q in
[0.95, 0.999], Baule 2025) and ``sliced_wasserstein``. Outputs: a Markdown table (mean ± std over
seeds) printed and written with every row to ``--out`` (``bench_student_t.md``,
``bench_student_t.json``).

Sizes (2 CPU cores): default 1000 steps, seeds 0,1,2, NFE 50, 4000 samples: 7 configs x 3 seeds =
21 models of about 40 s each; ``--tiny``: 20 steps, seed 0, nu = 3 and the ``edm`` baseline, NFE
10, 256 samples.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import pathlib
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
METRICS = ("tail_quantile_log_error", "sliced_wasserstein")
BASELINES = ("edm", "gaussian", "levy", "jump")
PRESETS = {
    "tiny": dict(steps=20, seeds="0", nus="3", baselines="edm", nfe="10", num_samples=256),
    "default": dict(steps=1000, seeds="0,1,2", nus="3,5,10", baselines=",".join(BASELINES),
                    nfe="50", num_samples=4000),
}


def model_config(name: str, nu: float | None, seed: int, steps: int, num_samples: int):
  """``configs/toy_<name>.py`` on ``sas`` with the shared budget (``nu`` for ``student_t``)."""
  from lim_jax import config_lib  # pylint: disable=g-import-not-at-top
  cfg = config_lib.load_file(ROOT / "configs" / f"toy_{name}.py", "sas" if name == "levy" else None)
  if nu is not None:
    cfg.process.nu = float(nu)
  cfg.seed = seed
  cfg.data.dataset = "sas"
  cfg.data.alpha = 1.7
  cfg.training.num_steps = steps
  cfg.training.checkpoint_every = steps
  cfg.training.log_every = max(steps // 2, 1)
  cfg.training.steps_per_call = min(cfg.training.steps_per_call, steps)
  cfg.sampling.num_samples = cfg.sampling.batch_size = min(num_samples, 512)
  cfg.eval.num_samples = num_samples
  cfg.eval.metrics = METRICS
  return cfg


def entries(args) -> list[tuple[str, str, float | None]]:
  """``(label, config name, nu)`` of every model kind."""
  out = [(f"student_t nu={float(nu):g}", "student_t", float(nu))
         for nu in args.nus.split(",") if nu]
  out += [(b, b, None) for b in args.baselines.split(",") if b]
  for _, name, _ in out:
    if not (ROOT / "configs" / f"toy_{name}.py").exists():
      raise ValueError(f"--baselines: no configs/toy_{name}.py")
  return out


def table(rows: list[dict], header: str) -> str:
  groups = collections.OrderedDict()
  for r in rows:
    groups.setdefault((r["model"], r["sampler"], r["nfe"]), []).append(r)
  lines = [header, "", "| model | sampler@NFE | seeds | tail log err | sliced W1 |",
           "|---|---|---|---|---|"]
  for (model, sampler, nfe), rs in groups.items():
    cells = []
    for m in METRICS:
      vals = np.array([r[m] for r in rs], float)
      cells.append(f"{np.nanmean(vals):.3f} ± {np.nanstd(vals):.3f}" if len(vals) > 1
                   else f"{vals[0]:.3f}")
    lines.append(f"| {model} | {sampler}@{nfe} | {len(rs)} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--tiny", action="store_true", help="smoke-test size")
  p.add_argument("--nus", default=None, help="comma list of process.nu for student_t")
  p.add_argument("--baselines", default=None, help=f"comma list of toy configs {BASELINES}")
  p.add_argument("--steps", type=int, default=None)
  p.add_argument("--seeds", default=None)
  p.add_argument("--nfe", default=None, help="comma list")
  p.add_argument("--samplers", default="own,ei_ode,ei_sde",
                 help="comma list; 'own' is each config's sampling.sampler")
  p.add_argument("--num_samples", type=int, default=None)
  p.add_argument("--out", default="")
  args = p.parse_args()
  for k, v in PRESETS["tiny" if args.tiny else "default"].items():
    if getattr(args, k) is None:
      setattr(args, k, v)

  from absl import logging  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.WARNING)
  from lim_jax import evaluate, samplers, sample as sample_lib, train  # pylint: disable=g-import-not-at-top

  kinds = entries(args)
  out_root = pathlib.Path(args.out or tempfile.mkdtemp(prefix="lim_student_t_"))
  out_root.mkdir(parents=True, exist_ok=True)
  header = (f"# sas (alpha 1.7), {args.steps} steps, seeds {args.seeds}, {args.num_samples} "
            "samples; mean ± std over seeds")
  rows = []
  for label, name, nu in kinds:
    for seed in (int(s) for s in args.seeds.split(",")):
      t0 = time.perf_counter()
      cfg = model_config(name, nu, seed, args.steps, args.num_samples)
      workdir = os.path.join(out_root, f"{name}_{nu}_{seed}")
      state = train.train_and_evaluate(cfg, workdir)
      r = sample_lib.restore_for_inference(cfg, workdir)
      reference = r["data"].reference(args.num_samples, salt=7)
      names = [cfg.sampling.sampler if s == "own" else s for s in args.samplers.split(",")]
      # A sampler the family lacks is skipped, not an error (student_t has no ei_sde).
      have = samplers.available(r["process"])
      for sampler in (n for n in dict.fromkeys(names) if n in have):
        for nfe in (int(n) for n in args.nfe.split(",")):
          samples, used = sample_lib.draw_samples(
              cfg, r["process"], r["apply_fn"], state.ema_params, r["mesh"],
              r["data"].data_shape, num=args.num_samples, sampler=sampler, nfe=nfe)
          score = evaluate.score(samples, reference, cfg)
          rows.append(dict(model=label, seed=seed, sampler=sampler, nfe=used,
                           **{m: float(score[m]) for m in METRICS}))
          print(f"# {label} seed {seed} {sampler}@{used}: "
                + " ".join(f"{m}={score[m]:.4g}" for m in METRICS), flush=True)
      print(f"# {label} seed {seed}: {time.perf_counter() - t0:.0f} s", flush=True)
      (out_root / "bench_student_t.json").write_text(json.dumps(rows, indent=1))
  md = table(rows, header)
  (out_root / "bench_student_t.md").write_text(md + "\n")
  print(md)
  print(f"\n# wrote {out_root / 'bench_student_t.md'}")


if __name__ == "__main__":
  main()
