"""Command line: ``python -m lim_jax.main --config=configs/toy_levy.py --workdir=runs/x [--mode=...]``.

Exit codes (DESIGN.md §9): 0 success, 2 user error (bad flag, bad config value, missing file),
1 anything else.
"""

from __future__ import annotations

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from lim_jax import cli

FLAGS = flags.FLAGS
_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to an ml_collections config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and samples.")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "sample", "eval"], "What to run.")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Call jax.distributed.initialize() (multi-host TPU pod / SLURM).")

USER_ERROR, FAILURE = cli.USER_ERROR, cli.FAILURE
_user_error, _parse_flags, _quiet_libraries = cli.user_error, cli.parse_flags, cli.quiet_libraries


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    _user_error(f"unexpected arguments: {' '.join(argv[1:])}")
  if _CONFIG.value is None:
    _user_error("--config is required (e.g. --config=configs/toy_levy.py)")
  try:
    _CONFIG.value.keys()  # config_flags defers a load failure to the first access
  except OSError as e:
    _user_error(f"--config: {e}")
  if not _WORKDIR.value:
    _user_error("--workdir is required (e.g. --workdir=runs/toy)")
  logging.set_verbosity(logging.INFO)
  logging.get_absl_handler().addFilter(_quiet_libraries)

  from lim_jax import parallel  # pylint: disable=g-import-not-at-top
  try:
    parallel.maybe_initialize_distributed(_DISTRIBUTED.value)
  except ValueError as e:
    _user_error(str(e))
  from lim_jax import checkpoint, evaluate, sample, train  # pylint: disable=g-import-not-at-top

  config, workdir = _CONFIG.value, _WORKDIR.value
  try:
    if _MODE.value == "train":
      train.train_and_evaluate(config, workdir)
    elif _MODE.value == "sample":
      sample.sample(config, workdir)
    else:
      evaluate.evaluate(config, workdir)
  except (ValueError, FileNotFoundError, PermissionError, NotADirectoryError) as e:
    _user_error(str(e))
  except train.NonFiniteError as e:
    print(f"lim_jax: training stopped: {e}", file=sys.stderr)
    sys.exit(FAILURE)
  except checkpoint.CheckpointSaveError as e:
    print(f"lim_jax: training stopped: {e}", file=sys.stderr)
    sys.exit(FAILURE)


def run() -> None:
  app.run(main, flags_parser=_parse_flags)


if __name__ == "__main__":
  run()
