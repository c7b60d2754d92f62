"""Bring your own data: ``data.dataset='array'`` (an ``.npz``/``.npy`` file) or ``'image_folder'``.

* ``array``: ``data.path`` is an ``.npy`` holding the examples, or an ``.npz`` holding them under
  ``x`` (or as its only array besides ``labels``) and optionally ``labels``. Examples are points
  ``(N, d)`` of a float dtype or images ``(N, H, W, C)`` ``uint8`` with ``C`` in {1, 3}; ``labels``
  are ``(N,)`` integers ``>= 0`` (classes ``0 .. max``). Read with ``np.load(allow_pickle=False)``,
  so a file can never run code. ``data.image_size`` must be 0 or ``H``.
* ``image_folder``: ``data.path`` is a folder of PNG/JPEG files, or of one sub-folder per class
  (sorted names are classes ``0, 1, ...``). Decoded with PIL to greyscale (when every file is) or
  RGB. ``data.image_size = 0`` keeps the native size, which must then be the same for every file;
  ``data.image_size = S`` centre-crops each image to its largest square and resizes it to ``S x S``
  (PIL bicubic, antialiased, as the built-in image sets).

Images become float32 in ``[-1, 1]`` (``x / 127.5 - 1``) when batched; points are used as given.

Split. A fixed permutation ``default_rng([data.split_seed, 0x5917])`` of the N examples (the same
for every run seed and family, so paired comparisons score every model on the same examples) gives
``ceil(N * data.eval_fraction)`` test examples, then ``ceil(N * data.validation_fraction)``
validation examples; the rest is the training split. ``eval_fraction = 0`` scores against the
training split itself (said in the log).

Everything is checked before any model is built (:func:`validate`, called by
``config_lib.validate``): the path exists, the file or folder reads, shapes, dtypes, finite values,
at least one example, consistent image sizes, labels, and (:func:`validate_run`) enough training
examples for ``training.batch_size`` and a network suited to the kind of data. Errors are one
``ValueError`` / ``FileNotFoundError`` whose message starts with the field.

A loaded set is kept (read-only) in a small cache keyed by the path, its size and modification
times, so validation, training and evaluation in one process decode the files once.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import os
from typing import Any

import numpy as np

from PIL import Image, UnidentifiedImageError

from lim_jax import image_data

OWN_DATASETS = ("array", "image_folder")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
ARRAY_KEY, LABELS_KEY = "x", "labels"
SPLIT_SALT = 0x5917
DEFAULT_EVAL_FRACTION = 0.1
GREY_MODES = ("1", "L", "LA")  # 8-bit PIL modes decoded as one channel (others become RGB)


def is_own_dataset(name: str) -> bool:
  return name in OWN_DATASETS


@dataclasses.dataclass(frozen=True)
class Examples:
  """A loaded, validated data set.

  Attributes:
    x: ``(N, d)`` float32 points or ``(N, H, W, C)`` uint8 images (read-only).
    labels: ``(N,)`` int32 class labels, or None.
    source: where the examples came from (for messages).
  """

  x: np.ndarray
  labels: np.ndarray | None
  source: str

  @property
  def is_image(self) -> bool:
    return self.x.ndim == 4

  @property
  def num_classes(self) -> int | None:
    return None if self.labels is None else int(self.labels.max()) + 1


@dataclasses.dataclass(frozen=True)
class Split:
  """Sorted example indices of the three disjoint splits."""

  train: np.ndarray
  validation: np.ndarray
  test: np.ndarray


# ---------------------------------------------------------------------------------------------
# Checks shared by files, folders and in-memory arrays.
# ---------------------------------------------------------------------------------------------
def check_examples(x: Any, labels: Any, where: str) -> Examples:
  """Validates examples and labels; returns them as :class:`Examples` (points cast to float32).

  Raises:
    ValueError: starting with ``data.path``: bad shape, dtype, non-finite values, no examples,
      labels of the wrong shape, dtype or sign.
  """
  x = np.asarray(x)
  kinds = "points (N, d) of a float dtype or images (N, H, W, C) uint8"
  if x.ndim not in (2, 4):
    raise ValueError(f"data.path: {where} holds an array of shape {x.shape}; expected {kinds}")
  if x.shape[0] == 0:
    raise ValueError(f"data.path: {where} holds no examples (shape {x.shape})")
  if x.ndim == 2:
    if not np.issubdtype(x.dtype, np.floating):
      raise ValueError(f"data.path: points (N, d) in {where} must have a float dtype, got "
                       f"{x.dtype} (images must be (N, H, W, C) uint8)")
    if x.shape[1] == 0:
      raise ValueError(f"data.path: points in {where} have no coordinates (shape {x.shape})")
    bad = ~np.all(np.isfinite(x), axis=1)
    if bad.any():
      raise ValueError(f"data.path: {int(bad.sum())} of {len(x)} points in {where} have "
                       f"non-finite values (NaN/Inf), the first at row {int(np.argmax(bad))}")
    with np.errstate(over="raise"):
      try:
        x = x.astype(np.float32)
      except FloatingPointError:
        raise ValueError(f"data.path: points in {where} overflow float32 "
                         f"(max |x| = {np.abs(x).max():.3g})") from None
  else:
    if x.dtype != np.uint8:
      raise ValueError(f"data.path: images (N, H, W, C) in {where} must be uint8 in [0, 255], "
                       f"got {x.dtype}")
    if x.shape[-1] not in (1, 3):
      raise ValueError(f"data.path: images in {where} must have 1 or 3 channels (last axis), "
                       f"got shape {x.shape}")
    if min(x.shape[1:3]) == 0:
      raise ValueError(f"data.path: images in {where} are empty (shape {x.shape})")
  if labels is not None:
    labels = np.asarray(labels)
    if labels.shape != (len(x),):
      raise ValueError(f"data.path: labels in {where} must have shape ({len(x)},), got "
                       f"{labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
      raise ValueError(f"data.path: labels in {where} must be integers >= 0, got dtype "
                       f"{labels.dtype}")
    if (labels < 0).any():
      raise ValueError(f"data.path: labels in {where} must be integers >= 0, got min "
                       f"{labels.min()}")
    labels = labels.astype(np.int32)
  return Examples(_read_only(np.ascontiguousarray(x)),
                  None if labels is None else _read_only(labels), where)


def _read_only(a: np.ndarray) -> np.ndarray:
  a.flags.writeable = False
  return a


# ---------------------------------------------------------------------------------------------
# Loaders.
# ---------------------------------------------------------------------------------------------
def _load_array_file(path: str) -> Examples:
  suffix = os.path.splitext(path)[1].lower()
  if suffix not in (".npz", ".npy"):
    raise ValueError(f"data.path for data.dataset='array' must be an .npz or .npy file, got "
                     f"{path!r}")
  try:
    if suffix == ".npy":
      return check_examples(np.load(path, allow_pickle=False), None, path)
    with np.load(path, allow_pickle=False) as npz:
      names = list(npz.files)
      data_names = [n for n in names if n != LABELS_KEY]
      if ARRAY_KEY in names:
        name = ARRAY_KEY
      elif len(data_names) == 1:
        name = data_names[0]
      else:
        raise ValueError(f"data.path: {path} must hold the examples under {ARRAY_KEY!r} (or as "
                         f"its only array besides {LABELS_KEY!r}); it has {names}")
      x = npz[name]
      labels = npz[LABELS_KEY] if LABELS_KEY in names else None
  except (OSError, EOFError) as e:
    raise ValueError(f"data.path: {path} cannot be read as {suffix}: {e}") from None
  except ValueError as e:
    if str(e).startswith("data.path"):
      raise
    raise ValueError(f"data.path: {path} cannot be read as {suffix} without pickle: {e}") from None
  return check_examples(x, labels, path)


def _image_files(path: str) -> tuple[list[str], np.ndarray | None]:
  """``(files, labels)``: the image files under ``path`` and, with one sub-folder per class, their
  ``(N,)`` int32 labels (the index of the folder in sorted order), else None."""
  def images_in(folder):
    return sorted(os.path.join(folder, n) for n in os.listdir(folder)
                  if not n.startswith(".") and n.lower().endswith(IMAGE_EXTENSIONS)
                  and os.path.isfile(os.path.join(folder, n)))

  top = images_in(path)
  classes = sorted(n for n in os.listdir(path)
                   if not n.startswith(".") and os.path.isdir(os.path.join(path, n)))
  if classes and top:
    raise ValueError(f"data.path: {path} has both image files and sub-folders; put every image "
                     "in a class sub-folder, or none")
  if not classes:
    if not top:
      raise ValueError(f"data.path: no PNG/JPEG images ({', '.join(IMAGE_EXTENSIONS)}) in {path}")
    return top, None
  files, labels = [], []
  for label, name in enumerate(classes):
    found = images_in(os.path.join(path, name))
    if not found:
      raise ValueError(f"data.path: class folder {os.path.join(path, name)} has no PNG/JPEG "
                       "images")
    files += found
    labels += [label] * len(found)
  return files, np.asarray(labels, np.int32)


def _load_image_folder(path: str, image_size: int) -> Examples:
  files, labels = _image_files(path)
  headers = []
  for f in files:
    try:
      with Image.open(f) as im:
        headers.append((im.size, im.mode))
    except (UnidentifiedImageError, OSError) as e:
      raise ValueError(f"data.path: {f} is not a readable PNG/JPEG image: {e}") from None
    if headers[-1][1].startswith("I") or headers[-1][1] == "F":
      raise ValueError(f"data.path: {f} has {headers[-1][1]!r} pixels (16-bit or float); save "
                       "the images with 8 bits per channel")
  grey = all(mode in GREY_MODES for _, mode in headers)
  (w0, h0) = headers[0][0]
  if image_size == 0:
    other = next((i for i, (s, _) in enumerate(headers) if s != (w0, h0)), None)
    if other is not None:
      w1, h1 = headers[other][0]
      raise ValueError(f"data.path: images have different sizes ({h0}x{w0} in {files[0]}, "
                       f"{h1}x{w1} in {files[other]}); set data.image_size to resize them to one "
                       "size")
  channels = 1 if grey else 3
  shape = (image_size, image_size) if image_size else (h0, w0)
  out = np.empty((len(files),) + shape + (channels,), np.uint8)
  for i, f in enumerate(files):
    try:
      with Image.open(f) as im:
        pixels = np.asarray(im.convert("L" if grey else "RGB"))
    except (OSError, ValueError) as e:
      raise ValueError(f"data.path: {f} cannot be decoded: {e}") from None
    pixels = pixels.reshape(pixels.shape[:2] + (channels,))
    if image_size:
      pixels = image_data._resize(image_data._center_crop(pixels, min(pixels.shape[:2])),
                                  image_size)
    out[i] = pixels
  return check_examples(out, labels, path)


def _stamp(kind: str, path: str) -> tuple:
  """What the cache key needs to notice a changed file or folder: sizes and mtimes."""
  if kind == "array":
    st = os.stat(path)
    return ((path, st.st_size, st.st_mtime_ns),)
  entries = []
  for root, dirs, names in os.walk(path):
    dirs.sort()
    for n in sorted(names):
      st = os.stat(os.path.join(root, n))
      entries.append((os.path.relpath(os.path.join(root, n), path), st.st_size, st.st_mtime_ns))
  return tuple(entries)


@functools.lru_cache(maxsize=4)
def _load_cached(kind: str, path: str, image_size: int, stamp: tuple) -> Examples:
  del stamp  # part of the cache key only
  if kind == "array":
    return _load_array_file(path)
  return _load_image_folder(path, image_size)


# ---------------------------------------------------------------------------------------------
# Config.
# ---------------------------------------------------------------------------------------------
def _fraction(data_cfg, name: str, default: float) -> float:
  value = data_cfg.get(name, default)
  if not (isinstance(value, numbers.Real) and not isinstance(value, bool)
          and math.isfinite(value) and 0 <= value < 1):
    raise ValueError(f"data.{name} must be a number in [0, 1), got {value!r}")
  return float(value)


def _check_fields(data_cfg) -> tuple[str, str, int]:
  kind = data_cfg.get("dataset", None)
  if kind not in OWN_DATASETS:
    raise ValueError(f"data.dataset must be one of {OWN_DATASETS} for own data, got {kind!r}")
  path = data_cfg.get("path", "")
  if not isinstance(path, (str, os.PathLike)) or not str(path):
    raise ValueError(f"data.path is required for data.dataset={kind!r} (an .npz/.npy file for "
                     f"'array', a folder of PNG/JPEG for 'image_folder'), got {path!r}")
  path = os.path.abspath(os.path.expanduser(str(path)))
  if kind == "array" and not os.path.isfile(path):
    raise FileNotFoundError(f"data.path: no such file {path!r} (data.dataset='array')")
  if kind == "image_folder" and not os.path.isdir(path):
    raise FileNotFoundError(f"data.path: no such folder {path!r} (data.dataset='image_folder')")
  size = data_cfg.get("image_size", 0)
  if not (isinstance(size, numbers.Integral) and not isinstance(size, bool) and size >= 0):
    raise ValueError(f"data.image_size must be an integer >= 0 (0 = native size), got {size!r}")
  test = _fraction(data_cfg, "eval_fraction", DEFAULT_EVAL_FRACTION)
  val = _fraction(data_cfg, "validation_fraction", 0.0)
  if test + val >= 1:
    raise ValueError(f"data.eval_fraction + data.validation_fraction must be < 1, got {test} + "
                     f"{val}")
  seed = data_cfg.get("split_seed", 0)
  if not (isinstance(seed, numbers.Integral) and not isinstance(seed, bool)):
    raise ValueError(f"data.split_seed must be an integer, got {seed!r}")
  flip = data_cfg.get("random_flip", False)
  if not isinstance(flip, (bool, np.bool_)):
    raise ValueError(f"data.random_flip must be a bool, got {flip!r}")
  return kind, path, int(size)


def load(data_cfg) -> Examples:
  """The validated examples of ``data.dataset`` in {'array', 'image_folder'} (cached)."""
  kind, path, size = _check_fields(data_cfg)
  examples = _load_cached(kind, path, size if kind == "image_folder" else 0, _stamp(kind, path))
  if kind == "array" and examples.is_image and size and size != examples.x.shape[1]:
    raise ValueError(f"data.image_size must be 0 or {examples.x.shape[1]} (the height of the "
                     f"images in {path}; 'array' images are used as stored), got {size}")
  if kind == "array" and not examples.is_image and size:
    raise ValueError(f"data.image_size must be 0 for points, got {size} ({path} holds "
                     f"{examples.x.shape} points)")
  return examples


def split(data_cfg, num_examples: int) -> Split:
  """The train / validation / test indices of ``num_examples`` (see the module docstring)."""
  test_n = math.ceil(num_examples * _fraction(data_cfg, "eval_fraction", DEFAULT_EVAL_FRACTION))
  val_n = math.ceil(num_examples * _fraction(data_cfg, "validation_fraction", 0.0))
  order = np.random.default_rng([int(data_cfg.get("split_seed", 0)), SPLIT_SALT]).permutation(
      num_examples)
  return Split(train=np.sort(order[test_n + val_n:]),
               validation=np.sort(order[test_n:test_n + val_n]), test=np.sort(order[:test_n]))


def validate(data_cfg) -> None:
  """Checks the fields and the data (loads them, cached). Raises naming the field."""
  examples = load(data_cfg)
  parts = split(data_cfg, len(examples.x))
  if len(parts.train) == 0:
    raise ValueError(f"data.eval_fraction: {examples.source} has {len(examples.x)} examples, none "
                     "left for training after the held-out splits")


def validate_run(config) -> None:
  """Own data vs the rest of the run: enough training examples for ``training.batch_size`` and a
  network for the kind of data (an MLP for points, a U-Net for square images whose size the
  U-Net's ``ch_mult`` levels divide). No-op for the built-in data sets."""
  if not is_own_dataset(config.data.get("dataset", "")):
    return
  examples = load(config.data)
  train_n = len(split(config.data, len(examples.x)).train)
  batch = config.training.batch_size
  if train_n < batch:
    raise ValueError(f"training.batch_size ({batch}) is larger than the {train_n} training "
                     f"examples of {examples.source} (after the held-out split); lower it or add "
                     "data")
  name = config.model.name
  if not examples.is_image and name != "mlp":
    raise ValueError(f"model.name {name!r} is a U-Net for images, but {examples.source} holds "
                     f"points {examples.x.shape}; use model.name='mlp'")
  if examples.is_image:
    if name == "mlp":
      raise ValueError(f"model.name 'mlp' is for points, but {examples.source} holds images "
                       f"{examples.x.shape[1:]}; use a U-Net (model.name='ddpmpp')")
    h, w = examples.x.shape[1:3]
    levels = len(config.model.get("ch_mult", (1, 2, 2, 2)))
    if h != w or h % 2 ** (levels - 1):
      raise ValueError(f"model.ch_mult: the U-Net needs square images whose size is divisible by "
                       f"{2 ** (levels - 1)} ({levels} levels), got {h}x{w}; set "
                       "data.image_size (image_folder) or change model.ch_mult")


def to_unit_interval(images: np.ndarray) -> np.ndarray:
  """uint8 ``[0, 255]`` to float32 ``[-1, 1]`` (``x / 127.5 - 1``, as the built-in image sets)."""
  return image_data._to_unit_interval(images)


# ---------------------------------------------------------------------------------------------
# In-memory arrays (notebooks).
# ---------------------------------------------------------------------------------------------
def from_array(config, x, path: str, labels=None):
  """A copy of ``config`` that trains on the in-memory ``x`` (and ``labels``).

  The arrays are checked as a file would be, then written to ``path`` (an ``.npz``, atomically); a
  file already there holding the same arrays is kept, so rerunning a notebook cell resumes the run.
  The returned config has ``data.dataset='array'`` and ``data.path=path``: training, resume,
  ``evaluate`` and ``lim_jax.compare`` read the data from there like any own data set.

  Args:
    config: a run config (not modified).
    x: ``(N, d)`` float points or ``(N, H, W, C)`` uint8 images.
    path: where to keep them (e.g. ``workdir + '/data.npz'``).
    labels: optional ``(N,)`` integer class labels.

  Raises:
    ValueError: bad arrays (naming ``data.path``), or ``path`` holds different arrays.
  """
  path = os.path.abspath(os.path.expanduser(str(path)))
  if not path.endswith(".npz"):
    raise ValueError(f"data.path for from_array must end in .npz, got {path!r}")
  examples = check_examples(x, labels, "the array given to from_array")
  if os.path.isfile(path):
    same = _load_array_file(path)
    if not (np.array_equal(same.x, examples.x) and (
        (same.labels is None and examples.labels is None) or (
            same.labels is not None and examples.labels is not None
            and np.array_equal(same.labels, examples.labels)))):
      raise ValueError(f"data.path: {path} already holds different data; pass another path")
  else:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp.npz"
    arrays = {ARRAY_KEY: examples.x}
    if examples.labels is not None:
      arrays[LABELS_KEY] = examples.labels
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
  out = config.copy_and_resolve_references()
  with out.unlocked():
    out.data.dataset = "array"
    out.data.path = path
  return out
