"""Own data (``data.dataset`` 'array' / 'image_folder'): round trips, splits, batches, refusals."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from lim_jax import config_lib, own_data, train
from lim_jax import data as data_lib
from test_cli import ROOT


def _config(dataset, path, **data_fields):
  config = config_lib.default_config()
  config.data.dataset, config.data.path = dataset, str(path)
  for k, v in data_fields.items():
    config.data[k] = v
  config.training.batch_size = 8
  return config


def _expected_split(n, eval_fraction=0.1, validation_fraction=0.0, split_seed=0):
  """The documented split, recomputed: a permutation by default_rng([split_seed, 0x5917]), test
  first, then validation, the rest training."""
  order = np.random.default_rng([split_seed, 0x5917]).permutation(n)
  t, v = int(np.ceil(n * eval_fraction)), int(np.ceil(n * validation_fraction))
  return np.sort(order[t + v:]), np.sort(order[t:t + v]), np.sort(order[:t])


def _write_pngs(folder, images, names=None):
  folder.mkdir(parents=True, exist_ok=True)
  for i, im in enumerate(images):
    Image.fromarray(im[..., 0] if im.shape[-1] == 1 else im).save(
        folder / (names[i] if names else f"img_{i:03d}.png"))


def test_array_points_round_trip_split_and_batches(tmp_path):
  """Reference: the file's own rows. The training split is the documented permutation's tail,
  step n's batch is train[default_rng([seed, n]).integers(0, n_train, B)] (ToyData's stream), every
  process slice of it matches, labels follow their points, and the test reference holds exactly
  the test rows (disjoint from training). Exact equality (no arithmetic on the values)."""
  rng = np.random.default_rng(1)
  x = rng.standard_normal((50, 3))
  labels = rng.integers(0, 4, 50)
  np.savez(tmp_path / "pts.npz", x=x, labels=labels)
  config = _config("array", tmp_path / "pts.npz", eval_fraction=0.2, validation_fraction=0.1)
  config_lib.validate(config)
  data = data_lib.get_dataset(config.data, seed=7)
  tr, va, te = _expected_split(50, 0.2, 0.1)
  np.testing.assert_array_equal(data.train, x[tr].astype(np.float32))
  assert data.data_shape == (3,) and data_lib.num_classes(config.data) == int(labels.max()) + 1
  pts, lab = data.batches(5, 2, 8, labels=True)
  for i in range(2):
    idx = np.random.default_rng([7, 5 + i]).integers(0, len(tr), 8)
    np.testing.assert_array_equal(pts[i], x[tr][idx].astype(np.float32))
    np.testing.assert_array_equal(lab[i], labels[tr][idx])
  half = data.batches(5, 2, 8, process_index=1, process_count=2)
  np.testing.assert_array_equal(half, pts[:, 4:])
  np.testing.assert_array_equal(np.concatenate([data.batches(5, 1, 8), data.batches(6, 1, 8)]),
                                pts)  # the same stream however a run is chunked or resumed
  test = data.reference(1000, salt=data_lib.TEST_SALT)
  assert sorted(map(tuple, test)) == sorted(map(tuple, x[te].astype(np.float32)))
  val = data.reference(1000, salt=data_lib.VALIDATION_SALT)
  assert sorted(map(tuple, val)) == sorted(map(tuple, x[va].astype(np.float32)))
  assert len(data.reference(3, salt=1)) == 3


def test_array_images_npy_are_scaled_and_flipped_per_position(tmp_path):
  """Reference: x / 127.5 - 1 of the stored uint8 images (the built-in sets' scaling); with
  data.random_flip, image j of step n is mirrored iff default_rng([seed, n, 0xF11B]).random(B)[j] <
  0.5, so a process's slice equals that part of the global batch. Exact equality."""
  rng = np.random.default_rng(2)
  x = rng.integers(0, 256, (20, 4, 4, 1), dtype=np.uint8)
  np.save(tmp_path / "img.npy", x)
  config = _config("array", tmp_path / "img.npy", random_flip=True)
  config.model.name = "ddpmpp"
  config.model.ch_mult = (1, 2)
  config.eval.metrics = ("pixel_vendi",)
  config_lib.validate(config)
  assert data_lib.is_image(config.data)
  data = data_lib.get_dataset(config.data, seed=3)
  tr, _, _ = _expected_split(20)
  got = data.batches(4, 1, 8)[0]
  idx = np.random.default_rng([3, 4]).integers(0, len(tr), 8)
  want = x[tr][idx].astype(np.float32) / 127.5 - 1
  flip = np.random.default_rng([3, 4, 0xF11B]).random(8) < 0.5
  want[flip] = want[flip][:, :, ::-1]
  np.testing.assert_array_equal(got, want)
  np.testing.assert_array_equal(data.batches(4, 1, 8, process_index=1, process_count=2)[0],
                                want[4:])


def test_image_folder_flat_and_with_classes(tmp_path):
  """Reference: the PNGs' own pixels (PNG is lossless), in sorted file order; class sub-folders
  give labels 0.. in sorted folder order; data.image_size resizes each image with PIL bicubic, as
  PIL does it directly here."""
  rng = np.random.default_rng(3)
  rgb = rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
  _write_pngs(tmp_path / "flat", rgb)
  examples = own_data.load(_config("image_folder", tmp_path / "flat").data)
  np.testing.assert_array_equal(examples.x, rgb)
  assert examples.labels is None and examples.is_image

  grey = rng.integers(0, 256, (5, 8, 8, 1), dtype=np.uint8)
  _write_pngs(tmp_path / "cls" / "b_cat", grey[:2])
  _write_pngs(tmp_path / "cls" / "a_dog", grey[2:])
  (tmp_path / "cls" / "a_dog" / "notes.txt").write_text("not an image")
  config = _config("image_folder", tmp_path / "cls")
  examples = own_data.load(config.data)
  np.testing.assert_array_equal(examples.x, np.concatenate([grey[2:], grey[:2]]))
  np.testing.assert_array_equal(examples.labels, [0, 0, 0, 1, 1])
  assert data_lib.num_classes(config.data) == 2

  resized = own_data.load(_config("image_folder", tmp_path / "flat", image_size=4).data)
  want = np.stack([np.asarray(Image.fromarray(im).resize((4, 4), Image.BICUBIC)) for im in rgb])
  np.testing.assert_array_equal(resized.x, want)


def test_image_folder_resize_accepts_mixed_sizes_by_centre_crop(tmp_path):
  """Reference: a 6x10 image is centre-cropped to its middle 6x6 and (size already 6) kept as is."""
  big = np.arange(6 * 10 * 3, dtype=np.uint8).reshape(6, 10, 3)
  small = np.full((6, 6, 3), 9, np.uint8)
  _write_pngs(tmp_path / "mixed", [big, small])
  examples = own_data.load(_config("image_folder", tmp_path / "mixed", image_size=6).data)
  np.testing.assert_array_equal(examples.x[0], big[:, 2:8])
  np.testing.assert_array_equal(examples.x[1], small)


@pytest.mark.parametrize("case, message", [
    ("int_points", "must have a float dtype"),
    ("float_images", "must be uint8"),
    ("nan", "non-finite"),
    ("empty_array", "no examples"),
    ("pickled", "without pickle"),
    ("wrong_labels", "labels"),
    ("missing_file", "no such file"),
    ("missing_folder", "no such folder"),
    ("empty_folder", "no PNG/JPEG images"),
    ("mixed_sizes", "different sizes"),
    ("sixteen_bit", "16-bit"),
    ("not_an_image", "not a readable PNG/JPEG"),
    ("too_few", "training.batch_size"),
    ("no_path", "data.path is required"),
    ("bad_fraction", "data.eval_fraction"),
    ("points_with_unet", "model.name"),
])
def test_refusals_name_the_field(tmp_path, case, message):
  """Reference: the documented refusal list; each is a ValueError/FileNotFoundError from
  config_lib.validate (before anything compiles) whose message starts with the field."""
  path, dataset, fields = tmp_path / "x.npz", "array", {}
  batch = 8
  model = "mlp"
  if case == "int_points":
    np.savez(path, x=np.ones((20, 2), np.int64))
  elif case == "float_images":
    np.savez(path, x=np.zeros((20, 4, 4, 1), np.float32))
  elif case == "nan":
    x = np.zeros((20, 2))
    x[3, 1] = np.nan
    np.savez(path, x=x)
  elif case == "empty_array":
    np.savez(path, x=np.zeros((0, 2)))
  elif case == "pickled":
    np.savez(path, x=np.array([{"a": 1}], dtype=object))
  elif case == "wrong_labels":
    np.savez(path, x=np.zeros((20, 2)), labels=np.zeros(19, np.int64))
  elif case == "missing_file":
    path = tmp_path / "nothing.npz"
  elif case == "missing_folder":
    path, dataset = tmp_path / "nothing", "image_folder"
  elif case == "empty_folder":
    path, dataset = tmp_path / "empty", "image_folder"
    path.mkdir()
  elif case == "mixed_sizes":
    path, dataset = tmp_path / "mixed", "image_folder"
    _write_pngs(path, [np.zeros((4, 4, 3), np.uint8), np.zeros((8, 8, 3), np.uint8)])
  elif case == "sixteen_bit":
    path, dataset = tmp_path / "deep", "image_folder"
    path.mkdir()
    Image.fromarray(np.full((4, 4), 40000, np.uint16)).save(path / "a.png")
  elif case == "not_an_image":
    path, dataset = tmp_path / "fake", "image_folder"
    path.mkdir()
    (path / "a.png").write_text("not a png")
  elif case == "too_few":
    np.savez(path, x=np.zeros((8, 2)))  # 7 training examples after the 10 % test split
  elif case == "no_path":
    path = ""
  elif case == "bad_fraction":
    np.savez(path, x=np.zeros((20, 2)))
    fields = {"eval_fraction": 1.5}
  elif case == "points_with_unet":
    np.savez(path, x=np.zeros((20, 2)))
    model = "ddpmpp"
  config = _config(dataset, path, **fields)
  config.training.batch_size = batch
  config.model.name = model
  own_data._load_cached.cache_clear()
  with pytest.raises((ValueError, FileNotFoundError)) as err:
    config_lib.validate(config)
  assert message in str(err.value)
  assert str(err.value).split()[0].rstrip(":").split(".")[0] in ("data", "training", "model")


def test_cli_refuses_bad_data_with_exit_2_and_one_line(tmp_path):
  """Reference: the CLI contract (exit 2, one line 'lim_jax: error: data.path ...' on stderr)."""
  x = np.zeros((20, 2))
  x[0, 0] = np.inf
  np.save(tmp_path / "bad.npy", x)
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  r = subprocess.run([sys.executable, "-m", "lim_jax.main", "--config=configs/default.py",
                      f"--workdir={tmp_path / 'run'}", "--config.data.dataset=array",
                      f"--config.data.path={tmp_path / 'bad.npy'}"], cwd=ROOT, env=env,
                     capture_output=True, text=True, timeout=300)
  assert r.returncode == 2, r.stderr[-2000:]
  last = r.stderr.strip().splitlines()[-1]
  assert last.startswith("lim_jax: error: data.path") and "non-finite" in last
  assert not (tmp_path / "run" / "checkpoints").exists()


def _tiny_config():
  config = config_lib.default_config()
  config.model.hidden, config.model.depth = 16, 1
  tr = config.training
  tr.num_steps, tr.log_every, tr.checkpoint_every, tr.steps_per_call, tr.batch_size = 2, 1, 1, 1, 8
  config.sampling.sampler, config.sampling.nfe = "em", 2
  config.sampling.num_samples = config.sampling.batch_size = 8
  return config


def test_from_array_writes_the_array_and_refuses_other_data(tmp_path):
  """Reference: the in-memory array itself. from_array writes it to the .npz (the file's contents
  equal the array), returns a config whose dataset serves exactly its rows, keeps an identical
  file (a rerun notebook cell resumes) and refuses a different one; the input config is not
  changed."""
  x = np.random.default_rng(4).standard_normal((64, 2)).astype(np.float32)
  labels = np.arange(64) % 3
  config = _tiny_config()
  path = tmp_path / "run" / "data.npz"
  cfg = own_data.from_array(config, x, path, labels=labels)
  assert cfg.data.dataset == "array" and config.data.dataset == "ring8"
  with np.load(path) as f:
    np.testing.assert_array_equal(f["x"], x)
    np.testing.assert_array_equal(f["labels"], labels)
  config_lib.validate(cfg)
  data = data_lib.get_dataset(cfg.data, cfg.seed)
  tr, _, _ = _expected_split(64)
  np.testing.assert_array_equal(data.train, x[tr])
  assert own_data.from_array(config, x, path, labels=labels).data.path == str(path)
  with pytest.raises(ValueError, match="different data"):
    own_data.from_array(config, x + 1, path, labels=labels)
  with pytest.raises(ValueError, match="data.path"):
    own_data.from_array(config, x.astype(np.int32), tmp_path / "other.npz")


@pytest.mark.slow
def test_from_array_config_trains_and_resumes(tmp_path):
  """Reference: the step counter and the checkpoint list of a 2-step run, then a resumed 3rd step
  (the own-data batch stream is a function of the step, tested above)."""
  x = np.random.default_rng(5).standard_normal((64, 2)).astype(np.float32)
  cfg = own_data.from_array(_tiny_config(), x, tmp_path / "run" / "data.npz")
  assert int(train.train_and_evaluate(cfg, str(tmp_path / "run")).step) == 2
  assert sorted(os.listdir(tmp_path / "run" / "checkpoints")) == ["1", "2"]
  cfg.training.num_steps = 3
  assert int(train.train_and_evaluate(cfg, str(tmp_path / "run")).step) == 3
