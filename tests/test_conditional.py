"""Class-conditional models (``model.num_classes > 0``): labels from the data, a label embedding in
the network, labels travelling with the batch through training and with the parameters through the
samplers (the published GFDM numbers are class-conditional, issue #6)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds

from lim_jax import config_lib, data as data_lib, image_data, models, sample, train
from lim_jax.models.ddpmpp import DDPMpp, param_count, param_count_analytic


def test_toy_labels_follow_the_mixture_weights():
  """Reference: the generating weights of ``grid_imbalanced`` (:func:`data.grid_modes`). With
  n = 40000 labels, each class frequency is within 5 binomial standard errors of its weight (the
  nearest-centre label equals the generating component except with probability < 1e-7)."""
  cfg = config_lib.default_config().data
  cfg.dataset, cfg.num_train = "grid_imbalanced", 40_000
  d = data_lib.ToyData(cfg, seed=3)
  _, weights, _ = data_lib.grid_modes()
  freq = np.bincount(d.labels, minlength=25) / len(d.labels)
  se = np.sqrt(weights * (1 - weights) / len(d.labels))
  assert np.all(np.abs(freq - weights) < 5 * se + 1e-12), np.max(np.abs(freq - weights) / se)
  x, y = d.batches(5, 2, 64, labels=True)
  assert x.shape == (2, 64, 2) and y.shape == (2, 64) and y.dtype == np.int32
  np.testing.assert_array_equal(x, d.batches(5, 2, 64))  # labels do not change the stream
  np.testing.assert_array_equal(y, data_lib.toy_labels("grid_imbalanced", x.reshape(-1, 2))
                                .reshape(2, 64))


def test_unlabelled_toy_set_refuses_labels():
  cfg = config_lib.default_config().data
  cfg.dataset, cfg.num_train = "moons", 100
  with pytest.raises(ValueError, match="model.num_classes"):
    data_lib.ToyData(cfg, seed=0).batches(0, 1, 8, labels=True)


def test_image_labels_travel_with_their_images():
  """Reference: the mock examples themselves: each mock image's label is read back next to it, and
  the images equal the unlabelled stream's."""
  cfg = config_lib.default_config().data
  with cfg.unlocked():
    cfg.dataset, cfg.num_threads, cfg.prefetch = "cifar10", 2, False
  with tfds.testing.mock_data(num_examples=16):
    d = image_data.ImageData(cfg, seed=0)
    x, y = d.batches(0, 2, 8, labels=True)
    np.testing.assert_array_equal(x, d.batches(0, 2, 8))
    assert y.shape == (2, 8) and y.min() >= 0 and y.max() < 10
    source = d.shard()
    flat = {d.preprocess(source[i]).tobytes(): int(source[i]["label"]) for i in range(len(source))}
    for img, lab in zip(x.reshape(-1, *x.shape[2:]), y.reshape(-1)):
      key = img.tobytes() if img.tobytes() in flat else img[:, ::-1].copy().tobytes()
      assert flat[key] == lab


@pytest.mark.integration
def test_ddpmpp_label_embedding_count_and_effect():
  """Reference: the analytic count plus the ``C x 4ch`` table; the output depends on the label."""
  cfg = dict(ch=8, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=())
  model = DDPMpp(out_channels=1, num_classes=10, **cfg)
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 16, 16, 1))
  t = jnp.full((2,), 0.5)
  params = model.init(jax.random.PRNGKey(1), x, t, y=jnp.array([0, 1]))["params"]
  assert param_count(params) == param_count_analytic(1, 1, 16, num_classes=10, **cfg)
  # Make the (zero-initialised) head non-zero so the label's effect reaches the output.
  params = jax.tree_util.tree_map_with_path(
      lambda p, v: v + 0.1 if "Conv" in jax.tree_util.keystr(p) else v, params)
  a = model.apply({"params": params}, x, t, y=jnp.array([0, 0]))
  b = model.apply({"params": params}, x, t, y=jnp.array([3, 3]))
  assert float(jnp.max(jnp.abs(a - b))) > 1e-4
  with pytest.raises(ValueError, match="needs class labels"):
    model.apply({"params": params}, x, t)
  with pytest.raises(ValueError, match="unconditional"):
    DDPMpp(out_channels=1, **cfg).init(jax.random.PRNGKey(1), x, t, y=jnp.array([0, 1]))


@pytest.mark.parametrize("field,value", [("model.num_classes", 3), ("model.num_classes", -1),
                                         ("sampling.class_label", 3)])
def test_bad_conditioning_fields_are_named(field, value):
  """ring8 has 8 classes: 3 classes is refused, a negative count is refused, and a class label
  for an unconditional model is refused."""
  config = config_lib.default_config()
  section, name = field.split(".")
  config[section][name] = value
  with pytest.raises(ValueError, match=f"^{field}"):
    config_lib.validate(config, num_devices=4, num_processes=1)


def test_unlabelled_dataset_refused_before_compiling():
  config = config_lib.default_config()
  config.data.dataset, config.model.num_classes = "moons", 2
  with pytest.raises(ValueError, match="^model.num_classes.*no class labels"):
    config_lib.validate(config, num_devices=4, num_processes=1)


@pytest.mark.parametrize("family", ["fbm", "gaussian"])
@pytest.mark.integration
def test_conditional_samples_land_in_their_class(family, tmp_path):
  """Reference: the nearest ring8 mode of each sample. A conditional model trained 500 steps puts
  >= 90 % of the samples of class c in mode c (an unconditional model would score 1/8 on
  average), for the classes in turn and for ``sampling.class_label = 5``."""
  config = config_lib.load_file(f"configs/toy_{family}.py")
  config.data.dataset, config.model.num_classes = "ring8", 8
  config.data.num_train = 4096
  config.model.hidden, config.model.depth = 64, 2
  config.training.num_steps = config.training.checkpoint_every = 500
  config.training.log_every, config.training.steps_per_call = 250, 50
  config.sampling.num_samples = config.sampling.batch_size = 256
  config.sampling.nfe = 40
  state = train.train_and_evaluate(config, str(tmp_path))
  saved = np.load(tmp_path / "samples" / "step_500.npz")
  labels = saved["labels"]
  np.testing.assert_array_equal(labels, np.arange(256) % 8)
  hit = data_lib.toy_labels("ring8", saved["samples"]) == labels
  assert hit.mean() >= 0.9, hit.mean()
  config.sampling.class_label = 5
  r = sample.restore_for_inference(config, str(tmp_path))
  x, _ = sample.draw_samples(config, r["process"], r["apply_fn"], state.ema_params, r["mesh"],
                             (2,), num=128)
  assert (data_lib.toy_labels("ring8", x) == 5).mean() >= 0.9
  assert models.num_classes(config.model) == 8
