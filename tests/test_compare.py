"""``lim_jax.compare``: planning, statistics, report, and the CLI end to end (kill and rerun)."""

import json
import os
import signal
import subprocess
import sys
import time
import types

import numpy as np
import pytest
from scipy import stats as scipy_stats

from lim_jax import config_lib, evaluate, train
from lim_jax import data as data_lib
from lim_jax.metrics import pairs
from lim_jax.study import plan, report, runner, stats, study
from test_cli import ROOT


# ---------------------------------------------------------------------------------------------
# Statistics and metric pairs.
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [2, 3, 7])
def test_t_interval_equals_scipy(n):
  """Reference: scipy.stats.t.interval(0.95, n - 1, loc=mean, scale=scipy.stats.sem(x)); paired:
  the same on x - y. Tolerance 1e-12 relative (float64 round-off only)."""
  rng = np.random.default_rng(n)
  x, y = rng.normal(size=n), rng.normal(size=n)
  got = stats.t_interval(x)
  lo, hi = scipy_stats.t.interval(0.95, n - 1, loc=np.mean(x), scale=scipy_stats.sem(x))
  np.testing.assert_allclose([got.low, got.high], [lo, hi], rtol=1e-12)
  d = stats.paired_difference(dict(enumerate(x)), dict(enumerate(y)))
  lo, hi = scipy_stats.t.interval(0.95, n - 1, loc=np.mean(x - y), scale=scipy_stats.sem(x - y))
  np.testing.assert_allclose([d.low, d.high], [lo, hi], rtol=1e-12)
  one = stats.t_interval(x[:1])
  assert one.n == 1 and one.mean == x[0] and np.isnan(one.half_width)


def test_pairs_put_coverage_beside_fidelity_and_rank_by_direction():
  """Reference: the pair table of lim_jax.metrics.pairs (hand-written expected order) and each
  metric's stated direction (lower / higher / closest to 1)."""
  names = ["finite_fraction", "sliced_wasserstein", "rare_modes_covered", "recall", "mmd",
           "in_mode_fraction", "modes_covered", "precision", "coverage", "density", "vendi"]
  assert pairs.order_columns(names) == [
      "finite_fraction", "sliced_wasserstein", "mmd", "in_mode_fraction", "rare_modes_covered",
      "modes_covered", "precision", "recall", "density", "coverage", "vendi"]
  assert pairs.missing_partners(["recall", "mmd"]) == [("recall", "precision")]
  assert pairs.best_indices("sliced_wasserstein", [0.3, 0.1, 0.2]) == [1]
  assert pairs.best_indices("recall", [0.3, 0.1, 0.5]) == [2]
  assert pairs.best_indices("density", [1.3, 0.95, 0.5]) == [1]
  assert pairs.best_indices("vendi", [1.0, 2.0]) == []
  assert pairs.best_indices("mmd", [0.1, 0.1]) == []  # all tied: nothing stands out


def test_declared_outputs_are_what_the_metrics_write():
  """Reference: the keys evaluate.METRICS actually returns for mode_coverage and prdc on small
  grid_imbalanced samples (what --select and the pair table rely on)."""
  config = config_lib.load_file(ROOT / "configs" / "toy_levy.py", "grid_imbalanced")
  x = data_lib.toy_samples(config.data, np.random.default_rng(0), 200)
  y = data_lib.toy_samples(config.data, np.random.default_rng(1), 200)
  for name in ("mode_coverage", "prdc", "sliced_wasserstein"):
    assert tuple(evaluate.METRICS[name](x, y, config, None)) == tuple(pairs.outputs([name]))


