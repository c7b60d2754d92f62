"""Command line: a fair, repeatable comparison of noise families on one config.

  python -m lim_jax.compare --config=CONFIG --families=gaussian,levy,... --seeds=N --workdir=DIR
      [--nfe=10,35,100] [--config.FIELD=VALUE ...] [--tune=FIELD=v1,v2,... [--select=METRIC]]

Every family trains with CONFIG's data, network, optimiser, budget, noise-level allocation,
parameterisation, sampler and NFE accounting; only ``process`` differs (CONFIG's own family keeps
CONFIG's process fields, the others start from their defaults; ``--config.process.NAME=VALUE``
applies to every family that has the field; a family entry can carry its own fields,
``fbm:hurst=0.7:num_ou=3``). Seed ``i`` is ``config.seed + i`` for every family. One sub-workdir
per (family, seed) under DIR; rerunning the same command skips finished runs and resumes a killed
one. Outputs: ``DIR/compare.json``, ``DIR/compare.md``, ``DIR/compare_<metric>.png``
(:mod:`lim_jax.study`).

Exit codes: 0 success, 2 user error (bad flag or config value, one line naming it, before any
training), 1 anything else.
"""

from __future__ import annotations

import os
import shlex
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from lim_jax import checkpoint, cli, train
from lim_jax.study import plan as plan_lib
from lim_jax.study import study

FLAGS = flags.FLAGS
_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to an ml_collections config file.",
                                          lock_config=False)
_FAMILIES = flags.DEFINE_string("families", None, "Comma-separated families, e.g. gaussian,levy "
                                "(an entry may add process fields: fbm:hurst=0.7:num_ou=3).")
_SEEDS = flags.DEFINE_integer("seeds", 3, "Seeds per family: config.seed + 0 .. N-1.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Study directory (one sub-workdir per run).")
_NFE = flags.DEFINE_list("nfe", [], "NFE list (default: eval.nfe_sweep, else sampling.nfe).")
_TUNE = flags.DEFINE_multi_string("tune", [], "FIELD=v1,v2,...: the same grid for every family, "
                                  "selected on a validation draw (repeat for a product grid).")
_SELECT = flags.DEFINE_string("select", "", "Metric that --tune selects on (default: the first "
                              "evaluated metric with a direction).")
_VERBOSE = flags.DEFINE_bool("verbose", False, "Show the training and evaluation log lines.")
_CACHE = flags.DEFINE_bool("compilation_cache", True, "Keep compiled programs in DIR/jax_cache "
                           "(JAX's persistent cache), so the seeds after the first of a family "
                           "and reruns skip most compilation; off if JAX_COMPILATION_CACHE_DIR "
                           "is set.")

PROCESS_PREFIX = "--config.process."


def split_process_overrides(argv: list[str]) -> tuple[list[str], dict]:
  """Takes ``--config.process.NAME=VALUE`` out of ``argv`` (they are applied per family, and a
  field of one family is not a field of CONFIG's). Returns ``(rest of argv, {NAME: value})``."""
  rest, overrides = [], {}
  args = iter(argv)
  for arg in args:
    if not arg.startswith(PROCESS_PREFIX):
      rest.append(arg)
      continue
    name, sep, value = arg[len(PROCESS_PREFIX):].partition("=")
    if not sep:  # --config.process.NAME VALUE
      value = next(args, None)
      if value is None:
        cli.user_error(f"{arg}: expected --config.process.NAME=VALUE")
    if not name.isidentifier():
      cli.user_error(f"{arg}: expected --config.process.NAME=VALUE")
    overrides[name] = plan_lib.parse_value(value)
  return rest, overrides


_PROCESS_OVERRIDES: dict = {}
_ARGV: list[str] = []  # the command line as given (recorded in compare.json / compare.md)


def _parse_flags(argv: list[str]) -> list[str]:
  rest, overrides = split_process_overrides(argv)
  _PROCESS_OVERRIDES.update(overrides)
  _ARGV[:] = argv
  sys.argv[:] = rest  # config_flags reads its --config.* overrides from sys.argv itself
  return cli.parse_flags(rest)


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    cli.user_error(f"unexpected arguments: {' '.join(argv[1:])}")
  if _CONFIG.value is None:
    cli.user_error("--config is required (e.g. --config=configs/toy_gaussian.py)")
  try:
    _CONFIG.value.keys()
  except OSError as e:
    cli.user_error(f"--config: {e}")
  if not _WORKDIR.value:
    cli.user_error("--workdir is required (e.g. --workdir=runs/compare)")
  if not _FAMILIES.value:
    cli.user_error("--families is required (e.g. --families=gaussian,levy)")
  try:
    nfe = [int(n) for n in _NFE.value]
  except ValueError:
    cli.user_error(f"--nfe must be a comma-separated list of integers, got {_NFE.value}")
  logging.set_verbosity(logging.INFO if _VERBOSE.value else logging.WARNING)
  logging.get_absl_handler().addFilter(cli.quiet_libraries)

  if _CACHE.value:
    study.enable_compilation_cache(os.path.join(_WORKDIR.value, "jax_cache"))
  command = "python -m lim_jax.compare " + " ".join(shlex.quote(a) for a in _ARGV[1:])
  try:
    study.run_study(_CONFIG.value, _FAMILIES.value, _SEEDS.value, _WORKDIR.value, nfe=nfe,
                    tune=_TUNE.value, process_overrides=dict(_PROCESS_OVERRIDES),
                    select_metric=_SELECT.value, command=command)
  except (ValueError, FileNotFoundError, PermissionError, NotADirectoryError) as e:
    cli.user_error(str(e))
  except (train.NonFiniteError, checkpoint.CheckpointSaveError) as e:
    print(f"lim_jax: compare stopped: {e}", file=sys.stderr)
    sys.exit(cli.FAILURE)


def run() -> None:
  app.run(main, flags_parser=_parse_flags)


if __name__ == "__main__":
  run()
