"""Image input pipeline (lim_jax/image_data.py) on mocked tfds data: no network, no TensorFlow.

Two mocks, both through ``tfds.testing.mock_data``: its default random examples (right feature
shapes, but every split returns the same examples), and ``as_data_source_fn=_indexed_source(...)``,
a split-aware source whose example ``i`` carries ``i`` in its pixels, so the tests can tell which
examples each process and step received. The split is resolved by tfds's own
``AbstractSplit.to_absolute`` (the code that resolves ``tfds.split_for_jax_process`` on real data).
"""

from __future__ import annotations

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds
from tensorflow_datasets.core import splits as splits_lib

from lim_jax import image_data


def _cfg(dataset: str, **fields) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict({"dataset": dataset, "num_threads": 2, "prefetch": False,
                                    **fields})


# ---- a split-aware mock source ------------------------------------------------------------------


def _indexed_example(i: int, shape: tuple[int, int, int], label: int) -> dict:
  """Example ``i`` (3 channels): pixel (0, 0) holds ``i`` base 256 in channels 0, 1 and the marker
  255 in channel 2 (0 elsewhere), so a horizontal flip moves the marker to column W-1; the other
  pixels are an asymmetric pattern."""
  h, w, _ = shape
  rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  image = np.stack([(7 * rows + 3 * cols + 11 * k) % 200 for k in range(3)], -1).astype(np.uint8)
  image[..., 2] = 0
  image[0, 0, :2] = (i % 256, i // 256)
  image[0, 0, 2] = 255
  return {"image": image, "label": np.int64(label)}


class _Indexed:
  """Rows ``[start, stop)`` of a fake split of ``n`` examples."""

  def __init__(self, start: int, stop: int, make):
    self.start, self.stop, self.make = start, stop, make

  def __len__(self):
    return self.stop - self.start

  def __getitem__(self, i):
    if not 0 <= i < len(self):
      raise IndexError(i)
    return self.make(self.start + int(i))


def _indexed_source(n: int, make):
  """``as_data_source_fn`` for ``tfds.testing.mock_data``: a train split of ``n`` examples
  ``make(i)``; sub-splits (``train[a:b]``, ``tfds.split_for_jax_process``) resolved by tfds."""
  split_dict = splits_lib.SplitDict([splits_lib.SplitInfo(
      name="train", shard_lengths=[n], num_bytes=0, filename_template=None)])

  def as_data_source(builder, split=None, **kwargs):
    del builder, kwargs
    (absolute,) = splits_lib.AbstractSplit.from_spec(split).to_absolute(split_dict)
    return _Indexed(absolute.from_ or 0, n if absolute.to is None else absolute.to, make)
  return as_data_source


def _decode_index(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """``(index, flipped)`` of each ``(..., H, W, C)`` image made by :func:`_indexed_example`."""
  u8 = np.rint((images + 1.0) * 127.5).astype(np.int64)
  flipped = u8[..., 0, -1, -1] == 255
  corner = np.where(flipped[..., None], u8[..., 0, -1, :], u8[..., 0, 0, :])
  return corner[..., 0] + 256 * corner[..., 1], flipped


# ---- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fields, field", [
    ({"dataset": "imagenet"}, "data.dataset"),
    ({"dataset": "cifar10", "image_size": 64}, "data.image_size"),
    ({"dataset": "mnist", "image_size": 30}, "data.image_size"),
    ({"dataset": "celeb_a", "image_size": True}, "data.image_size"),
    ({"dataset": "cifar10_lt", "lt_ratio": 1.0}, "data.lt_ratio"),
    ({"dataset": "cifar10_lt", "lt_ratio": 0.5}, "data.lt_ratio"),
    ({"dataset": "cifar10_lt", "lt_ratio": float("nan")}, "data.lt_ratio"),
    ({"dataset": "cifar10", "random_flip": "yes"}, "data.random_flip"),
    ({"dataset": "celeb_a", "crop_size": 300}, "data.crop_size"),
    ({"dataset": "cifar10", "num_threads": -1}, "data.num_threads"),
])
def test_validate_names_the_field(fields, field):
  """Each bad value raises ValueError whose message starts with the field's dotted name."""
  with pytest.raises(ValueError, match=f"^{field} "):
    image_data.validate(ml_collections.ConfigDict(fields))