# ---------------------------------------------------------------------------------------------
# Planning.
# ---------------------------------------------------------------------------------------------
def test_every_family_shares_config_and_differs_only_in_process():
  """Reference: the config file's own values. From toy_jump (t_max = 10 is a jump setting), the
  gaussian run gets the shared default t_max (None) and levy its default alpha; jump keeps the
  file's process fields; a command-line process field reaches only the families that have it; a
  family entry's fields win; every section but process (and the seed) is identical."""
  base = config_lib.load_file(ROOT / "configs" / "toy_jump.py")
  base.training.num_steps = 123
  specs = plan.parse_families("gaussian,jump,levy:alpha=1.5,levy")
  overrides = {"jump_rate": 2.0, "schedule": "cosine"}
  cfgs = {s.label: plan.family_config(base, s, overrides) for s in specs}
  assert cfgs["gaussian"].process.t_max is None and cfgs["jump"].process.t_max == 10.0
  assert cfgs["jump"].process.jump_rate == 2.0 and "jump_rate" not in cfgs["gaussian"].process
  assert cfgs["levy:alpha=1.5"].process.alpha == 1.5 and cfgs["levy"].process.alpha == 1.8
  assert all(c.process.schedule == "cosine" for c in cfgs.values())
  plain = {k: json.loads(config_lib.to_json(c)) for k, c in cfgs.items()}
  for sections in plain.values():
    del sections["process"]
  assert all(v == plain["gaussian"] for v in plain.values())
  assert plain["gaussian"]["training"]["num_steps"] == 123

  runs = plan.plan(base, specs[:2], 2, "/tmp/x", nfe=[5, 7], tune=[("optim.learning_rate",
                                                                  [1e-3, 2e-3])])
  assert [(r.family.label, r.seed, r.tune[0][1]) for r in runs[:4]] == [
      ("gaussian", 0, 1e-3), ("gaussian", 0, 2e-3), ("jump", 0, 1e-3), ("jump", 0, 2e-3)]
  assert {r.seed for r in runs} == {0, 1} and len({r.directory for r in runs}) == 8
  assert all(r.config.eval.nfe_sweep == (5, 7) for r in runs)
  assert runs[1].config.optim.learning_rate == 2e-3


@pytest.mark.parametrize("kwargs, message", [
    (dict(families="gaussian,nosuch"), "--families: unknown family"),
    (dict(families="gaussian,levy:hurst=0.7"), "process.hurst is not a field of family"),
    (dict(process_overrides={"hurst": 0.7}), "--config.process.hurst"),
    (dict(process_overrides={"family": "levy"}), "--config.process.family"),
    (dict(tune=["optim.learning_rate=1e-3"]), "at least two values"),
    (dict(tune=["nosuch.field=1,2"]), "not a field of the config"),
    (dict(tune=["process.alpha=1.5,1.9"]), "--tune (gaussian)"),
    (dict(families="gaussian,levy", config={"sampling.sampler": "dlim"}),
     "gaussian: sampling.sampler"),
    (dict(nfe=[0]), "--nfe"),
    (dict(tune=["optim.learning_rate=1e-3,2e-3"], select_metric="fid"), "--select: 'fid'"),
    (dict(tune=["optim.learning_rate=1e-3,2e-3"], select_metric="vendi",
          config={"eval.metrics": ("sliced_wasserstein", "vendi")}), "has no direction"),
    (dict(num_seeds=0), "--seeds"),
])
def test_bad_study_input_is_refused_before_training(tmp_path, kwargs, message):
  """Reference: the documented refusals; each raises ValueError naming the flag or the field
  (prefixed by the family entry) and leaves no run directory behind."""
  base = config_lib.load_file(ROOT / "configs" / "toy_gaussian.py")
  for field, value in kwargs.pop("config", {}).items():
    section, name = field.split(".")
    base[section][name] = value
  args = dict(families="gaussian,levy", num_seeds=2, workdir=str(tmp_path / "s"))
  args.update(kwargs)
  with pytest.raises(ValueError) as err:
    study.run_study(base, **args)
  assert message in str(err.value)
  assert not (tmp_path / "s").exists()


def test_select_picks_the_best_validation_setting_per_family():
  """Reference: hand-computed means of synthetic validation rows (lower sliced W is better; the
  NaN setting is never chosen)."""
  def rec(values):
    return {"eval": {"validation": {"rows": [{"nfe": n, "sliced_wasserstein": v}
                                             for n, v in zip((10, 20), values)]}}}
  a, b = (("optim.learning_rate", 1e-3),), (("optim.learning_rate", 3e-3),)
  records = {"gaussian": {a: [rec([0.5, 0.3]), rec([0.4, 0.2])], b: [rec([0.2, 0.2])]},
             "levy": {a: [rec([0.1, 0.1])], b: [rec([float("nan"), 0.0])]}}
  chosen, table = study.select(records, "sliced_wasserstein")
  assert chosen == {"gaussian": b, "levy": a}
  np.testing.assert_allclose(table["gaussian"][0][1], np.mean([0.45, 0.25]))


