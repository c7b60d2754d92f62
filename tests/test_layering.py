"""The package's layers (docs/architecture.md): imports only point down, and there is no cycle.

Every module of ``lim_jax`` is parsed (``ast``, no import is executed), with all its imports,
those inside functions included. Reference: the layer map below, which is the table of
docs/architecture.md; the checks are exact (no tolerance).
"""

from __future__ import annotations

import ast
import pathlib

import pytest

from lim_jax import evaluate
from lim_jax.metrics import registry

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "lim_jax"

# Bottom (1) to top (11). A key names a module or a package (then it covers all its modules). A
# module may import modules of its own layer or lower ones; a cycle is refused in any layer.
LAYERS: dict[str, int] = {
    "lim_jax": 0,  # the package's __init__ (a docstring)
    # 1. foundations
    "lim_jax.stable": 1, "lim_jax.storage": 1, "lim_jax.metric_writers": 1, "lim_jax.parallel": 1,
    # 2. maths and networks
    "lim_jax.processes": 2, "lim_jax.models": 2, "lim_jax.metrics": 2,
    # 3. parameterisation and data
    "lim_jax.precondition": 3, "lim_jax.data": 3, "lim_jax.image_data": 3, "lim_jax.own_data": 3,
    # 4. objectives and integrators
    "lim_jax.losses": 4, "lim_jax.samplers": 4,
    # 5. state
    "lim_jax.state": 5, "lim_jax.checkpoint": 5,
    # 6. configuration
    "lim_jax.config_lib": 6,
    # 7. sampling and plotting
    "lim_jax.plotting": 7, "lim_jax.sample": 7,
    # 8. evaluation
    "lim_jax.evaluate": 8,
    # 9. training
    "lim_jax.train": 9,
    # 10. the family comparison and the shared command-line helpers
    "lim_jax.study": 10, "lim_jax.cli": 10,
    # 11. the command lines
    "lim_jax.compare": 11, "lim_jax.main": 11,
}

# The only libraries a function may import (each optional or heavy, loaded where first needed so
# that the rest of the package works without it). Apart from LAZY_COMMAND_LINE below, nothing of
# lim_jax is imported inside a function.
LAZY_IMPORTS: dict[str, str] = {
    "matplotlib": "figures only (plotting, study.report)",
    "PIL": "PNG encoding and image files only",
    "tensorflow_datasets": "the tfds image sets only (image_data)",
    "grain": "the tfds image pipeline only (image_data)",
    "tensorboardX": "the optional TensorBoard sink (metric_writers)",
    "scipy.integrate": "the ODE reference of fbm_tables, used by tests only",
}

# The one exception for the package's own modules: the command lines (layers 10-11, the top, so
# these imports still point down and cannot close a cycle) load the run's modules only once the
# flags have parsed, so that ``--help`` and a bad flag answer without loading JAX, flax and optax
# (measured on 2 cores: ``python -m lim_jax.main --help`` 0.35 s this way, 5 s with these imports
# at module level).
LAZY_COMMAND_LINE: dict[str, tuple[str, ...]] = {
    "lim_jax.main": ("lim_jax.parallel", "lim_jax.checkpoint", "lim_jax.evaluate",
                     "lim_jax.sample", "lim_jax.train"),
    "lim_jax.cli": ("lim_jax.processes", "lim_jax.config_lib"),
}


def _module_name(path: pathlib.Path) -> str:
  parts = list(path.relative_to(ROOT).with_suffix("").parts)
  if parts[-1] == "__init__":
    parts.pop()
  return ".".join(parts)


def _modules() -> dict[str, pathlib.Path]:
  return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _in_function(tree: ast.AST) -> set[int]:
  """The ids of the import nodes that sit inside a function or method."""
  inside = set()
  for node in ast.walk(tree):
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
      inside.update(id(n) for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom)))
  return inside


def imports(name: str, path: pathlib.Path, modules) -> list[tuple[str, int, bool]]:
  """``(imported module, line, inside a function)`` for every import of one module.

  ``from P import n`` names the module ``P.n`` when that is a module of the package, else ``P``;
  relative imports are resolved against the module's package.
  """
  tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
  lazy = _in_function(tree)
  package = name if path.name == "__init__.py" else name.rpartition(".")[0]
  out = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      out += [(a.name, node.lineno, id(node) in lazy) for a in node.names]
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        up = package.split(".")[:len(package.split(".")) - node.level + 1]
        base = ".".join(up + ([node.module] if node.module else []))
      for a in node.names:
        target = f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
        out.append((target, node.lineno, id(node) in lazy))
  return out


