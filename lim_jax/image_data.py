"""Image datasets: ``tfds.data_source`` (array_record files, no TensorFlow) read through grain.

:class:`ImageData` offers the interface of :class:`lim_jax.data.ToyData`, so the train
loop needs no change: ``.data_shape`` and ``.batches(step, num_steps, global_batch, process_index,
process_count) -> (num_steps, global_batch // process_count, H, W, C)`` float32 in ``[-1, 1]``
(channels last, as flax convolutions expect).

Pipeline of one process (a ``grain.MapDataset``, random access, so it is a pure function
of the index)::

  source   tfds.data_source(name, split=tfds.split_for_jax_process('train'))  # decodes PNG/JPEG
  shuffle  a permutation of the shard, reseeded every epoch (grain uses seed + epoch)
  repeat   infinite: element i belongs to epoch i // len(shard)
  map      center crop + resize (celeb_a), pad 28 -> 32 (mnist), scale uint8 to [-1, 1] float32
  flip     random horizontal flip, p = 1/2, generator seeded by (seed, element index)
  batch    global_batch // process_count consecutive elements: batch ``step`` is elements
           ``[step * local, (step + 1) * local)``

The data of step ``n`` is therefore a function of ``(seed, n, process_index, process_count)`` only:
a resumed run continues the exact stream, and the checkpointable iterator state is the step number
(:meth:`ImageData.dataset` exposes the batched ``MapDataset`` itself, ``dataset[step]``). Each
process reads only its own shard (``tfds.split_for_jax_process``: disjoint, sizes differ by at most
one), so the global batch of a run depends on the process count, unlike the toy sets.
:meth:`ImageData.batches` reads the elements of ``num_steps`` steps with grain's thread pool
(``data.num_threads``) and, when ``data.prefetch``, computes the next call's batches in a background
thread while the caller trains on these (the result is the same pure function either way).

Datasets (``data.dataset``), sizes (``data.image_size``; 0 = the default in brackets):

* ``mnist``: 28x28x1; ``image_size`` 28, or 32 [default] by zero-padding 2 pixels on each side
  (exact, no interpolation; the padding is background black, -1 after scaling). No flip by default.
* ``cifar10``: 32x32x3 [32].
* ``cifar10_lt``: CIFAR10-LT (Cao et al. 2019, LDAM): class ``c`` of the train split is subsampled
  to ``int(n_max * lt_ratio ** (-c / (C - 1)))`` examples (``n_max`` = the smallest class count,
  5000 for CIFAR10; ratio 100 gives 5000, 2997, ..., 50, total 12406), drawn without replacement
  with ``numpy.random.default_rng([data.lt_seed, c])``, so the subset is fixed across runs and
  seeds. The subset is then dealt to the processes in a seeded random order (``np.array_split``):
  every shard follows the long-tail class profile and the shards are disjoint.
* ``celeb_a``: 218x178x3 JPEG, center crop ``data.crop_size`` (140, as in DDPM / score_sde) then a
  PIL bicubic (antialiased) resize to ``image_size`` in (32, 64 [default], 128).

A dataset that cannot be read (the tfds directory empty or absent, a version folder without
``dataset_info.json``, another version, a tfrecord copy, missing or damaged shards) gives one
:class:`FileNotFoundError` when :class:`ImageData` is built, before any model: it says what is
wrong and how to prepare the set (``tfds build NAME --file_format=array_record`` on a machine with
network, then ``data.data_dir``).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import json
import logging
import math
import numbers
import os
import threading
from typing import Any, Callable

import numpy as np
from google.protobuf import json_format

from lim_jax import storage

DEFAULT_LT_RATIO = 100.0
DEFAULT_CELEBA_CROP = 140


@dataclasses.dataclass(frozen=True)
class ImageSpec:
  """Static facts about one image dataset.

  Attributes:
    tfds_name: the tfds builder name.
    shape: ``(H, W, C)`` of the stored images.
    sizes: allowed ``data.image_size`` values; the first is the default.
    flip: default of ``data.random_flip``.
    long_tail: whether the train split is subsampled to CIFAR10-LT.
    crop: whether images are center-cropped (``data.crop_size``) before the resize.
    num_classes: number of classes of the ``label`` feature (``None``: no class labels).
  """

  tfds_name: str
  shape: tuple[int, int, int]
  sizes: tuple[int, ...]
  flip: bool = True
  long_tail: bool = False
  crop: bool = False
  num_classes: int | None = 10


IMAGE_DATASETS: dict[str, ImageSpec] = {
    "mnist": ImageSpec("mnist", (28, 28, 1), (32, 28), flip=False),
    "cifar10": ImageSpec("cifar10", (32, 32, 3), (32,)),
    "cifar10_lt": ImageSpec("cifar10", (32, 32, 3), (32,), long_tail=True),
    "celeb_a": ImageSpec("celeb_a", (218, 178, 3), (64, 32, 128), crop=True,
                         num_classes=None),
}


def is_image_dataset(name: str) -> bool:
  return name in IMAGE_DATASETS


def _is_int(value) -> bool:
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def validate(data_cfg) -> None:
  """Raises ``ValueError`` whose message starts with the bad ``data.*`` field."""
  name = data_cfg.get("dataset", None)
  if name not in IMAGE_DATASETS:
    raise ValueError(f"data.dataset must be one of {sorted(IMAGE_DATASETS)}, got {name!r}")
  spec = IMAGE_DATASETS[name]
  size = data_cfg.get("image_size", 0)
  if not (_is_int(size) and (size == 0 or size in spec.sizes)):
    raise ValueError(f"data.image_size must be one of {sorted(spec.sizes)} (or 0 for "
                     f"{spec.sizes[0]}) for {name}, got {size!r}")
  ratio = data_cfg.get("lt_ratio", DEFAULT_LT_RATIO)
  if not (isinstance(ratio, numbers.Real) and not isinstance(ratio, bool) and math.isfinite(ratio)
          and ratio > 1):
    raise ValueError(f"data.lt_ratio must be a finite number > 1, got {ratio!r}")
  if not _is_int(data_cfg.get("lt_seed", 0)):
    raise ValueError(f"data.lt_seed must be an integer, got {data_cfg.get('lt_seed')!r}")
  flip = data_cfg.get("random_flip", spec.flip)
  if not isinstance(flip, (bool, np.bool_)):
    raise ValueError(f"data.random_flip must be a bool, got {flip!r}")
  if not isinstance(data_cfg.get("data_dir", ""), (str, os.PathLike)):
    raise ValueError(f"data.data_dir must be a path string, got {data_cfg.get('data_dir')!r}")
  storage.require_backend(data_cfg.get("data_dir", ""), "data.data_dir")  # gs:// needs gcsfs
  threads = data_cfg.get("num_threads", 0)
  if not (_is_int(threads) and threads >= 0):
    raise ValueError(f"data.num_threads must be an integer >= 0 (0 = automatic), got {threads!r}")
  if spec.crop:
    crop = data_cfg.get("crop_size", DEFAULT_CELEBA_CROP)
    if not (_is_int(crop) and 0 < crop <= min(spec.shape[:2])):
      raise ValueError(f"data.crop_size must be an integer in [1, {min(spec.shape[:2])}] for "
                       f"{name}, got {crop!r}")


def long_tail_counts(class_counts, ratio: float) -> np.ndarray:
  """Per-class sizes of the long-tail subset: ``int(n_max * ratio ** (-c / (C - 1)))``.

  Cao et al. 2019 (LDAM-DRW), CIFAR-LT with exponential profile; ``n_max`` is the smallest class
  count (every class can supply its quota), 5000 for CIFAR10.

  Args:
    class_counts: ``(C,)`` number of examples of each class in the full split.
    ratio: imbalance ratio ``n_0 / n_{C-1}`` (> 1).

  Returns:
    ``(C,)`` int64 class sizes, non-increasing.
  """
  class_counts = np.asarray(class_counts)
  num_classes = len(class_counts)
  n_max = int(class_counts.min())
  return np.array([int(n_max * ratio ** (-c / (num_classes - 1))) for c in range(num_classes)],
                  np.int64)


def long_tail_indices(labels: np.ndarray, ratio: float, seed: int) -> np.ndarray:
  """Sorted indices of the long-tail subset of a labelled split (see :func:`long_tail_counts`).

  Class ``c`` keeps a uniform random subset (no replacement) of its examples, drawn with
  ``numpy.random.default_rng([seed, c])``.

  Args:
    labels: ``(N,)`` integer class labels in ``[0, C)``, every class present.
    ratio: imbalance ratio (> 1).
    seed: subsampling seed (``data.lt_seed``).

  Returns:
    ``(sum of counts,)`` int64 indices into ``labels``, increasing.
  """
  labels = np.asarray(labels)
  counts = np.bincount(labels)
  keep = long_tail_counts(counts, ratio)
  chosen = [np.random.default_rng([seed, c]).choice(np.flatnonzero(labels == c), int(k),
                                                    replace=False)
            for c, k in enumerate(keep)]
  return np.sort(np.concatenate(chosen)).astype(np.int64)


_BUILD_HINT = (
    "Prepare it on a machine with network access (tensorflow and tensorflow-datasets installed "
    "there): `tfds build {name} --file_format=array_record --data_dir=DIR`, copy DIR to this "
    "machine and pass --config.data.data_dir=DIR (or set TFDS_DATA_DIR=DIR).")
# What tfds 4.9 raises for a copy it cannot open or read: KeyError (no splits: nothing prepared),
# ValueError (a file format clash), json_format.ParseError (a broken dataset_info.json, caught
# separately), NotImplementedError (a format without random access), RuntimeError / OSError (a
# missing or damaged array_record shard, at the first read).
_TFDS_OPEN_ERRORS = (KeyError, ValueError, NotImplementedError, RuntimeError, OSError,
                     AssertionError, IndexError)


def _first_line(error: BaseException) -> str:
  text = str(error).strip()
  return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


def _default_data_dir() -> str:
  """The directory tfds reads when ``data_dir`` is None: ``$TFDS_DATA_DIR`` or
  ``~/tensorflow_datasets``, as fixed when tensorflow_datasets was imported."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  return os.path.expanduser(str(tfds.core.constants.DATA_DIR))


