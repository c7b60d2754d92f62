"""The command line as a user runs it: train then sample, outputs of the README, exit codes."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
TINY = ["--config.training.num_steps=20", "--config.training.log_every=10",
        "--config.training.checkpoint_every=10", "--config.training.steps_per_call=5",
        "--config.training.batch_size=64", "--config.model.hidden=32", "--config.model.depth=1",
        "--config.sampling.nfe=5", "--config.sampling.num_samples=64",
        "--config.sampling.batch_size=64", "--config.eval.num_samples=64"]


def run_cli(*args, cwd=ROOT):
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=2")
  return subprocess.run([sys.executable, "-m", "lim_jax.main", *args], cwd=cwd, env=env,
                        capture_output=True, text=True, timeout=300)


@pytest.mark.integration
def test_train_sample_eval_write_the_documented_outputs(tmp_path):
  """Reference: the output names and the resume message fixed by the README (Outputs)."""
  work = tmp_path / "run"
  cfg = "--config=configs/toy_gaussian.py"
  r = run_cli(cfg, f"--workdir={work}", *TINY)
  assert r.returncode == 0, r.stderr[-3000:]
  assert (work / "config.json").is_file()
  assert json.loads((work / "config.json").read_text())["training"]["num_steps"] == 20
  assert sorted(p.name for p in (work / "checkpoints").iterdir()) == ["10", "20"]
  rows = [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines()]
  train_rows = [r_ for r_ in rows if "train/loss" in r_]
  assert [r_["step"] for r_ in train_rows] == [10, 20]
  assert all(k in train_rows[0] for k in ("train/loss", "train/grad_norm", "train/steps_per_sec"))
  assert any("sample/sliced_wasserstein" in r_ for r_ in rows)
  assert list(work.glob("events.out.tfevents.*")), "TensorBoard events file"
  samples = np.load(work / "samples" / "step_20.npz")["samples"]
  assert samples.shape == (64, 2) and np.all(np.isfinite(samples))
  assert (work / "samples" / "step_20.png").stat().st_size > 1000
  assert "step 20/20" in r.stderr and "steps/s" in r.stderr and "ETA" in r.stderr

  r = run_cli(cfg, f"--workdir={work}", *TINY[1:], "--config.training.num_steps=30")
  assert r.returncode == 0, r.stderr[-3000:]
  assert "Resuming from checkpoint at step 20" in r.stderr
  assert (work / "checkpoints" / "30").is_dir()

  (work / "samples" / "step_30.npz").unlink()
  r = run_cli(cfg, f"--workdir={work}", "--mode=sample", *TINY)
  assert r.returncode == 0, r.stderr[-3000:]
  assert (work / "samples" / "step_30.npz").is_file()

  r = run_cli(cfg, f"--workdir={work}", "--mode=eval", *TINY, "--config.eval.nfe_sweep=(2,4)")
  assert r.returncode == 0, r.stderr[-3000:]
  result = json.loads((work / "eval" / "step_30.json").read_text())
  assert [row["nfe"] for row in result["rows"]] == [2, 4]
  assert {"sliced_wasserstein", "mmd", "finite_fraction"} <= set(result["rows"][0])


@pytest.mark.integration
def test_user_errors_exit_2_with_one_line(tmp_path):
  """Bad flags, bad values, unknown names and missing files: exit code 2 and a one-line message."""
  (tmp_path / "a_file").write_text("x")
  cases = [
      (["--config=configs/toy_gaussian.py", f"--workdir={tmp_path / 'a_file' / 'run'}"],
       "--workdir"),
      (["--config=configs/toy_gaussian.py", f"--workdir={tmp_path}",
        "--config.training.batch_size=abc"], "batch_size"),
      (["--config=configs/toy_gaussian.py", f"--workdir={tmp_path}",
        "--config.training.nonexistent=1"], "nonexistent"),
      (["--config=configs/toy_gaussian.py", f"--workdir={tmp_path}",
        "--config.optim.learning_rate=-1"], "optim.learning_rate"),
      (["--config=configs/toy_gaussian.py", f"--workdir={tmp_path}",
        "--config.training.batch_size=3"], "training.batch_size"),
      (["--config=configs/nope.py", f"--workdir={tmp_path}"], "nope.py"),
      (["--config=configs/toy_gaussian.py", "--workdir="], "--workdir is empty"),
      (["--config=configs/toy_gaussian.py", f"--workdir={tmp_path}", "--mode=fly"], "mode"),
      (["--config=configs/toy_gaussian.py", f"--workdir={tmp_path / 'empty'}", "--mode=sample"],
       "no checkpoint"),
      (["--config=configs/toy_gaussian.py", f"--workdir={tmp_path}", "--distributed"],
       "JAX_COORDINATOR_ADDRESS"),
  ]
  for args, needle in cases:
    r = run_cli(*args)
    assert r.returncode == 2, (args, r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("lim_jax: error:") and needle in last, (args, last)


_NOISY_FAILURE = """
import atexit, os, sys, threading, time
from lim_jax import cli

atexit.register(time.sleep, 0.05)  # the writers go on at exit, as Orbax's threads do

started = threading.Event()

def traceback_printer():  # what a failed background write does while it unwinds
  while True:
    err = sys.stderr  # a traceback printer holds its file while it writes a line in pieces
    err.write("RuntimeError")
    started.set()
    time.sleep(1e-4)
    err.write(": Event loop is closed\\n")
    os.write(2, b"a C++ thread's line\\n")  # a writer below sys.stderr

threading.Thread(target=traceback_printer, daemon=True).start()
started.wait()
sys.stderr.write("written before the failure\\n")
time.sleep(0.01)
cli.{func}("training stopped: the disk is full")
"""


@pytest.mark.parametrize("func", ["failure_over_threads", "failure"])
def test_failure_over_threads_is_the_whole_last_line(func):
  """A thread writing half-lines to ``sys.stderr`` and whole lines to descriptor 2 while the run
  fails (as Orbax's unwinding writes do after a failed checkpoint): :func:`cli.failure_over_threads`
  still ends stderr with its own line, whole, exit 1, and keeps what came before. The plain
  :func:`cli.failure` is the control: it is spliced into a half-line or followed by more output."""
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  r = subprocess.run([sys.executable, "-c", _NOISY_FAILURE.format(func=func)], env=env,
                     capture_output=True, text=True, timeout=60)
  assert r.returncode == 1, r.stderr[-2000:]
  assert "written before the failure\n" in r.stderr
  last_is_ours = r.stderr.endswith("\nlim_jax: training stopped: the disk is full\n")
  assert last_is_ours == (func == "failure_over_threads"), r.stderr[-300:]
