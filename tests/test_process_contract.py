"""The contract every registered noise family passes (:mod:`lim_jax.processes.base`).

Parametrised over ``lim_jax.processes.FAMILIES``, so a family added to the registry is checked
without editing this file, except for one entry in :data:`BAD_VALUE` (a test fails until it has
one). Each family, built from the default config by ``config_lib.set_family`` + ``get_process``:

* its config fields are its dataclass fields with the dataclass defaults (one source of truth);
* its defaults validate, and a bad value of one of its fields is refused naming that field;
* ``perturb``, ``prior``, every sampler that ``samplers.available`` lists (at its smallest NFE,
  all samplers of a family in one ``jax.jit`` so that they compile once) and ``denoise`` compile
  under ``jax.jit`` at tiny shapes and give finite arrays of the documented shapes;
* it is hashable, and equal configs give equal processes with equal hashes;
* it follows the key convention (module docstring of ``base``): every data-shaped Gaussian draw
  of ``perturb`` and ``prior`` comes from ``jax.random.split(key)[0]`` (so a family's Gaussian
  limit reproduces the gaussian family's numbers for the same key).

The independent reference of each check is the protocol's own statement (shapes, the key split,
``ValueError`` naming ``process.<field>``); there are no tolerances (exact checks only). Tiny
shapes ``(2, 3)`` keep the whole file near 30 s on one core.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ml_collections import config_dict

from lim_jax import config_lib, samplers
from lim_jax.processes import FAMILIES, base, get_process

SHAPE = (2, 3)  # (B, *data_shape)

# One bad value per family, of one of its own fields (gaussian has none: its sde is shared).
BAD_VALUE = {
    "gaussian": ("sde", "brownian"),
    "levy": ("alpha", 2.5),
    "jump": ("jump_rate", -1.0),
    "fbm": ("hurst", 1.5),
    "mixture": ("mixture_per", "pixel"),
    "student_t": ("nu", -1.0),
}


def _config(family: str, **fields):
  config = config_lib.default_config()
  config_lib.set_family(config, family, **fields)
  return config


def _process(family: str) -> base.Process:
  return get_process(_config(family).process)


def _apply_fn(process: base.Process):
  """A parameter-scaled smooth stand-in network with the family's number of heads."""

  def apply_fn(params, x, t, train=False, rng=None):
    del t, train, rng
    return params * jnp.tile(jnp.tanh(x), (1,) * (x.ndim - 1) + (process.num_outputs,))

  return apply_fn


def _finite(tree) -> bool:
  return all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(tree))


def _key_data(key: jax.Array) -> jax.Array:
  """The raw ``uint32`` words of a typed or legacy key (traceable)."""
  return jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key


families = pytest.mark.parametrize("family", sorted(FAMILIES))


def test_every_registered_family_has_a_bad_value_entry():
  """The registry is the reference: each family needs its :data:`BAD_VALUE` entry."""
  assert set(BAD_VALUE) == set(FAMILIES)


@families
def test_config_fields_are_the_dataclass_fields_and_defaults(family):
  """Reference: the dataclass itself. Each ``config_fields()`` name is an init field of the
  process and its default (a placeholder's: None) is the field's value in the default config."""
  proc = _process(family)
  module = __import__(FAMILIES[family], fromlist=["config_fields"])
  fields = getattr(module, "config_fields", dict)()
  init_fields = {f.name for f in proc.__dataclass_fields__.values() if f.init}
  for name, default in fields.items():
    assert name in init_fields, f"process.{name} is not a field of {type(proc).__name__}"
    if isinstance(default, config_dict.FieldReference):
      default = default.get()
    assert getattr(proc, name) == default, name


@families
def test_defaults_validate_and_a_bad_value_is_refused_naming_the_field(family):
  """Reference: the protocol's error rule (``ValueError`` whose message names the field)."""
  _process(family).validate()
  name, value = BAD_VALUE[family]
  config = _config(family)
  config.process[name] = value
  with pytest.raises(ValueError, match=rf"process\.{name}\b"):
    get_process(config.process)


