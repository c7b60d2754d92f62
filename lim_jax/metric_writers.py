"""Metrics to ``workdir/metrics.jsonl`` and TensorBoard (tensorboardX: no TensorFlow), process 0 only,
and the progress line on the console."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Mapping

import jax
from absl import logging


class MetricWriter:
  """Appends ``{"step": N, name: value, ...}`` lines to ``metrics.jsonl`` and writes TB scalars."""

  def __init__(self, workdir: str, tensorboard: bool = True):
    self.active = jax.process_index() == 0
    self._tb = None
    if not self.active:
      return
    os.makedirs(workdir, exist_ok=True)
    self._path = os.path.join(workdir, "metrics.jsonl")
    if tensorboard:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      self._tb = SummaryWriter(logdir=workdir)

  def write(self, step: int, scalars: Mapping[str, float]) -> None:
    if not self.active:
      return
    row = {"step": int(step), **{k: float(v) for k, v in scalars.items()}}
    with open(self._path, "a", encoding="utf-8") as f:
      f.write(json.dumps(row) + "\n")
    if self._tb is not None:
      for k, v in scalars.items():
        self._tb.add_scalar(k, float(v), int(step))
      self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


def format_eta(seconds: float) -> str:
  seconds = max(int(seconds), 0)
  return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Progress:
  """A one-line progress bar redrawn in place when stdout is a terminal (process 0 only)."""

  def __init__(self, total: int, start: int = 0, min_interval: float = 0.5):
    self.total, self.start = total, start
    self.enabled = sys.stdout.isatty() and jax.process_index() == 0
    self._t0 = time.time()
    self._last = 0.0
    self._min_interval = min_interval

  def update(self, step: int, loss: float | None = None) -> None:
    now = time.time()
    if not self.enabled or now - self._last < self._min_interval:
      return
    self._last = now
    done = step - self.start
    rate = done / max(now - self._t0, 1e-9)
    frac = step / self.total
    bar = "#" * int(30 * frac) + "-" * (30 - int(30 * frac))
    loss_s = "" if loss is None else f" loss {loss:.4f}"
    sys.stdout.write(f"\r[{bar}] {step}/{self.total}{loss_s} {rate:.1f} steps/s "
                     f"ETA {format_eta((self.total - step) / max(rate, 1e-9))}")
    sys.stdout.flush()

  def close(self) -> None:
    if self.enabled:
      sys.stdout.write("\n")
      sys.stdout.flush()


def log(msg: str) -> None:
  """Logs from process 0 only."""
  if jax.process_index() == 0:
    logging.info(msg)