def test_validate_accepts_minimal_and_full_configs():
  """A config with only ``dataset`` (every other field defaulted) and full valid configs pass."""
  for cfg in ({"dataset": "cifar10"}, {"dataset": "mnist", "image_size": 28},
              {"dataset": "celeb_a", "image_size": 64, "crop_size": 108, "data_dir": "/x",
               "random_flip": False},
              {"dataset": "cifar10_lt", "image_size": 32, "lt_ratio": 10, "lt_seed": 3}):
    image_data.validate(ml_collections.ConfigDict(cfg))


# ---- long tail ----------------------------------------------------------------------------------


def test_long_tail_counts_match_cifar10_lt_of_ldam():
  """CIFAR10 (5000 per class): the formula gives the published CIFAR-10-LT sets of Cao et al. 2019
  (LDAM): ratio 100 -> 5000, 2997, ..., 50 (12406 images), ratio 10 -> 20431 images. The subset has
  exactly those per-class counts, no duplicates, depends on the subsampling seed only."""
  labels = np.random.default_rng(0).permutation(np.repeat(np.arange(10), 5000))
  idx = image_data.long_tail_indices(labels, 100.0, seed=0)
  np.testing.assert_array_equal(np.bincount(labels[idx], minlength=10),
                                [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50])
  assert len(np.unique(idx)) == len(idx) == 12406 and np.all(np.diff(idx) > 0)
  assert image_data.long_tail_counts(np.full(10, 5000), 10.0).sum() == 20431
  np.testing.assert_array_equal(idx, image_data.long_tail_indices(labels, 100.0, seed=0))
  assert not np.array_equal(idx, image_data.long_tail_indices(labels, 100.0, seed=1))


