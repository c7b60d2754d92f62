"""The verdict table: each claim of the papers tested with ``lim_jax.compare`` (paired 95 % CIs).

  nice python benchmarks/bench_verdicts.py --out=runs/verdicts      # default CPU run (see below)
  python benchmarks/bench_verdicts.py --full --out=runs/verdicts    # the large one (GPU)
  python benchmarks/bench_verdicts.py --list                        # the compare commands only
  python benchmarks/bench_verdicts.py --smoke --out=/tmp/v          # tiny, checks the pipeline
  python benchmarks/bench_verdicts.py --only=digits --out=DIR       # one study (grid, sas, digits)

Three studies, each one ``lim_jax.study.run_study`` call (what ``python -m lim_jax.compare`` runs),
so every family of a study has the same data, network, optimiser, budget, sampler, NFE list and
seeds; only ``process`` differs (family defaults, plus the fields in the family entry):

* ``grid``: ``grid_imbalanced`` (25 modes, weights over a factor 200) from
  ``configs/toy_gaussian.py``; gaussian, levy (alpha 1.9, the toy config's choice for Gaussian
  modes), mixture, fbm at (H, K) = (0.7, 2) and (0.9, 2); metrics sliced W1, MMD, mode coverage
  (with the on-mode fraction), PRDC and Vendi.
* ``sas``: the 2-D alpha-stable set (alpha 1.7); gaussian, levy (alpha 1.7), jump, and student_t
  when this build has it; metrics sliced W1, MMD, tail-quantile log error.
* ``digits``: the UCI digits (sklearn, 1797 8x8 images, written as ``data.dataset='array'``; 30 %
  held out as the test split); gaussian and the three families with an image claim (levy, fbm,
  mixture) with a small DDPM++; FD and PRDC in the features of ``bench_images``' small CNN
  (passed as ``feature_fn``), pixel Vendi.

A claim compares a family with a baseline on one metric at the listed NFE, through the paired
difference over seeds (seed i of both families shares data, reference and keys):

* **supported**: better at every listed NFE (the 95 % interval of the paired difference excludes 0
  on the claimed side) and, for a coverage or diversity claim, its fidelity pair (on-mode fraction,
  precision) not significantly worse at any of them;
* **not supported**: significantly worse at some listed NFE, or its fidelity pair significantly
  worse;
* **inconclusive**: otherwise (too few seeds for the effect, or mixed).

Budgets. Default (CPU; measured: 836 s on 2 idle cores, grid 204 s, sas 149 s, digits 472 s with
the feature CNN, ~70 s per digits run; later seeds of a family load their compiled programs from
``OUT/jax_cache``; benchmarks/RESULTS.md, "Verdicts per paper claim"): toy 2000 steps, batch
512, 3 seeds, NFE 10/35/100, 2000 evaluation samples; digits 300 steps, 2 seeds, NFE 10/35/100,
500 samples.
``--full``: toy 8000 steps, 5 seeds, NFE 10/20/50/100/200, 4096 samples; digits 4000 steps, 5
seeds, 1000 samples. ``--smoke``: 30 steps, 2 seeds, NFE 4/8, 128 samples (a check that everything
runs, not evidence). Studies resume: rerun the same command after an interruption.

Writes ``OUT/<study>/compare.{json,md}``, ``compare_<metric>.png`` and ``OUT/verdicts.md`` (the
table for ``benchmarks/RESULTS.md``), and prints the table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys
import time

import jax
import numpy as np

import bench_images
from lim_jax import config_lib
from lim_jax.processes import FAMILIES
from lim_jax.study import plan, stats, study

ROOT = pathlib.Path(__file__).resolve().parent.parent

BUDGETS = {
    "default": dict(toy_steps=2000, toy_batch=512, toy_seeds=3, toy_nfe=(10, 35, 100),
                    toy_samples=2000, digits_steps=300, digits_seeds=2,
                    digits_nfe=(10, 35, 100), digits_samples=500),
    "full": dict(toy_steps=8000, toy_batch=512, toy_seeds=5, toy_nfe=(10, 20, 50, 100, 200),
                 toy_samples=4096, digits_steps=4000, digits_seeds=5,
                 digits_nfe=(10, 20, 50, 100, 200), digits_samples=1000),
    "smoke": dict(toy_steps=30, toy_batch=64, toy_seeds=2, toy_nfe=(4, 8), toy_samples=128,
                  digits_steps=10, digits_seeds=2, digits_nfe=(4, 8), digits_samples=64),
}


@dataclasses.dataclass(frozen=True)
class Study:
  name: str
  families: tuple[str, ...]
  overrides: tuple[tuple[str, object], ...]  # config fields shared by every family
  description: str


@dataclasses.dataclass(frozen=True)
class Claim:
  """``family`` beats ``baseline`` on ``metric`` (``better``: 'lower'/'higher') at ``nfe``
  (``None``: every NFE of the study; ``'lowest'``: the smallest), keeping ``fidelity`` (if any)."""

  paper: str
  text: str
  study: str
  family: str
  baseline: str
  metric: str
  better: str
  nfe: str | None = None
  fidelity: str = ""


STUDENT_T = "student_t"
STUDIES = {
    "grid": Study("grid", ("gaussian", "levy:alpha=1.9", "mixture", "fbm:hurst=0.7:num_ou=2",
                           "fbm:hurst=0.9:num_ou=2"),
                  (("data.dataset", "grid_imbalanced"),
                   ("eval.metrics", ("sliced_wasserstein", "mmd", "mode_coverage", "prdc",
                                     "vendi"))),
                  "grid_imbalanced (toy)"),
    "sas": Study("sas", ("gaussian", "levy:alpha=1.7", "jump", STUDENT_T),
                 (("data.dataset", "sas"), ("data.alpha", 1.7),
                  # student_t has no consistent stochastic sampler: every family runs ei_ode
                  ("sampling.sampler", "ei_ode"),
                  ("eval.metrics", ("sliced_wasserstein", "mmd", "tail_quantile_log_error"))),
                 "sas, alpha 1.7 (toy)"),
    "digits": Study("digits", ("gaussian", "levy", "fbm", "mixture"), (),
                    "UCI digits 8x8"),
}
FBM = ("fbm:hurst=0.7:num_ou=2", "fbm:hurst=0.9:num_ou=2")
CLAIMS = (
    Claim("LIM", "fewer NFE: better quality than gaussian at the lowest NFE", "grid",
          "levy:alpha=1.9", "gaussian", "sliced_wasserstein", "lower", "lowest"),
    Claim("LIM", "fewer NFE (images): lower FD at the lowest NFE", "digits", "levy", "gaussian",
          "fid", "lower", "lowest"),
    Claim("LIM", "rare modes on imbalanced data (on-mode fraction kept)", "grid", "levy:alpha=1.9",
          "gaussian", "rare_modes_covered", "higher", None, "in_mode_fraction"),
    Claim("LIM", "heavy tails: lower tail error than gaussian", "sas", "levy:alpha=1.7",
          "gaussian", "tail_quantile_log_error", "lower"),
    Claim("Baule", "tails vs gaussian", "sas", "jump", "gaussian", "tail_quantile_log_error",
          "lower"),
    Claim("Baule", "tails vs alpha-stable (LIM)", "sas", "jump", "levy:alpha=1.7",
          "tail_quantile_log_error", "lower"),
    *(Claim("GFDM", f"diversity vs gaussian at {f.split(':', 1)[1]} (precision kept)", "grid", f,
            "gaussian", "vendi", "higher", None, "precision") for f in FBM),
    *(Claim("GFDM", f"quality vs gaussian at {f.split(':', 1)[1]}", "grid", f, "gaussian",
            "sliced_wasserstein", "lower") for f in FBM),
    Claim("GFDM", "diversity (images): pixel Vendi vs gaussian (precision kept)", "digits", "fbm",
          "gaussian", "pixel_vendi", "higher", None, "precision"),
    Claim("GM-SGM", "quality across NFE vs gaussian", "grid", "mixture", "gaussian",
          "sliced_wasserstein", "lower"),
    Claim("GM-SGM", "quality across NFE vs gaussian (images, FD)", "digits", "mixture",
          "gaussian", "fid", "lower"),
    Claim("t-EDM", "heavy tails: lower tail error than gaussian", "sas", STUDENT_T, "gaussian",
          "tail_quantile_log_error", "lower"),
)


# ---------------------------------------------------------------------------------------------
# Configs.
# ---------------------------------------------------------------------------------------------
def toy_config(study_: Study, budget: dict):
  config = config_lib.load_file(ROOT / "configs" / "toy_gaussian.py")
  for field, value in study_.overrides:
    section, name = field.split(".")
    config[section][name] = value
  tr = config.training
  tr.num_steps, tr.batch_size = budget["toy_steps"], budget["toy_batch"]
  tr.log_every = tr.checkpoint_every = max(budget["toy_steps"] // 4, 1)
  config.optim.warmup_steps = min(100, budget["toy_steps"] // 10)
  config.sampling.num_samples = config.sampling.batch_size = min(512, budget["toy_samples"])
  config.sampling.nfe = budget["toy_nfe"][-1]  # the final samples of training
  config.eval.num_samples = budget["toy_samples"]
  config.eval.vendi_max_points = min(2000, budget["toy_samples"])
  return config


def write_digits(path: pathlib.Path) -> None:
  """The UCI digits as uint8 images ``(1797, 8, 8, 1)`` (grey levels 0..16 scaled to 0..255) and
  their labels, for ``data.dataset='array'``."""
  digits = bench_images.load_digits(8)
  images = np.round((digits.images + 1.0) * 127.5).astype(np.uint8)
  path.parent.mkdir(parents=True, exist_ok=True)
  np.savez(path, x=images, labels=digits.labels)


def digits_config(path: pathlib.Path, budget: dict):
  config = config_lib.load_file(ROOT / "configs" / "own_data.py", "images")
  config.data.path = str(path)
  config.data.eval_fraction = 0.3
  tr = config.training
  tr.num_steps = budget["digits_steps"]
  tr.log_every = tr.checkpoint_every = max(budget["digits_steps"] // 4, 1)
  # XLA:CPU needs the scan unrolled for a U-Net (training.unroll='auto'): one step per call keeps
  # the compile to one copy of the network's gradient.
  tr.steps_per_call = 1 if jax.default_backend() == "cpu" else 10
  config.optim.warmup_steps = min(100, budget["digits_steps"] // 10)
  config.sampling.num_samples = config.sampling.batch_size = 64
  config.sampling.nfe = budget["digits_nfe"][-1]
  config.eval.num_samples = budget["digits_samples"]
  return config


def digits_features(out: pathlib.Path):
  """``bench_images``' CNN features (trained once, cached in ``out``) on uint8 images."""
  features, info = bench_images.train_classifier(bench_images.load_digits(8), str(out))
  print(f"# digits feature CNN: held-out accuracy {info['heldout_accuracy']:.3f}", flush=True)
  return lambda images: features(images.astype(np.float32) / 127.5 - 1.0)


