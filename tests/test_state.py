"""The train state module (``lim_jax.state``): the abstract state a restore targets.

Reference: the concrete state the same factory builds (shapes and dtypes must match exactly).
"""

from __future__ import annotations

import jax

from lim_jax import config_lib, models, parallel, sample, state, train


def _factory():
  cfg = config_lib.default_config()
  model = models.get_model(cfg.model, (2,), 1)
  tx = state.make_optimizer(cfg.optim, cfg.training.num_steps)
  return state.make_state_factory(model, tx, (2,))


def test_abstract_state_matches_the_concrete_state():
  """Reference: ``create(key)``; every leaf of the abstract state has its shape and dtype, and
  carries the given sharding (exact)."""
  create = _factory()
  concrete = create(jax.random.PRNGKey(1))
  rep = parallel.replicated(parallel.make_mesh(jax.devices()[:1]))
  abstract = state.abstract_state(create, rep)
  assert jax.tree.structure(abstract) == jax.tree.structure(concrete)
  for a, c in zip(jax.tree.leaves(abstract), jax.tree.leaves(concrete)):
    assert isinstance(a, jax.ShapeDtypeStruct)
    assert (a.shape, a.dtype) == (c.shape, c.dtype)
    assert a.sharding == rep
  assert all(a.sharding is None for a in jax.tree.leaves(state.abstract_state(create)))


def test_public_names_stay_importable_from_train_and_sample():
  """Reference: the names benchmarks and notebooks use (``train.make_optimizer`` ...,
  ``sample.to_uint8`` ...) are the objects of their new modules."""
  assert train.TrainState is state.TrainState
  assert train.make_optimizer is state.make_optimizer
  assert train.make_state_factory is state.make_state_factory
  assert sample.to_uint8.__module__ == "lim_jax.plotting"
  assert sample.image_grid.__module__ == "lim_jax.plotting"
