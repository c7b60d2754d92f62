"""benchmarks/bench_verdicts.py (the verdict rule, its commands) and benchmarks/gpu_check.sh."""

import importlib.util
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _load_script():
  """benchmarks/bench_verdicts.py as a module (it imports its sibling bench_images)."""
  sys.path.insert(0, str(ROOT / "benchmarks"))
  spec = importlib.util.spec_from_file_location("bench_verdicts",
                                                ROOT / "benchmarks" / "bench_verdicts.py")
  module = importlib.util.module_from_spec(spec)
  sys.modules["bench_verdicts"] = module  # dataclasses look their module up there
  spec.loader.exec_module(module)
  return module


bench_verdicts = _load_script()


def _payload(family_values, baseline_values, fidelity=None):
  """A compare.json payload with per-seed values at NFE 10 and 20 for two families."""
  def cells(values):
    return {str(n): {"values": {str(s): v for s, v in enumerate(vs)}}
            for n, vs in zip((10, 20), values)}
  summary = {"levy": {"m": cells(family_values)}, "gaussian": {"m": cells(baseline_values)}}
  if fidelity:
    summary["levy"]["f"], summary["gaussian"]["f"] = cells(fidelity[0]), cells(fidelity[1])
  return {"families": ["gaussian", "levy"], "nfe": [10, 20], "summary": summary}


@pytest.mark.parametrize("family, baseline, fidelity, expected", [
    # differences (1.0, 1.1, 0.9) at both NFE: t interval [0.75, 1.25] > 0 -> better everywhere
    ([[2.0, 2.1, 1.9], [2.0, 2.1, 1.9]], [[1.0] * 3, [1.0] * 3], None, "supported"),
    # worse at NFE 20 (differences -1.0, -1.1, -0.9)
    ([[2.0, 2.1, 1.9], [0.0, -0.1, 0.1]], [[1.0] * 3, [1.0] * 3], None, "not supported"),
    # differences (+1, -1, +0.5): the interval covers 0 at both NFE
    ([[2.0, 0.0, 1.5], [2.0, 0.0, 1.5]], [[1.0] * 3, [1.0] * 3], None, "inconclusive"),
    # coverage better but the fidelity pair significantly worse: not supported
    ([[2.0, 2.1, 1.9], [2.0, 2.1, 1.9]], [[1.0] * 3, [1.0] * 3],
     ([[0.1, 0.15, 0.05]] * 2, [[0.6] * 3] * 2), "not supported"),
    # coverage better, fidelity not significantly different: supported
    ([[2.0, 2.1, 1.9], [2.0, 2.1, 1.9]], [[1.0] * 3, [1.0] * 3],
     ([[0.7, 0.5, 0.6]] * 2, [[0.6] * 3] * 2), "supported"),
])
def test_verdict_rule(family, baseline, fidelity, expected):
  """Reference: the documented rule applied by hand to paired differences whose Student-t
  intervals (n = 3, t_0.975,2 = 4.303) are computed in the comments."""
  claim = bench_verdicts.Claim("LIM", "x", "grid", "levy", "gaussian", "m", "higher", None,
                               "f" if fidelity else "")
  got, lines = bench_verdicts.verdict(claim, _payload(family, baseline, fidelity))
  assert got == expected, lines
  assert len(lines) == 2 and lines[0].startswith("NFE 10: m ")


def test_verdict_of_a_missing_family_is_not_run():
  """Reference: a claim about a family the study lacks (e.g. student_t before it exists)."""
  claim = bench_verdicts.Claim("t-EDM", "x", "sas", "student_t", "gaussian", "m", "lower")
  assert bench_verdicts.verdict(claim, _payload([[1.0]] * 2, [[1.0]] * 2))[0] == "not run"


def test_listed_commands_are_compare_invocations(capsys):
  """Reference: the CLI usage, python -m lim_jax.compare --config=... --families=... --seeds=..."""
  assert bench_verdicts.main(["--list", "--out=/tmp/v"]) == 0
  lines = capsys.readouterr().out.strip().splitlines()
  assert len(lines) == 3
  assert all(line.startswith("python -m lim_jax.compare --config=configs/toy_gaussian.py")
             for line in lines[:2])
  assert "--seeds=3" in lines[0] and "--config.training.num_steps=2000" in lines[0]


def test_gpu_check_script_parses():
  """Reference: bash -n (syntax only; the script needs a GPU to mean anything)."""
  r = subprocess.run(["bash", "-n", str(ROOT / "benchmarks" / "gpu_check.sh")],
                     capture_output=True, text=True, timeout=30)
  assert r.returncode == 0, r.stderr