def command(study_: Study, budget: dict, out: pathlib.Path) -> str:
  """The ``python -m lim_jax.compare`` command that runs the same toy study (same workdir): every
  field where :func:`toy_config` differs from ``configs/toy_gaussian.py`` as an override."""
  base = json.loads(config_lib.to_json(config_lib.load_file(ROOT / "configs" / "toy_gaussian.py")))
  mine = json.loads(config_lib.to_json(toy_config(study_, budget)))
  overrides = []
  for section, fields in mine.items():
    for name, value in (fields.items() if isinstance(fields, dict) else ()):
      if base[section].get(name) != value:
        text = value if isinstance(value, str) else repr(
            tuple(value) if isinstance(value, list) else value).replace(" ", "")
        arg = f"--config.{section}.{name}={text}"
        overrides.append(f'"{arg}"' if any(ch in arg for ch in "'()") else arg)
  fams = ",".join(f for f in study_.families if f.split(":")[0] in FAMILIES)
  nfe = ",".join(map(str, budget["toy_nfe"]))
  return (f"python -m lim_jax.compare --config=configs/toy_gaussian.py --families={fams} "
          f"--seeds={budget['toy_seeds']} --nfe={nfe} --workdir={out / study_.name} "
          + " ".join(overrides))


# ---------------------------------------------------------------------------------------------
# Verdicts.
# ---------------------------------------------------------------------------------------------
def _seed_values(payload, family: str, metric: str, nfe: int) -> dict[int, float]:
  cell = payload["summary"].get(family, {}).get(metric, {}).get(str(nfe), {})
  return {int(s): v for s, v in cell.get("values", {}).items()}


