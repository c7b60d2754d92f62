"""Launch scripts: valid bash, shellcheck-clean, usage text and exit code 2 without arguments."""

import pathlib
import shutil
import subprocess

import pytest

SCRIPTS = sorted((pathlib.Path(__file__).resolve().parent.parent / "launch").glob("*.sh"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_bash_syntax_and_usage(script):
  assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
  r = subprocess.run(["bash", str(script)], capture_output=True, text=True,
                     env={"PATH": "/usr/bin:/bin"})
  assert r.returncode == 2
  assert (r.stdout + r.stderr).startswith("usage:")


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shellcheck(script):
  if shutil.which("shellcheck") is None:
    pytest.skip("shellcheck not installed (apt-get install shellcheck)")
  r = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True)
  assert r.returncode == 0, r.stdout


def test_slurm_script_refuses_outside_a_job():
  script = next(s for s in SCRIPTS if s.name == "gpu_multinode.sh")
  r = subprocess.run(["bash", str(script), "configs/toy_levy.py", "/tmp/x"], capture_output=True,
                     text=True, env={"PATH": "/usr/bin:/bin"})
  assert r.returncode == 2 and "SLURM_JOB_ID" in r.stderr
