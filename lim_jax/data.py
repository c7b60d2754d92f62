"""Datasets: embedded 2-D toy sets generated from a seed (no files, no network); images come from
:mod:`lim_jax.image_data` through :func:`get_dataset`.

A toy dataset is a fixed training set of ``data.num_train`` points drawn once from its generator
with the run's seed. The batches of step ``n`` are a pure function of ``(seed, n)``: the global
batch indices come from ``numpy.random.default_rng([seed, n])`` and every process keeps its own
slice. A resumed run therefore continues the exact data stream, and 1 or N processes see the same
global batch.

Generators (all return ``float32`` arrays of shape ``(n, 2)`` with per-coordinate scale about 1):

* ``ring8``: 8 Gaussians (std 0.1) on a circle of radius sqrt(2).
* ``grid_imbalanced``: 25 Gaussians (std 0.05) on a 5x5 grid in [-1.5, 1.5]^2 whose weights decay
  geometrically from the first to the last mode (in a fixed shuffled order) over a factor 200: the
  rare modes test mode coverage (GM-SGM / LIM's imbalanced-data claims). :func:`grid_modes`
  exposes them.
* ``moons``: two interleaved half circles, noise 0.05, centred.
* ``checkerboard``: uniform on the 8 black squares of a 4x4 board on [-2, 2]^2.
* ``sas``: isotropic 2-D alpha-stable (char. fn ``exp(-|k|^alpha)``, ``alpha = data.alpha``, 1.7 by
  default as in Baule 2025): heavy tails, for the tail metrics.
* ``funnel``: Neal's funnel, ``v ~ N(0, 1)``, ``x | v ~ N(0, e^v)``, as ``(x, v)``.

Own data (``data.dataset`` ``'array'`` / ``'image_folder'`` with ``data.path``) is loaded and
checked by :mod:`lim_jax.own_data`; :class:`OwnData` batches its training split exactly as
:class:`ToyData` and draws references from its held-out splits.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Callable

import jax
import numpy as np

from lim_jax import image_data, own_data, stable

GRID_RATIO = 200.0
GRID_STD = 0.05
# ``reference(n, salt)`` salts: the test draw that ``evaluate`` scores against, and the validation
# draw that ``lim_jax.compare --tune`` selects on (toy sets: independent fresh draws; own data: the
# test and validation splits).
TEST_SALT, VALIDATION_SALT = 1, 2
# The draw of fresh data that ``evaluate.data_floor`` scores against a reference (toy sets only).
FLOOR_SALT = 8


def has_generator(data) -> bool:
  """Whether ``reference(n, salt)`` draws fresh points from the data law for every salt (the toy
  sets), rather than held-out examples of a finite split (own data, images)."""
  return isinstance(data, ToyData) and not isinstance(data, OwnData)


def ring8_centers() -> np.ndarray:
  """``(8, 2)`` mode centres of ``ring8``: radius sqrt(2), angles ``2 pi k / 8``."""
  angle = 2 * math.pi * np.arange(8) / 8
  return math.sqrt(2.0) * np.stack([np.cos(angle), np.sin(angle)], -1)


def _ring8(rng: np.random.Generator, n: int, cfg) -> np.ndarray:
  del cfg
  return ring8_centers()[rng.integers(0, 8, n)] + 0.1 * rng.standard_normal((n, 2))


def grid_modes() -> tuple[np.ndarray, np.ndarray, float]:
  """``(centers (25, 2), weights (25,), std)`` of ``grid_imbalanced``; weights span a factor 200."""
  g = np.linspace(-1.5, 1.5, 5)
  centers = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
  order = np.random.default_rng(1234).permutation(25)  # fixed, seed-independent layout
  weights = GRID_RATIO ** (-np.arange(25) / 24.0)
  weights = weights[np.argsort(order)]
  return centers, weights / weights.sum(), GRID_STD


def _grid_imbalanced(rng, n, cfg):
  del cfg
  centers, weights, std = grid_modes()
  comp = rng.choice(len(weights), size=n, p=weights)
  return centers[comp] + std * rng.standard_normal((n, 2))


def _moons(rng, n, cfg):
  del cfg
  upper = rng.random(n) < 0.5
  theta = math.pi * rng.random(n)
  x = np.where(upper, np.cos(theta), 1 - np.cos(theta))
  y = np.where(upper, np.sin(theta), 0.5 - np.sin(theta))
  pts = np.stack([x - 0.5, y - 0.25], -1) * 1.5
  return pts + 0.05 * rng.standard_normal((n, 2))


def _checkerboard(rng, n, cfg):
  del cfg
  cell = rng.integers(0, 8, n)
  row = cell // 2
  col = 2 * (cell % 2) + (row % 2)
  offset = rng.random((n, 2))
  return np.stack([col + offset[:, 0], row + offset[:, 1]], -1) - 2.0


def _sas(rng, n, cfg):
  key = jax.random.PRNGKey(int(rng.integers(0, 2**31 - 1)))
  with jax.default_device(jax.local_devices(backend="cpu")[0]):
    return np.asarray(stable.isotropic_stable(key, float(cfg.alpha), (n, 2)))


def _funnel(rng, n, cfg):
  del cfg
  v = rng.standard_normal(n)
  x = np.exp(0.5 * v) * rng.standard_normal(n)
  return np.stack([x, v], -1)


TOY_DATASETS: dict[str, Callable[[np.random.Generator, int, object], np.ndarray]] = {
    "ring8": _ring8, "grid_imbalanced": _grid_imbalanced, "moons": _moons,
    "checkerboard": _checkerboard, "sas": _sas, "funnel": _funnel}


def validate(data_cfg) -> None:
  """Raises ``ValueError`` naming the bad ``data.*`` field (toy or image datasets)."""
  if image_data.is_image_dataset(data_cfg.dataset):
    image_data.validate(data_cfg)
    return
  if own_data.is_own_dataset(data_cfg.dataset):
    own_data.validate(data_cfg)
    return
  if data_cfg.dataset not in TOY_DATASETS:
    raise ValueError(f"data.dataset must be one of {sorted(TOY_DATASETS)} (toy), "
                     f"{sorted(image_data.IMAGE_DATASETS)} (images) or {own_data.OWN_DATASETS} "
                     f"(own data, with data.path), got {data_cfg.dataset!r}")
  n = data_cfg.num_train
  if not (isinstance(n, numbers.Integral) and not isinstance(n, bool) and n > 0):
    raise ValueError(f"data.num_train must be a positive integer, got {n!r}")
  if data_cfg.dataset == "sas" and not 0 < data_cfg.alpha <= 2:
    raise ValueError(f"data.alpha must be in (0, 2], got {data_cfg.alpha!r}")


# Labelled toy sets for class-conditional models (``model.num_classes``): the mixture component.
TOY_CLASSES = {"ring8": 8, "grid_imbalanced": 25}


def _toy_centers(name: str) -> np.ndarray:
  return ring8_centers() if name == "ring8" else grid_modes()[0]


def toy_labels(name: str, x: np.ndarray) -> np.ndarray:
  """Class labels ``(n,)`` int32 of points ``x (n, 2)`` of a labelled toy set: the nearest mode
  centre, which is the generating component except with probability < 1e-7 (mode spacing >= 10.8
  standard deviations of a mode for both sets)."""
  d = np.sum((x[:, None, :] - _toy_centers(name)[None]) ** 2, axis=-1)
  return np.argmin(d, axis=1).astype(np.int32)


def num_classes(data_cfg) -> int | None:
  """Number of classes of ``data.dataset``, or ``None`` for an unlabelled set."""
  name = data_cfg.dataset
  if image_data.is_image_dataset(name):
    return image_data.IMAGE_DATASETS[name].num_classes
  if own_data.is_own_dataset(name):
    return own_data.load(data_cfg).num_classes
  return TOY_CLASSES.get(name)


def is_image(data_cfg) -> bool:
  """Whether ``data.dataset`` yields images ``(H, W, C)`` (built-in image sets, own images)."""
  if own_data.is_own_dataset(data_cfg.dataset):
    return own_data.load(data_cfg).is_image
  return image_data.is_image_dataset(data_cfg.dataset)


def toy_samples(data_cfg, rng: np.random.Generator, n: int) -> np.ndarray:
  """``n`` fresh points ``(n, 2)`` float32 from the toy generator ``data.dataset``."""
  return np.asarray(TOY_DATASETS[data_cfg.dataset](rng, n, data_cfg), dtype=np.float32)


@dataclasses.dataclass
class ToyData:
  """A fixed toy training set and its deterministic, per-process batch stream.

  Attributes:
    data_cfg: the ``data`` config section.
    seed: the run seed.
    train: ``(num_train, 2)`` training points, drawn from ``default_rng([seed, 0xDA7A])``.
    labels: ``(num_train,)`` int32 mode labels for a labelled set (:data:`TOY_CLASSES`), else None.
  """

  data_cfg: object
  seed: int

  def __post_init__(self):
    validate(self.data_cfg)
    self.train = toy_samples(self.data_cfg, np.random.default_rng([self.seed, 0xDA7A]),
                             self.data_cfg.num_train)
    name = self.data_cfg.dataset
    self.labels = toy_labels(name, self.train) if name in TOY_CLASSES else None

  @property
  def data_shape(self) -> tuple[int, ...]:
    return self.train.shape[1:]

  def batches(self, step: int, num_steps: int, global_batch: int, process_index: int = 0,
              process_count: int = 1, labels: bool = False):
    """This process's part of the global batches of steps ``step .. step+num_steps-1``.

    Returns:
      ``(num_steps, global_batch // process_count, *data_shape)`` float32; with ``labels=True``
      the pair ``(points, labels (num_steps, global_batch // process_count) int32)``.
    """
    if labels and self.labels is None:
      raise ValueError(f"model.num_classes: data.dataset {self.data_cfg.dataset!r} has no class "
                       f"labels (labelled toy sets: {sorted(TOY_CLASSES)})")
    local = global_batch // process_count
    out = np.empty((num_steps, local) + self.data_shape, np.float32)
    out_labels = np.empty((num_steps, local), np.int32)
    for i in range(num_steps):
      idx = np.random.default_rng([self.seed, step + i]).integers(
          0, len(self.train), global_batch)
      mine = idx[process_index * local:(process_index + 1) * local]
      out[i] = self._rows(mine, step + i, process_index * local)
      if labels:
        out_labels[i] = self.labels[mine]
    return (out, out_labels) if labels else out

  def _rows(self, idx: np.ndarray, step: int, offset: int) -> np.ndarray:
    """Training examples ``idx`` of step ``step`` (at ``offset`` in the global batch), float32."""
    del step, offset
    return self.train[idx]

  def reference(self, n: int, salt: int = 0) -> np.ndarray:
    """``n`` fresh points from the generator (not the training set), for metrics."""
    return toy_samples(self.data_cfg, np.random.default_rng([self.seed, 0xE7A1, salt]), n)


@dataclasses.dataclass
class OwnData(ToyData):
  """Own data (:mod:`lim_jax.own_data`): the training split, batched as :class:`ToyData` (step ``n``
  draws its indices from ``default_rng([seed, n])``), so resume and multi-process runs behave as
  for the toy sets. Images are stored uint8 and scaled to ``[-1, 1]`` per batch; with
  ``data.random_flip`` each is mirrored with probability 1/2 by ``default_rng([seed, n, 0xF11B])``
  drawn per position of the global batch.

  Attributes:
    train: ``(n_train, *data_shape)`` float32 points or uint8 images.
    labels: ``(n_train,)`` int32 class labels, or None.
  """

  def __post_init__(self):
    own_data.validate(self.data_cfg)
    examples = own_data.load(self.data_cfg)
    parts = own_data.split(self.data_cfg, len(examples.x))
    self.source = examples.source
    self.train = examples.x[parts.train]
    self.labels = None if examples.labels is None else examples.labels[parts.train]
    self.validation, self.test = examples.x[parts.validation], examples.x[parts.test]
    self.random_flip = examples.is_image and bool(self.data_cfg.get("random_flip", False))

  def _as_float(self, rows: np.ndarray) -> np.ndarray:
    return own_data.to_unit_interval(rows) if rows.dtype == np.uint8 else rows

  def _rows(self, idx: np.ndarray, step: int, offset: int) -> np.ndarray:
    rows = self._as_float(self.train[idx])
    if self.random_flip:
      flip = np.random.default_rng([self.seed, step, 0xF11B]).random(offset + len(idx))[offset:]
      rows[flip < 0.5] = rows[flip < 0.5, :, ::-1]
    return rows

  def reference(self, n: int, salt: int = 0) -> np.ndarray:
    """``min(n, split size)`` held-out examples (float32, images in ``[-1, 1]``) in a seeded order
    (``default_rng([seed, 0xE7A1, salt])``, without repetition): the validation split for
    ``salt = VALIDATION_SALT``, else the test split; the training split when ``eval_fraction`` is
    0."""
    pool = self.validation if salt == VALIDATION_SALT else self.test
    if salt == VALIDATION_SALT and not len(pool):
      raise ValueError("data.validation_fraction is 0: there is no validation split to select on; "
                       "set it > 0")
    if not len(pool):
      pool = self.train
    order = np.random.default_rng([self.seed, 0xE7A1, salt]).permutation(len(pool))[:n]
    return self._as_float(pool[order])


def get_dataset(data_cfg, seed: int):
  """The dataset of ``data.dataset``: :class:`ToyData`, :class:`OwnData` or
  :class:`lim_jax.image_data.ImageData`.

  Both offer ``data_shape``, ``batches(step, num_steps, global_batch, process_index,
  process_count)`` (a pure function of the step) and ``reference(n, salt)``.
  """
  if image_data.is_image_dataset(data_cfg.dataset):
    return image_data.ImageData(data_cfg, seed)
  if own_data.is_own_dataset(data_cfg.dataset):
    return OwnData(data_cfg, seed)
  return ToyData(data_cfg, seed)