def test_cifar10_lt_stream_has_the_formula_class_counts_over_two_processes():
  """End to end, 500 examples per class, ratio 100, 2 processes: one epoch of each process's
  stream (its shard length, read back from the pixels) holds each kept example once; the two
  shards are disjoint and their union has exactly ``int(500 * 100 ** (-c / 9))`` examples of class
  ``c`` (closed form, computed here). The subset ignores the run seed."""
  n, make = 5000, lambda i: _indexed_example(i, (32, 32, 3), i % 10)
  expected = [int(500 * 100 ** (-c / 9)) for c in range(10)]  # 500, 299, 179, ..., 5
  with tfds.testing.mock_data(as_data_source_fn=_indexed_source(n, make)):
    data = image_data.ImageData(_cfg("cifar10_lt", random_flip=False), seed=0)
    assert np.array_equal(data.lt_indices,
                          image_data.ImageData(_cfg("cifar10_lt"), seed=5).lt_indices)
    seen = []
    for p in (0, 1):
      size = len(data.shard(p, 2))
      steps = -(-size // 8)
      idx, _ = _decode_index(data.batches(0, steps, 16, p, 2).reshape(-1, 32, 32, 3)[:size])
      assert len(np.unique(idx)) == size
      seen.append(idx)
  assert not set(seen[0]) & set(seen[1])
  union = np.concatenate(seen)
  assert abs(len(seen[0]) - len(seen[1])) <= 1
  np.testing.assert_array_equal(np.bincount(union % 10, minlength=10), expected)
  np.testing.assert_array_equal(np.sort(union), data.lt_indices)


# ---- shapes, values, geometry --------------------------------------------------------------------


@pytest.mark.parametrize("dataset, size, shape", [
    ("mnist", 32, (32, 32, 1)), ("mnist", 28, (28, 28, 1)), ("cifar10", 0, (32, 32, 3)),
    ("celeb_a", 64, (64, 64, 3))])
def test_shapes_dtype_and_range(dataset, size, shape):
  """tfds's default mock examples: ``batches`` is ``(steps, global // processes, H, W, C)``
  float32 in [-1, 1]; the un-resized sets keep the uint8 grid ``k / 127.5 - 1`` exactly; mnist 32
  has a 2-pixel border of background (-1) exactly; ``reference`` has the same shape and range."""
  with tfds.testing.mock_data(num_examples=12):
    data = image_data.ImageData(_cfg(dataset, image_size=size), seed=0)
    out = data.batches(0, 2, 8, 0, 2)
    ref = data.reference(5)
  assert data.data_shape == shape
  assert out.shape == (2, 4) + shape and out.dtype == np.float32
  assert ref.shape == (5,) + shape and ref.dtype == np.float32
  for x in (out, ref):
    assert np.all(np.isfinite(x)) and x.min() >= -1.0 and x.max() <= 1.0 and x.std() > 0.1
  if dataset != "celeb_a":
    grid = (out + 1.0) * 127.5
    np.testing.assert_allclose(grid, np.rint(grid), atol=1e-4)
  if (dataset, size) == ("mnist", 32):
    border = np.ones((32, 32), bool)
    border[2:30, 2:30] = False
    assert np.all(out[..., border, :] == -1.0)


def test_celeba_center_crop_and_resize_geometry():
  """celeb_a 218x178 -> center crop 140 -> 64: on a ramp image (channel 0 = row, channel 1 =
  column, channel 2 = 100) output row k must read 39 + (k + 1/2) * 140/64 - 1/2 (the crop starts at
  row (218-140)/2 = 39, column (178-140)/2 = 19; closed form of area-centred resampling). Interior
  pixels (filter inside the crop): max error < 0.55 grey level (a linear ramp is reproduced by the
  resampling, so uint8 rounding, <= 0.5, is left; measured 0.47), mean error < 0.1 (a one-pixel
  crop offset gives a mean error of 1)."""
  def make(i):
    rows, cols = np.meshgrid(np.arange(218), np.arange(178), indexing="ij")
    return {"image": np.stack([rows, cols, np.full_like(rows, 100)], -1).astype(np.uint8),
            "label": np.int64(0), "id": str(i)}
  with tfds.testing.mock_data(as_data_source_fn=_indexed_source(4, make)):
    out = image_data.ImageData(_cfg("celeb_a", random_flip=False), seed=0).batches(0, 1, 2)
  grey = (out[0, 0] + 1.0) * 127.5
  centre = (np.arange(64) + 0.5) * 140 / 64 - 0.5
  interior = slice(3, 61)
  row_err = grey[interior, interior, 0] - (39 + centre[interior, None])
  col_err = grey[interior, interior, 1] - (19 + centre[None, interior])
  for err in (row_err, col_err):
    assert np.abs(err).max() < 0.55 and abs(err.mean()) < 0.1
  np.testing.assert_allclose(grey[..., 2], 100.0, atol=1e-4)


def test_random_flip_is_a_fair_mirror():
  """Each output is the preprocessed example or its exact mirror; with flips on, the flipped
  fraction of 256 draws is 1/2 within 0.16 (5 binomial standard errors, 0.031 each); with flips
  off, none is flipped."""
  make = lambda i: _indexed_example(i, (32, 32, 3), i % 10)
  with tfds.testing.mock_data(as_data_source_fn=_indexed_source(64, make)):
    data = image_data.ImageData(_cfg("cifar10"), seed=0)
    out = data.batches(0, 8, 32).reshape(-1, 32, 32, 3)
    plain = image_data.ImageData(_cfg("cifar10", random_flip=False), seed=0).batches(0, 2, 32)
  idx, flipped = _decode_index(out)
  for x, i, f in zip(out, idx, flipped):
    expected = data.preprocess(make(int(i)))
    np.testing.assert_array_equal(x, expected[:, ::-1] if f else expected)
  assert abs(flipped.mean() - 0.5) < 0.16
  assert not _decode_index(plain)[1].any()


# ---- determinism, shards, resume ----------------------------------------------------------------


def test_per_process_shards_are_disjoint_and_each_epoch_is_a_fresh_permutation():
  """41 examples, 2 processes (tfds even split: 21 + 20): two epochs of each process's stream
  (read back from the pixels) are each a permutation of its shard, in two different orders (equal
  with probability 1/21!), not the stored order; the shards are disjoint and cover all 41."""
  make = lambda i: _indexed_example(i, (32, 32, 3), i % 10)
  with tfds.testing.mock_data(as_data_source_fn=_indexed_source(41, make)):
    data = image_data.ImageData(_cfg("cifar10"), seed=0)
    shards = []
    for p, size in ((0, 21), (1, 20)):
      idx, _ = _decode_index(data.batches(0, 11, 8, p, 2).reshape(-1, 32, 32, 3))
      first, second = idx[:size], idx[size:2 * size]
      assert sorted(first) == sorted(second) and len(set(first)) == size
      assert not np.array_equal(first, second) and not np.array_equal(first, np.sort(first))
      shards.append(set(first))
  assert not shards[0] & shards[1] and shards[0] | shards[1] == set(range(41))


def test_deterministic_per_seed_and_equal_to_grain_random_access():
  """Same (seed, step) -> identical batches from two fresh pipelines, with and without the
  background prefetch; another seed -> different batches; ``batches`` equals the batched
  ``grain.MapDataset`` indexed by step (``dataset(...)[step]``)."""
  with tfds.testing.mock_data(num_examples=24):
    a = image_data.ImageData(_cfg("cifar10"), seed=3)
    b = image_data.ImageData(_cfg("cifar10", prefetch=True), seed=3)
    c = image_data.ImageData(_cfg("cifar10"), seed=4)
    first = a.batches(5, 2, 8)
    np.testing.assert_array_equal(first, b.batches(5, 2, 8))
    np.testing.assert_array_equal(a.batches(7, 2, 8), b.batches(7, 2, 8))  # b: prefetched
    assert not np.array_equal(first, c.batches(5, 2, 8))
    ds = a.dataset(8)
    np.testing.assert_array_equal(first, np.stack([ds[5][0], ds[6][0]]))
    b.close()


def test_resume_continues_the_stream():
  """Steps 4..6 are identical whether drawn after steps 0..3 (with prefetch), fresh as on a resume,
  or as the tail of one long call: the stream is a function of the step only."""
  with tfds.testing.mock_data(num_examples=20):
    run = image_data.ImageData(_cfg("mnist", prefetch=True), seed=1)
    run.batches(0, 2, 6)
    run.batches(2, 2, 6)
    continued = run.batches(4, 3, 6)
    run.close()
    resumed = image_data.ImageData(_cfg("mnist"), seed=1).batches(4, 3, 6)
    whole = image_data.ImageData(_cfg("mnist"), seed=1).batches(0, 7, 6)
  np.testing.assert_array_equal(continued, resumed)
  np.testing.assert_array_equal(whole[4:], resumed)


def test_reference_is_seeded_and_covers_the_set_once():
  """``reference(len)`` returns every training image once (unflipped, preprocessed), in an order
  fixed by (seed, salt); another salt gives another order; ``reference(45)`` of 30 repeats only
  after all 30, and ``reference(0)`` is empty."""
  make = lambda i: _indexed_example(i, (32, 32, 3), i % 10)
  with tfds.testing.mock_data(as_data_source_fn=_indexed_source(30, make)):
    data = image_data.ImageData(_cfg("cifar10"), seed=0)
    ref, again, other = data.reference(30), data.reference(30), data.reference(30, salt=1)
    longer, empty = _decode_index(data.reference(45))[0], data.reference(0)
  assert sorted(longer[:30]) == list(range(30)) and len(set(longer[30:])) == 15
  assert empty.shape == (0, 32, 32, 3)
  idx, flipped = _decode_index(ref)
  assert sorted(idx) == list(range(30)) and not flipped.any()
  np.testing.assert_array_equal(ref, again)
  assert not np.array_equal(idx, _decode_index(other)[0])


# ---- missing data --------------------------------------------------------------------------------


def test_missing_dataset_is_one_clear_error(tmp_path):
  """Real tfds (no mock), empty ``data_dir``: one FileNotFoundError (no chained traceback) naming
  ``data.data_dir``, the ``tfds build`` command with the array_record format; a directory holding
  the dataset in another format gets the format hint."""
  cfg = _cfg("cifar10_lt", data_dir=str(tmp_path))
  with pytest.raises(FileNotFoundError) as info:
    image_data.ImageData(cfg, seed=0)
  msg = str(info.value)
  assert msg.startswith("data.dataset:") and "is not there" in msg
  for part in ("data.data_dir", str(tmp_path), "tfds build cifar10 --file_format=array_record"):
    assert part in msg
  assert info.value.__cause__ is None and info.value.__suppress_context__
  (tmp_path / "cifar10" / "3.0.2").mkdir(parents=True)
  with pytest.raises(FileNotFoundError, match="file_format=array_record"):
    image_data.ImageData(cfg, seed=0)