def diagnose(name: str, root: str) -> str:
  """What is wrong with the copy of tfds dataset ``name`` under ``root`` ('' = nothing seen).

  Reads the folders the way tfds lays them out, ``root/name/VERSION/{dataset_info.json, shards}``
  with ``VERSION`` the one this tensorflow-datasets' builder reads; it only explains a failure,
  tfds decides whether the copy opens.
  """
  try:  # a local path or gs:// (tfds reads both through etils.epath)
    return _diagnose(name, root)
  except Exception:  # the storage itself is unreachable: the caller reports tfds's own error
    return ""


def _diagnose(name: str, root: str) -> str:
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  version = str(tfds.builder_cls(name).VERSION)
  base = storage.as_path(root)
  dataset_dir = base / name
  variant = dataset_dir / version
  if not base.is_dir():
    return f"{root} does not exist"
  if not dataset_dir.is_dir():
    return f"it is not there ({root} has no {name}/ folder)"
  if not variant.is_dir():
    found = sorted(p.name for p in dataset_dir.iterdir() if p.is_dir())
    return (f"{dataset_dir} has no {version}/ folder, the version this tensorflow-datasets reads "
            f"(found: {', '.join(found) or 'nothing'})")
  info_path = variant / "dataset_info.json"
  if not info_path.exists():
    return (f"the folder {variant} has no dataset_info.json (an unfinished build or an incomplete "
            "copy)")
  try:
    info = json.loads(info_path.read_text())
  except (OSError, ValueError) as e:
    return f"{info_path} cannot be read ({_first_line(e)})"
  formats = {info.get("fileFormat", "tfrecord"), *info.get("alternativeFileFormats", ())}
  if "array_record" not in formats:
    return (f"the copy in {variant} is in {'/'.join(sorted(formats))} format, which cannot be read "
            "at random access (it must be prepared with --file_format=array_record)")
  if "train" not in [split.get("name") for split in info.get("splits", ())]:
    return f"{info_path} lists no train split"
  return ""


