"""Confidence intervals over seeds (host-side numpy, float64).

With ``n`` per-seed values ``x_i``, mean ``m``, sample standard deviation
``s = sqrt(sum (x_i - m)^2 / (n - 1))`` and ``t_q`` the ``q = (1 + level) / 2`` quantile of
Student's t with ``n - 1`` degrees of freedom, the ``level`` confidence interval of the mean is
``m +- t_q s / sqrt(n)`` (exact for normal ``x_i``; Student 1908). The paired difference of two
families is the same interval over ``d_i = x_i - y_i`` on the seeds both have (seed ``i`` of every
family shares the data draw, the evaluation reference and the initial key), which removes the
seed-to-seed variation that the two share.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats as scipy_stats

LEVEL = 0.95


@dataclasses.dataclass(frozen=True)
class Interval:
  """``mean +- half_width`` over ``n`` values (``half_width`` NaN for ``n < 2``)."""

  n: int
  mean: float
  std: float
  half_width: float

  @property
  def low(self) -> float:
    return self.mean - self.half_width

  @property
  def high(self) -> float:
    return self.mean + self.half_width

  def excludes_zero(self) -> bool:
    """Whether the interval lies entirely on one side of 0 (False when undefined)."""
    return bool(self.n >= 2 and math.isfinite(self.half_width) and (self.low > 0 or self.high < 0))

  def to_dict(self) -> dict[str, float]:
    return {"n": self.n, "mean": self.mean, "std": self.std, "half_width": self.half_width,
            "low": self.low, "high": self.high}


def t_interval(values: Sequence[float], level: float = LEVEL) -> Interval:
  """The Student-t confidence interval of the mean of ``values`` (NaN entries kept: they make the
  mean NaN, as a failed metric should)."""
  x = np.asarray(values, np.float64)
  n = len(x)
  if n == 0:
    return Interval(0, math.nan, math.nan, math.nan)
  mean = float(np.mean(x))
  if n < 2:
    return Interval(1, mean, math.nan, math.nan)
  std = float(np.std(x, ddof=1))
  q = float(scipy_stats.t.ppf(0.5 + level / 2, n - 1))
  return Interval(n, mean, std, q * std / math.sqrt(n))


def paired_difference(values: Mapping[int, float], baseline: Mapping[int, float],
                      level: float = LEVEL) -> Interval:
  """Interval of ``values[s] - baseline[s]`` over the seeds ``s`` both have."""
  common = sorted(set(values) & set(baseline))
  return t_interval([values[s] - baseline[s] for s in common], level)