def layer_of(name: str) -> int:
  """The layer of the longest key of :data:`LAYERS` that is ``name`` or a package above it."""
  parts = name.split(".")
  for i in range(len(parts), 0, -1):
    key = ".".join(parts[:i])
    if key in LAYERS:
      return LAYERS[key]
  raise KeyError(name)


def internal_graph() -> dict[str, set[str]]:
  """Module -> the package modules it imports (anywhere in its file)."""
  modules = _modules()
  return {name: {t for t, _, _ in imports(name, path, modules) if t in modules and t != name}
          for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
  """One import cycle ``[a, b, ..., a]`` of ``graph``, or None (depth-first search)."""
  state: dict[str, int] = {}  # 1: on the current path, 2: done
  path: list[str] = []

  def visit(node: str) -> list[str] | None:
    state[node] = 1
    path.append(node)
    for nxt in sorted(graph.get(node, ())):
      if state.get(nxt) == 1:
        return path[path.index(nxt):] + [nxt]
      if nxt not in state:
        found = visit(nxt)
        if found:
          return found
    path.pop()
    state[node] = 2
    return None

  for node in sorted(graph):
    if node not in state:
      found = visit(node)
      if found:
        return found
  return None


def test_every_module_has_a_layer():
  """Reference: the layer map; a new module must be placed in it (and in docs/architecture.md)."""
  missing = []
  for name in _modules():
    try:
      layer_of(name)
    except KeyError:
      missing.append(name)
  assert not missing, f"modules without a layer in tests/test_layering.py LAYERS: {missing}"


def test_imports_point_down():
  """Reference: the layer map; every import of a package module (at module level or inside a
  function) names a module of the same or a lower layer."""
  modules = _modules()
  bad = []
  for name, path in modules.items():
    for target, line, _ in imports(name, path, modules):
      if target in modules and layer_of(target) > layer_of(name):
        bad.append(f"{path.relative_to(ROOT)}:{line}: {name} (layer {layer_of(name)}) imports "
                   f"{target} (layer {layer_of(target)})")
  assert not bad, "imports from a higher layer:\n" + "\n".join(bad)


def test_no_import_cycle():
  """Reference: depth-first search over the whole import graph, function-level imports
  included."""
  cycle = find_cycle(internal_graph())
  assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_function_level_imports_are_only_optional_heavy_libraries():
  """Reference: :data:`LAZY_IMPORTS` and :data:`LAZY_COMMAND_LINE`; any other import inside a
  function (a package module, the standard library, a required dependency) fails."""
  modules = _modules()
  bad = []
  for name, path in modules.items():
    for target, line, lazy in imports(name, path, modules):
      allowed = (any(target == lib or target.startswith(lib + ".") for lib in LAZY_IMPORTS)
                 or target in LAZY_COMMAND_LINE.get(name, ()))
      if lazy and not allowed:
        bad.append(f"{path.relative_to(ROOT)}:{line}: {target}")
  assert not bad, "function-level imports outside LAZY_IMPORTS:\n" + "\n".join(bad)


@pytest.mark.parametrize("graph,cycle", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
    ({"a": {"b"}, "b": set(), "c": {"c"}}, ["c", "c"]),
    ({"a": {"b", "c"}, "b": {"c"}, "c": set()}, None),
])
def test_find_cycle_finds_known_cycles(graph, cycle):
  """Reference: hand-made graphs with a known cycle (or none), so the cycle check can fail."""
  assert find_cycle(graph) == cycle


def test_imports_sees_function_level_and_relative_imports(tmp_path):
  """Reference: a hand-written module whose imports are known (the parser can see them all)."""
  src = tmp_path / "m.py"
  src.write_text("import os\nfrom . import x\ndef f():\n  from lim_jax import train\n",
                 encoding="utf-8")
  got = imports("lim_jax.sub.m", src, {"lim_jax.train", "lim_jax.sub.x"})
  assert got == [("os", 1, False), ("lim_jax.sub.x", 2, False), ("lim_jax.train", 4, True)]


def test_metric_registry_names_the_implemented_metrics():
  """Reference: ``evaluate.METRICS`` (the implementations) and ``metrics.registry.NAMES`` (what
  config validation accepts) are the same set."""
  assert sorted(evaluate.METRICS) == sorted(registry.NAMES)
  assert set(registry.TOY_ONLY) | set(registry.IMAGE_ONLY) <= set(registry.NAMES)
  assert not set(registry.TOY_ONLY) & set(registry.IMAGE_ONLY)
