"""Orbax checkpointing of the train state (atomic, keep N, restore latest), locally or on ``gs://``.

A checkpoint step directory holds ``state`` (the TrainState pytree, ``StandardSave``) and ``config``
(the resolved config as JSON). Orbax makes a step visible only once every item is committed: on a
local disk it writes ``<step>.orbax-checkpoint-tmp-*`` and renames it; on Cloud Storage (no rename)
it writes ``<step>/`` in place and lists it as a checkpoint only once ``<step>/commit_success.txt``
exists. Either way a crash mid-save never leaves a half checkpoint that restore would pick, and the
next save of that step replaces the leftover.

Failures while saving (:class:`CheckpointSaveError`, the step named):

* a transient storage error (connection reset, timeout, HTTP 408/429/5xx, tensorstore
  ``UNAVAILABLE``...; the storage clients have already retried the single request) is retried with
  exponential backoff, at most ``retries`` times in a row. The synchronous part of a save is retried
  at once; a failure of the asynchronous part, which surfaces at the next ``save``/``wait``, is
  retried from the same state when it is still in memory (the last save of a run), and otherwise by
  the next checkpoint (the state it would have saved has been donated to the next train step);
* any other storage error (disk full, permission, read-only, missing bucket) stops at once.

In a multi-process run every process agrees on the outcome (a small all-gather) before anyone
retries, so the processes enter Orbax's barriers together.
"""

from __future__ import annotations

import errno
import os
import time
from typing import Any, Callable

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from etils import epath
from jax.experimental import multihost_utils

from lim_jax import storage

# Consecutive failed attempts tolerated before a save stops the run, and the first backoff (s).
SAVE_RETRIES = 3
RETRY_BACKOFF_S = 2.0

_TRANSIENT_ERRNOS = frozenset({
    errno.EIO, errno.EAGAIN, errno.EINTR, errno.EBUSY, errno.ETIMEDOUT, errno.ECONNRESET,
    errno.ECONNABORTED, errno.ECONNREFUSED, errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EPIPE})
_TRANSIENT_HTTP = frozenset({408, 429, 500, 502, 503, 504})
# absl status codes at the start of tensorstore's error messages that a retry can cure.
_TRANSIENT_STATUS = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "ABORTED", "RESOURCE_EXHAUSTED")
_OK, _TRANSIENT, _PERMANENT = 0, 1, 2


class CheckpointSaveError(RuntimeError):
  """Writing a checkpoint failed (disk full, permissions, storage gone); earlier ones are intact."""


def is_transient(e: BaseException) -> bool:
  """Whether a storage error is worth retrying (see the module docstring)."""
  if isinstance(e, (ConnectionError, TimeoutError)):
    return True
  code = getattr(e, "code", None)  # gcsfs' HttpError carries the HTTP status
  if isinstance(code, int) and code in _TRANSIENT_HTTP:
    return True
  if isinstance(e, OSError) and e.errno is not None:
    return e.errno in _TRANSIENT_ERRNOS
  if type(e).__module__.startswith("aiohttp"):  # client errors: connection-level, or a status
    status = getattr(e, "status", None)
    return status is None or status in _TRANSIENT_HTTP
  text = str(e)
  if any(f"os_error_code={n}" in text or os.strerror(n) in text
         for n in (errno.ENOSPC, errno.EDQUOT)):
    # A full local disk (TensorStore says RESOURCE_EXHAUSTED, with the errno or, in newer
    # versions, only its text "No space left on device") does not heal itself.
    return False
  return text.lstrip().startswith(_TRANSIENT_STATUS)


def _outcome(e: BaseException | None) -> int:
  if e is None:
    return _OK
  return _TRANSIENT if is_transient(e) else _PERMANENT


def _is_storage_error(e: BaseException) -> bool:
  """OSErrors, transient errors, and TensorStore's (Orbax's array writer) failed writes, which are
  ValueErrors carrying a status code and, for local files, ``[os_error_code=...]`` (a full disk is
  ``RESOURCE_EXHAUSTED ... [os_error_code=28]``)."""
  if isinstance(e, OSError) or is_transient(e):
    return True
  text = str(e)
  return isinstance(e, ValueError) and ("os_error_code" in text or text.lstrip().startswith(
      ("PERMISSION_DENIED", "DATA_LOSS", "NOT_FOUND")))


def _attempt(fn: Callable[[], Any]) -> tuple[Any, BaseException | None, int]:
  """Runs ``fn()`` once: ``(its result or None, the storage error or None, the outcome all hosts
  agree on)``. An error that is not a storage error is re-raised (a bug, not a flaky store)."""
  result, error = None, None
  try:
    result = fn()
  except Exception as e:  # pylint: disable=broad-except  # classified; the rest re-raised
    if not _is_storage_error(e):
      raise
    error = e
  return result, error, _agree(_outcome(error))