def test_markdown_reads_settings_with_get_and_states_the_pairs():
  """Reference: the config's own values, the pair note, and the best (bold) cell by direction;
  fields the config lacks (e.g. training.noise_levels before it exists) are skipped, fields it has
  are listed."""
  config = config_lib.load_file(ROOT / "configs" / "toy_fbm.py")
  values = {"gaussian": {"in_mode_fraction": {10: {0: 0.6, 1: 0.7}},
                         "rare_modes_covered": {10: {0: 9.0, 1: 8.0}}},
            "fbm": {"in_mode_fraction": {10: {0: 0.3, 1: 0.2}},
                    "rare_modes_covered": {10: {0: 12.0, 1: 11.0}}}}
  payload = {"families": ["gaussian", "fbm"], "seeds": [0, 1], "nfe": [10], "level": 0.95,
             "process": {"gaussian": {}, "fbm": {"hurst": 0.9}}, "runs": [], "tune": None,
             **report.summarize(values, ["gaussian", "fbm"], [10])}
  md = report.markdown(payload, config)
  assert report.PAIRS_NOTE in md
  assert "| in_mode_fraction ↑ | rare_modes_covered ↑ |" in md
  assert "| gaussian | **0.65 ± 0.64** | 8.5 ± 6.4 |" in md
  assert "| fbm | 0.25 ± 0.64 | **11.5 ± 6.4** |" in md
  assert "| `training.num_steps` | `4000` |" in md
  assert ("noise_levels" in md) == ("noise_levels" in config.training)
  assert "data (floor)" not in md


def test_the_data_floor_row_is_per_seed_not_per_family():
  """Reference: the floor's interval is the t-interval of the per-seed floors (one value per seed,
  whichever family's record holds it), printed under the families in every NFE table, "-" for a
  metric without a floor."""
  config = config_lib.load_file(ROOT / "configs" / "toy_gaussian.py")
  rec = lambda seed, floor: {"seed": seed, "eval": {"test": {"data_floor": floor}}}
  records = {"gaussian": [rec(0, {"sliced_wasserstein": 0.1}), rec(1, None)],
             "levy": [rec(0, {"sliced_wasserstein": 0.5}), rec(1, {"sliced_wasserstein": 0.3})]}
  floor = report.floor_summary(records)
  assert floor["sliced_wasserstein"]["values"] == {"0": 0.1, "1": 0.3}
  np.testing.assert_allclose(floor["sliced_wasserstein"]["half_width"],
                             stats.t_interval([0.1, 0.3]).half_width)
  values = {f: {"sliced_wasserstein": {10: {0: 0.2, 1: 0.4}}, "mmd": {10: {0: 1.0, 1: 2.0}}}
            for f in ("gaussian", "levy")}
  payload = {"families": ["gaussian", "levy"], "seeds": [0, 1], "nfe": [10], "level": 0.95,
             "process": {"gaussian": {}, "levy": {}}, "runs": [], "tune": None,
             "data_floor": floor, **report.summarize(values, ["gaussian", "levy"], [10])}
  md = report.markdown(payload, config)
  row = next(line for line in md.splitlines() if line.startswith("| data (floor) |"))
  cells = dict(zip(payload["metrics"], row.strip("|").split("|")[1:]))
  assert cells["sliced_wasserstein"].strip() == "0.2 ± 1.3" and cells["mmd"].strip() == "-"


