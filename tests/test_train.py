"""End-to-end training: quality, exact resume, and device-count invariance."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lim_jax import config_lib, data as data_lib, losses, models, parallel, train
from lim_jax.metrics import toy as toy_metrics


def tiny_config(**training):
  c = config_lib.default_config()
  c.model.hidden, c.model.depth = 64, 2
  c.training.batch_size = 256
  c.training.num_steps = 40
  c.training.log_every = 20
  c.training.checkpoint_every = 20
  c.training.steps_per_call = 10
  c.optim.learning_rate = 3e-3
  c.optim.warmup_steps = 10
  c.sampling.num_samples = 256
  c.sampling.batch_size = 256
  c.sampling.nfe = 20
  c.training.update(training)
  return c


def params_of(state):
  return jax.tree.leaves(jax.device_get(state.params))


@pytest.mark.integration
def test_training_lowers_sliced_wasserstein(tmp_path, optimized):
  """Training the Gaussian model on ring8 brings the samples' sliced W1 to data near the floor.

  References (2000 points each): the sliced W1 between two independent data sets is the noise floor
  (0.038); the moment-matched Gaussian N(mean, cov) of the data, which knows nothing of the 8 modes,
  is at 0.24. Threshold: the midpoint of the two (0.14), so the model must have learned the modes.
  (The untrained model, zero output, gives 160: its x0 estimates are x_t / m_t.) Measured: 0.09.
  """
  cfg = tiny_config(num_steps=1500, log_every=500, checkpoint_every=1500, steps_per_call=50)
  cfg.model.hidden, cfg.model.depth = 128, 3
  cfg.sampling.num_samples = cfg.sampling.batch_size = 2000
  cfg.sampling.nfe = 100
  state = train.train_and_evaluate(cfg, str(tmp_path))
  samples = np.load(tmp_path / "samples" / "step_1500.npz")["samples"]
  data = data_lib.ToyData(cfg.data, cfg.seed)
  ref = data.reference(2000, 3)
  floor = toy_metrics.sliced_wasserstein(data.reference(2000, 1), ref)
  gauss = np.random.default_rng(0).multivariate_normal(ref.mean(0), np.cov(ref.T), 2000)
  gauss_fit = toy_metrics.sliced_wasserstein(gauss, ref)
  sw = toy_metrics.sliced_wasserstein(samples, ref)
  assert sw < 0.5 * (floor + gauss_fit), (sw, floor, gauss_fit)
  assert int(state.step) == 1500


@pytest.mark.integration
def test_resume_gives_the_same_parameters(tmp_path):
  """20 steps + restart + 20 more equals 40 uninterrupted steps (data and keys are functions of
  the step; Adam state and EMA are checkpointed).
  Reference: the uninterrupted run; allclose 1e-6."""
  full = train.train_and_evaluate(tiny_config(), str(tmp_path / "full"))
  train.train_and_evaluate(tiny_config(num_steps=20), str(tmp_path / "split"))
  resumed = train.train_and_evaluate(tiny_config(), str(tmp_path / "split"))
  for a, b in zip(params_of(full), params_of(resumed)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  assert (tmp_path / "split" / "checkpoints" / "40").is_dir()


@pytest.mark.integration
def test_same_update_on_1_and_4_devices():
  """One train call (3 steps) of the same global batch on a 1-device and a 4-device mesh gives the
  same loss and parameters (reference: the 1-device run; allclose 1e-5 for reduction order)."""
  assert jax.device_count() >= 4, "conftest forces 4 host devices"
  cfg = tiny_config()
  process = config_lib.validate(cfg)
  data = data_lib.ToyData(cfg.data, cfg.seed)
  model = models.get_model(cfg.model, data.data_shape, process.num_outputs)
  tx = train.make_optimizer(cfg.optim, cfg.training.num_steps)
  step_fn = train.make_train_step(
      losses.make_loss_fn(process, models.make_apply(model)), tx, cfg.optim.ema_decay)
  batches = data.batches(0, 3, cfg.training.batch_size)
  out = []
  for devices in (jax.devices()[:1], jax.devices()[:4]):
    mesh = parallel.make_mesh(devices)
    rep = parallel.replicated(mesh)
    state = jax.jit(train.make_state_factory(model, tx, data.data_shape),
                    out_shardings=rep)(jax.random.PRNGKey(0))
    fn = jax.jit(step_fn, in_shardings=(rep, parallel.batch_sharding(mesh, 1), rep),
                 out_shardings=(rep, rep))
    state, metrics = fn(state, parallel.put_batch(batches, mesh, 1), jax.random.PRNGKey(1))
    assert len(state.params["Dense_0"]["kernel"].sharding.device_set) == len(devices)
    out.append((float(metrics["loss"]), params_of(state)))
  np.testing.assert_allclose(out[0][0], out[1][0], rtol=1e-5)
  for a, b in zip(out[0][1], out[1][1]):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.integration
def test_nonfinite_batch_is_skipped_and_stops(tmp_path, monkeypatch):
  """A NaN in the data makes the loss non-finite: the update is skipped (parameters unchanged) and
  the ``stop`` policy raises NonFiniteError at the next boundary, naming the policy."""
  real = data_lib.ToyData.batches

  def poisoned(self, step, *a, **k):
    out = real(self, step, *a, **k)
    if step <= 25 < step + len(out):
      out[25 - step, 0, 0] = np.nan
    return out

  monkeypatch.setattr(data_lib.ToyData, "batches", poisoned)
  with pytest.raises(train.NonFiniteError, match="on_nonfinite='stop'"):
    train.train_and_evaluate(tiny_config(), str(tmp_path / "stop"))
  # skip policy: training finishes, one step skipped.
  state = train.train_and_evaluate(tiny_config(on_nonfinite="skip"), str(tmp_path / "skip"))
  assert int(state.nonfinite_total) == 1 and int(state.step) == 40
  assert all(np.all(np.isfinite(p)) for p in params_of(state))


def test_unrolled_scan_gives_the_same_update():
  """``unroll=True`` (the CPU workaround for convolution gradients in loops) changes only how XLA
  runs the 3 steps: reference = the rolled scan, allclose 1e-6; the unrolled program has no scan,
  even for one step. ``training.unroll='auto'`` unrolls only a U-Net on CPU."""
  cfg = tiny_config()
  process = config_lib.validate(cfg)
  data = data_lib.ToyData(cfg.data, cfg.seed)
  model = models.get_model(cfg.model, data.data_shape, process.num_outputs)
  tx = train.make_optimizer(cfg.optim, cfg.training.num_steps)
  loss_fn = losses.make_loss_fn(process, models.make_apply(model))
  state0 = train.make_state_factory(model, tx, data.data_shape)(jax.random.PRNGKey(0))
  batches = jnp.asarray(data.batches(0, 3, cfg.training.batch_size))
  out = [jax.jit(train.make_train_step(loss_fn, tx, cfg.optim.ema_decay, unroll=u))(
      state0, batches, jax.random.PRNGKey(1))[0] for u in (False, True)]
  for a, b in zip(params_of(out[0]), params_of(out[1])):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  # Unrolled means the steps are traced one by one, with no scan around them, also for one step:
  # XLA lowers a fully unrolled one-step lax.scan to a one-trip while loop, inside which XLA:CPU
  # ran a U-Net step 21x slower.
  for num in (1, 3):
    prims = {u: {e.primitive.name for e in jax.make_jaxpr(
        train.make_train_step(loss_fn, tx, cfg.optim.ema_decay, unroll=u))(
            state0, batches[:num], jax.random.PRNGKey(1)).eqns} for u in (False, True)}
    assert "scan" in prims[False] and "scan" not in prims[True], num
  assert not train.scan_unroll(cfg)  # an MLP never needs it
  cfg.model.name = "ddpmpp"
  assert train.scan_unroll(cfg) == (jax.default_backend() == "cpu")
  cfg.training.unroll = "never"
  assert not train.scan_unroll(cfg)
