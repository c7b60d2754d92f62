"""``--mode=eval`` metrics: toy prdc/Vendi rows, and the image path (FID, prdc in Inception
features, pixel Vendi) end to end on mocked tfds data with a synthetic Inception file."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
import tensorflow_datasets as tfds

from lim_jax import config_lib, evaluate, train
from lim_jax import data as data_lib
from lim_jax.metrics import inception_weights, prdc, toy

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_toy_prdc_and_vendi_rows():
  """Reference: identical sets give precision = recall = coverage = 1 (brute-force definition);
  a set collapsed onto one point has Vendi 1 and the data's Vendi is larger."""
  config = config_lib.default_config()
  config.eval.metrics = ("prdc", "vendi")
  rng = np.random.default_rng(0)
  x = rng.standard_normal((300, 2))
  row = evaluate.score(x, x, config)
  assert row["precision"] == row["recall"] == row["coverage"] == 1.0
  collapsed = evaluate.score(np.zeros((300, 2)), x, config)
  assert collapsed["vendi"] == pytest.approx(1.0, abs=1e-9) and row["vendi"] > 5


def test_data_floor_is_fresh_data_scored_like_samples():
  """Reference: the floor is the metric of an independent draw (salt ``FLOOR_SALT``) against the
  reference, computed directly with :mod:`lim_jax.metrics.toy`; and because the 1-D W1 between two
  independent n-point samples of a law with finite moments falls like ``n^{-1/2}``, its mean over 8
  seeds at n = 4000 is 1/4 of that at n = 250. Measured over 12 blocks of 4 seeds on moons: ratio
  3.94, std 0.70 (so ~0.5 for 8 seeds); the band [2, 6] is 4 std. A floor scored against the
  reference itself (0) or not depending on n fails it."""
  config = config_lib.default_config()
  config.data.dataset = "moons"
  config.eval.metrics = ("sliced_wasserstein", "mmd")
  means = {}
  for n in (250, 4000):
    floors = []
    for seed in range(8):
      config.seed = seed
      data = data_lib.get_dataset(config.data, seed)
      reference = data.reference(n, salt=data_lib.TEST_SALT)
      floor = evaluate.data_floor(data, reference, config)
      assert sorted(floor) == ["mmd", "sliced_wasserstein"]
      fresh = data.reference(n, salt=data_lib.FLOOR_SALT)
      assert floor["sliced_wasserstein"] == toy.sliced_wasserstein(fresh, reference, seed=seed)
      floors.append(floor["sliced_wasserstein"])
    means[n] = np.mean(floors)
  assert 2.0 < means[250] / means[4000] < 6.0, means
  only = evaluate.data_floor(data, reference, config, metrics=("sliced_wasserstein",))
  assert list(only) == ["sliced_wasserstein"]
  assert config.eval.metrics == ("sliced_wasserstein", "mmd")  # the caller's config is unchanged


def test_data_floor_needs_a_generator():
  """Own data and images have no draw independent of their test split: refused (and the image
  evaluation below writes no ``data_floor``, so the study records None for them)."""
  config = config_lib.image_config("gaussian", "cifar10")
  with pytest.raises(ValueError, match="data floor needs a toy set"):
    evaluate.data_floor(object(), np.zeros((4, 32, 32, 3)), config)


@pytest.mark.parametrize("metric,image", [("fid", False), ("pixel_vendi", False),
                                          ("vendi", True), ("mmd", True)])
def test_metric_for_the_wrong_kind_of_data_is_refused(metric, image):
  config = config_lib.image_config("gaussian", "cifar10") if image else config_lib.default_config()
  config.eval.metrics = (metric,)
  with pytest.raises(ValueError, match="^eval.metrics"):
    config_lib.validate(config, num_devices=4, num_processes=1)


def _tiny_image_config(tmp_path, inception_path: str):
  config = config_lib.load_file(ROOT / "configs" / "cifar10_gaussian.py")
  m = config.model
  m.ch, m.ch_mult, m.num_res_blocks, m.attn_resolutions = 8, (1, 2), 1, ()
  tr = config.training
  tr.batch_size, tr.num_steps, tr.steps_per_call, tr.log_every, tr.checkpoint_every = 8, 1, 1, 1, 1
  sp = config.sampling
  sp.sampler, sp.nfe, sp.num_samples, sp.batch_size = "euler", 2, 8, 8
  config.eval.num_samples, config.eval.batch_size = 8, 8
  config.eval.inception_path = inception_path
  return config


