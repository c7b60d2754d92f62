"""Test-wide settings: 4 forced host devices (so sharding is exercised) and fast compiles.

``XLA_FLAGS`` must be set before jax initialises its backend, hence at import time here.

One persistent compilation cache per test session (a temporary folder, removed at exit), shared by
the xdist workers (they inherit the controller's environment) and by the command lines the tests
start: the same toy programs are compiled once per session instead of once per test. A cache hit
returns the executable XLA would compile, so no result depends on it; a test that needs its own
cache (tests/test_first_run.py) sets ``JAX_COMPILATION_CACHE_DIR`` for its subprocesses.
"""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
if "PYTEST_XDIST_WORKER" not in os.environ and "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _JIT_CACHE = tempfile.mkdtemp(prefix="lim_jax_tests_jit_")
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _JIT_CACHE
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
  atexit.register(shutil.rmtree, _JIT_CACHE, True)

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import pytest  # pylint: disable=g-import-not-at-top,wrong-import-position

# Tests use small shapes, so XLA's optimisation passes cost more than they save.
jax.config.update("jax_disable_most_optimizations", True)


@pytest.fixture
def key():
  return jax.random.PRNGKey(0)


@pytest.fixture
def optimized():
  """Re-enables XLA optimisations for a test that runs many steps (training quality)."""
  jax.config.update("jax_disable_most_optimizations", False)
  yield
  jax.config.update("jax_disable_most_optimizations", True)
