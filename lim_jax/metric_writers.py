"""Metrics to ``workdir/metrics.jsonl`` and TensorBoard (tensorboardX: no TensorFlow), process 0
only, and the progress line on the console.

``metrics.jsonl`` holds one JSON object per line, ``{"step": N, name: value, ...}``.

* Local workdir: each row is appended and the file closed at once (nothing is lost on a crash).
* Object storage (``gs://``) has no append. The writer keeps the file's rows in memory (read once
  when it opens) and, on a flush, uploads the whole object again in one request; Cloud Storage shows
  an object whole or not at all, so a reader sees the rows up to the last flush or up to the one
  before, never a torn line. Flushes happen at most every ``flush_every_s`` seconds (default 10 s)
  and at :meth:`MetricWriter.close`: a crash (``kill -9``) loses at most the rows written since
  the last flush. A flush that fails (storage hiccup) is logged and retried at the next one; the
  rows stay in memory.
* Resume: :meth:`MetricWriter.truncate_after` drops the rows with ``step`` greater than the step the
  run resumes from (written after that checkpoint, and about to be written again) and any torn
  line, so a resumed run continues the file without duplicate steps. Rows of ``--mode=sample``
  and ``--mode=eval`` carry the step of the checkpoint they used and stay.

TensorBoard events go to the workdir too: tensorboardX writes ``gs://`` event files itself (through
``google-cloud-storage``, installed with the ``gcs`` extra), re-uploading the event file on each
flush; on object storage its flushes follow the same ``flush_every_s`` schedule. A resumed run
starts a new event file (TensorBoard merges the files of a directory).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Mapping

import jax
from absl import logging

from lim_jax import storage

REMOTE_FLUSH_EVERY_S = 10.0


class MetricWriter:
  """Writes ``{"step": N, name: value, ...}`` rows to ``metrics.jsonl`` and TB scalars."""

  def __init__(self, workdir: str, tensorboard: bool = True,
               flush_every_s: float = REMOTE_FLUSH_EVERY_S):
    self.active = jax.process_index() == 0
    self._tb = None
    if not self.active:
      return
    self._remote = storage.is_remote(workdir)
    self._path = storage.as_path(workdir) / "metrics.jsonl"
    self._flush_every_s = flush_every_s if self._remote else 0.0
    self._rows: list[str] = []  # object storage: the whole file, rewritten on flush
    self._dirty = False
    self._last_flush = time.monotonic()
    if self._remote:
      if self._path.exists():
        self._rows = self._path.read_text().splitlines()
    else:
      self._path.parent.mkdir(parents=True, exist_ok=True)
    if tensorboard:
      from tensorboardX import SummaryWriter  # optional heavy import, only when TB is wanted
      if self._remote:
        _gcs_event_files_close_once()
      self._tb = SummaryWriter(logdir=str(self._path.parent))

  def write(self, step: int, scalars: Mapping[str, float]) -> None:
    if not self.active:
      return
    row = json.dumps({"step": int(step), **{k: float(v) for k, v in scalars.items()}})
    if self._remote:
      self._rows.append(row)
      self._dirty = True
    else:
      with self._path.open("a", encoding="utf-8") as f:
        f.write(row + "\n")
    if self._tb is not None:
      for k, v in scalars.items():
        self._tb.add_scalar(k, float(v), int(step))
    if time.monotonic() - self._last_flush >= self._flush_every_s:
      self.flush(strict=False)

  def flush(self, strict: bool = True) -> None:
    """Makes the rows written so far durable (object storage: one upload of the whole file).

    With ``strict=False`` a failed upload is logged and left for the next flush.
    """
    if not self.active:
      return
    self._last_flush = time.monotonic()
    try:
      if self._remote and self._dirty:
        storage.write_text(self._path, "".join(r + "\n" for r in self._rows))
        self._dirty = False
      if self._tb is not None:
        self._tb.flush()
    except Exception as e:  # storage failure: the rows stay in memory for the next flush
      if strict:
        raise
      logging.warning("could not write %s (%s); retrying at the next flush", self._path,
                      storage.describe_error(e))

  def truncate_after(self, step: int) -> None:
    """Drops the rows with ``"step" > step`` (a resumed run writes them again)."""
    if not self.active:
      return
    rows = self._rows if self._remote else (
        self._path.read_text(encoding="utf-8").splitlines() if self._path.exists() else [])
    kept = [r for r in rows if (s := _step_of(r)) is not None and s <= step]
    if len(kept) == len(rows):
      return
    logging.info("metrics.jsonl: dropped %d row(s) after step %d (resuming from it)",
                 len(rows) - len(kept), step)
    if self._remote:
      self._rows, self._dirty = kept, True
      self.flush()
    else:
      storage.write_text(self._path, "".join(r + "\n" for r in kept))

  def close(self) -> None:
    if not self.active:
      return
    self.flush()
    if self._tb is not None:
      self._tb.close()
      self._tb = None

  def close_quietly(self) -> None:
    """:meth:`close` on a failure path: an error while closing is logged, not raised, so it
    cannot hide the error that stopped the run."""
    try:
      self.close()
    except Exception as err:  # noqa: BLE001 -- the original error is being raised
      logging.warning("metrics not closed cleanly: %s", err)
      self._tb = None


def _gcs_event_files_close_once() -> None:
  """Makes tensorboardX's ``gs://`` event-file writer close once.

  ``tensorboardX.record_writer.GCSRecordWriter.close`` uploads the whole event file and its
  ``__del__`` calls ``close`` again, so every writer re-uploads at garbage collection or
  interpreter exit, after :meth:`MetricWriter.close`; when the bucket is unreachable by then (a
  finished job's network, a stopped emulator) that upload retries for 120 s before the process
  can exit. Patched in place (idempotent): ``close`` does nothing after a successful close; a
  close that failed is retried by ``__del__`` as before.
  """
  from tensorboardX import record_writer  # pylint: disable=g-import-not-at-top
  cls = getattr(record_writer, "GCSRecordWriter", None)
  if cls is None or getattr(cls, "_lim_jax_close_once", False):
    return
  upload = cls.close

  def close(self) -> None:
    if not getattr(self, "_lim_jax_closed", False):
      upload(self)
      self._lim_jax_closed = True

  cls.close = close
  cls._lim_jax_close_once = True


def _step_of(row: str) -> int | None:
  """The ``step`` of one jsonl row; ``None`` for a torn line (a crash mid-append), dropped."""
  try:
    return int(json.loads(row)["step"])
  except (ValueError, KeyError, TypeError):
    return None


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
