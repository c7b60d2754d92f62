"""Train, sample from or evaluate a lim_jax model.

Usage:
  python -m lim_jax.main --config=CONFIG.py [--workdir=DIR] [--mode=train|sample|eval]
                         [--config.FIELD=VALUE ...]

  python -m lim_jax.main --config=configs/toy_levy.py          # 2-D toy data, a few CPU minutes
  python -m lim_jax.main --config=configs/cifar10_levy.py      # needs CIFAR10 prepared (README)

--workdir defaults to runs/<config file stem> (runs/toy_levy, runs/cifar10_levy above), under the
current directory; the first log line names it. Rerunning the same command resumes from the latest
checkpoint there. --mode=sample and --mode=eval read that checkpoint.

Exit codes: 0 success, 2 user error (bad flag, bad config value, missing file, dataset or
checkpoint; one line "lim_jax: error: ..." on stderr), 1 anything else (e.g. a non-finite loss, a
full disk).
"""

from __future__ import annotations

import errno
import os

from absl import app, flags, logging
from ml_collections import config_flags

from lim_jax import cli

FLAGS = flags.FLAGS
_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to an ml_collections config file (configs/*.py); fields are overridden "
    "with --config.FIELD=VALUE.", lock_config=True)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Directory for checkpoints, metrics and samples. Default: runs/<config file "
    "stem>, e.g. runs/cifar10_levy for --config=configs/cifar10_levy.py. Rerunning the same "
    "command resumes there.")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "sample", "eval"],
                          "train (resumes if the workdir has a checkpoint), sample or eval.")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Call jax.distributed.initialize() (multi-host TPU pod / SLURM).")

# Writes refused by the storage the user chose (exit 2) / storage that ran out (exit 1).
_NOT_WRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)
_OUT_OF_SPACE = (errno.ENOSPC, errno.EDQUOT)
USER_ERROR, FAILURE = cli.USER_ERROR, cli.FAILURE
_user_error, _failure, _parse_flags = cli.user_error, cli.failure, cli.parse_flags
_quiet_libraries, missing_field = cli.quiet_libraries, cli.missing_field


def default_workdir(config_arg: str) -> str:
  """``runs/<config file stem>`` for ``--config=path/to/stem.py[:arg]``."""
  path = config_arg.split(":", 1)[0]
  return os.path.join("runs", os.path.splitext(os.path.basename(path.rstrip("/")))[0])


def _workdir() -> str:
  """``--workdir``, or its default; announced on the first log line."""
  if _WORKDIR.present and not _WORKDIR.value:
    _user_error("--workdir is empty; leave the flag out for the default "
                f"{default_workdir(FLAGS['config'].config_filename)}")
  if _WORKDIR.value:
    workdir = _WORKDIR.value
    logging.info("lim_jax: workdir %s", workdir)
  else:
    workdir = default_workdir(FLAGS["config"].config_filename)
    logging.info("lim_jax: workdir %s = %s (the default, runs/<config file stem>; set --workdir "
                 "to choose another; rerunning the same command resumes there)", workdir,
                 os.path.abspath(workdir))
  return workdir


def _storage_error(e: OSError, workdir: str) -> None:
  """An ``OSError`` out of a run, in one line: a write the storage refused (exit 2, naming
  ``--workdir`` when the file is in it), a full disk (exit 1); anything else is re-raised."""
  where = str(e.filename or workdir)
  inside = os.path.abspath(where).startswith(os.path.join(os.path.abspath(workdir), ""))
  if e.errno in _NOT_WRITABLE:
    _user_error(f"--workdir {workdir!r} is not writable: {e.strerror}: {where}" if inside
                else str(e))
  if e.errno in _OUT_OF_SPACE:
    # An asynchronous checkpoint write may be failing on the same full disk, and printing.
    cli.failure_over_threads(
        f"stopped: writing {where} failed: {e.strerror}. Free space (or choose another "
        "--workdir) and rerun the same command (training resumes from its last complete "
        "checkpoint).")
  raise e


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    _user_error(f"unexpected arguments: {' '.join(argv[1:])}")
  if _CONFIG.value is None:
    _user_error("--config is required (e.g. --config=configs/toy_levy.py)")
  try:
    _CONFIG.value.keys()  # config_flags defers a load failure to the first access
  except OSError as e:
    _user_error(f"--config: {e}")
  logging.set_verbosity(logging.INFO)
  logging.get_absl_handler().addFilter(_quiet_libraries)
  workdir = _workdir()

  from lim_jax import parallel  # pylint: disable=g-import-not-at-top
  try:
    parallel.maybe_initialize_distributed(_DISTRIBUTED.value)
  except ValueError as e:
    _user_error(str(e))
  from lim_jax import checkpoint, evaluate, sample, train  # pylint: disable=g-import-not-at-top

  config = _CONFIG.value
  try:
    if _MODE.value != "train" and os.path.isdir(workdir):
      train.prepare_workdir(workdir)  # sample/eval write there too: refuse before restoring
    if _MODE.value == "train":
      train.train_and_evaluate(config, workdir)
    elif _MODE.value == "sample":
      sample.sample(config, workdir)
    else:
      evaluate.evaluate(config, workdir)
  except (ValueError, FileNotFoundError, NotADirectoryError) as e:
    _user_error(str(e))
  except train.NonFiniteError as e:
    _failure(f"training stopped: {e}")
  except checkpoint.CheckpointSaveError as e:
    # Orbax's failed background writes keep printing tracebacks ("Event loop is closed", "Task
    # exception was never retrieved") while they unwind and at exit: the failure is reported.
    cli.failure_over_threads(f"training stopped: {e}")
  except OSError as e:
    _storage_error(e, workdir)


def run() -> None:
  app.run(main, flags_parser=_parse_flags)


if __name__ == "__main__":
  run()
