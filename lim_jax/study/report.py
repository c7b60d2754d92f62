"""The study's outputs: per-seed values -> intervals (``compare.json``), a Markdown report
(``compare.md``) and one quality-vs-NFE figure per metric (``compare_<metric>.png``)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from lim_jax import data as data_lib
from lim_jax.metrics import pairs
from lim_jax.study import stats

Values = dict[str, dict[str, dict[int, dict[int, float]]]]  # family -> metric -> nfe -> seed -> x
NOT_METRICS = ("nfe", "sampler")

# Settings every family shares, printed in compare.md when the config has them (read with .get,
# so fields that a version of the library lacks are skipped).
SHARED_FIELDS = (
    "data.dataset", "data.image_size", "model.name", "model.hidden", "model.depth",
    "model.ch", "model.ch_mult", "model.num_res_blocks", "model.dtype", "model.parameterization",
    "model.sigma_data", "training.batch_size", "training.num_steps", "training.loss",
    "training.noise_levels", "training.p_mean", "training.p_std", "optim.optimizer",
    "optim.learning_rate", "optim.lr_schedule", "optim.warmup_steps", "optim.grad_clip",
    "optim.ema_decay", "sampling.sampler", "sampling.grid", "sampling.rho", "sampling.time_power",
    "eval.metrics", "eval.num_samples", "eval.prdc_k")
TOY_FIELDS = ("data.num_train", "data.alpha")
OWN_DATA_FIELDS = ("data.path", "data.eval_fraction", "data.validation_fraction",
                   "data.split_seed", "data.random_flip")


def shared_fields(config) -> list[str]:
  """The :data:`SHARED_FIELDS` the config has, plus the data fields its kind of data reads."""
  dataset = get_field(config, "data.dataset", "")
  if dataset in ("array", "image_folder"):
    extra = OWN_DATA_FIELDS
  elif dataset in data_lib.TOY_DATASETS:
    extra = TOY_FIELDS if dataset == "sas" else TOY_FIELDS[:1]
  else:
    extra = ()
  names = list(SHARED_FIELDS[:1]) + list(extra) + list(SHARED_FIELDS[1:])
  return [f for f in names if get_field(config, f) is not None]

PAIRS_NOTE = (
    "Coverage-type metrics are shown beside their fidelity pair: modes covered and rare modes "
    "covered next to the on-mode fraction (`in_mode_fraction`), recall next to precision, coverage "
    "next to density. A coverage number alone can be won by scattering samples over the space; "
    "read each pair together.")


def get_field(config, dotted: str, default: Any = None) -> Any:
  """``config.a.b`` for ``'a.b'`` through ``.get`` (``default`` when a part is missing)."""
  node = config
  for part in dotted.split("."):
    if not hasattr(node, "get"):
      return default
    node = node.get(part, None)
    if node is None:
      return default
  return node


def collect(records: Mapping[str, Sequence[dict]], nfe: Sequence[int],
            split: str = "test") -> Values:
  """Per-seed metric values of each family's finished runs: ``family -> metric -> nfe -> seed``
  (row ``i`` of a run's evaluation is requested NFE ``nfe[i]``)."""
  out: Values = {}
  for family, recs in records.items():
    table = out.setdefault(family, {})
    for rec in recs:
      rows = rec.get("eval", {}).get(split, {}).get("rows") or []
      for n, row in zip(nfe, rows):
        for name, value in row.items():
          if name in NOT_METRICS or not isinstance(value, (int, float)):
            continue
          table.setdefault(name, {}).setdefault(int(n), {})[int(rec["seed"])] = float(value)
  return out


def floor_summary(records: Mapping[str, Sequence[dict]], split: str = "test",
                  level: float = stats.LEVEL) -> dict[str, dict[str, Any]]:
  """The data floor (fresh data against the reference, ``lim_jax.evaluate.data_floor``) per metric:
  its interval over seeds and the per-seed values. It depends on the seed (data and reference),
  not on the family, so the first record of each seed that has one is used."""
  per_seed: dict[str, dict[int, float]] = {}
  for recs in records.values():
    for rec in recs:
      floor = rec.get("eval", {}).get(split, {}).get("data_floor") or {}
      for name, value in floor.items():
        if isinstance(value, (int, float)):
          per_seed.setdefault(name, {}).setdefault(int(rec["seed"]), float(value))
  return {name: {**stats.t_interval([v[s] for s in sorted(v)], level).to_dict(),
                 "values": {str(s): v[s] for s in sorted(v)}} for name, v in per_seed.items()}


def metric_names(values: Values) -> list[str]:
  """Every metric seen, fidelity/coverage pairs adjacent, ``finite_fraction`` last."""
  names: list[str] = []
  for table in values.values():
    names += [n for n in table if n not in names]
  ordered = pairs.order_columns([n for n in names if n != "finite_fraction"])
  return ordered + (["finite_fraction"] if "finite_fraction" in names else [])


def summarize(values: Values, families: Sequence[str], nfe: Sequence[int],
              level: float = stats.LEVEL) -> dict[str, Any]:
  """Intervals per (family, metric, NFE), paired differences to ``families[0]`` and the best
  family per (metric, NFE) (by mean, in the metric's direction; :mod:`lim_jax.metrics.pairs`)."""
  names = metric_names(values)
  base = families[0]
  summary, paired, best = {}, {}, {}
  for family in families:
    summary[family], paired[family] = {}, {}
    for name in names:
      summary[family][name], paired[family][name] = {}, {}
      for n in nfe:
        per_seed = values.get(family, {}).get(name, {}).get(int(n), {})
        ref = values.get(base, {}).get(name, {}).get(int(n), {})
        summary[family][name][str(n)] = {
            **stats.t_interval([per_seed[s] for s in sorted(per_seed)], level).to_dict(),
            "values": {str(s): per_seed[s] for s in sorted(per_seed)}}
        if family != base:
          paired[family][name][str(n)] = stats.paired_difference(per_seed, ref, level).to_dict()
  for name in names:
    best[name] = {}
    for n in nfe:
      means = [summary[f][name][str(n)]["mean"] for f in families]
      best[name][str(n)] = [families[i] for i in pairs.best_indices(name, means)]
  return {"metrics": names, "summary": summary, "paired": paired, "best": best,
          "missing_pairs": pairs.missing_partners(names)}


# ---------------------------------------------------------------------------------------------
# Markdown.
# ---------------------------------------------------------------------------------------------
def _num(x: float) -> str:
  return "nan" if not math.isfinite(x) else f"{x:.4g}"


def _cell(interval: Mapping[str, float]) -> str:
  if interval["n"] == 0:
    return "-"
  if not math.isfinite(interval["half_width"]):
    return _num(interval["mean"])
  return f"{_num(interval['mean'])} ± {interval['half_width']:.2g}"


def _diff_cell(interval: Mapping[str, float]) -> str:
  if interval["n"] < 2 or not math.isfinite(interval["half_width"]):
    return "-" if interval["n"] == 0 else f"{interval['mean']:+.3g}"
  star = "*" if (interval["low"] > 0 or interval["high"] < 0) else ""
  return f"{interval['mean']:+.3g} [{interval['low']:+.3g}, {interval['high']:+.3g}]{star}"


def _header(name: str) -> str:
  rule = pairs.BETTER.get(name)
  if rule is None:
    return name
  if rule in ("lower", "higher"):
    return name + (" ↓" if rule == "lower" else " ↑")
  return f"{name} →{float(rule):g}"


def markdown(payload: Mapping[str, Any], config) -> str:
  """The ``compare.md`` text of a study ``payload`` (the content of ``compare.json``)."""
  families, seeds, nfe = payload["families"], payload["seeds"], payload["nfe"]
  names, summary = payload["metrics"], payload["summary"]
  level = int(round(100 * payload["level"]))
  base = families[0]
  dataset = get_field(config, "data.dataset", "?")
  path = get_field(config, "data.path", "")
  lines = [f"# lim_jax.compare: {dataset}" + (f" ({path})" if path else ""), ""]
  lines += [f"{len(families)} families x {len(seeds)} seeds (seeds {', '.join(map(str, seeds))}: "
            f"seed = config.seed + i, shared by every family). Cells: mean ± half-width of the "
            f"{level} % confidence interval over seeds (Student t, n - 1 degrees of freedom); one "
            "seed gives the mean only. Evaluation: `eval.num_samples` samples per NFE scored "
            "against a held-out draw (toy generators: a fresh draw, not the training set; own "
            "data: the test split).", ""]
  lines += [f"**{PAIRS_NOTE}**", ""]
  floor = payload.get("data_floor") or {}
  if floor:
    lines += ["The row *data (floor)* scores fresh data of the same size against the same "
              "reference: what an exact sampler of the data law gets. Differences between "
              "families much smaller than its spread over seeds are not resolved by the metric at "
              "this sample size, and a family can score below it (e.g. by being slightly too "
              "narrow).", ""]
  for cov, fid in payload.get("missing_pairs", []):
    lines += [f"Warning: `{cov}` is shown without its fidelity pair `{fid}`.", ""]
  if payload.get("tune"):
    t = payload["tune"]
    lines += [f"Tuning: every family got the same grid ({len(t['grid'])} settings of "
              f"{', '.join(t['fields'])}), selected on `{t['select']}` (mean over NFE and seeds) "
              "on a validation draw independent of the test draw reported below.", ""]
  lines += ["## Shared settings", "", "| field | value |", "|---|---|"]
  lines += [f"| `{f}` | `{get_field(config, f)!r}` |" for f in shared_fields(config)]
  lines += [f"| NFE | {', '.join(map(str, nfe))} (network evaluations per sample, as the sampler "
            "counts them) |", ""]
  for family, used in payload.get("nfe_used", {}).items():
    if used and list(used) != list(nfe):
      lines += [f"Note: {family} spent NFE {', '.join(map(str, used))} for the columns "
                f"{', '.join(map(str, nfe))} (its sampler's steps cost a whole number of "
                "evaluations each).", ""]
  lines += ["## Per-family process fields", "", "| family | process |", "|---|---|"]
  for family in families:
    fields = payload["process"].get(family, {})
    lines.append(f"| {family} | " + ", ".join(f"{k}={v!r}" for k, v in sorted(fields.items()))
                 + " |")
  lines.append("")
  for n in nfe:
    lines += [f"## NFE {n}", "", "| family | " + " | ".join(_header(m) for m in names) + " |",
              "|---" * (len(names) + 1) + "|"]
    for family in families:
      cells = []
      for m in names:
        cell = _cell(summary[family][m][str(n)])
        cells.append(f"**{cell}**" if family in payload["best"][m][str(n)] else cell)
      lines.append(f"| {family} | " + " | ".join(cells) + " |")
    if floor:
      lines.append("| data (floor) | " + " | ".join(_cell(floor[m]) if m in floor else "-"
                                                  for m in names) + " |")
    lines.append("")
    if len(families) > 1:
      lines += [f"Paired difference to {base} (family - {base}, same seeds; * = the "
                f"{level} % interval excludes 0):", "",
                "| family | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
      for family in families[1:]:
        lines.append(f"| {family} | " + " | ".join(
            _diff_cell(payload["paired"][family][m][str(n)]) for m in names) + " |")
      lines.append("")
  lines += ["Best mean per column in **bold** (↓ lower is better, ↑ higher is better, →1 closest "
            "to 1; columns without an arrow have no mark).", ""]
  failed = [r for r in payload["runs"] if r.get("status") != "done"]
  if failed:
    lines += ["## Runs that did not finish", ""]
    lines += [f"- {r['family']} seed {r['seed']}: {r.get('status')} {r.get('error', '')[:300]}"
              for r in failed]
    lines.append("")
  if payload.get("tune"):
    t = payload["tune"]
    lines += ["## Tuning (validation draw)", "", f"| family | setting | {t['select']} |",
              "|---|---|---|"]
    for family in families:
      for setting, score in t["validation"][family]:
        mark = " (selected)" if setting == t["selected"][family] else ""
        lines.append(f"| {family} | {setting}{mark} | {_num(score)} |")
    lines.append("")
  lines += [f"Command: `{payload.get('command', '')}`", ""]
  return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Figures.
# ---------------------------------------------------------------------------------------------
def plot(path: str, payload: Mapping[str, Any], metric: str) -> None:
  """Mean of ``metric`` vs NFE, one line per family, its confidence band shaded."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  nfe = payload["nfe"]
  fig, ax = plt.subplots(figsize=(5.5, 4), dpi=100)
  for family in payload["families"]:
    cells = [payload["summary"][family][metric][str(n)] for n in nfe]
    mean = [c["mean"] for c in cells]
    line, = ax.plot(nfe, mean, marker="o", label=family)
    if all(math.isfinite(c["half_width"]) for c in cells):
      ax.fill_between(nfe, [c["low"] for c in cells], [c["high"] for c in cells],
                      color=line.get_color(), alpha=0.2)
  if len(nfe) > 1 and max(nfe) / min(nfe) >= 4:
    ax.set_xscale("log")
  ax.set_xlabel("NFE")
  direction = pairs.direction_text(metric)
  ax.set_ylabel(metric + (f" ({direction})" if direction else ""))
  level = int(round(100 * payload["level"]))
  ax.set_title(f"{metric}: mean over {len(payload['seeds'])} seeds, {level} % CI", fontsize=9)
  ax.legend(fontsize=8)
  fig.tight_layout()
  tmp = path + ".tmp.png"
  fig.savefig(tmp)
  plt.close(fig)
  os.replace(tmp, path)
