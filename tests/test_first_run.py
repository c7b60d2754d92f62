"""The first runs of a newcomer, typed as the README types them: each works or fails in one line.

Every row of :data:`CASES` is a row of the README's "First run" table (checked by
:func:`test_readme_table_lists_every_case`) and runs the real command line in a fresh directory
that holds nothing but ``configs/``: no ``--workdir`` unless the row gives one, tfds's default
directory (``TFDS_DATA_DIR``) pointed at a temporary folder laid out as the row says. Datasets are
read through the real tensorflow-datasets code (``tfds.data_source``), never ``mock_data``: the
"prepared" copy is a tiny CIFAR10 that tfds's own ``cifar10`` builder writes in array_record
(:func:`tiny_cifar10`), and the broken layouts are edits of it.

Reference for every row: the contract of the command line (exit 0 success, 2 user error with one
line ``lim_jax: error: <field> ...`` on stderr, 1 otherwise, no Python traceback) and, for user
errors, that the model was not compiled (``JAX_LOG_COMPILES`` logs every XLA compilation: no
``create`` of the train state and no ``train_steps``).
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from lim_jax import checkpoint as ckpt_lib
from lim_jax import config_lib, image_data, main, own_data, samplers, train

ROOT = pathlib.Path(__file__).resolve().parent.parent
CONFIGS = sorted((ROOT / "configs").glob("*.py"))
_DATASETS = {p: config_lib.load_file(p).data.dataset for p in CONFIGS}
IMAGE_CONFIGS = [p for p in CONFIGS if image_data.is_image_dataset(_DATASETS[p])]
# configs/own_data.py needs data.path (tests/test_own_data.py trains it).
TOY_CONFIGS = [p for p in CONFIGS if p not in IMAGE_CONFIGS
               and _DATASETS[p] not in own_data.OWN_DATASETS]
CIFAR10_VERSION = str(tfds.builder_cls("cifar10").VERSION)
MNIST_VERSION = str(tfds.builder_cls("mnist").VERSION)
# A toy run small enough to compile and sample in seconds.
TINY = ("--config.training.num_steps=1", "--config.training.log_every=1",
        "--config.training.checkpoint_every=1", "--config.training.steps_per_call=1",
        "--config.training.batch_size=8", "--config.model.hidden=8", "--config.model.depth=1",
        "--config.sampling.nfe=2", "--config.sampling.num_samples=8",
        "--config.sampling.batch_size=8", "--config.eval.num_samples=8")
MODEL_COMPILES = ("Compiling jit(create", "Compiling jit(train_steps")


def _unshare_works() -> bool:
  """Whether this machine lets an unprivileged mount namespace mount a tmpfs (the read-only and
  full-disk rows use a real read-only bind mount and a real full tmpfs)."""
  try:
    return subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs tmpfs /mnt"],
                          capture_output=True, timeout=30).returncode == 0
  except (OSError, subprocess.SubprocessError):
    return False


# ---- a tiny real CIFAR10 and broken copies of it -------------------------------------------------


def _png(image: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format="png")
  return buffer.getvalue()


def _tiny_examples(n: int, seed: int):
  rng = np.random.default_rng(seed)
  for i in range(n):
    yield i, {"id": f"tiny_{seed}_{i:03d}", "label": i % 10,
              "image": _png(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))}


def _tiny_split_generators(self, dl_manager):
  del self, dl_manager
  return {"train": _tiny_examples(12, 0), "test": _tiny_examples(4, 1)}


@pytest.fixture(scope="module")
def tiny_cifar10(tmp_path_factory) -> pathlib.Path:
  """A data dir holding ``cifar10/<version>/`` written by tfds's own cifar10 builder in
  array_record (12 train, 4 test PNG examples; only the example generator is replaced, so nothing
  is downloaded): the layout and ``dataset_info.json`` of ``tfds build cifar10
  --file_format=array_record``."""
  root = tmp_path_factory.mktemp("tfds_cifar10")
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(tfds.builder_cls("cifar10"), "_split_generators", _tiny_split_generators)
    builder = tfds.builder("cifar10", data_dir=str(root), file_format="array_record")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False))
  shutil.rmtree(root / "downloads", ignore_errors=True)
  return root


def _layout(kind: str, root: pathlib.Path, good: pathlib.Path) -> pathlib.Path:
  """Makes the tfds data dir ``root`` of a row: ``empty``, ``absent``, ``mnist_variant`` (a version
  folder without ``dataset_info.json``), ``good``, ``tfrecord`` (the copy re-labelled as tfrecord:
  ``dataset_info.json`` says so and the shards carry tfrecord names; tfds refuses it from the
  metadata, before any shard is opened) or ``incomplete`` (the train shard missing)."""
  if kind == "absent":
    return root / "nowhere"
  root.mkdir(parents=True, exist_ok=True)
  if kind == "mnist_variant":
    (root / "mnist" / MNIST_VERSION).mkdir(parents=True)
  if kind in ("good", "tfrecord", "incomplete"):
    shutil.copytree(good / "cifar10", root / "cifar10")
  variant = root / "cifar10" / CIFAR10_VERSION
  if kind == "tfrecord":
    info = json.loads((variant / "dataset_info.json").read_text())
    info["fileFormat"] = "tfrecord"
    (variant / "dataset_info.json").write_text(json.dumps(info))
    for shard in variant.glob("*.array_record-*"):
      shard.rename(shard.with_name(shard.name.replace("array_record", "tfrecord")))
  if kind == "incomplete":
    for shard in variant.glob("cifar10-train.array_record-*"):
      shard.unlink()
  return root


# ---- the rows ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
  """One first run: what is typed, in what state, and what comes back.

  Attributes:
    name: the row id (also the README row's first cell, in backticks).
    args: the arguments after ``python -m lim_jax.main``; ``{work}`` is a directory of the test
      (outside the clone).
    rc: the exit code.
    line: a regex the last line of stderr (of stdout for ``--help``) must match.
    tfds: the layout of ``TFDS_DATA_DIR`` (see :func:`_layout`).
    mount: ``readonly`` / ``full``: ``{work}`` is a read-only bind mount / a full tmpfs.
    workdir: the workdir the first log line must announce ('' = the run stops before logging).
    rerun: run the same command a second time (it must resume).
  """

  name: str
  args: tuple[str, ...]
  rc: int
  line: str
  tfds: str = "empty"
  mount: str = ""
  workdir: str = ""
  rerun: bool = False


DATA_LINE = (r"^lim_jax: error: data\.dataset: tfds dataset '{name}' cannot be read from {where}: "
             r"{what}\. .*`tfds build {name} --file_format=array_record --data_dir=DIR`.*"
             r"--config\.data\.data_dir=DIR")
DEFAULT_DIR = r"the tfds default directory \S+ \(TFDS_DATA_DIR, else ~/tensorflow_datasets\)"

CASES = (
    Case("headline", ("--config=configs/cifar10_levy.py",), 2,
         DATA_LINE.format(name="cifar10", where=DEFAULT_DIR,
                          what=r"it is not there \(\S+ has no cifar10/ folder\)"),
         workdir="runs/cifar10_levy"),
    Case("tfds_dir_absent", ("--config=configs/cifar10lt_levy.py",), 2,
         DATA_LINE.format(name="cifar10", where=DEFAULT_DIR, what=r"\S+/nowhere does not exist"),
         tfds="absent", workdir="runs/cifar10lt_levy"),
    Case("variant_without_info", ("--config=configs/mnist_levy.py",), 2,
         DATA_LINE.format(name="mnist", where=DEFAULT_DIR,
                          what=rf"the folder \S+/mnist/{MNIST_VERSION} has no dataset_info\.json "
                               r"\(an unfinished build or an incomplete copy\)"),
         tfds="mnist_variant", workdir="runs/mnist_levy"),
    Case("tfrecord_copy", ("--config=configs/cifar10_gaussian.py",), 2,
         DATA_LINE.format(name="cifar10", where=DEFAULT_DIR,
                          what=r"the copy in \S+ is in tfrecord format, which cannot be read at "
                               r"random access \(it must be prepared with "
                               r"--file_format=array_record\)"),
         tfds="tfrecord", workdir="runs/cifar10_gaussian"),
    Case("explicit_data_dir", ("--config=configs/cifar10_fbm.py",
                               "--config.data.data_dir={work}/tfds_copy"), 2,
         DATA_LINE.format(name="cifar10", where=r"data\.data_dir='\S+/tfds_copy'",
                          what=r"\S+/tfds_copy does not exist"),
         workdir="runs/cifar10_fbm"),
    Case("eval_images_no_inception", ("--config=configs/cifar10_levy.py", "--mode=eval"), 2,
         r"^lim_jax: error: eval\.inception_path is empty: the image metrics \(fid, prdc\) need "
         r"the Inception-v3 weights", tfds="good", workdir="runs/cifar10_levy"),
    Case("toy_first_run", ("--config=configs/toy_levy.py", *TINY), 0,
         r"samples at step 1: 8 with ei_sde \(NFE 2\).* -> runs/toy_levy/samples/step_1\.npz$",
         workdir="runs/toy_levy", rerun=True),
    Case("sample_before_training", ("--config=configs/toy_levy.py", "--mode=sample"), 2,
         r"^lim_jax: error: no checkpoint in \S+/runs/toy_levy/checkpoints: train first "
         r"\(--mode=train\)$", workdir="runs/toy_levy"),
    Case("eval_before_training", ("--config=configs/toy_gaussian.py", "--mode=eval"), 2,
         r"^lim_jax: error: no checkpoint in \S+/runs/toy_gaussian/checkpoints: train first",
         workdir="runs/toy_gaussian"),
    Case("unknown_field", ("--config=configs/toy_levy.py", "--config.training.num_step=1"), 2,
         r"^lim_jax: error: --config\.training\.num_step: training has no field 'num_step'; did "
         r"you mean training\.num_steps\?$"),
    Case("empty_workdir_flag", ("--config=configs/toy_levy.py", "--workdir="), 2,
         r"^lim_jax: error: --workdir is empty; leave the flag out for the default "
         r"runs/toy_levy$"),
    Case("readonly_workdir", ("--config=configs/toy_levy.py", "--workdir={work}/run"), 2,
         r"^lim_jax: error: --workdir '\S+/run' is not a writable directory: \[Errno 30\] "
         r"Read-only file system", mount="readonly", workdir="{work}/run"),
    Case("full_workdir", ("--config=configs/toy_levy.py", "--workdir={work}/run"), 1,
         r"^lim_jax: stopped: writing \S+ failed: No space left on device\. Free space \(or "
         r"choose another --workdir\) and rerun the same command", mount="full",
         workdir="{work}/run"),
    Case("help", ("--help",), 0, r"^Try --helpfull to get a list of all flags\.$"),
)


def _command(case: Case, work: pathlib.Path) -> list[str]:
  args = [a.format(work=work) for a in case.args]
  cmd = [sys.executable, "-m", "lim_jax.main", *args]
  if case.mount == "readonly":  # an existing workdir on a file system mounted read-only
    (work / "run").mkdir(parents=True)
    script = f'mount --bind "{work}" "{work}" && mount -o remount,bind,ro "{work}" && exec "$@"'
  elif case.mount == "full":  # a 16 KiB tmpfs filled to the last byte
    work.mkdir(parents=True)
    script = (f'mount -t tmpfs -o size=16k tmpfs "{work}" && '
              f'head -c 16384 /dev/zero > "{work}/filler"; exec "$@"')
  else:
    return cmd
  return ["unshare", "-rm", "sh", "-c", script, "sh", *cmd]


def _run(case: Case, tmp_path: pathlib.Path, good: pathlib.Path, cmd: list[str] | None = None):
  cwd = tmp_path / "clone"  # what a clone offers the command: configs/ and nothing run yet
  cwd.mkdir()
  (cwd / "configs").symlink_to(ROOT / "configs")
  env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu", JAX_LOG_COMPILES="1",
             JAX_DISABLE_MOST_OPTIMIZATIONS="1",
             XLA_FLAGS="--xla_force_host_platform_device_count=1",
             TFDS_DATA_DIR=str(_layout(case.tfds, tmp_path / "tfds", good)),
             # a rerun loads its executables from the first run's compilation cache
             JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax_cache"),
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
             JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1")
  cmd = cmd or _command(case, tmp_path / "work")
  runs = [subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
          for _ in range(2 if case.rerun else 1)]
  return cwd, runs


@pytest.mark.parametrize("case", [
    pytest.param(c, marks=pytest.mark.integration) if c.name == "toy_first_run" else c
    for c in CASES], ids=[c.name for c in CASES])  # toy_first_run trains twice: ~1 min
def test_first_run_case(case: Case, tmp_path, tiny_cifar10):
  """Exit code and last line of the row; no traceback; the first log line names the workdir (the
  default ``runs/<config file stem>`` when none is given); user errors compile nothing; a rerun
  of the same command resumes in the same workdir."""
  if case.mount and not _unshare_works():
    pytest.skip("needs `unshare -rm` (a user mount namespace) for a real read-only / full mount")
  cwd, runs = _run(case, tmp_path, tiny_cifar10)
  r = runs[0]
  out = r.stdout if case.name == "help" else r.stderr
  assert r.returncode == case.rc, (r.returncode, r.stderr[-3000:])
  assert "Traceback" not in r.stderr, r.stderr[-3000:]
  last = out.strip().splitlines()[-1]
  assert re.search(case.line, re.sub(r"^[IWE]\d{4} [\d:.]+ +\d+ \S+\] ", "", last)), last
  if case.name == "help":
    assert "Default: runs/<config file stem>" in " ".join(r.stdout.split())
    return
  log_lines = [line for line in r.stderr.splitlines() if re.match(r"^[IWE]\d{4} ", line)]
  if case.workdir:
    workdir = case.workdir.format(work=tmp_path / "work")
    default = "" if workdir.startswith("/") else f" = {cwd / workdir} (the default"
    assert re.search(rf"\] lim_jax: workdir {re.escape(workdir + default)}", log_lines[0]), \
        log_lines[:2]
  if case.rc == 2:
    assert not any(m in r.stderr for m in MODEL_COMPILES), "a user error compiled the model"
  if case.rerun:
    again = runs[1]
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Resuming from checkpoint at step 1" in again.stderr
    assert "Training already complete at step 1" in again.stderr
    assert (cwd / "runs" / "toy_levy" / "checkpoints" / "1").is_dir()


@pytest.mark.slow
def test_disk_full_at_the_first_checkpoint_is_one_line_and_exit_1(tmp_path, tiny_cifar10):
  """A real 40 KiB tmpfs holds the config and the first metrics but not the checkpoint: TensorStore
  reports the failed write as a ValueError (RESOURCE_EXHAUSTED), which must still end the run
  with exit 1 and the checkpoint line (Orbax logs its own errors before it; slow: it trains)."""
  if not _unshare_works():
    pytest.skip("needs `unshare -rm` (a user mount namespace) for a real full tmpfs")
  case = Case("full_at_checkpoint", ("--config=configs/toy_levy.py", "--workdir={work}/run",
                                     *TINY), 1, "")
  work = tmp_path / "work"
  work.mkdir()
  script = f'mount -t tmpfs -o size=40k tmpfs "{work}" && exec "$@"'
  cmd = ["unshare", "-rm", "sh", "-c", script, "sh", *_command(case, work)]
  _, (r,) = _run(case, tmp_path, tiny_cifar10, cmd=cmd)
  assert r.returncode == 1, r.stderr[-3000:]
  last = r.stderr.strip().splitlines()[-1]
  assert re.search(r"^lim_jax: training stopped: saving the checkpoint of step 1 to \S+ failed: "
                   r"(ValueError: )?RESOURCE_EXHAUSTED: .*No space left on device.* The last "
                   r"complete checkpoint is none; free space", last), last


def test_tensorstore_write_failures_are_checkpoint_save_errors(tmp_path, monkeypatch):
  """Reference: the ValueError TensorStore raised on the full tmpfs of the slow test above (status
  code and ``os_error_code``) becomes :class:`CheckpointSaveError` (exit 1); any other ValueError
  out of Orbax stays a ValueError."""
  full = ("RESOURCE_EXHAUSTED: Error writing local file \"x/_sharding\": Failed to write 13922 "
          "bytes to file 7: No space left on device [os_error_code='28']")
  ckpt = ckpt_lib.Checkpointer(str(tmp_path), keep=1, async_save=False)
  for message, raised in ((full, ckpt_lib.CheckpointSaveError), ("bad argument", ValueError)):
    def failing_save(*args, message=message, **kwargs):
      raise ValueError(message)
    monkeypatch.setattr(ckpt.manager, "save", failing_save)
    with pytest.raises(raised, match="step 3 .*No space left" if raised is not ValueError
                       else "bad argument"):
      ckpt.save(3, {"w": np.zeros(2, np.float32)}, {})
  ckpt.manager.close()


def test_readme_table_lists_every_case():
  """The README's "First run" table has one row per case, in the same order (first cell is the
  case name in backticks)."""
  text = (ROOT / "README.md").read_text()
  section = text.split("## First run", 1)[1].split("\n## ", 1)[0]
  names = re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.M)
  assert names == [c.name for c in CASES]


# ---- every shipped config, first step, without the data ------------------------------------------


def _tiny_toy(config):
  tr = config.training
  tr.num_steps, tr.log_every, tr.checkpoint_every, tr.steps_per_call, tr.batch_size = 1, 1, 1, 1, 8
  config.model.hidden, config.model.depth = 8, 1
  sp = config.sampling
  sp.nfe = max(2 * (2 if sp.sampler in ("heun", "pc") else 1),
               samplers.min_nfe(sp.sampler, sp.get("final_denoise", False)))
  sp.num_samples, sp.batch_size = 8, 8
  return config


@pytest.mark.parametrize("path", IMAGE_CONFIGS, ids=lambda p: p.stem)
def test_image_config_without_data_fails_in_one_line(path, tmp_path, monkeypatch, caplog):
  """``training.num_steps=1`` and tfds's default directory empty: the run stops with one
  :class:`FileNotFoundError` (exit 2 in the command line) naming ``data.dataset`` and the
  ``tfds build`` command, on one line, before the model is compiled."""
  monkeypatch.setattr(tfds.core.constants, "DATA_DIR", str(tmp_path / "tfds"))
  config = config_lib.load_file(path)
  config.training.num_steps = 1
  name = image_data.IMAGE_DATASETS[config.data.dataset].tfds_name
  jax.config.update("jax_log_compiles", True)
  try:
    with pytest.raises(FileNotFoundError) as info:
      train.train_and_evaluate(config, str(tmp_path / "run"))
  finally:
    jax.config.update("jax_log_compiles", False)
  msg = str(info.value)
  assert "\n" not in msg and msg.startswith("data.dataset: tfds dataset")
  assert f"tfds build {name} --file_format=array_record" in msg and "does not exist" in msg
  assert info.value.__cause__ is None
  assert not any(m in caplog.text for m in MODEL_COMPILES)


@pytest.mark.parametrize("path", [pytest.param(p, marks=pytest.mark.slow) for p in TOY_CONFIGS],
                         ids=lambda p: p.stem)
def test_toy_config_takes_its_first_step(path, tmp_path):
  """``training.num_steps=1`` on every toy config (embedded data, nothing to prepare) trains and
  writes its samples (slow: a compile per family; the ``toy_first_run`` row runs toy_levy by
  default)."""
  state = train.train_and_evaluate(_tiny_toy(config_lib.load_file(path)), str(tmp_path))
  assert int(state.step) == 1
  assert np.isfinite(np.load(tmp_path / "samples" / "step_1.npz")["samples"]).all()


# ---- the pieces, directly ----------------------------------------------------------------------


def test_a_prepared_copy_opens_and_broken_ones_say_why(tiny_cifar10, tmp_path):
  """Reference: tfds's own reader on the copy tfds wrote (12 train examples, 32x32x3 uint8); each
  broken copy, read through ``data.data_dir``, gives its own reason."""
  source = image_data.open_source("cifar10", "train", str(tiny_cifar10))
  assert len(source) == 12 and source[0]["image"].shape == (32, 32, 3)
  version = tmp_path / "version"
  shutil.copytree(tiny_cifar10 / "cifar10", version / "cifar10")
  (version / "cifar10" / CIFAR10_VERSION).rename(version / "cifar10" / "1.0.0")
  damaged = _layout("good", tmp_path / "damaged", tiny_cifar10)
  for shard in (damaged / "cifar10" / CIFAR10_VERSION).glob("cifar10-train.*"):
    shard.write_bytes(b"\0" * 100)
  broken_info = _layout("good", tmp_path / "broken_info", tiny_cifar10)
  (broken_info / "cifar10" / CIFAR10_VERSION / "dataset_info.json").write_text("{truncated")
  cases = [
      (_layout("empty", tmp_path / "empty", tiny_cifar10), "it is not there"),
      (version, rf"has no {CIFAR10_VERSION}/ folder, the version this tensorflow-datasets reads "
                r"\(found: 1\.0\.0\)"),
      (_layout("tfrecord", tmp_path / "tfrecord", tiny_cifar10), "is in tfrecord format"),
      (_layout("incomplete", tmp_path / "incomplete", tiny_cifar10),
       "cannot be read .*No such file or directory"),
      (damaged, "cannot be read .*an incomplete or damaged copy"),
      (broken_info, r"dataset_info\.json cannot be read \(JSONDecodeError"),
  ]
  for root, reason in cases:
    with pytest.raises(FileNotFoundError, match=rf"data\.data_dir='{root}': .*{reason}") as info:
      image_data.open_source("cifar10", "train", str(root))
    assert "\n" not in str(info.value)


def test_default_workdir_is_runs_slash_the_config_stem():
  """``runs/<stem>`` for a path, a path with a ``:arg`` and a bare file name."""
  assert main.default_workdir("configs/cifar10_levy.py") == "runs/cifar10_levy"
  assert main.default_workdir("/abs/configs/toy_levy.py:grid_imbalanced") == "runs/toy_levy"
  assert main.default_workdir("toy_fbm.py") == "runs/toy_fbm"


def test_missing_field_names_the_override():
  """A wrong section, a typo, a value used as a section, another family's field."""
  config = config_lib.load_file(ROOT / "configs" / "toy_levy.py")
  assert main.missing_field(config, "training.num_steps") is None
  assert main.missing_field(config, "nosuch.x").startswith(
      "--config.nosuch.x: the config has no field 'nosuch'; its fields: data, eval, model")
  assert main.missing_field(config, "optim.learning_rat").endswith(
      "did you mean optim.learning_rate?")
  assert main.missing_field(config, "seed.x") == "--config.seed.x: seed is a value, not a section"
  assert "belongs to family 'fbm'" in main.missing_field(config, "process.hurst")


def test_notebook_installs_from_the_declared_source():
  """The Colab install cell clones the ``Source`` URL of ``[project.urls]`` in pyproject.toml (no
  placeholder) and says in one line what to set when the user's copy lives elsewhere."""
  urls = (ROOT / "pyproject.toml").read_text().split("[project.urls]", 1)[1].split("\n[", 1)[0]
  source = re.search(r'^Source = "(\S+)"$', urls, flags=re.M).group(1)
  notebook = json.loads((ROOT / "launch" / "colab" / "demo.ipynb").read_text())
  install = "".join(next(c for c in notebook["cells"] if c["cell_type"] == "code")["source"])
  assert f'"{source}"' in install and "OWNER" not in install
  assert re.search(r"^# .*LIM_JAX_REPO", install, flags=re.M)
