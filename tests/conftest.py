"""Test-wide settings: 4 forced host devices (so sharding is exercised) and fast compiles.

``XLA_FLAGS`` must be set before jax initialises its backend, hence at import time here.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

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
