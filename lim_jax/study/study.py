"""One study end to end: plan, run (resumable), select (with tuning), summarize, write outputs.

``run_study`` is what ``python -m lim_jax.compare`` calls; a notebook or a benchmark can call it
with its own ``feature_fn`` for image metrics (as ``evaluate.evaluate`` takes one).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from lim_jax import data as data_lib
from lim_jax import train
from lim_jax.metrics import pairs
from lim_jax.study import plan as plan_lib
from lim_jax.study import report, runner, stats

Progress = Callable[[str], None]


def _print(line: str) -> None:
  print(line, flush=True)


def default_select_metric(records: Sequence[dict], split: str) -> str:
  """The first metric with a direction in the evaluation rows (``finite_fraction`` excluded)."""
  for rec in records:
    for row in rec.get("eval", {}).get(split, {}).get("rows") or []:
      for name in row:
        if name not in ("nfe", "sampler", "finite_fraction") and name in pairs.BETTER:
          return name
  raise ValueError("--select: no evaluated metric has a direction to select on")


def select(records: Mapping[str, Mapping[tuple, list[dict]]], metric: str
           ) -> tuple[dict[str, tuple], dict[str, list[tuple[str, float]]]]:
  """Per family, the tuning setting with the best validation ``metric`` (mean over seeds, then
  over NFE; :func:`lim_jax.metrics.pairs.badness` decides "best"). Settings whose runs all failed
  score NaN and are never chosen unless every setting failed.

  Returns:
    ``(selected setting per family, [(setting text, score)] per family)``.
  """
  selected, table = {}, {}
  for family, by_setting in records.items():
    scores = []
    for setting, recs in by_setting.items():
      per_nfe: dict[int, list[float]] = {}
      for rec in recs:
        for i, row in enumerate(rec.get("eval", {}).get("validation", {}).get("rows") or []):
          per_nfe.setdefault(i, []).append(float(row.get(metric, math.nan)))
      means = [float(np.mean(v)) for v in per_nfe.values()]
      score = float(np.mean(means)) if means else math.nan
      scores.append((setting, score))
    ranked = [(pairs.badness(metric, s), i) for i, (_, s) in enumerate(scores)]
    finite = [r for r in ranked if not math.isnan(r[0])]
    choice = min(finite)[1] if finite else 0
    selected[family] = scores[choice][0]
    table[family] = [(setting_text(s), v) for s, v in scores]
  return selected, table


def setting_text(setting: tuple) -> str:
  return ", ".join(f"{k}={v!r}" for k, v in setting) or "(config)"


def enable_compilation_cache(directory: str) -> None:
  """Turns on JAX's persistent compilation cache in ``directory`` for every program (unless
  ``JAX_COMPILATION_CACHE_DIR`` already names one): the seeds after the first of a family, and
  reruns, then load compiled programs instead of compiling them again."""
  if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
    return
  jax.config.update("jax_compilation_cache_dir", directory)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def check_image_features(config, feature_fn) -> None:
  """Image metrics that need features (``fid``, ``prdc``) need ``feature_fn`` or an Inception
  file: refused before any training rather than after it (``FileNotFoundError`` naming the field).
  """
  needs = [m for m in config.eval.metrics if m in ("fid", "prdc")]
  if not needs or feature_fn is not None or not data_lib.is_image(config.data):
    return
  path = config.eval.get("inception_path", "")
  if not path or not os.path.isfile(path):
    raise FileNotFoundError(
        f"eval.inception_path: the image metrics {needs} need the Inception-v3 weights of "
        f"pytorch-fid; got {path!r}. Pass --config.eval.inception_path=FILE, or keep only "
        "metrics without features: --config.eval.metrics='(\"pixel_vendi\",)'")


def run_study(base, families: str | Sequence[plan_lib.FamilySpec], num_seeds: int, workdir: str,
              nfe: Sequence[int] | None = None, tune: Sequence[str] = (),
              process_overrides: Mapping[str, Any] | None = None, select_metric: str = "",
              feature_fn: Callable[[np.ndarray], np.ndarray] | None = None,
              progress: Progress = _print, command: str = "") -> dict[str, Any]:
  """Runs (or resumes) a study and writes ``compare.json``, ``compare.md``, ``compare_<m>.png``.

  Args:
    base: CONFIG (not modified).
    families: ``'gaussian,levy,fbm:hurst=0.7'`` or parsed :class:`~lim_jax.study.plan.FamilySpec`.
    num_seeds: seeds per family (``config.seed + i``).
    workdir: the study directory.
    nfe: NFE list (default: ``eval.nfe_sweep`` or ``sampling.nfe``).
    tune: ``['FIELD=v1,v2']`` entries; every family gets the same grid, selected on the
      validation draw by ``select_metric`` (default: the first metric with a direction).
    process_overrides: ``process`` fields applied to every family that has them.
    feature_fn: image features for ``fid``/``prdc`` instead of Inception (see ``evaluate``).
    progress: called with one line per run.
    command: the command line, recorded in the outputs.

  Returns:
    The ``compare.json`` payload.

  Raises:
    ValueError / FileNotFoundError: a bad flag or config field, before any training.
  """
  specs = plan_lib.parse_families(families) if isinstance(families, str) else list(families)
  tune_fields = plan_lib.parse_tune(list(tune))
  if select_metric and not tune_fields:
    raise ValueError("--select is only used with --tune")
  runs = plan_lib.plan(base, specs, num_seeds, workdir, nfe, tune_fields, process_overrides)
  written = pairs.outputs(base.eval.metrics)
  if select_metric and select_metric not in written:
    raise ValueError(f"--select: {select_metric!r} is not written by eval.metrics "
                     f"{tuple(base.eval.metrics)}; choose one of {written}")
  if select_metric and pairs.BETTER.get(select_metric) is None:
    raise ValueError(f"--select: {select_metric!r} has no direction (neither lower nor higher is "
                     f"better), so no setting can be chosen by it; choose one of "
                     f"{[m for m in written if pairs.BETTER.get(m) is not None]}")
  if tune_fields and report.get_field(base, "data.dataset") in ("array", "image_folder") and not (
      report.get_field(base, "data.validation_fraction", 0.0)):
    raise ValueError("data.validation_fraction: --tune selects on a validation split of your "
                     "data; set it > 0 (e.g. 0.1)")
  check_image_features(runs[0].config, feature_fn)
  train.prepare_workdir(workdir)
  nfe_list = list(runs[0].config.eval.nfe_sweep)
  first_split = "validation" if tune_fields else "test"
  t_start = time.time()
  records: dict[plan_lib.Run, dict] = {}
  for k, run in enumerate(runs, 1):
    t0 = time.time()
    record, what = runner.run_one(run, [first_split], feature_fn)
    records[run] = record
    progress(f"compare: [{k}/{len(runs)}] {run.name}: {what}; "
             f"{runner.headline(record, first_split)} ({time.time() - t0:.1f} s)")

  labels = [s.label for s in specs]
  grid = plan_lib.tune_grid(tune_fields)
  grouped = {label: {setting: [] for setting in grid} for label in labels}
  for run, record in records.items():
    if record["train"]["status"] == "done":
      grouped[run.family.label][run.tune].append(record)
  tune_payload = None
  chosen = {label: () for label in labels}
  if tune_fields:
    metric = select_metric or default_select_metric(list(records.values()), "validation")
    chosen, table = select(grouped, metric)
    tune_payload = {"fields": [f for f, _ in tune_fields],
                    "grid": [setting_text(s) for s in grid],
                    "select": metric, "selected": {f: setting_text(s) for f, s in chosen.items()},
                    "validation": table}
    for k, run in enumerate([r for r in runs if r.tune == chosen[r.family.label]], 1):
      if records[run]["train"]["status"] != "done":
        continue
      record, what = runner.run_one(run, ["test"], feature_fn)
      records[run] = record
      progress(f"compare: test [{k}] {run.name}: {what}; {runner.headline(record, 'test')}")

  reported = {label: [records[r] for r in runs
                      if r.family.label == label and r.tune == chosen[label]
                      and records[r]["train"]["status"] == "done"] for label in labels}
  nfe_used = {}
  for label, recs in reported.items():
    rows = recs[0]["eval"]["test"]["rows"] if recs else []
    nfe_used[label] = [int(r["nfe"]) for r in rows]
  values = report.collect(reported, nfe_list)
  summary = report.summarize(values, labels, nfe_list)
  first = {}
  for run in runs:
    first.setdefault(run.family.label, run)
  payload = {
      "families": labels, "seeds": sorted({r.seed for r in runs}), "nfe": nfe_list,
      "nfe_used": nfe_used,
      "level": stats.LEVEL, "command": command, "tune": tune_payload,
      "pairs": dict(pairs.FIDELITY_OF),
      "data_floor": report.floor_summary(reported),
      "process": {label: {k: v for k, v in first[label].config.process.items()}
                  for label in labels},
      "runs": [{"family": r.family.label, "seed": r.seed, "tune": setting_text(r.tune),
                "directory": os.path.relpath(r.directory, workdir),
                "status": records[r]["train"]["status"],
                "error": records[r]["train"].get("error", ""),
                "reported": r.tune == chosen[r.family.label],
                "test": records[r].get("eval", {}).get("test", {}).get("rows"),
                "validation": records[r].get("eval", {}).get("validation", {}).get("rows")}
               for r in runs],
      "wall_seconds": time.time() - t_start,
      **summary}
  write_outputs(workdir, payload, base)
  progress(f"compare: wrote {os.path.join(workdir, 'compare.md')} ({len(runs)} runs, "
           f"{time.time() - t_start:.0f} s)")
  return payload


def _strict_json(tree: Any) -> Any:
  """``tree`` with NaN / infinities as None (``null``: strict JSON readers refuse ``NaN``)."""
  if isinstance(tree, dict):
    return {k: _strict_json(v) for k, v in tree.items()}
  if isinstance(tree, (list, tuple)):
    return [_strict_json(v) for v in tree]
  if isinstance(tree, float) and not math.isfinite(tree):
    return None
  return tree


def write_outputs(workdir: str, payload: Mapping[str, Any], config) -> None:
  """``compare.json`` (strict JSON: undefined values, e.g. the interval of one seed, are ``null``),
  ``compare.md`` and ``compare_<metric>.png``, each written atomically."""
  runner.write_json_atomic(os.path.join(workdir, "compare.json"), _strict_json(payload))
  path = os.path.join(workdir, "compare.md")
  with open(path + ".tmp", "w", encoding="utf-8") as f:
    f.write(report.markdown(payload, config))
  os.replace(path + ".tmp", path)
  for metric in payload["metrics"]:
    report.plot(os.path.join(workdir, f"compare_{metric}.png"), payload, metric)