def verdict(claim: Claim, payload) -> tuple[str, list[str]]:
  """``(verdict, per-NFE evidence lines)`` of ``claim`` from a study's ``compare.json``."""
  if claim.family not in payload["families"]:
    return "not run", [f"{claim.family} is not in this study"]
  nfes = payload["nfe"]
  if claim.nfe == "lowest":
    nfes = nfes[:1]
  sign = 1.0 if claim.better == "higher" else -1.0
  states, lines = [], []
  for n in nfes:
    a = _seed_values(payload, claim.family, claim.metric, n)
    b = _seed_values(payload, claim.baseline, claim.metric, n)
    d = stats.paired_difference(a, b)
    if d.n == 0:
      return "not run", [f"no finished runs of {claim.family} or {claim.baseline}"]
    better = d.excludes_zero() and sign * d.mean > 0
    worse = d.excludes_zero() and sign * d.mean < 0
    line = (f"NFE {n}: {claim.metric} {stats.t_interval(list(a.values())).mean:.4g} vs "
            f"{stats.t_interval(list(b.values())).mean:.4g}, diff {d.mean:+.3g} "
            f"[{d.low:+.3g}, {d.high:+.3g}] (n={d.n})")
    if claim.fidelity:
      f = stats.paired_difference(_seed_values(payload, claim.family, claim.fidelity, n),
                                  _seed_values(payload, claim.baseline, claim.fidelity, n))
      fid_worse = f.excludes_zero() and f.mean < 0
      worse = worse or fid_worse
      better = better and not fid_worse
      line += f"; {claim.fidelity} diff {f.mean:+.3g} [{f.low:+.3g}, {f.high:+.3g}]"
    states.append("better" if better else "worse" if worse else "unclear")
    lines.append(line)
  if all(s == "better" for s in states):
    return "supported", lines
  if any(s == "worse" for s in states):
    return "not supported", lines
  return "inconclusive", lines


