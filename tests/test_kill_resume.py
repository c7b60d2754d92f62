"""Kill -9 at random points (including during checkpoint saves), rerun the same command: the run
resumes from the last complete checkpoint and ends with the same parameters as an
uninterrupted run."""

import os
import pathlib
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from test_cli import ROOT

ARGS = ["--config=configs/toy_gaussian.py", "--config.training.num_steps=120",
        "--config.training.log_every=10", "--config.training.checkpoint_every=10",
        "--config.training.keep_checkpoints=2", "--config.training.steps_per_call=5",
        "--config.training.batch_size=64", "--config.model.hidden=32", "--config.model.depth=1",
        "--config.sampling.sampler=em", "--config.sampling.nfe=5",
        "--config.sampling.num_samples=64", "--config.sampling.batch_size=64"]
ENV = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=1")


def start(workdir):
  return subprocess.Popen([sys.executable, "-m", "lim_jax.main", f"--workdir={workdir}", *ARGS],
                          cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)


def kill_when(proc, workdir: pathlib.Path, during_save: bool, min_steps: int, timeout=120.0):
  """SIGKILLs ``proc`` once a checkpoint >= min_steps exists (and, if asked, while a save's
  temporary directory is present). Returns False if the run finished first."""
  ckpts = workdir / "checkpoints"
  t0 = time.time()
  while proc.poll() is None and time.time() - t0 < timeout:
    names = [p.name for p in ckpts.iterdir()] if ckpts.is_dir() else []
    done = [int(n) for n in names if n.isdigit()]
    saving = any("tmp" in n for n in names)
    if done and max(done) >= min_steps and (saving or not during_save):
      proc.send_signal(signal.SIGKILL)
      proc.wait()
      return True
    time.sleep(0.002)
  proc.wait()
  return False


@pytest.mark.integration
def test_kill_9_then_rerun_matches_uninterrupted(tmp_path):
  """Reference: the samples (a deterministic function of the final EMA parameters and the seed) of
  an uninterrupted run; after 3 kills (one during a save) the rerun gives the same samples
  (allclose 1e-5), and a kill never leaves an unreadable latest checkpoint behind."""
  ref = tmp_path / "ref"
  r = subprocess.run([sys.executable, "-m", "lim_jax.main", f"--workdir={ref}", *ARGS], cwd=ROOT,
                     env=ENV, capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr[-3000:]
  work = tmp_path / "killed"
  rng = random.Random(0)
  kills = 0
  for during_save, min_steps in ((True, 10), (False, rng.choice([30, 40, 50])), (True, 70)):
    proc = start(work)
    kills += kill_when(proc, work, during_save, min_steps)
  assert kills >= 2, "the runs finished before they could be killed"
  r = subprocess.run([sys.executable, "-m", "lim_jax.main", f"--workdir={work}", *ARGS], cwd=ROOT,
                     env=ENV, capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr[-3000:]
  assert "Resuming from checkpoint at step" in r.stderr
  a = np.load(ref / "samples" / "step_120.npz")["samples"]
  b = np.load(work / "samples" / "step_120.npz")["samples"]
  np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