def _agree(code: int) -> int:
  """The worst outcome over all processes (every process then takes the same branch)."""
  if jax.process_count() == 1:
    return code
  return int(np.max(multihost_utils.process_allgather(np.int32(code))))


def _alive(state: Any) -> bool:
  """Whether every array of ``state`` still has its buffers (not donated to a later step)."""
  return not any(isinstance(x, jax.Array) and x.is_deleted() for x in jax.tree.leaves(state))


def _handler_registry() -> ocp.handlers.DefaultCheckpointHandlerRegistry:
  registry = ocp.handlers.DefaultCheckpointHandlerRegistry()
  for item, args in (("state", ocp.args.StandardSave), ("state", ocp.args.StandardRestore),
                     ("config", ocp.args.JsonSave), ("config", ocp.args.JsonRestore)):
    registry.add(item, args)
  return registry


class Checkpointer:
  """Thin wrapper over ``ocp.CheckpointManager`` for ``workdir/checkpoints``.

  Args:
    workdir: a local directory or ``gs://BUCKET/...``.
    keep: how many of the newest checkpoints to keep (``None``: all).
    async_save: write in a background thread (the train step goes on meanwhile).
    retries: consecutive failed attempts tolerated for transient storage errors.
    backoff_s: first retry delay; each further retry doubles it.

  Raises:
    ValueError: naming ``--workdir`` when a ``gs://`` workdir cannot be reached (no ``gcs`` extra,
      missing bucket, no credentials); checked before the manager touches the bucket (gcsfs would
      create a missing bucket).
  """

  def __init__(self, workdir: str, keep: int | None, async_save: bool = True,
               retries: int = SAVE_RETRIES, backoff_s: float = RETRY_BACKOFF_S,
               warn: Callable[[str], None] = logging.warning):
    self.remote = storage.is_remote(workdir)
    if self.remote:
      storage.probe_writable(workdir, "--workdir")
    self.path = storage.as_path(workdir) / "checkpoints"
    self.directory = os.fspath(self.path)
    self.retries, self.backoff_s, self._warn = retries, backoff_s, warn
    options = ocp.CheckpointManagerOptions(
        preservation_policy=ocp.checkpoint_managers.LatestN(n=keep),
        create=not self.remote,  # object storage has no directories to create
        enable_async_checkpointing=async_save)
    self.manager = ocp.CheckpointManager(self.path, options=options,
                                         handler_registry=_handler_registry())
    self._pending: tuple[int, Any, dict] | None = None  # an asynchronous save not yet waited for
    self._failures = 0  # consecutive failed attempts (reset when a save completes)
    self._listing_fresh = False  # whether the step list was re-read after the last failure

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self.manager.all_steps())

  # ---- saving --------------------------------------------------------------------------------
  def save(self, step: int, state: Any, config_dict: dict) -> bool:
    """Starts saving ``state`` as ``step`` (after the previous save has completed).

    Raises:
      CheckpointSaveError: this save or the previous one failed for good (see the module docs).
    """
    self._settle()
    saved = self._start(step, state, config_dict)
    self._pending = (step, state, config_dict)
    return saved

  def _start(self, step: int, state: Any, config_dict: dict) -> bool:
    """``manager.save``, its synchronous part retried on transient errors."""
    def save() -> bool:
      return self.manager.save(step, args=ocp.args.Composite(
          state=ocp.args.StandardSave(state), config=ocp.args.JsonSave(config_dict)), force=True)

    while True:
      saved, error, agreed = _attempt(save)
      if agreed == _OK:
        return saved
      self._failed(step, error, agreed)

  def _settle(self) -> None:
    """Waits for the save in flight; on a transient failure saves its state again if it is still in
    memory, else leaves the retry to the next checkpoint."""
    if self._pending is None:
      return
    step, state, config_dict = self._pending
    self._pending = None
    while True:
      _, error, agreed = _attempt(self.manager.wait_until_finished)
      if agreed == _OK:
        self._failures = 0
        return
      alive = _alive(state)
      self._failed(step, error, agreed, backoff=alive)
      if self._listing_fresh and step in self.all_steps():
        # The error hit a file outside the commit (the step metadata): the step is complete.
        self._warn(f"the checkpoint of step {step} was committed despite that error; kept")
        self._failures = 0
        return
      if not alive:
        self._warn(f"the checkpoint of step {step} was not written; the next checkpoint "
                   f"retries with a newer state (newest complete: {self._complete(step)})")
        return
      self._start(step, state, config_dict)

  def _failed(self, step: int, error: BaseException | None, agreed: int,
              backoff: bool = True) -> None:
    """Counts a failed attempt (``agreed``: the worst outcome over the processes); raises when it
    is permanent or the retries are spent, else waits the backoff and re-reads the step list (the
    partial step is not listed: it has no commit marker, and the next save of it replaces it)."""
    self._failures += 1
    permanent = agreed == _PERMANENT
    what = storage.describe_error(error) if error is not None else "failed on another process"
    if permanent or self._failures > self.retries:
      last = self._complete(step)
      tried = "" if permanent else f" after {self._failures} attempts"
      raise CheckpointSaveError(
          f"saving the checkpoint of step {step} to {self.directory} failed{tried}: {what}. The "
          f"last complete checkpoint is {'step ' + str(last) if last is not None else 'none'}; "
          f"free space (or fix the storage) and rerun the same command to resume from it."
      ) from error
    delay = self.backoff_s * 2 ** (self._failures - 1) if backoff else 0.0
    self._warn(f"saving the checkpoint of step {step} failed ({what}); attempt "
               f"{self._failures}/{self.retries + 1}" + (f", retrying in {delay:.1f} s"
                                                         if backoff else ""))
    time.sleep(delay)
    self._listing_fresh = self._reload()

  def _reload(self) -> bool:
    """Re-reads the step list from storage; False (with a warning) when that fails too."""
    try:
      self.manager.reload()
      return True
    except Exception as e:  # the storage may still be failing; the retry will tell
      self._warn(f"could not re-read {self.directory}: {storage.describe_error(e)}")
      return False

  def _complete(self, failed: int) -> int | None:
    """The newest step listed on storage other than ``failed`` (None when none or unreadable)."""
    self._reload()
    try:
      steps = [s for s in self.manager.all_steps() if s != failed]
    except Exception:  # the storage is failing: say none rather than hide the save error
      return None
    return max(steps) if steps else None

  def wait(self) -> None:
    self._settle()

  def close(self) -> None:
    try:
      self._settle()
    except CheckpointSaveError:
      try:
        self.manager.close()
      except Exception:  # the same failure again; the first one is reported
        pass
      raise
    self.manager.close()

  # ---- restoring -----------------------------------------------------------------------------
  def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict]:
    """Restores ``step`` into the shapes/shardings of ``abstract_state``
    (``jax.ShapeDtypeStruct``s)."""
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
    skipped with a warning naming it and the step used instead, and moved to
    ``checkpoints_unreadable/`` (:meth:`_quarantine`); nothing is deleted.

    Raises:
      ValueError: config mismatch.
      RuntimeError: checkpoints exist but none loads.
    """
    steps = sorted(self.all_steps(), reverse=True)
    failed = []
    for step in steps:
      try:
        saved = self.saved_config(step)
      except Exception as e:  # unreadable, whatever the reader raised: try the previous step
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
      except Exception as e:  # unreadable, whatever the reader raised: try the previous step
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
    """Moves an unreadable step out of the manager's way (kept for inspection, never deleted).

    Locally one ``os.rename``. On object storage a move is a copy and a delete, ordered so that an
    interruption at any point leaves either the step still listed and intact (it is found unreadable
    again and moved again) or the step unlisted with its full copy kept: 1. copy every object to
    ``checkpoints_unreadable/<step>-<time>/`` and count the copies; 2. delete the step's
    ``commit_success.txt``, one object, which unlists it; 3. delete the rest.
    """
    src = self.path / str(step)
    dst = self.path.parent / "checkpoints_unreadable" / f"{step}-{int(time.time())}"
    if jax.process_index() == 0 and src.exists():
      if self.remote:
        _move_on_object_storage(src, dst)
      else:
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.rename(src, dst)
    if jax.process_count() > 1:  # nobody looks for the next step before the move is done
      multihost_utils.sync_global_devices(f"lim_jax_quarantine_{step}")
    return os.fspath(dst)


def _move_on_object_storage(src: epath.Path, dst: epath.Path) -> None:
  """Copy, verify, unlist, delete (see :meth:`Checkpointer._quarantine`)."""
  copied = storage.copy_tree(src, dst)
  if len(storage.files_under(dst)) < copied:
    raise OSError(f"copying {src} to {dst} is incomplete; {src} is left in place")
  marker = src / ocp.path.atomicity_types.COMMIT_SUCCESS_FILE
  if marker.exists():
    marker.unlink()
  storage.remove_tree(src)


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