@families
def test_perturb_prior_denoise_jit_with_shapes_and_key_convention(family, monkeypatch):
  """References: the shapes of :class:`base.Process` (``perturb`` -> data-shaped input,
  ``num_outputs`` heads of target, ``(B,)`` weight; ``prior``'s readout and ``denoise`` are
  data-shaped; training times in ``[t_min_train, t_max]``) and the key convention of
  :mod:`lim_jax.processes.base`: every data-shaped ``jax.random.normal`` draw of the jitted
  ``perturb`` and ``prior`` (keys recorded at run time by ``jax.debug.callback``) uses
  ``jax.random.split(key)[0]``, and each makes at least one."""
  proc = _process(family)
  calls = []
  real_normal = jax.random.normal

  def recording_normal(key, shape=(), dtype=float, *args, **kwargs):
    if tuple(shape) == SHAPE:
      jax.debug.callback(lambda k: calls.append(np.asarray(k)), _key_data(key))
    return real_normal(key, shape, dtype, *args, **kwargs)

  k_data, k_time, key = jax.random.split(jax.random.PRNGKey(0), 3)
  x0 = jax.random.normal(k_data, SHAPE)
  t = proc.sample_time(k_time, SHAPE[0])
  assert t.shape == SHAPE[:1]
  assert bool(jnp.all((t >= proc.t_min_train) & (t <= proc.t_max)))
  t_max = jnp.full(SHAPE[:1], proc.t_max)

  def run(k, x, s):  # one compilation for the three methods; the same key for both draws
    pert = proc.perturb(k, x, s)
    state = proc.prior(k, SHAPE)
    model_out = _apply_fn(proc)(0.1, proc.model_input(state, t_max), t_max)
    return pert, state, proc.denoise(state, t_max, model_out)

  monkeypatch.setattr(jax.random, "normal", recording_normal)
  pert, state, x0_hat = jax.jit(run)(key, x0, t)
  jax.effects_barrier()
  assert pert.model_input.shape == SHAPE
  assert pert.target.shape == SHAPE[:-1] + (SHAPE[-1] * proc.num_outputs,)
  assert pert.weight.shape == SHAPE[:1]
  assert _finite(pert)
  assert proc.readout(state).shape == SHAPE and _finite(state)
  assert x0_hat.shape == SHAPE and _finite(x0_hat)
  assert len(calls) >= 2, f"{family}: perturb and prior must each draw a data-shaped Gaussian"
  k_gauss = np.asarray(_key_data(jax.random.split(key)[0]))
  for k in calls:
    np.testing.assert_array_equal(k, k_gauss, err_msg=f"{family}: not split(key)[0]")


@families
def test_every_available_sampler_jits(family):
  """Reference: ``samplers.available`` and ``samplers.min_nfe``: every listed sampler builds at
  its smallest budget (at least 2 NFE) and, all jitted together (one compilation per family),
  returns finite data-shaped samples (an alias is built and its target run)."""
  proc = _process(family)
  names = samplers.available(proc)
  assert names, family
  apply_fn = _apply_fn(proc)
  aliases = proc.sampler_aliases()
  built = {}
  for name in names:
    nfe = max(2, samplers.min_nfe(name))
    smp = samplers.make_sampler(proc, apply_fn, name, nfe)
    assert smp.nfe <= nfe, name
    if name in aliases:  # the same computation as its target: built, not compiled twice
      assert aliases[name] in names, name
    else:
      built[name] = smp
  run_all = jax.jit(lambda params, key: {n: s.sample(params, key, SHAPE) for n, s in built.items()})
  out = run_all(jnp.float32(0.1), jax.random.PRNGKey(1))
  for name, x in out.items():
    assert x.shape == SHAPE, name
    assert _finite(x), name


@families
def test_hashable_and_equal_configs_give_equal_processes(family):
  """Reference: ``hash`` / ``==`` of frozen dataclasses; a process closes over ``jit`` as a static
  argument, so equal processes share one compilation."""
  a, b = _process(family), _process(family)
  assert a == b and hash(a) == hash(b)
  traces = []

  def scaled(proc, x):
    traces.append(proc)  # runs once per compilation
    return x * proc.t_max

  fn = jax.jit(scaled, static_argnums=0)
  np.testing.assert_array_equal(fn(a, jnp.ones(SHAPE)), fn(b, jnp.ones(SHAPE)))
  assert len(traces) == 1