def test_tuning_selects_on_validation_and_reports_test_only_for_the_choice(tmp_path, monkeypatch):
  """Reference: a fake train/evaluate whose numbers are known in advance (no training): the
  validation draw ranks optim.learning_rate per family, only the chosen setting is evaluated on
  the test draw, and compare.json reports those test numbers; a family whose runs fail on a
  non-finite loss is reported as failed, not dropped silently."""
  calls = []

  def fake_train(config, workdir):
    if config.process.family == "jump":
      raise train.NonFiniteError("non-finite loss at step 3")
    os.makedirs(os.path.join(workdir, "checkpoints", str(config.training.num_steps)))
    return types.SimpleNamespace(step=config.training.num_steps)

  def fake_evaluate(config, workdir, feature_fn=None, split="test"):
    del feature_fn
    calls.append((config.process.family, config.optim.learning_rate, config.seed, split))
    good = {"gaussian": 3e-3, "levy": 1e-3}[config.process.family]
    w1 = (0.1 if config.optim.learning_rate == good else 0.3) + 0.01 * config.seed
    w1 += 1.0 if split == "test" else 0.0
    return {"rows": [{"nfe": n, "sampler": "em", "sliced_wasserstein": w1 / n} for n in
                     config.eval.nfe_sweep]}

  monkeypatch.setattr(runner.train, "train_and_evaluate", fake_train)
  monkeypatch.setattr(runner.evaluate, "evaluate_record", fake_evaluate)
  base = config_lib.load_file(ROOT / "configs" / "toy_gaussian.py")
  out = study.run_study(base, "gaussian,levy,jump", 2, str(tmp_path), nfe=[2, 4],
                        tune=["optim.learning_rate=1e-3,3e-3"], progress=lambda line: None)
  assert out["tune"]["selected"] == {"gaussian": "optim.learning_rate=0.003",
                                     "levy": "optim.learning_rate=0.001",
                                     "jump": "optim.learning_rate=0.001"}
  tests = sorted(c for c in calls if c[3] == "test")
  assert tests == [("gaussian", 3e-3, 0, "test"), ("gaussian", 3e-3, 1, "test"),
                   ("levy", 1e-3, 0, "test"), ("levy", 1e-3, 1, "test")]
  cell = out["summary"]["levy"]["sliced_wasserstein"]["2"]
  assert cell["values"] == {"0": 1.1 / 2, "1": 1.11 / 2}
  assert [r["status"] for r in out["runs"] if r["family"] == "jump"] == ["failed"] * 4
  md = (tmp_path / "compare.md").read_text()
  assert "Runs that did not finish" in md and "non-finite loss at step 3" in md
  assert "(selected)" in md
  calls.clear()
  study.run_study(base, "gaussian,levy,jump", 2, str(tmp_path), nfe=[2, 4],
                  tune=["optim.learning_rate=1e-3,3e-3"], progress=lambda line: None)
  assert not calls  # a rerun re-evaluates nothing


def test_a_directory_trained_with_another_config_is_refused(tmp_path):
  """Reference: the saved config.json. A changed training field is refused naming it; a changed
  eval or sampling field is not (it only re-evaluates)."""
  base = config_lib.load_file(ROOT / "configs" / "toy_gaussian.py")
  run = plan.plan(base, plan.parse_families("gaussian"), 1, str(tmp_path))[0]
  os.makedirs(run.directory)
  (tmp_path / run.directory / "config.json").write_text(config_lib.to_json(run.config))
  runner.check_directory(run)
  run.config.sampling.nfe = 17
  run.config.eval.num_samples = 10
  runner.check_directory(run)
  assert runner.eval_key(run.config, "test") != runner.eval_key(base, "test")
  run.config.optim.learning_rate = 0.5
  with pytest.raises(ValueError, match="^optim.learning_rate: .* was trained with"):
    runner.check_directory(run)


def test_cli_user_error_exits_2_with_one_line(tmp_path):
  """Reference: the CLI contract: exit 2, one stderr line 'lim_jax: error: ...' naming the flag,
  nothing trained. The process field is given in the two-argument form, which the CLI must take
  out of the command line before ml_collections sees it (other refusals: the in-process test
  above)."""
  r = subprocess.run([sys.executable, "-m", "lim_jax.compare", "--config=configs/toy_gaussian.py",
                      f"--workdir={tmp_path / 's'}", "--seeds=2", "--families=gaussian,levy",
                      "--config.process.nosuch", "1"], cwd=ROOT, env=ENV, capture_output=True,
                     text=True, timeout=200)
  assert r.returncode == 2, r.stderr[-2000:]
  last = r.stderr.strip().splitlines()[-1]
  assert last == ("lim_jax: error: --config.process.nosuch is not a field of any family of the "
                  "study (gaussian, levy)")
  assert not (tmp_path / "s").exists()


# ---------------------------------------------------------------------------------------------
# End to end: the command line, killed mid-way and rerun.
# ---------------------------------------------------------------------------------------------
STEPS = 40
TINY = ["--config=configs/toy_levy.py:grid_imbalanced", "--families=gaussian,levy", "--seeds=2",
        "--nfe=2,4", f"--config.training.num_steps={STEPS}", "--config.training.log_every=20",
        "--config.training.checkpoint_every=10", "--config.training.steps_per_call=5",
        "--config.training.batch_size=32", "--config.training.keep_checkpoints=1",
        "--config.optim.warmup_steps=0", "--config.model.hidden=16", "--config.model.depth=1",
        "--config.data.num_train=500", "--config.sampling.sampler=em", "--config.sampling.nfe=2",
        "--config.sampling.num_samples=32", "--config.sampling.batch_size=32",
        "--config.eval.num_samples=64"]
ENV = dict(os.environ, JAX_PLATFORMS="cpu", JAX_DISABLE_MOST_OPTIMIZATIONS="1",
           XLA_FLAGS="--xla_force_host_platform_device_count=1")