def missing_dataset_error(name: str, data_dir: str, what: str) -> FileNotFoundError:
  """The one-line error for tfds dataset ``name`` that cannot be read (``what`` says why)."""
  root = data_dir or _default_data_dir()
  where = (f"data.data_dir={data_dir!r}" if data_dir else
           f"the tfds default directory {root} (TFDS_DATA_DIR, else ~/tensorflow_datasets)")
  return FileNotFoundError(f"data.dataset: tfds dataset {name!r} cannot be read from {where}: "
                           f"{what}. " + _BUILD_HINT.format(name=name))


class _MuteTfdsWarnings(logging.Filter):
  """Drops tfds's own warnings while a dataset is opened: each thing they report (a variant folder
  without dataset_info.json, another version found) is restated in the one-line error."""

  def filter(self, record: logging.LogRecord) -> bool:
    return record.levelno >= logging.ERROR or "tensorflow_datasets" not in record.pathname


@contextlib.contextmanager
def _tfds_warnings_muted():
  logger, muted = logging.getLogger("absl"), _MuteTfdsWarnings()
  logger.addFilter(muted)
  try:
    yield
  finally:
    logger.removeFilter(muted)


def _probe(source) -> None:
  """Reads the first example of every shard and the last example of a freshly opened split, so a
  missing or damaged array_record file fails here rather than in a reader thread mid-training."""
  n = len(source)
  splits = getattr(getattr(source, "dataset_info", None), "splits", {})
  lengths = list(splits["train"].shard_lengths) if "train" in splits else []
  starts = np.cumsum([0] + lengths[:-1]) if lengths else np.zeros(1, np.int64)
  for i in sorted({int(s) for s in starts if s < n} | ({n - 1} if n else set())):
    _ = source[i]


