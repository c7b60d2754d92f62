"""Planning a study: one run per (family, seed, tuning value), each with its own config and workdir.

Every run starts from one config (CONFIG) and changes only:

* ``process``: the CONFIG's own family keeps CONFIG's ``process`` section; any other family starts
  from the shared defaults (``config_lib.default_config().process``) plus its own fields
  (``config_lib.set_family``: the family's ``config_fields()`` defaults). Then, in order, the
  process overrides of the command line (``--config.process.NAME=VALUE``: applied to every family
  that has the field) and the fields of the family entry (``fbm:hurst=0.7:num_ou=3``).
* ``seed``: ``config.seed + i`` for seed index ``i``.
* ``eval.nfe_sweep``: the study's NFE list.
* the tuned fields, when tuning.

Everything else (data, network, optimiser, budget, noise-level allocation, parameterisation,
sampler, grid, NFE accounting, metrics) is CONFIG's, hence shared by every family.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import itertools
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from lim_jax import config_lib
from lim_jax.processes import FAMILIES

ConfigDict = config_lib.ConfigDict


@dataclasses.dataclass(frozen=True)
class FamilySpec:
  """One entry of ``--families``: a family name and optional process fields of its own.

  Attributes:
    name: the ``process.family``.
    fields: process fields of this entry (``fbm:hurst=0.7`` -> ``{'hurst': 0.7}``).
    label: the entry as written, used in tables and directory names.
  """

  name: str
  fields: tuple[tuple[str, Any], ...] = ()
  label: str = ""


@dataclasses.dataclass(frozen=True)
class Run:
  """One training run of the study."""

  family: FamilySpec
  seed_index: int
  seed: int
  tune: tuple[tuple[str, Any], ...]
  directory: str
  config: ConfigDict = dataclasses.field(compare=False, hash=False)

  @property
  def name(self) -> str:
    tune = ", ".join(f"{k}={v!r}" for k, v in self.tune)
    return f"{self.family.label} seed {self.seed}" + (f" ({tune})" if tune else "")


def parse_value(text: str) -> Any:
  """A Python literal (``1e-3``, ``(1, 2)``, ``True``, ``'a'``), else the text itself."""
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def parse_families(text: str) -> list[FamilySpec]:
  """``'gaussian,levy,fbm:hurst=0.7:num_ou=3'`` -> family specs.

  Raises:
    ValueError: naming ``--families`` (empty, unknown family, malformed field, duplicate entry).
  """
  specs = []
  for entry in (e.strip() for e in text.split(",")):
    if not entry:
      raise ValueError(f"--families: empty entry in {text!r}")
    name, *parts = entry.split(":")
    if name not in FAMILIES:
      raise ValueError(f"--families: unknown family {name!r}; available: {sorted(FAMILIES)}")
    fields = []
    for part in parts:
      key, sep, value = part.partition("=")
      if not sep or not key.isidentifier():
        raise ValueError(f"--families: {entry!r}: expected FAMILY:FIELD=VALUE[:FIELD=VALUE]")
      fields.append((key, parse_value(value)))
    specs.append(FamilySpec(name, tuple(fields), entry))
  labels = [s.label for s in specs]
  if len(set(labels)) != len(labels):
    raise ValueError(f"--families: duplicate entries in {text!r}")
  return specs


def parse_tune(entries: Sequence[str]) -> list[tuple[str, list[Any]]]:
  """``['optim.learning_rate=1e-3,3e-3']`` -> ``[('optim.learning_rate', [0.001, 0.003])]``.

  Values are split at commas, or given as one Python list (``model.ch_mult=[(1, 2), (1, 2, 2)]``).

  Raises:
    ValueError: naming ``--tune``.
  """
  out = []
  for entry in entries:
    field, sep, values = entry.partition("=")
    if not sep or not values or not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+", field):
      raise ValueError(f"--tune: expected SECTION.FIELD=V1,V2,..., got {entry!r}")
    if values.lstrip().startswith("["):
      parsed = parse_value(values)
      if not isinstance(parsed, list):
        raise ValueError(f"--tune: {entry!r}: the value list is not a Python list")
    else:
      parsed = [parse_value(v.strip()) for v in values.split(",")]
    if len(parsed) < 2:
      raise ValueError(f"--tune: {entry!r} needs at least two values to choose from")
    if field in ("process.family", "eval.nfe_sweep"):
      raise ValueError(f"--tune: {field} is set by the study itself (--families, --nfe)")
    if any(f == field for f, _ in out):
      raise ValueError(f"--tune: {field} given twice")
    out.append((field, parsed))
  return out


def tune_grid(tune: Sequence[tuple[str, list[Any]]]) -> list[tuple[tuple[str, Any], ...]]:
  """Every combination of the tuned values (the Cartesian product), or ``[()]`` without tuning."""
  if not tune:
    return [()]
  fields = [f for f, _ in tune]
  return [tuple(zip(fields, combo)) for combo in itertools.product(*(v for _, v in tune))]


def family_fields(family: str) -> dict[str, Any]:
  """The family's own ``process`` fields and defaults (its module's ``config_fields()``)."""
  module = importlib.import_module(FAMILIES[family])
  return dict(getattr(module, "config_fields", dict)())


def _assign(config: ConfigDict, field: str, value: Any, what: str) -> None:
  """``config.<field> = value`` for an existing dotted field; ValueError naming ``what``."""
  *path, name = field.split(".")
  node = config
  for part in path:
    if part not in node or not isinstance(node[part], ConfigDict):
      raise ValueError(f"{what}: {field} is not a field of the config")
    node = node[part]
  if name not in node:
    raise ValueError(f"{what}: {field} is not a field of the config")
  try:
    node[name] = value
  except (TypeError, ValueError) as e:
    raise ValueError(f"{what}: {field}={value!r}: {e}") from None


def family_config(base: ConfigDict, spec: FamilySpec,
                  process_overrides: Mapping[str, Any] | None = None) -> ConfigDict:
  """CONFIG with ``process`` replaced for ``spec`` (see the module docstring); not validated.

  Raises:
    ValueError: a field of ``spec`` that its family does not have, or a value of the wrong type.
  """
  config = base.copy_and_resolve_references()
  own = family_fields(spec.name)
  with config.unlocked():
    if spec.name == base.process.family:
      keep = {k: config.process[k] for k in own if k in config.process}
    else:
      config.process = config_lib.default_config().process
      keep = {}
    shared = set(config.process.keys())
    overrides = {k: v for k, v in (process_overrides or {}).items() if k in own or k in shared}
    try:
      config_lib.set_family(config, spec.name, **{**keep, **overrides, **dict(spec.fields)})
    except TypeError as e:
      raise ValueError(f"--families: {spec.label}: {e}") from None
    except ValueError as e:
      raise ValueError(f"--families: {spec.label}: {e}") from None
  return config


def check_process_overrides(overrides: Mapping[str, Any], specs: Sequence[FamilySpec]) -> None:
  """Every ``--config.process.NAME`` must be a field of some family of the study (or shared)."""
  known = set(config_lib.default_config().process.keys())
  for spec in specs:
    known |= set(family_fields(spec.name))
  for name in overrides:
    if name == "family":
      raise ValueError("--config.process.family: the families come from --families")
    if name not in known:
      raise ValueError(f"--config.process.{name} is not a field of any family of the study "
                       f"({', '.join(s.name for s in specs)})")


def _directory_part(text: str) -> str:
  return re.sub(r"[^A-Za-z0-9._=+-]", "_", text)


def run_directory(workdir: str, spec: FamilySpec, seed: int,
                  tune: tuple[tuple[str, Any], ...]) -> str:
  """``workdir/<family entry>[/<field=value+...>]/seed_<seed>``."""
  parts = [workdir, _directory_part(spec.label)]
  if tune:
    parts.append(_directory_part("+".join(f"{k.split('.')[-1]}={v}" for k, v in tune)))
  return os.path.join(*parts, f"seed_{seed}")


def plan(base: ConfigDict, specs: Sequence[FamilySpec], num_seeds: int, workdir: str,
         nfe: Sequence[int] | None = None, tune: Sequence[tuple[str, list[Any]]] = (),
         process_overrides: Mapping[str, Any] | None = None) -> list[Run]:
  """The runs of a study, seed-major (all families of seed ``i`` before seed ``i + 1``, so a
  study stopped early still has paired results), each config validated.

  Raises:
    ValueError: naming the first bad field (prefixed by the family entry for a family's run).
  """
  if not specs:
    raise ValueError("--families: at least one family is needed")
  if not (isinstance(num_seeds, int) and num_seeds >= 1):
    raise ValueError(f"--seeds must be an integer >= 1, got {num_seeds!r}")
  check_process_overrides(process_overrides or {}, specs)
  sweep = tuple(int(n) for n in nfe) if nfe else (
      tuple(base.eval.get("nfe_sweep", ())) or (int(base.sampling.nfe),))
  if any(n <= 0 for n in sweep):
    raise ValueError(f"--nfe values must be positive integers, got {sweep}")
  family_configs = {s.label: family_config(base, s, process_overrides) for s in specs}
  runs = []
  for i in range(num_seeds):
    for spec in specs:
      for combo in tune_grid(tune):
        config = family_configs[spec.label].copy_and_resolve_references()
        with config.unlocked():
          config.seed = int(base.seed) + i
          config.eval.nfe_sweep = sweep
        for field, value in combo:
          _assign(config, field, value, f"--tune ({spec.label})")
        seed = int(config.seed)
        runs.append(Run(spec, i, seed, combo, run_directory(workdir, spec, seed, combo), config))
  for run in runs[:len(specs) * len(tune_grid(tune))]:  # seeds differ only in ``seed``
    try:
      config_lib.validate(run.config)
    except (ValueError, FileNotFoundError) as e:
      raise type(e)(f"{run.family.label}: {e}") from None
  return runs
