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

import difflib
import errno
import importlib
import os
import sys

from absl import app, flags, logging
from ml_collections import config_dict, config_flags

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

USER_ERROR, FAILURE = 2, 1
HELP_FLAGS = ("--help", "-help", "-h", "-?", "--helpshort", "--helpfull", "--helpxml")
# Writes refused by the storage the user chose (exit 2) / storage that ran out (exit 1).
_NOT_WRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)
_OUT_OF_SPACE = (errno.ENOSPC, errno.EDQUOT)


def _one_line(msg: str) -> str:
  """``msg`` on one line; an embedded traceback is cut down to the exception it ends with."""
  text = str(msg)
  if "Traceback (most recent call last)" in text:
    head, tail = text.split("Traceback (most recent call last)", 1)
    lines = [l for l in tail.splitlines() if l.strip()]
    text = f"{head.rstrip().rstrip(':')}: {lines[-1].strip() if lines else ''}"
  return " ".join(text.split())


def _user_error(msg: str) -> None:
  print(f"lim_jax: error: {_one_line(msg)}", file=sys.stderr)
  sys.exit(USER_ERROR)


def _failure(msg: str) -> None:
  print(f"lim_jax: {_one_line(msg)}", file=sys.stderr)
  sys.exit(FAILURE)


def _quiet_libraries(record) -> bool:
  """Drops the INFO chatter of Orbax and absl-using libraries; keeps their warnings."""
  return record.levelno >= logging.converter.STANDARD_WARNING or "lim_jax" in record.pathname


def missing_field(config, dotted: str) -> str | None:
  """Why ``--config.<dotted>`` names no field of ``config`` (``None`` when it does)."""
  node, parts = config, dotted.split(".")
  for i, name in enumerate(parts):
    if isinstance(node, config_dict.ConfigDict) and name in node:
      node = node[name]
      continue
    if not isinstance(node, config_dict.ConfigDict):
      return f"--config.{dotted}: {'.'.join(parts[:i])} is a value, not a section"
    section = ".".join(parts[:i]) or "the config"
    fields = sorted(node.keys())
    close = difflib.get_close_matches(name, fields, n=1)
    owners = _families_with(name) if parts[:i] == ["process"] else []
    if owners:
      hint = (f"it belongs to family {' / '.join(map(repr, owners))} and this config's family is "
              f"{node.get('family')!r}: start from a config of that family, e.g. "
              f"configs/toy_{owners[0]}.py")
    elif close:
      hint = f"did you mean {'.'.join(parts[:i] + close)}?"
    else:
      hint = f"its fields: {', '.join(fields)}"
    return f"--config.{dotted}: {section} has no field {name!r}; {hint}"
  return None


def _families_with(name: str) -> list[str]:
  """The families whose own process fields include ``name``."""
  from lim_jax.processes import FAMILIES  # pylint: disable=g-import-not-at-top
  return [family for family, module in FAMILIES.items()
          if name in dict(getattr(importlib.import_module(module), "config_fields", dict)())]


def _override_paths(argv: list[str]) -> list[str]:
  """The dotted fields of the ``--config.FIELD[=VALUE]`` arguments, in order."""
  out = []
  for arg in argv[1:]:
    if arg.startswith(("--config.", "-config.")):
      out.append(arg.split("config.", 1)[1].split("=", 1)[0])
  return out


def _config_arg(argv: list[str]) -> str | None:
  """The value of ``--config`` in ``argv`` (``path[:arg]``), if given."""
  for i, arg in enumerate(argv[1:], 1):
    for prefix in ("--config=", "-config="):
      if arg.startswith(prefix):
        return arg[len(prefix):]
    if arg in ("--config", "-config") and i + 1 < len(argv):
      return argv[i + 1]
  return None


def _unknown_override(argv: list[str]) -> str | None:
  """The message for the first ``--config.FIELD`` override that names no field, if any.

  ml_collections applies the overrides while it parses ``--config``, so a missing field leaves no
  config behind: the file is loaded again here to walk the overridden paths.
  """
  value = _config_arg(argv)
  if not value or not _override_paths(argv):
    return None
  from lim_jax import config_lib  # pylint: disable=g-import-not-at-top
  path, _, arg = value.partition(":")
  try:
    config = config_lib.load_file(path, arg or None)
  except (OSError, AttributeError, KeyError, TypeError, ValueError, SyntaxError, ImportError):
    return None  # the config itself does not load: that error is the one to report
  for dotted in _override_paths(argv):
    why = missing_field(config, dotted)
    if why:
      return why
  return None


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's parser, with bad flags and config overrides turned into one line and exit code 2;
  ``--help`` exits 0."""
  try:
    return FLAGS(argv)
  except SystemExit as e:  # absl's --help prints the usage and exits 1
    raise SystemExit(0 if any(a in HELP_FLAGS for a in argv[1:]) else e.code) from None
  except BrokenPipeError:  # --help piped into `head`: stop quietly, as other tools do
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(0)
  except flags.Error as e:
    _user_error(_unknown_override(argv) or str(e))
  except (ValueError, TypeError, AttributeError, KeyError, OSError, SyntaxError) as e:
    _user_error(_unknown_override(argv) or f"--config: {e}")
  return []  # unreachable


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
    _failure(f"stopped: writing {where} failed: {e.strerror}. Free space (or choose another "
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
    _failure(f"training stopped: {e}")
  except OSError as e:
    _storage_error(e, workdir)


def run() -> None:
  app.run(main, flags_parser=_parse_flags)


if __name__ == "__main__":
  run()
