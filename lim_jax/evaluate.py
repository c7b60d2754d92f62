"""``--mode=eval``: sample from a checkpoint and score the samples against fresh data.

Writes ``workdir/eval/step_<N>.json`` with one row per NFE (``eval.nfe_sweep``, or the configured
``sampling.nfe``) and logs each row to ``metrics.jsonl`` under ``eval/``.
"""

from __future__ import annotations

import json
import os
from typing import Callable

import numpy as np

from lim_jax import data as data_lib
from lim_jax.metric_writers import MetricWriter, log
from lim_jax.metrics import toy as toy_metrics


def _modes(samples, reference, config):
  del reference
  if config.data.dataset != "grid_imbalanced":
    return {}
  centers, weights, std = data_lib.grid_modes()
  return toy_metrics.mode_coverage(samples, centers, weights, std)


METRICS: dict[str, Callable[[np.ndarray, np.ndarray, object], dict[str, float]]] = {
    "sliced_wasserstein": lambda s, r, c: {"sliced_wasserstein": toy_metrics.sliced_wasserstein(
        s, r, seed=c.seed)},
    "mmd": lambda s, r, c: {"mmd": toy_metrics.mmd(s, r, seed=c.seed)},
    "tail_quantile_log_error": lambda s, r, c: {
        "tail_quantile_log_error": toy_metrics.tail_quantile_log_error(s, r)},
    "mode_coverage": _modes,
}


def score(samples: np.ndarray, reference: np.ndarray, config) -> dict[str, float]:
  """The metrics named in ``eval.metrics`` over the finite samples."""
  finite = np.all(np.isfinite(samples), axis=tuple(range(1, samples.ndim)))
  out = {"finite_fraction": float(finite.mean())}
  for name in config.eval.metrics:
    out.update(METRICS[name](samples[finite], reference, config))
  return out


def evaluate(config, workdir: str) -> list[dict[str, float]]:
  """Samples ``eval.num_samples`` per NFE from the latest checkpoint and writes the JSON."""
  from lim_jax import sample as sample_lib  # pylint: disable=g-import-not-at-top
  r = sample_lib.restore_for_inference(config, workdir)
  sweep = tuple(config.eval.get("nfe_sweep", ())) or (config.sampling.nfe,)
  reference = r["data"].reference(config.eval.num_samples, salt=1)
  rows = []
  writer = MetricWriter(workdir, tensorboard=False)
  for nfe in sweep:
    samples, used = sample_lib.draw_samples(
        config, r["process"], r["apply_fn"], r["state"].ema_params, r["mesh"],
        r["data"].data_shape, num=config.eval.num_samples, nfe=nfe)
    row = {"nfe": used, "sampler": config.sampling.sampler, **score(samples, reference, config)}
    rows.append(row)
    writer.write(r["step"], {f"eval/{k}": v for k, v in row.items() if k != "sampler"})
    log(f"eval step {r['step']} " + " ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
  writer.close()
  out_dir = os.path.join(workdir, "eval")
  os.makedirs(out_dir, exist_ok=True)
  path = os.path.join(out_dir, f"step_{r['step']}.json")
  with open(path, "w", encoding="utf-8") as f:
    json.dump({"step": r["step"], "family": r["process"].family,
               "dataset": config.data.dataset, "rows": rows}, f, indent=2)
  log(f"wrote {path}")
  return rows