def open_source(name: str, split: Any, data_dir: str = ""):
  """``tfds.data_source(name, split=split)`` with no download; a dataset that is absent or cannot
  be read (no folder, no ``dataset_info.json``, another version, tfrecord instead of array_record,
  missing or damaged shards) is one :class:`FileNotFoundError` saying why and how to prepare it.

  Returns:
    A random-access source whose items are decoded example dicts (``image`` uint8 ``(H, W, C)``,
    ``label``).

  Raises:
    FileNotFoundError: the dataset cannot be read from ``data_dir`` (or tfds's default directory).
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  root = data_dir or _default_data_dir()
  with _tfds_warnings_muted():
    try:
      source = tfds.data_source(name, split=split, data_dir=data_dir or None, download=False)
    except (*_TFDS_OPEN_ERRORS, json_format.ParseError) as e:
      raise missing_dataset_error(name, data_dir, diagnose(name, root) or
                                  f"tfds cannot open it ({_first_line(e)})") from None
    if split == "train":
      try:
        _probe(source)
      except _TFDS_OPEN_ERRORS as e:
        what = diagnose(name, root) or (
            f"the copy in {os.path.join(root, name)} cannot be read ({_first_line(e)}; an "
            "incomplete or damaged copy)")
        raise missing_dataset_error(name, data_dir, what) from None
  return source


def _center_crop(image: np.ndarray, size: int) -> np.ndarray:
  top, left = (image.shape[0] - size) // 2, (image.shape[1] - size) // 2
  return image[top:top + size, left:left + size]


def _resize(image: np.ndarray, size: int) -> np.ndarray:
  """PIL bicubic resize of a uint8 ``(H, W, C)`` image to ``(size, size, C)`` (antialiased when
  shrinking: PIL widens the filter support by the scale factor)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  if image.shape[:2] == (size, size):
    return image
  pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
  out = np.asarray(pil.resize((size, size), Image.BICUBIC))
  return out.reshape(size, size, image.shape[-1])


def _to_unit_interval(image: np.ndarray) -> np.ndarray:
  """uint8 ``[0, 255]`` to float32 ``[-1, 1]``: ``x / 127.5 - 1``."""
  return image.astype(np.float32) / np.float32(127.5) - np.float32(1.0)


class _Subset:
  """A random-access view ``source[indices[i]]`` (the long-tail subset of a split)."""

  def __init__(self, source, indices: np.ndarray):
    self._source, self._indices = source, np.asarray(indices, np.int64)

  def __len__(self) -> int:
    return len(self._indices)

  def __getitem__(self, i: int):
    return self._source[int(self._indices[i])]