@pytest.fixture(scope="module")
def synthetic_inception(tmp_path_factory) -> str:
  """An ``.npz`` with the real file's key names and shapes and He-scaled random convolutions
  (BatchNorm at identity), so the features depend on the image."""
  rng = np.random.default_rng(0)
  state = {}
  for k, s in inception_weights.expected_state_dict_shapes().items():
    if k.endswith("conv.weight") or k == "fc.weight":
      v = rng.standard_normal(s) * np.sqrt(2.0 / np.prod(s[1:]))
    elif k.endswith(("bn.weight", "running_var")):
      v = np.ones(s)
    else:
      v = np.zeros(s)
    state[k] = v.astype(np.float32)
  path = str(tmp_path_factory.mktemp("inception") / "inception.npz")
  inception_weights.save_npz(state, path)
  return path


def _check_rows(tmp_path, rows, dim):
  saved = json.loads((tmp_path / "eval" / "step_1.json").read_text())
  assert saved["rows"] == rows and saved["dataset"] == "cifar10"
  assert "data_floor" not in saved  # images: no draw beside the test split
  row = rows[0]
  for key in ("fid", "precision", "recall", "density", "coverage", "pixel_vendi"):
    assert np.isfinite(row[key]), (key, row)
  assert row["fid"] > 0 and 1 <= row["pixel_vendi"] <= 8
  (cache,) = (tmp_path / "eval").glob("reference_cifar10_32_8_*.npz")
  feats = np.load(cache)["features"]
  assert feats.shape == (8, dim) and np.std(feats, axis=0).mean() > 0
  assert prdc.prdc(feats, feats)["recall"] == 1.0


@pytest.mark.integration
def test_image_eval_writes_the_metrics_with_a_given_extractor(tmp_path):
  """The image eval plumbing with a stand-in extractor (a fixed random projection of the uint8
  pixels to 16 features): ``eval/step_1.json`` holds finite fid / precision / recall / density /
  coverage / pixel_vendi, and the reference features are cached (reference: prdc of the cache
  against itself is 1)."""
  proj = np.random.default_rng(0).standard_normal((32 * 32 * 3, 16)) / 100.0
  feature_fn = lambda u8: u8.reshape(len(u8), -1).astype(np.float64) @ proj  # noqa: E731
  config = _tiny_image_config(tmp_path, "")
  with tfds.testing.mock_data(num_examples=16):
    train.train_and_evaluate(config, str(tmp_path))
    rows = evaluate.evaluate(config, str(tmp_path), feature_fn=feature_fn)
    _check_rows(tmp_path, rows, 16)
    # Without an extractor, a missing or empty eval.inception_path fails before any sampling.
    (tmp_path / "eval" / "step_1.json").unlink()
    config.eval.inception_path = str(tmp_path / "missing.pth")
    with pytest.raises(FileNotFoundError, match="eval.inception_path"):
      evaluate.evaluate(config, str(tmp_path))
    config.eval.inception_path = ""
    with pytest.raises(FileNotFoundError, match="eval.inception_path is empty"):
      evaluate.evaluate(config, str(tmp_path))
  assert not (tmp_path / "eval" / "step_1.json").exists()


@pytest.mark.slow
def test_image_eval_with_a_synthetic_inception_file(tmp_path, synthetic_inception, recwarn):
  """End to end through the real loader and the flax Inception (random weights in the real
  layout): the same outputs, 2048-d cached features, and the N < 2048 bias warning."""
  config = _tiny_image_config(tmp_path, synthetic_inception)
  with tfds.testing.mock_data(num_examples=16):
    train.train_and_evaluate(config, str(tmp_path))
    rows = evaluate.evaluate(config, str(tmp_path))
  _check_rows(tmp_path, rows, 2048)
  assert any("biased" in str(w.message) for w in recwarn)
