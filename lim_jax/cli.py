"""What the command lines share: one-line user errors (exit 2), absl flag parsing that turns bad
flags and config overrides into such errors, and the log filter for chatty libraries."""

from __future__ import annotations

import sys

from absl import flags, logging

USER_ERROR, FAILURE = 2, 1


def user_error(msg: str) -> None:
  """Prints ``lim_jax: error: <msg>`` (one line) to stderr and exits with code 2."""
  print(f"lim_jax: error: {' '.join(str(msg).split())}", file=sys.stderr)
  sys.exit(USER_ERROR)


def quiet_libraries(record) -> bool:
  """Drops the INFO chatter of Orbax and absl-using libraries; keeps their warnings."""
  return record.levelno >= logging.converter.STANDARD_WARNING or "lim_jax" in record.pathname


def parse_flags(argv: list[str]) -> list[str]:
  """absl's parser, with bad flags and config overrides turned into one line and exit code 2."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    user_error(str(e))
  except (ValueError, TypeError, AttributeError, KeyError, OSError, SyntaxError) as e:
    user_error(f"--config: {e}")
  return []  # unreachable