@dataclasses.dataclass
class ImageData:
  """A tfds image dataset and its deterministic, per-process batch stream.

  Config fields read (all with ``data_cfg.get(field, default)``): ``dataset``, ``image_size`` (0),
  ``data_dir`` ('' = tfds default), ``random_flip`` (True; False for mnist), ``lt_ratio`` (100),
  ``lt_seed`` (0), ``crop_size`` (140, celeb_a), ``num_threads`` (0 = min(16, cpus)),
  ``prefetch`` (True).

  Attributes:
    data_cfg: the ``data`` config section.
    seed: the run seed (shuffle and flip; not the long-tail subset, which uses ``data.lt_seed``).
    spec: the :class:`ImageSpec` of ``data.dataset``.
    image_size: output height = width.
    lt_indices: for ``cifar10_lt``, the indices of the subset in the full train split; else None.
  """

  data_cfg: Any
  seed: int

  def __post_init__(self):
    validate(self.data_cfg)
    cfg = self.data_cfg
    self.spec = IMAGE_DATASETS[cfg.get("dataset")]
    self.image_size = int(cfg.get("image_size", 0)) or self.spec.sizes[0]
    self.data_dir = str(cfg.get("data_dir", "") or "")
    self.random_flip = bool(cfg.get("random_flip", self.spec.flip))
    self.crop_size = int(cfg.get("crop_size", DEFAULT_CELEBA_CROP))
    self.num_threads = int(cfg.get("num_threads", 0)) or min(16, os.cpu_count() or 1)
    self.prefetch = bool(cfg.get("prefetch", True))
    self._elements_cache: dict[tuple[int, int], Any] = {}
    self._lock = threading.Lock()
    self._pending: tuple[tuple, concurrent.futures.Future] | None = None
    self._executor: concurrent.futures.ThreadPoolExecutor | None = None
    # Opening the full split first makes a missing dataset fail here, before any model is built.
    self._train = open_source(self.spec.tfds_name, "train", self.data_dir)
    self.lt_indices = None
    if self.spec.long_tail:
      labels = np.fromiter(self._read(self._train, lambda ex: int(ex["label"]), len(self._train)),
                           np.int64, len(self._train))
      self.lt_indices = long_tail_indices(labels, float(cfg.get("lt_ratio", DEFAULT_LT_RATIO)),
                                          int(cfg.get("lt_seed", 0)))

  # ---- geometry ---------------------------------------------------------------------------------

  @property
  def data_shape(self) -> tuple[int, int, int]:
    return (self.image_size, self.image_size, self.spec.shape[-1])

  def preprocess(self, example: dict) -> np.ndarray:
    """Decoded example -> ``data_shape`` float32 image in ``[-1, 1]`` (no flip)."""
    image = np.asarray(example["image"])
    if image.ndim == 2:
      image = image[..., None]
    if self.spec.crop:
      image = _resize(_center_crop(image, self.crop_size), self.image_size)
    elif image.shape[0] < self.image_size:  # mnist 28 -> 32: pad with background
      lo = (self.image_size - image.shape[0]) // 2
      hi = self.image_size - image.shape[0] - lo
      image = np.pad(image, ((lo, hi), (lo, hi), (0, 0)))
    elif image.shape[0] != self.image_size:
      image = _resize(image, self.image_size)
    return _to_unit_interval(image)

  @staticmethod
  def _flip(pair: tuple[np.ndarray, np.int32], rng: np.random.Generator):
    image, label = pair
    return (np.ascontiguousarray(image[:, ::-1]) if rng.random() < 0.5 else image), label

  def _labelled(self, example: dict) -> tuple[np.ndarray, np.int32]:
    """``(preprocess(example), label)``; the label is -1 for a set without class labels."""
    return self.preprocess(example), np.int32(example.get("label", -1))

  # ---- per-process stream -----------------------------------------------------------------------

  def _seeds(self, process_index: int) -> tuple[int, int]:
    shuffle_seed, flip_seed = np.random.SeedSequence(
        [self.seed, 0x1A6E, process_index]).generate_state(2)
    return int(shuffle_seed), int(flip_seed)

  def shard(self, process_index: int = 0, process_count: int = 1):
    """This process's random-access source: its ``tfds.split_for_jax_process`` slice of the train
    split, or its part of the long-tail subset."""
    if self.lt_indices is not None:
      order = np.random.default_rng([int(self.data_cfg.get("lt_seed", 0)), 0x5A4D]).permutation(
          self.lt_indices)
      return _Subset(self._train, np.array_split(order, process_count)[process_index])
    if process_count == 1:
      return self._train
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    split = tfds.split_for_jax_process("train", process_index=process_index,
                                       process_count=process_count)
    return open_source(self.spec.tfds_name, split, self.data_dir)

  def elements(self, process_index: int = 0, process_count: int = 1):
    """The infinite per-element ``grain.MapDataset`` of one process (shuffle, repeat, map, flip)."""
    key = (process_index, process_count)
    with self._lock:
      if key not in self._elements_cache:
        import grain  # pylint: disable=g-import-not-at-top
        source = self.shard(process_index, process_count)
        if len(source) == 0:  # pylint: disable=g-explicit-length-test
          raise ValueError(f"data.dataset: process {process_index} of {process_count} has no "
                           f"examples of {self.data_cfg.get('dataset')}")
        shuffle_seed, flip_seed = self._seeds(process_index)
        ds = grain.MapDataset.source(source).shuffle(seed=shuffle_seed).repeat().map(
            self._labelled)
        if self.random_flip:
          ds = ds.random_map(self._flip, seed=flip_seed)
        self._elements_cache[key] = ds
      return self._elements_cache[key]

  def dataset(self, global_batch: int, process_index: int = 0, process_count: int = 1):
    """The batched ``grain.MapDataset``: ``dataset(...)[step]`` is this process's batch of ``step``,
    the pair ``(images (global_batch // process_count, *data_shape), labels (...,) int32)``."""
    return self.elements(process_index, process_count).batch(global_batch // process_count)

  def _read(self, ds, fn: Callable | None, count: int, start: int = 0):
    """Iterator over items ``start .. start+count-1`` of a random-access ``ds`` (optionally mapped
    by ``fn``), read in order with grain's thread pool."""
    import grain  # pylint: disable=g-import-not-at-top
    if not isinstance(ds, grain.MapDataset):
      ds = grain.MapDataset.source(ds)
    if fn is not None:
      ds = ds.map(fn)
    options = grain.ReadOptions(num_threads=self.num_threads,
                                prefetch_buffer_size=max(2 * self.num_threads, 1))
    return iter(ds[start:start + count].to_iter_dataset(options))

  def _images(self, ds, fn: Callable | None, count: int, start: int = 0) -> np.ndarray:
    """:meth:`_read` into one ``(count, *data_shape)`` float32 array."""
    out = np.empty((count,) + self.data_shape, np.float32)
    for i, image in enumerate(self._read(ds, fn, count, start)):
      out[i] = image
    return out

  def _compute(self, step: int, num_steps: int, global_batch: int, process_index: int,
               process_count: int) -> np.ndarray:
    local = global_batch // process_count
    count = num_steps * local
    images = np.empty((count,) + self.data_shape, np.float32)
    labels = np.empty((count,), np.int32)
    for i, (image, label) in enumerate(self._read(self.elements(process_index, process_count),
                                                  None, count, start=step * local)):
      images[i], labels[i] = image, label
    return (images.reshape((num_steps, local) + self.data_shape),
            labels.reshape((num_steps, local)))

  def batches(self, step: int, num_steps: int, global_batch: int, process_index: int = 0,
              process_count: int = 1, labels: bool = False):
    """This process's batches of steps ``step .. step+num_steps-1`` (pure function of the args).

    Returns:
      ``(num_steps, global_batch // process_count, *data_shape)`` float32 in ``[-1, 1]``; with
      ``labels=True`` the pair ``(images, labels)``, the labels int32
      ``(num_steps, global_batch // process_count)``.
    """
    if labels and self.spec.num_classes is None:
      raise ValueError(f"model.num_classes: data.dataset {self.data_cfg.get('dataset')!r} has no "
                       "class labels")
    args = (int(step), int(num_steps), int(global_batch), int(process_index), int(process_count))
    pending, self._pending = self._pending, None
    if pending is not None and pending[0] == args:
      out = pending[1].result()
    else:
      if pending is not None:
        pending[1].cancel()
      out = self._compute(*args)
    result = out if labels else out[0]
    if self.prefetch:
      if self._executor is None:
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="image_data")
      following = (args[0] + args[1],) + args[1:]
      self._pending = (following, self._executor.submit(self._compute, *following))
    return result

  def close(self) -> None:
    """Stops the background prefetch thread (also safe to skip: it exits with the interpreter)."""
    if self._executor is not None:
      self._executor.shutdown(wait=True, cancel_futures=True)
      self._executor, self._pending = None, None

  def reference(self, n: int, salt: int = 0) -> np.ndarray:
    """``n`` training images (the long-tail subset for ``cifar10_lt``) for metrics, no flip.

    A seeded (``default_rng([seed, 0xE7A1, salt])``) random order of the whole set, repeated when
    ``n`` exceeds its size, so ``n = len`` is every image once.

    Returns:
      ``(n, *data_shape)`` float32 in ``[-1, 1]``.
    """
    source = self._train if self.lt_indices is None else _Subset(self._train, self.lt_indices)
    rng = np.random.default_rng([self.seed, 0xE7A1, salt])
    reps = max(-(-n // len(source)), 1)
    order = np.concatenate([rng.permutation(len(source)) for _ in range(reps)])[:n]
    return self._images(_Subset(source, order), self.preprocess, n)
