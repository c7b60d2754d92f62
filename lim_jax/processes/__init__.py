"""Noise families, selected by ``process.family``.

Each family is one module exposing ``from_config(process_cfg) -> Process`` (validated). The registry
maps the config string to that module; adding a family adds one line here.
"""

from __future__ import annotations

import importlib

from lim_jax.processes.base import Perturbed, Process

FAMILIES: dict[str, str] = {
    "gaussian": "lim_jax.processes.gaussian",
    "levy": "lim_jax.processes.levy",
    "jump": "lim_jax.processes.jump",
    "fbm": "lim_jax.processes.fbm",
    "mixture": "lim_jax.processes.mixture",
    "student_t": "lim_jax.processes.student_t",
}


def get_process(process_cfg) -> Process:
  """Builds and validates the Process named by ``process_cfg.family``.

  Raises:
    ValueError: unknown family or a bad family parameter (the message names the field).
  """
  family = process_cfg.family
  if family not in FAMILIES:
    raise ValueError(f"process.family must be one of {sorted(FAMILIES)}, got {family!r}")
  try:
    module = importlib.import_module(FAMILIES[family])
  except ModuleNotFoundError as e:
    raise ValueError(f"process.family={family!r} is not available in this build ({e})") from e
  return module.from_config(process_cfg)


__all__ = ["FAMILIES", "Perturbed", "Process", "get_process"]
