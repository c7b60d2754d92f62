"""Every image config trains one step and samples two at tiny width on mocked tfds data (no network,
no TensorFlow), on the 4 forced host devices of the test session."""

import pathlib

import numpy as np
import pytest
import tensorflow_datasets as tfds

from lim_jax import config_lib, train

ROOT = pathlib.Path(__file__).resolve().parent.parent
# own_data.py needs the user's data.path: tests/test_own_data.py trains it on generated files.
IMAGE_CONFIGS = sorted(p for p in (ROOT / "configs").glob("*.py")
                       if not p.name.startswith(("toy_", "default", "own_data")))


# One config per family (cifar10_*) runs by default; the other datasets' configs share their code
# path and cost a U-Net compile each, so they run with ``-m slow``.
PARAMS = [pytest.param(p, marks=() if p.stem.startswith("cifar10_") else pytest.mark.slow)
          for p in IMAGE_CONFIGS]


@pytest.mark.parametrize("path", PARAMS, ids=lambda p: p.stem)
@pytest.mark.integration
def test_image_config_trains_and_samples(path, tmp_path):
  """Reference: the README's outputs for images (uint8 npz of the data shape, PNG grid) and
  a finite loss; the network is shrunk to ch 16, one level pair, one block."""
  config = config_lib.load_file(path)
  m = config.model
  m.ch, m.ch_mult, m.num_res_blocks = 16, (1, 2), 1
  m.attn_resolutions = (config.data.image_size // 2,)
  tr = config.training
  tr.batch_size, tr.num_steps, tr.steps_per_call, tr.log_every = 8, 1, 1, 1
  tr.checkpoint_every = 1
  sp = config.sampling
  sp.nfe, sp.num_samples, sp.batch_size = 2 * (2 if sp.sampler in ("heun", "pc") else 1), 8, 8
  # CIFAR10-LT keeps int(n_min * 100^(-c/9)) per class: enough mock examples for every class.
  with tfds.testing.mock_data(num_examples=300 if config.data.dataset == "cifar10_lt" else 16):
    state = train.train_and_evaluate(config, str(tmp_path))
  assert int(state.step) == 1
  samples = np.load(tmp_path / "samples" / "step_1.npz")["samples"]
  size = config.data.image_size
  assert samples.dtype == np.uint8 and samples.shape[:3] == (8, size, size)
  assert (tmp_path / "samples" / "step_1.png").stat().st_size > 100
  rows = (tmp_path / "metrics.jsonl").read_text()
  assert '"train/loss"' in rows and "NaN" not in rows