def verdict_table(claims, payloads: dict, commands: dict[str, str]) -> str:
  rows = ["| paper | claim | data | family vs baseline | numbers (paired 95 % CI) | verdict |",
          "|---|---|---|---|---|---|"]
  for c in claims:
    payload = payloads.get(c.study)
    if payload is None:
      v, lines = "not run", ["study not run"]
    else:
      v, lines = verdict(c, payload)
    rows.append(f"| {c.paper} | {c.text} | {STUDIES[c.study].description} | {c.family} vs "
                f"{c.baseline} | {'<br>'.join(lines)} | **{v}** |")
  rows += ["", "Commands:", ""] + [f"- {name}: `{cmd}`" for name, cmd in commands.items()]
  return "\n".join(rows) + "\n"


# ---------------------------------------------------------------------------------------------
# Main.
# ---------------------------------------------------------------------------------------------
def available_families(config, families) -> tuple[list[str], list[str]]:
  """The entries whose family exists in this build and validates with ``config``."""
  keep, dropped = [], []
  for entry in families:
    if entry.split(":")[0] not in FAMILIES:
      dropped.append(f"{entry} (not in this build)")
      continue
    try:
      config_lib.validate(plan.family_config(config, plan.parse_families(entry)[0]))
      keep.append(entry)
    except ValueError as e:
      dropped.append(f"{entry} ({e})")
  return keep, dropped


def main(argv: list[str] | None = None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--out", default="runs/verdicts")
  size = p.add_mutually_exclusive_group()
  size.add_argument("--full", action="store_true", help="the large table (GPU)")
  size.add_argument("--smoke", action="store_true", help="tiny: checks that everything runs")
  p.add_argument("--only", default="", help="comma-separated studies: grid,sas,digits")
  p.add_argument("--list", action="store_true", help="print the compare commands and exit")
  p.add_argument("--write_digits", default="", help="only write the digits .npz to this path")
  args = p.parse_args(argv)
  if args.write_digits:
    write_digits(pathlib.Path(args.write_digits))
    return 0
  budget = BUDGETS["full" if args.full else "smoke" if args.smoke else "default"]
  out = pathlib.Path(args.out).resolve()
  names = [n for n in (args.only.split(",") if args.only else STUDIES) if n]
  unknown = [n for n in names if n not in STUDIES]
  if unknown:
    print(f"error: --only: unknown studies {unknown}; choose from {list(STUDIES)}", file=sys.stderr)
    return 2
  commands = {n: (command(STUDIES[n], budget, out) if n != "digits" else
                  f"python benchmarks/bench_verdicts.py --only=digits --out={out}"
                  + (" --full" if args.full else " --smoke" if args.smoke else ""))
              for n in names}
  if args.list:
    print("\n".join(commands.values()))
    return 0
  study.enable_compilation_cache(str(out / "jax_cache"))
  payloads = {}
  t_start = time.time()
  for name in names:
    st = STUDIES[name]
    if name == "digits":
      data_path = out / "digits" / "digits.npz"
      if not data_path.exists():
        write_digits(data_path)
      config = digits_config(data_path, budget)
      seeds, nfe, feature_fn = budget["digits_seeds"], budget["digits_nfe"], digits_features(out)
    else:
      config = toy_config(st, budget)
      seeds, nfe, feature_fn = budget["toy_seeds"], budget["toy_nfe"], None
    families, dropped = available_families(config, st.families)
    for d in dropped:
      print(f"# {name}: skipping {d}", flush=True)
    print(f"# study {name}: {', '.join(families)} x {seeds} seeds, NFE {nfe}", flush=True)
    t0 = time.time()
    payloads[name] = study.run_study(config, ",".join(families), seeds, str(out / name), nfe=nfe,
                                     feature_fn=feature_fn, command=commands[name])
    print(f"# study {name}: {time.time() - t0:.0f} s", flush=True)
  table = verdict_table([c for c in CLAIMS if c.study in names], payloads, commands)
  header = (f"Verdicts ({'full' if args.full else 'smoke' if args.smoke else 'default'} budget, "
            f"{time.time() - t_start:.0f} s):\n\n")
  (out / "verdicts.md").write_text(header + table, encoding="utf-8")
  print(header + table)
  return 0


if __name__ == "__main__":
  sys.exit(main())
