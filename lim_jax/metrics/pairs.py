"""Metric pairs and directions: what a comparison table shows, in which order, and what is "best".

A coverage-type metric alone can be gamed: a model that scatters samples everywhere covers every
mode (and the neighbourhood of every real point) while few of its samples look like data. On the
imbalanced grid, for example, a model can cover every rare mode with a quarter of its samples on a
mode while another covers fewer rare modes with two thirds on a mode; neither number ranks them
alone. Each coverage-type metric therefore has a fidelity partner, and tables put the fidelity
metric first and its coverage metrics right after it:

============================================  ==================================================
fidelity (are the samples like the data?)     coverage (is all of the data produced?)
============================================  ==================================================
``in_mode_fraction`` (on-mode fraction)       ``modes_covered``, ``rare_modes_covered``
``precision`` (Kynkäänniemi et al. 2019)      ``recall``
``density`` (Naeem et al. 2020)               ``coverage``
============================================  ==================================================

Both members of each pair come from one metric function (``mode_coverage``, ``prdc``), so asking
for one computes the other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

FIDELITY_OF: dict[str, str] = {
    "modes_covered": "in_mode_fraction",
    "rare_modes_covered": "in_mode_fraction",
    "recall": "precision",
    "coverage": "density",
}

# "lower" / "higher" is better, or a number: closest to it is best (density is 1 in expectation
# when samples and data follow one law, Naeem et al. 2020; above 1 means samples crowd dense
# regions). Metrics without an entry (vendi, pixel_vendi: compare with the data's own value) get
# no "best" mark.
BETTER: dict[str, str | float] = {
    "sliced_wasserstein": "lower", "mmd": "lower", "tail_quantile_log_error": "lower",
    "weight_tv": "lower", "fid": "lower",
    "modes_covered": "higher", "rare_modes_covered": "higher", "in_mode_fraction": "higher",
    "precision": "higher", "recall": "higher", "coverage": "higher", "density": 1.0,
    "finite_fraction": "higher",
}


# The values each ``eval.metrics`` entry writes (an entry not listed writes one value of its name).
OUTPUTS: dict[str, tuple[str, ...]] = {
    "mode_coverage": ("modes_covered", "rare_modes_covered", "in_mode_fraction", "weight_tv"),
    "prdc": ("precision", "recall", "density", "coverage"),
}


def outputs(metrics: Sequence[str]) -> list[str]:
  """The value names that the ``eval.metrics`` entries ``metrics`` write."""
  return [name for m in metrics for name in OUTPUTS.get(m, (m,))]


def order_columns(names: Sequence[str]) -> list[str]:
  """``names`` with every coverage metric moved right after its fidelity partner (fidelity first);
  the others keep their order."""
  names = list(dict.fromkeys(names))
  coverage = [n for n in names if n in FIDELITY_OF and FIDELITY_OF[n] in names]
  out = []
  for n in names:
    if n in coverage:
      continue
    out.append(n)
    out += [c for c in coverage if FIDELITY_OF[c] == n]
  return out


def missing_partners(names: Sequence[str]) -> list[tuple[str, str]]:
  """``(coverage metric, its fidelity partner)`` for every coverage metric of ``names`` whose
  partner is absent (a table must then say so)."""
  return [(n, FIDELITY_OF[n]) for n in names if n in FIDELITY_OF and FIDELITY_OF[n] not in names]


def badness(name: str, value: float) -> float:
  """A number that is smaller for a better ``value`` of metric ``name`` (NaN when the metric has
  no direction or the value is not finite)."""
  rule = BETTER.get(name)
  if rule is None or not math.isfinite(value):
    return math.nan
  if rule == "lower":
    return value
  if rule == "higher":
    return -value
  return abs(value - float(rule))


def best_indices(name: str, values: Sequence[float]) -> list[int]:
  """Indices of the best of ``values`` for metric ``name`` (all of them on a tie); empty without a
  direction, without a finite value, or when every value ties (nothing stands out)."""
  scores = [badness(name, v) for v in values]
  finite = [i for i, s in enumerate(scores) if not math.isnan(s)]
  if not finite:
    return []
  top = min(scores[i] for i in finite)
  best = [i for i in finite if scores[i] == top]
  return [] if len(best) == len(values) > 1 else best


def direction_text(name: str) -> str:
  """``'lower is better'``, ``'higher is better'``, ``'closest to 1 is best'`` or ``''``."""
  rule = BETTER.get(name)
  if rule is None:
    return ""
  if rule in ("lower", "higher"):
    return f"{rule} is better"
  return f"closest to {rule:g} is best"
