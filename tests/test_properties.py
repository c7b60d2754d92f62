"""Property-based tests (hypothesis): validation never crashes with anything but a ValueError naming
a field, and samplers stay finite over random valid parameters."""

import math

import jax
import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st
from ml_collections import ConfigDict

from lim_jax import config_lib, samplers
from lim_jax.processes import get_process

NUMERIC = {
    "training.batch_size": st.integers(-8, 64),
    "training.num_steps": st.integers(-3, 10),
    "training.steps_per_call": st.integers(-2, 5),
    "optim.learning_rate": st.floats(allow_nan=True, allow_infinity=True),
    "optim.ema_decay": st.floats(-1, 2),
    "optim.grad_clip": st.floats(-2, 2),
    "process.beta_min": st.floats(-1, 30),
    "process.beta_max": st.floats(-1, 30),
    "process.t_min": st.floats(-0.5, 1.5),
    "sampling.nfe": st.integers(-2, 10),
    "sampling.snr": st.floats(-1, 1),
}
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Each sampler example compiles a new scan (the schedule is static): fewer examples.
COMPILING = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.fixed_dictionaries({k: v for k, v in NUMERIC.items()}))
def test_validation_refuses_with_a_field_name_or_accepts(values):
  config = config_lib.default_config()
  for dotted, v in values.items():
    section, name = dotted.split(".")
    config[section][name] = v
  try:
    config_lib.validate(config, num_devices=4, num_processes=1)
  except ValueError as e:
    msg = str(e)
    sections = ("training", "optim", "process", "sampling")
    assert any(msg.startswith(section) for section in sections), msg
    return
  # Accepted: the values really are valid.
  assert values["training.batch_size"] > 0 and values["training.batch_size"] % 4 == 0
  assert math.isfinite(values["optim.learning_rate"]) and values["optim.learning_rate"] > 0
  assert 0 < values["process.beta_min"] < values["process.beta_max"]


@COMPILING
@given(sde=st.sampled_from(["vp", "ve"]), beta_min=st.floats(0.01, 1.0),
       beta_span=st.floats(0.5, 30.0), sigma_max=st.floats(1.0, 100.0),
       name=st.sampled_from(["euler", "heun", "em", "pc", "ei_ode", "ei_sde"]),
       nfe=st.integers(2, 12), seed=st.integers(0, 2**16))
def test_samplers_stay_finite(sde, beta_min, beta_span, sigma_max, name, nfe, seed):
  """Exact score of N(0, 0.5^2) data: any valid schedule, sampler and NFE gives finite samples."""
  proc = get_process(ConfigDict(dict(
      family="gaussian", sde=sde, schedule="linear", beta_min=beta_min,
      beta_max=beta_min + beta_span, cosine_s=0.008, sigma_min=0.01, sigma_max=sigma_max,
      t_max=None, t_min=1e-3, t_min_train=1e-5)))
  sch = proc.schedule

  def apply_fn(params, x, t, train=False, rng=None):
    m, s = sch.mean_coeff(t)[:, None], sch.std(t)[:, None]
    return s * x / (0.25 * m**2 + s**2)

  smp = samplers.make_sampler(proc, apply_fn, name, nfe)
  x = smp.sample(None, jax.random.PRNGKey(seed), (8, 2))
  assert np.all(np.isfinite(np.asarray(x)))
