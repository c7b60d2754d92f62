"""What the command lines share: one-line user errors (exit 2) and failures (exit 1), absl flag
parsing that turns bad flags and config overrides into such errors (naming the field and, for a
misspelt one, the closest field), and the log filter for chatty libraries.

Exit codes: 0 success, 2 user error (bad flag, bad config value, missing file), 1 anything else.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
import time

from absl import flags, logging
from ml_collections import config_dict

USER_ERROR, FAILURE = 2, 1
HELP_FLAGS = ("--help", "-help", "-h", "-?", "--helpshort", "--helpfull", "--helpxml")


def one_line(msg: str) -> str:
  """``msg`` on one line; an embedded traceback is cut down to the exception it ends with."""
  text = str(msg)
  if "Traceback (most recent call last)" in text:
    head, tail = text.split("Traceback (most recent call last)", 1)
    lines = [line for line in tail.splitlines() if line.strip()]
    text = f"{head.rstrip().rstrip(':')}: {lines[-1].strip() if lines else ''}"
  return " ".join(text.split())


def user_error(msg: str) -> None:
  print(f"lim_jax: error: {one_line(msg)}", file=sys.stderr)
  sys.exit(USER_ERROR)


def failure(msg: str) -> None:
  print(f"lim_jax: {one_line(msg)}", file=sys.stderr)
  sys.exit(FAILURE)


def failure_over_threads(msg: str, settle_s: float = 0.05) -> None:
  """:func:`failure` while other threads may still write to stderr (Orbax's failed asynchronous
  checkpoint writes print tracebacks as they unwind, from Python and from TensorStore's threads).
  ``sys.stderr`` writes through, piece by piece, so a plain :func:`failure` can land inside one of
  their lines or be followed by them. Here new Python writes go to ``os.devnull`` first
  (``sys.stderr`` is replaced); after ``settle_s`` seconds, in which a traceback already being
  printed to the old ``sys.stderr`` finishes its line, descriptor 2 is pointed at ``os.devnull``
  too (for C writers and late pieces), and the line goes in one ``write`` to a copy of the original
  descriptor: whole, and last. What was written before the call is kept; what the other threads
  write after it is dropped. For the command line only: the process's stderr stays pointed at
  ``os.devnull`` until it exits.
  """
  line = f"lim_jax: {one_line(msg)}\n".encode()
  try:
    original = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
  except OSError:  # no descriptor to spare: the plain line is still better than none
    failure(msg)
  sys.stderr = os.fdopen(os.dup(null), "w")
  time.sleep(settle_s)
  os.dup2(null, 2)
  os.close(null)
  os.write(original, line)
  os.close(original)
  sys.exit(FAILURE)


def quiet_libraries(record) -> bool:
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


def parse_flags(argv: list[str]) -> list[str]:
  """absl's parser, with bad flags and config overrides turned into one line and exit code 2;
  ``--help`` exits 0."""
  try:
    return flags.FLAGS(argv)
  except SystemExit as e:  # absl's --help prints the usage and exits 1
    raise SystemExit(0 if any(a in HELP_FLAGS for a in argv[1:]) else e.code) from None
  except BrokenPipeError:  # --help piped into `head`: stop quietly, as other tools do
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(0)
  except flags.Error as e:
    user_error(_unknown_override(argv) or str(e))
  except (ValueError, TypeError, AttributeError, KeyError, OSError, SyntaxError) as e:
    user_error(_unknown_override(argv) or f"--config: {e}")
  return []  # unreachable