def _records(workdir):
  out = {}
  for family in ("gaussian", "levy"):
    for seed in (0, 1):
      path = workdir / family / f"seed_{seed}" / "compare_run.json"
      out[family, seed] = json.loads(path.read_text()) if path.is_file() else {}
  return out


@pytest.mark.integration
def test_compare_cli_killed_mid_way_then_rerun(tmp_path):
  """Reference: scipy's t-interval of the per-seed numbers in each run's own record, and the run
  directories themselves. The study is SIGKILLed while its second run trains; the rerun skips the
  finished first run (its checkpoints untouched), resumes the second from its checkpoint, trains
  the rest, and writes compare.json / compare.md / compare_<metric>.png whose intervals equal
  scipy.stats.t.interval on those numbers (rtol 1e-9) and whose paired differences equal it on
  the per-seed differences."""
  work = tmp_path / "study"
  cmd = [sys.executable, "-m", "lim_jax.compare", f"--workdir={work}", *TINY]
  proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  second = work / "levy" / "seed_0" / "checkpoints"
  t0 = time.time()
  killed = False
  while proc.poll() is None and time.time() - t0 < 240:
    steps = [int(p.name) for p in second.iterdir() if p.name.isdigit()] if second.is_dir() else []
    if steps and max(steps) < STEPS:
      proc.send_signal(signal.SIGKILL)
      killed = True
      break
    time.sleep(0.005)
  proc.communicate()
  assert killed, "the second run finished before it could be killed"
  first = work / "gaussian" / "seed_0"
  assert _records(work)["gaussian", 0]["eval"]["test"]["rows"]
  before = {p.name: p.stat().st_mtime_ns for p in (first / "checkpoints").iterdir()}

  r = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=400)
  assert r.returncode == 0, r.stderr[-3000:]
  assert "[1/4] gaussian seed 0: done earlier" in r.stdout
  assert "[2/4] levy seed 0: resumed and trained" in r.stdout
  assert {p.name: p.stat().st_mtime_ns for p in (first / "checkpoints").iterdir()} == before
  for name in ("compare.json", "compare.md", "compare_sliced_wasserstein.png",
               "compare_in_mode_fraction.png"):
    assert (work / name).stat().st_size > 200, name

  result = json.loads((work / "compare.json").read_text())
  records = _records(work)
  assert result["families"] == ["gaussian", "levy"] and result["nfe"] == [2, 4]
  for metric in ("sliced_wasserstein", "in_mode_fraction", "rare_modes_covered"):
    for i, nfe in enumerate((2, 4)):
      per = {f: np.array([records[f, s]["eval"]["test"]["rows"][i][metric] for s in (0, 1)])
             for f in ("gaussian", "levy")}
      cells = [(per[f], result["summary"][f][metric][str(nfe)]) for f in ("gaussian", "levy")]
      cells.append((per["levy"] - per["gaussian"], result["paired"]["levy"][metric][str(nfe)]))
      for x, cell in cells:
        if x[0] == x[1]:  # no spread: scipy's interval is undefined (0 / 0), ours has width 0
          assert cell["half_width"] == 0 and cell["mean"] == x[0]
          continue
        lo, hi = scipy_stats.t.interval(0.95, 1, loc=x.mean(), scale=scipy_stats.sem(x))
        np.testing.assert_allclose([cell["low"], cell["high"]], [lo, hi], rtol=1e-9)
  md = (work / "compare.md").read_text()
  assert report.PAIRS_NOTE in md and "## NFE 2" in md and "Paired difference to gaussian" in md
  assert "| in_mode_fraction ↑ | modes_covered ↑ | rare_modes_covered ↑ |" in md
  # The data floor: computed in each run, the same for both families of a seed (the seed's data
  # and reference), equal to what --mode=eval wrote, one row under each NFE table.
  floors = {(f, s): records[f, s]["eval"]["test"]["data_floor"] for f in ("gaussian", "levy")
            for s in (0, 1)}
  for s in (0, 1):
    assert floors["gaussian", s] == floors["levy", s]
    assert floors["gaussian", s]["sliced_wasserstein"] > 0
    (saved,) = (work / "levy" / f"seed_{s}" / "eval").glob("step_*.json")
    assert json.loads(saved.read_text())["data_floor"] == floors["levy", s]
  assert result["data_floor"]["sliced_wasserstein"]["values"] == {
      str(s): floors["gaussian", s]["sliced_wasserstein"] for s in (0, 1)}
  assert md.count("| data (floor) |") == 2

