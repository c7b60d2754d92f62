"""Running a study's runs: train (or resume), evaluate, record; a rerun skips what is done.

Each run's directory holds what ``lim_jax.main`` writes (``config.json``, ``checkpoints/``,
``metrics.jsonl``, ``samples/``, ``eval/``) and ``compare_run.json``, written atomically after
training and after each evaluation:

``{"train": {"status": "done" | "failed", "step", "seconds", "error"},
"eval": {"test" | "validation": {"key", "rows", "nfe", "seconds", "data_floor"}}}`` (the data
floor that ``evaluate.evaluate_record`` returned, None for own data and images).

A rerun of the same study therefore

* skips training when the record says it finished (or failed on a non-finite loss, which would
  repeat: same data, same keys) or when the final checkpoint (step ``training.num_steps``) exists;
* otherwise calls ``train.train_and_evaluate``, which resumes a killed run from its last
  checkpoint;
* skips an evaluation whose record has the same key (a hash of the ``eval`` and ``sampling``
  sections), so changing ``--nfe`` or the metrics re-evaluates without retraining.

A directory trained with a different config (a field outside ``eval`` and ``sampling`` that changes
the trained weights) is refused naming the first differing field, rather than silently mixing two
studies.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from lim_jax import config_lib, evaluate, train
from lim_jax.study.plan import Run

RECORD = "compare_run.json"
EVAL_ONLY_SECTIONS = ("eval", "sampling")
# Fields that change how a run is logged or chunked, not the weights it ends with (the step key and
# the data are functions of the step alone).
WEIGHT_NEUTRAL = ("training.log_every", "training.checkpoint_every", "training.keep_checkpoints",
                  "training.steps_per_call", "training.unroll", "training.sample_every")


def _plain(config) -> dict:
  return json.loads(config_lib.to_json(config))


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
  if not isinstance(tree, dict):
    return {prefix: tree}
  out = {}
  for key, value in tree.items():
    out.update(_flatten(value, f"{prefix}.{key}" if prefix else key))
  return out


def training_mismatch(saved: dict, config) -> tuple[str, Any, Any] | None:
  """The first ``(field, saved, current)`` differing outside ``eval``/``sampling`` (and the
  :data:`WEIGHT_NEUTRAL` fields), or None."""
  a, b = (_flatten({k: v for k, v in d.items() if k not in EVAL_ONLY_SECTIONS})
          for d in (saved, _plain(config)))
  for field in sorted(set(a) | set(b)):
    if field not in WEIGHT_NEUTRAL and a.get(field) != b.get(field):
      return field, a.get(field), b.get(field)
  return None


def eval_key(config, split: str) -> str:
  """Hash of what an evaluation depends on beyond the trained weights."""
  plain = _plain(config)
  blob = json.dumps([plain.get(s) for s in EVAL_ONLY_SECTIONS] + [split], sort_keys=True)
  return hashlib.sha1(blob.encode()).hexdigest()[:16]


def read_record(directory: str) -> dict:
  path = os.path.join(directory, RECORD)
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except (FileNotFoundError, json.JSONDecodeError):
    return {}


def write_json_atomic(path: str, payload: Any) -> None:
  """Writes JSON to ``path`` through a temporary file and a rename (never half a file)."""
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(payload, f, indent=2, default=_json_default)
  os.replace(tmp, path)


def _json_default(value):
  if isinstance(value, (np.floating, np.integer)):
    return value.item()
  if isinstance(value, np.ndarray):
    return value.tolist()
  return str(value)


def final_checkpoint_exists(directory: str, num_steps: int) -> bool:
  """Whether ``checkpoints/<num_steps>`` is a finished Orbax step (temporary names differ)."""
  return os.path.isdir(os.path.join(directory, "checkpoints", str(num_steps)))


def check_directory(run: Run) -> None:
  """Refuses a run directory trained with another config (``ValueError`` naming the field)."""
  path = os.path.join(run.directory, "config.json")
  if not os.path.isfile(path):
    return
  with open(path, encoding="utf-8") as f:
    saved = json.load(f)
  mismatch = training_mismatch(saved, run.config)
  if mismatch:
    field, old, new = mismatch
    raise ValueError(f"{field}: {run.directory} was trained with {field}={old!r}, this study "
                     f"has {new!r}; use another --workdir (or delete that directory)")


def ensure_trained(run: Run, record: dict) -> tuple[dict, str]:
  """Trains or resumes ``run`` unless done; returns ``(train record, what happened)``."""
  done = record.get("train", {})
  if done.get("status") in ("done", "failed"):
    return done, "done earlier"
  steps = int(run.config.training.num_steps)
  if final_checkpoint_exists(run.directory, steps):
    return {"status": "done", "step": steps, "seconds": None}, "trained earlier"
  ckpts = os.path.join(run.directory, "checkpoints")
  resumed = os.path.isdir(ckpts) and any(n.isdigit() for n in os.listdir(ckpts))
  t0 = time.time()
  try:
    state = train.train_and_evaluate(run.config, run.directory)
    out = {"status": "done", "step": int(state.step), "seconds": time.time() - t0}
  except train.NonFiniteError as e:
    out = {"status": "failed", "error": str(e), "seconds": time.time() - t0}
  verb = "resumed and trained" if resumed else "trained"
  return out, f"{verb} in {out['seconds']:.1f} s" if out["status"] == "done" else "training failed"


def run_one(run: Run, splits: Sequence[str],
            feature_fn: Callable[[np.ndarray], np.ndarray] | None = None) -> tuple[dict, str]:
  """Trains (if needed) and evaluates ``run`` on ``splits``; returns ``(record, summary)``."""
  os.makedirs(run.directory, exist_ok=True)
  check_directory(run)
  record = read_record(run.directory)
  record.update(family=run.family.label, seed=run.seed, seed_index=run.seed_index,
                tune=[list(kv) for kv in run.tune])
  record["train"], what = ensure_trained(run, record)
  record.setdefault("eval", {})
  write_json_atomic(os.path.join(run.directory, RECORD), record)
  if record["train"]["status"] != "done":
    return record, f"{what}: {record['train'].get('error', '')[:200]}"
  for split in splits:
    key = eval_key(run.config, split)
    if record["eval"].get(split, {}).get("key") == key:
      continue
    t0 = time.time()
    result = evaluate.evaluate_record(run.config, run.directory, feature_fn=feature_fn,
                                      split=split)
    record["eval"][split] = {"key": key, "rows": result["rows"], "seconds": time.time() - t0,
                             "nfe": list(run.config.eval.nfe_sweep),
                             "data_floor": result.get("data_floor")}
    write_json_atomic(os.path.join(run.directory, RECORD), record)
    what += f"; {split} evaluated in {time.time() - t0:.1f} s"
  return record, what


def headline(record: dict, split: str, metrics: int = 2) -> str:
  """``'sliced_wasserstein 0.123/0.045 @ NFE 10/100'``: the first metrics of a record's rows."""
  rows = record.get("eval", {}).get(split, {}).get("rows") or []
  if not rows:
    return ""
  names = [k for k in rows[0] if k not in ("nfe", "sampler", "finite_fraction")][:metrics]
  nfe = "/".join(str(r["nfe"]) for r in rows)
  return "; ".join(f"{n} " + "/".join(f"{r.get(n, float('nan')):.4g}" for r in rows)
                   for n in names) + f" @ NFE {nfe}"
