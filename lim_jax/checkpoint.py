"""Orbax checkpointing of the train state (atomic, keep N, restore latest).

A checkpoint step directory holds ``state`` (the TrainState pytree, ``StandardSave``) and ``config``
(the resolved config as JSON), written by Orbax to a temporary directory and renamed when complete,
so a crash mid-save never leaves a half checkpoint that restore would pick.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

import jax
import orbax.checkpoint as ocp
from absl import logging


class CheckpointSaveError(RuntimeError):
  """Writing a checkpoint failed (disk full, permissions, storage gone); earlier ones are intact."""


class Checkpointer:
  """Thin wrapper over ``ocp.CheckpointManager`` for ``workdir/checkpoints``.

  A failed write (``OSError`` from the synchronous part of ``save`` or from the background thread,
  surfacing at the next ``save``/``wait``/``close``) becomes a :class:`CheckpointSaveError` naming
  the step being written and the last complete checkpoint. Orbax writes into
  ``<step>.orbax-checkpoint-tmp`` and renames only when every item is committed, so the failed step
  is never listed and a rerun resumes from the last complete one.
  """

  def __init__(self, workdir: str, keep: int, async_save: bool = True):
    self.directory = os.path.join(os.path.abspath(workdir), "checkpoints")
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                           enable_async_checkpointing=async_save)
    self.manager = ocp.CheckpointManager(self.directory, options=options,
                                         item_names=("state", "config"))
    self._in_flight: int | None = None  # step of an asynchronous save not yet waited for

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self.manager.all_steps())

  def save(self, step: int, state: Any, config_dict: dict) -> bool:
    with self._reporting(step):
      saved = self.manager.save(step, args=ocp.args.Composite(
          state=ocp.args.StandardSave(state), config=ocp.args.JsonSave(config_dict)), force=True)
    self._in_flight = step
    return saved

  @contextlib.contextmanager
  def _reporting(self, step: int | None):
    try:
      yield
    except (OSError, ValueError) as e:
      if isinstance(e, ValueError) and not _is_storage_error(e):
        raise
      failed = self._in_flight if self._in_flight is not None else step
      self._in_flight = None
      complete = [s for s in self.manager.all_steps() if s != failed]
      last = max(complete) if complete else None
      raise CheckpointSaveError(
          f"saving the checkpoint of step {failed} to {self.directory} failed: {e}. The last "
          f"complete checkpoint is {'step ' + str(last) if last is not None else 'none'}; free "
          f"space (or fix the storage) and rerun the same command to resume from it.") from e

  def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict]:
    """Restores ``step`` into the shapes/shardings of ``abstract_state`` (``jax.ShapeDtypeStruct``s)."""
    out = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), config=ocp.args.JsonRestore()))
    return out["state"], out["config"]

  def saved_config(self, step: int) -> dict:
    """The config JSON stored with ``step``."""
    out = self.manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
    return out["config"]

  def restore_latest_good(self, abstract_state: Any, config_dict: dict,
                          warn=logging.warning) -> tuple[Any, int] | None:
    """Restores the newest checkpoint that loads, newest first; ``None`` if there is none.

    A checkpoint whose model, process or data fields differ from ``config_dict`` is refused with a
    ``ValueError`` naming the first differing field (restoring it would fail deep inside a jit, or
    silently train a different model). A checkpoint that fails to load (truncated, corrupted) is
    skipped with a warning naming it and the step used instead; nothing is deleted.

    Raises:
      ValueError: config mismatch.
      RuntimeError: checkpoints exist but none loads.
    """
    steps = sorted(self.all_steps(), reverse=True)
    failed = []
    for step in steps:
      try:
        saved = self.saved_config(step)
      except Exception as e:  # pylint: disable=broad-except
        failed.append((step, e))
        continue
      mismatch = first_mismatch(saved, config_dict, RESTORE_SECTIONS)
      if mismatch:
        field, old, new = mismatch
        raise ValueError(
            f"{field}: the checkpoint at step {step} in {self.directory} was written with "
            f"{field}={old!r} but the config has {new!r}; use another --workdir or the old config")
      try:
        state, _ = self.restore(step, abstract_state)
      except Exception as e:  # pylint: disable=broad-except
        failed.append((step, e))
        continue
      for bad_step, err in failed:
        moved = self._quarantine(bad_step)
        warn(f"checkpoint at step {bad_step} is unreadable ({type(err).__name__}: "
             f"{str(err).splitlines()[0][:200]}); using step {step} instead; the bad one is "
             f"kept at {moved}")
      if failed:
        self.manager.reload()
      return state, step
    if failed:
      raise RuntimeError(f"no readable checkpoint in {self.directory}: " + "; ".join(
          f"step {s}: {type(e).__name__}" for s, e in failed))
    return None

  def _quarantine(self, step: int) -> str:
    """Moves an unreadable step out of the manager's way (kept for inspection, never deleted)."""
    src = os.path.join(self.directory, str(step))
    dst = os.path.join(os.path.dirname(self.directory), "checkpoints_unreadable",
                       f"{step}-{int(time.time())}")
    if jax.process_index() == 0 and os.path.isdir(src):
      os.makedirs(os.path.dirname(dst), exist_ok=True)
      os.rename(src, dst)
    if jax.process_count() > 1:  # nobody looks for the next step before the rename is done
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      multihost_utils.sync_global_devices(f"lim_jax_quarantine_{step}")
    return dst

  def wait(self) -> None:
    with self._reporting(None):
      self.manager.wait_until_finished()
    self._in_flight = None

  def close(self) -> None:
    try:
      self.wait()
    except CheckpointSaveError:
      with contextlib.suppress(OSError, ValueError):  # the same failure again, reported once
        self.manager.close()
      raise
    self.manager.close()


def _is_storage_error(error: ValueError) -> bool:
  """TensorStore (Orbax's array writer) reports a failed write, e.g. a full disk, as a ValueError
  carrying the status code and ``[os_error_code=...]``."""
  text = str(error)
  return "os_error_code" in text or text.startswith(("RESOURCE_EXHAUSTED", "PERMISSION_DENIED",
                                                     "UNAVAILABLE", "DATA_LOSS"))


# Config sections that define the shapes and meaning of the saved state.
RESTORE_SECTIONS = ("model", "process", "data")


def first_mismatch(saved: dict, current: dict, sections) -> tuple[str, Any, Any] | None:
  """The first ``(dotted field, saved value, current value)`` that differs in ``sections``."""
  for section in sections:
    a, b = saved.get(section, {}), current.get(section, {})
    for name in sorted(set(a) | set(b)):
      va, vb = a.get(name), b.get(name)
      if isinstance(va, (list, tuple)) or isinstance(vb, (list, tuple)):
        va = list(va) if va is not None else None
        vb = list(vb) if vb is not None else None
      if va != vb:
        return f"{section}.{name}", va, vb
  return None


def abstract_like(tree: Any) -> Any:
  """``ShapeDtypeStruct``s (with shardings) describing ``tree``, for restore."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree)
