"""metrics.jsonl semantics: rows appended locally, whole-object flushes on object storage, and a
resume that continues the file without duplicate steps (tests/test_gcs.py runs the object-storage
case against a Cloud Storage emulator)."""

from __future__ import annotations

import json

from lim_jax.metric_writers import MetricWriter


def read_rows(text: str) -> list[dict]:
  return [json.loads(line) for line in text.splitlines()]


def test_resume_drops_rows_after_the_restored_step_and_torn_lines(tmp_path):
  """Reference: the rows written by hand. A crash after logging step 30 (checkpoint at 20) and
  mid-append (a torn last line): ``truncate_after(20)`` keeps steps <= 20 in order, and the
  resumed rows follow them, each step once."""
  w = MetricWriter(str(tmp_path), tensorboard=False)
  for step in (10, 20, 30):
    w.write(step, {"train/loss": step / 10})
  w.close()
  with open(tmp_path / "metrics.jsonl", "a", encoding="utf-8") as f:
    f.write('{"step": 40, "train/lo')  # a crash in the middle of an append
  w = MetricWriter(str(tmp_path), tensorboard=False)
  w.truncate_after(20)
  for step in (30, 40):
    w.write(step, {"train/loss": step / 10})
  w.close()
  rows = read_rows((tmp_path / "metrics.jsonl").read_text())
  assert [r["step"] for r in rows] == [10, 20, 30, 40]
  assert [r["train/loss"] for r in rows] == [1.0, 2.0, 3.0, 4.0]


def test_truncate_keeps_a_file_without_later_rows_untouched(tmp_path):
  """Reference: the file's bytes before and after (nothing to drop means no rewrite)."""
  w = MetricWriter(str(tmp_path), tensorboard=False)
  w.write(10, {"sample/nfe": 5})
  before = (tmp_path / "metrics.jsonl").read_bytes()
  w.truncate_after(10)
  w.close()
  assert (tmp_path / "metrics.jsonl").read_bytes() == before
