"""Transient storage errors during a checkpoint save: retried a bounded number of times, then the
run stops naming the step, and a half-written step is never listed (local disk; tests/test_gcs.py
runs the same checks on a Cloud Storage emulator)."""

from __future__ import annotations

import errno
from unittest import mock

import jax.numpy as jnp
import numpy as np
import pytest
from etils import epath

from lim_jax import checkpoint as ckpt_lib
from lim_jax import storage

CONFIG = {"model": {"name": "mlp"}, "process": {}, "data": {}}


def _flaky_write_text(failures: list[int], match: str):
  """``epath.Path.write_text`` raising ECONNRESET while ``failures[0] > 0`` for paths containing
  ``match`` and ``array_metadatas`` (written inside the ``state`` item, so a failure there keeps
  the step uncommitted); a negative count fails for ever."""
  real = epath.Path.write_text

  def write_text(self, *args, **kwargs):
    if match in str(self) and "array_metadatas" in str(self) and failures[0] != 0:
      failures[0] -= 1
      raise ConnectionResetError(errno.ECONNRESET, "Connection reset by peer", str(self))
    return real(self, *args, **kwargs)

  return write_text


def check_retry_then_stop(workdir: str, match: str) -> None:
  """Reference: the saved values themselves (a restored checkpoint equals the array saved) and
  the listing of a fresh manager.

  1. one transient failure while the state is still in memory: the same step is saved again, a
     warning names it;
  2. one transient failure after the state was donated to the next step (its buffers deleted): a
     warning says the step was not written, and the next checkpoint is saved;
  3. failures for ever: ``CheckpointSaveError`` naming step 30, the attempts and the last complete
     step 20, after ``retries`` retries; a fresh manager lists only the complete steps.
  """
  warnings: list[str] = []
  ckpt = ckpt_lib.Checkpointer(workdir, None, async_save=True, retries=2, backoff_s=0.01,
                               warn=warnings.append)
  failures = [1]
  with mock.patch.object(type(epath.Path(workdir)), "write_text",
                         _flaky_write_text(failures, match)):
    ckpt.save(10, {"w": jnp.arange(4.0)}, CONFIG)
    ckpt.wait()
    assert failures == [0], "the injected failure was never hit"
    assert any("step 10 failed" in w and "ConnectionResetError" in w for w in warnings), warnings
    assert ckpt.all_steps() == [10]

    failures[0] = 1
    donated = {"w": jnp.arange(4.0) + 5}
    ckpt.save(15, donated, CONFIG)
    donated["w"].delete()  # what donating the state to the next train step does
    ckpt.save(20, {"w": jnp.arange(4.0) + 10}, CONFIG)
    ckpt.wait()
    assert any("step 15 was not written" in w for w in warnings), warnings
    assert ckpt.all_steps() == [10, 20]

    failures[0] = -1
    with pytest.raises(ckpt_lib.CheckpointSaveError,
                       match=r"step 30 .*after 3 attempts.*Connection reset.*last complete "
                             r"checkpoint is step 20"):
      ckpt.save(30, {"w": jnp.arange(4.0) + 20}, CONFIG)
      ckpt.close()
  fresh = ckpt_lib.Checkpointer(workdir, None, async_save=False)
  assert fresh.all_steps() == [10, 20]
  for step, offset in ((10, 0), (20, 10)):
    restored, _ = fresh.restore(step, {"w": jnp.zeros(4)})
    np.testing.assert_array_equal(np.asarray(restored["w"]), np.arange(4.0) + offset)
  fresh.close()


def test_transient_save_errors_are_retried_then_named(tmp_path):
  check_retry_then_stop(str(tmp_path / "run"), match=str(tmp_path))


def test_transient_classification():
  """Reference: the error kinds of the module docstring (errno, HTTP status, tensorstore status)."""
  assert ckpt_lib.is_transient(ConnectionResetError(errno.ECONNRESET, "reset"))
  assert ckpt_lib.is_transient(TimeoutError("timed out"))
  assert ckpt_lib.is_transient(OSError(errno.EIO, "I/O error"))
  assert ckpt_lib.is_transient(ValueError("UNAVAILABLE: HTTP 503 from the server"))
  http = type("HttpError", (Exception,), {})("Service Unavailable")
  http.code = 503
  assert ckpt_lib.is_transient(http)
  assert not ckpt_lib.is_transient(OSError(errno.ENOSPC, "No space left on device"))
  assert not ckpt_lib.is_transient(PermissionError(errno.EACCES, "Permission denied"))
  assert not ckpt_lib.is_transient(ValueError("NOT_FOUND: no such bucket"))
  forbidden = type("HttpError", (Exception,), {})("Forbidden")
  forbidden.code = 403
  assert not ckpt_lib.is_transient(forbidden)
  # A full local disk as TensorStore reports it (older: os_error_code=28; tensorstore 0.1.7x:
  # quoted, after the OS text); RESOURCE_EXHAUSTED alone (a quota or rate limit) is transient.
  for text in ('RESOURCE_EXHAUSTED: Error writing local file "/x": [os_error_code=28]',
               'RESOURCE_EXHAUSTED: Error writing "k" in OCDBT database at local file "/x": Failed '
               "to write 519 bytes to file 13: No space left on device [os_error_code='28']"):
    assert not ckpt_lib.is_transient(ValueError(text)), text
  assert ckpt_lib.is_transient(ValueError("RESOURCE_EXHAUSTED: rate limit"))


def test_describe_error_keeps_the_end_of_a_long_message():
  """The OS reason sits at the end of TensorStore's long one-line messages."""
  long = ValueError("RESOURCE_EXHAUSTED: Error writing " + "d/" * 300 + ": No space left on device")
  text = storage.describe_error(long)
  assert len(text) < 340 and text.endswith("No space left on device")
  assert text.startswith("ValueError: RESOURCE_EXHAUSTED: Error writing")
