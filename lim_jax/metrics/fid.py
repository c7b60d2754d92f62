"""Fréchet Inception Distance (Heusel et al. 2017, eq. 6), clean-fid conventions (DESIGN.md §8).

``FID = |mu_1 - mu_2|^2 + tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))``

between Gaussians fitted (float64 mean and unbiased covariance) to the 2048-d pool3 features of
:class:`lim_jax.metrics.inception.InceptionV3`. Images are resized to 299x299 with a bicubic
filter (Keys a = -0.5 with antialiasing, as PIL's BICUBIC that clean-fid uses; Parmar et al.
2022, "On aliased resizing and surprising subtleties in GAN evaluation") on ``[0, 255]`` values,
clipped to ``[0, 255]`` and mapped to ``[-1, 1]`` by ``x / 127.5 - 1`` (pytorch-fid's ``2x - 1``).

Weights: the 2015-12-05 TF Inception ported by pytorch-fid,
``pt_inception-2015-12-05-6726825d.pth`` (:data:`WEIGHTS_URL`), read from ``eval.inception_path``
without torch and without running arbitrary pickle code (:func:`load_torch_state_dict`), or an
``.npz`` of the same state dict (:func:`save_npz`).

Torch file formats read here:

* zip (``torch.save`` since torch 1.6): ``<archive>/data.pkl`` is a protocol-2 pickle whose
  tensors are ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`` and whose
  storages are persistent ids ``('storage', torch.<T>Storage, key, location, numel)`` with the
  raw little-endian bytes in ``<archive>/data/<key>`` (``<archive>/byteorder`` may say "big").
* legacy (torch < 1.6, and ``_use_new_zipfile_serialization=False``): five consecutive items:
  pickle(magic 0x1950a86a20f9469cfc6c), pickle(protocol 1001), pickle(sys info with
  ``little_endian``), the pickled object with persistent ids
  ``('storage', torch.<T>Storage, key, location, numel, view_metadata)``, pickle(sorted list of
  storage keys), then for each key an int64 element count followed by the raw storage bytes. The
  pytorch-fid weights file came with pytorch-fid commit f64228c (2019-05-27), a year before
  torch 1.6 made zip the default, so it is this legacy format.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import io
import math
import os
import pickle
import struct
import warnings
import zipfile
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import scipy.linalg

from lim_jax import storage
from lim_jax.metrics import inception as inception_lib

WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
               "pt_inception-2015-12-05-6726825d.pth")
# torch.hub names a file ``<name>-<first 8+ hex digits of its SHA-256>.<ext>``.
WEIGHTS_SHA256_PREFIX = "6726825d"
_FIELD = "eval.inception_path"
_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
_LEGACY_PROTOCOL = 1001
# The pickled element types a tensor state dict can use (``torch.<name>``).
_STORAGE_DTYPES = {
    "FloatStorage": np.dtype(np.float32), "DoubleStorage": np.dtype(np.float64),
    "HalfStorage": np.dtype(np.float16), "BFloat16Storage": np.dtype(ml_dtypes.bfloat16),
    "LongStorage": np.dtype(np.int64), "IntStorage": np.dtype(np.int32),
    "ShortStorage": np.dtype(np.int16), "CharStorage": np.dtype(np.int8),
    "ByteStorage": np.dtype(np.uint8), "BoolStorage": np.dtype(np.bool_),
}
# State-dict entries that exist in the file but that pool3 features do not use.
_FC_SHAPES = {"fc.weight": (inception_lib.FC_CLASSES, inception_lib.FEATURE_DIM),
              "fc.bias": (inception_lib.FC_CLASSES,)}
_IGNORED_SUFFIX = ".num_batches_tracked"  # BatchNorm's step counter (torch >= 0.4.1)


class UnsafePickleError(ValueError):
  """The torch file's pickle names a global that a tensor state dict never needs."""


# ----------------------------------------------------------------------------------------------
# Restricted reading of torch files
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _StorageType:
  name: str
  dtype: np.dtype


@dataclasses.dataclass
class _StorageRef:
  key: str
  dtype: np.dtype
  numel: int
  view: tuple[str, int, int] | None = None  # legacy storage views: (root key, offset, numel)


@dataclasses.dataclass
class _PendingTensor:
  storage: _StorageRef
  offset: int
  size: tuple[int, ...]
  stride: tuple[int, ...]


def _rebuild_tensor_v2(storage, storage_offset, size, stride, *unused):
  """Stand-in for ``torch._utils._rebuild_tensor_v2``: records where the tensor's data lies."""
  del unused  # requires_grad, backward_hooks (and metadata in torch >= 2.0): irrelevant here
  return _PendingTensor(storage, int(storage_offset), tuple(int(s) for s in size),
                        tuple(int(s) for s in stride))


def _rebuild_parameter(data, *unused):
  """Stand-in for ``torch._utils._rebuild_parameter`` (an ``nn.Parameter`` saved as is)."""
  del unused
  return data


# (module, name) -> factory of the object handed to the pickle. Each lookup gets a fresh object,
# so a BUILD opcode aimed at it cannot alter what a later lookup (or a later file) gets.
_ALLOWED_GLOBALS: dict[tuple[str, str], Callable[[], Any]] = {
    ("collections", "OrderedDict"): lambda: collections.OrderedDict,  # immutable builtin type
    ("torch._utils", "_rebuild_tensor_v2"): lambda: lambda *a: _rebuild_tensor_v2(*a),
    ("torch._utils", "_rebuild_parameter"): lambda: lambda *a: _rebuild_parameter(*a),
    **{("torch", name): (lambda n=name, d=dtype: _StorageType(n, d))
       for name, dtype in _STORAGE_DTYPES.items()},
}


class _RestrictedUnpickler(pickle.Unpickler):
  """Unpickler that resolves only :data:`_ALLOWED_GLOBALS` and storage persistent ids.

  ``find_class`` is the only way a pickle reaches code (GLOBAL / STACK_GLOBAL opcodes), so
  refusing every other ``(module, name)`` means no callable outside the allow-list ever runs.
  """

  def __init__(self, file, path: str):
    super().__init__(file)
    self._path = path

  def find_class(self, module: str, name: str):
    try:
      factory = _ALLOWED_GLOBALS[(module, name)]
    except KeyError:
      raise UnsafePickleError(
          f"{_FIELD}: {self._path!r} refers to the Python global {module}.{name}, which a tensor "
          "state dict never needs; refusing to load it (only collections.OrderedDict, "
          "torch._utils._rebuild_tensor_v2 / _rebuild_parameter and torch.*Storage are "
          "allowed). Use the pytorch-fid weights file or an .npz made by save_npz.") from None
    return factory()

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"
            and isinstance(pid[1], _StorageType)):
      raise ValueError(f"{_FIELD}: {self._path!r} has an unsupported persistent id {pid!r:.200}")
    view = None
    if len(pid) == 6 and pid[5] is not None:
      view_key, view_offset, view_numel = pid[5]
      view = (str(view_key), int(view_offset), int(view_numel))
    return _StorageRef(str(pid[2]), pid[1].dtype, int(pid[4]), view)


def _unpickle(stream: io.BytesIO, path: str):
  try:
    return _RestrictedUnpickler(stream, path).load()
  except ValueError:
    raise
  except Exception as e:  # pylint: disable=broad-except  # any corrupt pickle -> one clear error
    raise ValueError(f"{_FIELD}: {path!r} is not a readable torch state dict "
                     f"({type(e).__name__}: {e})") from e


def _materialize(obj, storages: Mapping[str, np.ndarray], path: str):
  """Replaces every :class:`_PendingTensor` in ``obj`` (dicts/lists/tuples) by a numpy array."""
  if isinstance(obj, _PendingTensor):
    ref = obj.storage
    if ref.key not in storages:
      raise ValueError(f"{_FIELD}: {path!r} has no data for storage {ref.key!r}")
    flat = storages[ref.key]
    if ref.view is not None:
      flat = flat[ref.view[1]:ref.view[1] + ref.view[2]]
    if any(s < 0 for s in obj.size) or any(s < 0 for s in obj.stride) or obj.offset < 0 \
        or len(obj.size) != len(obj.stride):
      raise ValueError(f"{_FIELD}: {path!r} has a tensor with an invalid layout "
                       f"(size {obj.size}, stride {obj.stride}, offset {obj.offset})")
    if math.prod(obj.size) == 0:
      return np.zeros(obj.size, flat.dtype)
    if math.prod(obj.size) > max(flat.size, 1 << 20):  # stride-0 blow-up of a tiny storage
      raise ValueError(f"{_FIELD}: {path!r} has a tensor of {math.prod(obj.size)} elements over a "
                       f"storage of {flat.size}")
    last = obj.offset + sum((n - 1) * s for n, s in zip(obj.size, obj.stride))
    if last >= flat.size:
      raise ValueError(f"{_FIELD}: {path!r} has a tensor reaching element {last} of a storage "
                       f"of {flat.size} elements (truncated file?)")
    view = np.lib.stride_tricks.as_strided(
        flat[obj.offset:], shape=obj.size,
        strides=tuple(s * flat.itemsize for s in obj.stride), writeable=False)
    return np.array(view)  # own, contiguous copy
  if isinstance(obj, dict):
    out = collections.OrderedDict() if isinstance(obj, collections.OrderedDict) else {}
    for k, v in obj.items():
      out[k] = _materialize(v, storages, path)
    return out
  if isinstance(obj, (list, tuple)):
    return type(obj)(_materialize(v, storages, path) for v in obj)
  return obj


def _collect_refs(obj, refs: dict[str, _StorageRef]) -> None:
  if isinstance(obj, _PendingTensor):
    refs.setdefault(obj.storage.key, obj.storage)
  elif isinstance(obj, dict):
    for v in obj.values():
      _collect_refs(v, refs)
  elif isinstance(obj, (list, tuple)):
    for v in obj:
      _collect_refs(v, refs)


def _read_zip(raw: bytes, path: str):
  try:
    archive = zipfile.ZipFile(io.BytesIO(raw))
    names = archive.namelist()
  except (zipfile.BadZipFile, OSError, EOFError) as e:
    raise ValueError(f"{_FIELD}: {path!r} is a damaged zip archive ({e})") from e
  pkls = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
  if len(pkls) != 1:
    raise ValueError(f"{_FIELD}: {path!r} is a zip archive without exactly one data.pkl "
                     f"(found {pkls[:3]}); not a torch.save file")
  prefix = pkls[0][:-len("data.pkl")]
  try:
    obj = _unpickle(io.BytesIO(archive.read(pkls[0])), path)
    byteorder = "little"
    if prefix + "byteorder" in names:
      byteorder = archive.read(prefix + "byteorder").decode("ascii", "replace").strip()
    refs: dict[str, _StorageRef] = {}
    _collect_refs(obj, refs)
    storages = {}
    for key, ref in refs.items():
      name = f"{prefix}data/{key}"
      if name not in names:
        raise ValueError(f"{_FIELD}: {path!r} lacks the record {name!r}")
      buf = archive.read(name)
      if len(buf) < ref.numel * ref.dtype.itemsize:
        raise ValueError(f"{_FIELD}: {path!r} record {name!r} has {len(buf)} bytes, expected "
                         f"{ref.numel * ref.dtype.itemsize}")
      storages[key] = _from_bytes(buf, ref.dtype, ref.numel, byteorder == "big")
  except (zipfile.BadZipFile, OSError, EOFError, KeyError) as e:
    raise ValueError(f"{_FIELD}: {path!r} is a damaged zip archive ({e})") from e
  return _materialize(obj, storages, path)


def _from_bytes(buf, dtype: np.dtype, count: int, big_endian: bool) -> np.ndarray:
  arr = np.frombuffer(buf, dtype.newbyteorder(">" if big_endian else "<"), count=count)
  return arr.astype(dtype.newbyteorder("="), copy=True)


def _read_legacy(raw: bytes, path: str):
  stream = io.BytesIO(raw)
  magic = _unpickle(stream, path)
  if magic != _LEGACY_MAGIC:
    raise ValueError(f"{_FIELD}: {path!r} is a pickle but not a torch.save file "
                     f"(magic number {magic!r:.40})")
  protocol = _unpickle(stream, path)
  if protocol != _LEGACY_PROTOCOL:
    raise ValueError(f"{_FIELD}: {path!r} has torch legacy protocol {protocol!r}, "
                     f"expected {_LEGACY_PROTOCOL}")
  sys_info = _unpickle(stream, path)
  little = bool(sys_info.get("little_endian", True)) if isinstance(sys_info, dict) else True
  obj = _unpickle(stream, path)
  keys = _unpickle(stream, path)
  if not isinstance(keys, list):
    raise ValueError(f"{_FIELD}: {path!r} has no storage key list after the pickled object")
  refs: dict[str, _StorageRef] = {}
  _collect_refs(obj, refs)  # keyed by root storage key (a legacy view slices its root)
  storages = {}
  for key in keys:
    key = str(key)
    ref = refs.get(key)
    if ref is None:
      raise ValueError(f"{_FIELD}: {path!r} lists storage {key!r} that no tensor uses")
    header = stream.read(8)
    if len(header) != 8:
      raise ValueError(f"{_FIELD}: {path!r} ends before storage {key!r} (truncated file?)")
    (count,) = struct.unpack("<q" if little else ">q", header)
    if count != ref.numel:
      raise ValueError(f"{_FIELD}: {path!r} storage {key!r} holds {count} elements, the pickle "
                       f"says {ref.numel}")
    nbytes = count * ref.dtype.itemsize
    buf = stream.read(nbytes)
    if len(buf) != nbytes:
      raise ValueError(f"{_FIELD}: {path!r} ends inside storage {key!r} (truncated file?)")
    storages[key] = _from_bytes(buf, ref.dtype, count, not little)
  return _materialize(obj, storages, path)


def load_torch_state_dict(path: str) -> dict[str, np.ndarray]:
  """Reads a ``torch.save``d state dict (zip or legacy format) into numpy, without torch.

  Only the globals a tensor state dict needs are resolved (:class:`_RestrictedUnpickler`);
  anything else raises :class:`UnsafePickleError` before it can run.

  Raises:
    FileNotFoundError: no file at ``path``.
    ValueError: not a torch file, damaged or truncated, or it names another global.
  """
  return _torch_state_dict_from_bytes(_read_bytes(path), path)


def _torch_state_dict_from_bytes(raw: bytes, path: str) -> dict[str, np.ndarray]:
  if raw[:4] == b"PK\x03\x04":
    obj = _read_zip(raw, path)
  elif raw[:1] == b"\x80":
    obj = _read_legacy(raw, path)
  else:
    raise ValueError(f"{_FIELD}: {path!r} is neither a zip archive nor a pickle "
                     f"(starts with {raw[:8]!r}); expected the pytorch-fid .pth or an .npz")
  if not isinstance(obj, dict) or not all(isinstance(k, str) for k in obj):
    raise ValueError(f"{_FIELD}: {path!r} holds a {type(obj).__name__}, not a state dict")
  return dict(obj)


def _read_bytes(path: str) -> bytes:
  """The file at ``path``: a local path or ``gs://`` (through :mod:`lim_jax.storage`)."""
  if path:
    storage.require_backend(path, _FIELD)
  if not path or not storage.isfile(path):
    raise FileNotFoundError(
        f"{_FIELD} = {path!r}: no such file. FID needs the Inception weights of pytorch-fid: "
        f"download {WEIGHTS_URL} (or an .npz written by lim_jax.metrics.fid.save_npz) and set "
        f"{_FIELD} to its path")
  return storage.read_bytes(path)


# ----------------------------------------------------------------------------------------------
# State dict <-> flax variables
# ----------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _layout() -> tuple[tuple[str, tuple[str, ...], str, tuple[int, ...], bool], ...]:
  """``(collection, flax path, state-dict key, PyTorch shape, is_kernel)`` for every variable."""
  rows = []
  for (collection, *path), leaf in _flatten(inception_lib.variable_shapes()).items():
    *module, layer, leaf_name = path
    name = {("params", "conv", "kernel"): "weight", ("params", "bn", "scale"): "weight",
            ("params", "bn", "bias"): "bias", ("batch_stats", "bn", "mean"): "running_mean",
            ("batch_stats", "bn", "var"): "running_var"}[(collection, layer, leaf_name)]
    is_kernel = leaf_name == "kernel"
    shape = tuple(leaf.shape)
    torch_shape = tuple(shape[i] for i in (3, 2, 0, 1)) if is_kernel else shape  # HWIO -> OIHW
    rows.append((collection, tuple(path), ".".join([*module, layer, name]), torch_shape,
                 is_kernel))
  return tuple(rows)


def expected_state_dict_shapes() -> dict[str, tuple[int, ...]]:
  """The pytorch-fid key names and PyTorch shapes that the flax module needs (no fc)."""
  return {key: shape for _, _, key, shape, _ in _layout()}


def _flatten(tree, prefix=()) -> dict[tuple[str, ...], Any]:
  out = {}
  for k, v in tree.items():
    if isinstance(v, Mapping):
      out.update(_flatten(v, prefix + (k,)))
    else:
      out[prefix + (k,)] = v
  return out


def state_dict_to_variables(state_dict: Mapping[str, Any], path: str = "<state dict>"):
  """pytorch-fid state dict -> ``{'params', 'batch_stats'}`` of :class:`InceptionV3`.

  Conv kernels go from PyTorch OIHW to flax HWIO (``transpose(2, 3, 1, 0)``); BatchNorm
  ``weight, bias, running_mean, running_var`` become ``scale, bias, mean, var``. ``fc.*`` and
  ``*.num_batches_tracked`` are checked (fc must be 1008 x 2048) and dropped.

  Raises:
    ValueError: naming ``eval.inception_path`` and the first missing, misshaped, non-finite or
      unexpected key.
  """
  expected = expected_state_dict_shapes()
  for key in state_dict:
    if key in _FC_SHAPES or key.endswith(_IGNORED_SUFFIX):
      continue
    if key not in expected:
      hint = (" (torchvision's ImageNet Inception3, not the FID weights?)"
              if key.startswith("AuxLogits") else "")
      raise ValueError(f"{_FIELD}: {path!r} has the unexpected key {key!r}{hint}")
  for key, shape in _FC_SHAPES.items():
    if key in state_dict and tuple(np.shape(state_dict[key])) != shape:
      raise ValueError(
          f"{_FIELD}: {path!r} key {key!r} has shape {tuple(np.shape(state_dict[key]))}, expected "
          f"{shape}: these are not the 2015-12-05 FID weights (torchvision's have 1000 classes)")
  variables: dict[str, dict] = {"params": {}, "batch_stats": {}}
  for collection, tree_path, key, shape, is_kernel in _layout():
    if key not in state_dict:
      raise ValueError(f"{_FIELD}: {path!r} lacks the key {key!r}")
    value = np.asarray(state_dict[key])
    if tuple(value.shape) != shape:
      raise ValueError(f"{_FIELD}: {path!r} key {key!r} has shape {tuple(value.shape)}, "
                       f"expected {shape}")
    if not np.issubdtype(value.dtype, np.floating) or not np.all(np.isfinite(value)):
      raise ValueError(f"{_FIELD}: {path!r} key {key!r} is not finite floating point")
    value = value.astype(np.float32)
    if is_kernel:
      value = value.transpose(2, 3, 1, 0)  # OIHW -> HWIO
    node = variables[collection]
    for name in tree_path[:-1]:
      node = node.setdefault(name, {})
    node[tree_path[-1]] = value
  return variables


def load_npz_state_dict(path: str) -> dict[str, np.ndarray]:
  """An ``.npz`` state dict (pytorch-fid key names), read with ``allow_pickle=False``."""
  return _npz_state_dict_from_bytes(_read_bytes(path), path)


def _npz_state_dict_from_bytes(raw: bytes, path: str) -> dict[str, np.ndarray]:
  try:
    with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
      return {k: npz[k] for k in npz.files}
  except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
    raise ValueError(f"{_FIELD}: {path!r} is not a readable .npz ({e})") from e


def load_inception_params(path: str):
  """``{'params', 'batch_stats'}`` for :class:`InceptionV3` from ``eval.inception_path``.

  ``path`` is the pytorch-fid ``.pth`` (zip or legacy torch format, read without torch) or an
  ``.npz`` with the same key names. Format is detected from the content: a zip with a
  ``data.pkl`` is torch, a zip of ``.npy`` members is npz, a pickle is legacy torch. A torch
  file whose SHA-256 does not start with :data:`WEIGHTS_SHA256_PREFIX` loads with a warning.

  Raises:
    FileNotFoundError: no file at ``path`` (the message says where to download it).
    ValueError: malformed file, or a missing / misshaped key (named).
  """
  raw = _read_bytes(path)
  if raw[:4] == b"PK\x03\x04":
    try:
      names = zipfile.ZipFile(io.BytesIO(raw)).namelist()
    except (zipfile.BadZipFile, OSError, EOFError) as e:
      raise ValueError(f"{_FIELD}: {path!r} is a damaged zip archive ({e})") from e
    is_npz = names and all(n.endswith(".npy") for n in names)
  else:
    is_npz = False
  if is_npz:
    state_dict = _npz_state_dict_from_bytes(raw, path)
  else:
    state_dict = _torch_state_dict_from_bytes(raw, path)
    digest = hashlib.sha256(raw).hexdigest()
    if not digest.startswith(WEIGHTS_SHA256_PREFIX):
      warnings.warn(f"{_FIELD}: {path!r} has SHA-256 {digest[:16]}..., not the pytorch-fid "
                    f"release's {WEIGHTS_SHA256_PREFIX}...; FID values are comparable with "
                    "published ones only with those exact weights", stacklevel=2)
  return state_dict_to_variables(state_dict, path)


def save_npz(state_dict: Mapping[str, Any], path: str) -> None:
  """Writes a state dict (str -> array) as an uncompressed ``.npz``, atomically."""
  arrays = {k: np.asarray(v) for k, v in state_dict.items()}
  _atomic_savez(path, arrays)


def _atomic_savez(path: str, arrays: Mapping[str, np.ndarray]) -> None:
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  tmp = f"{path}.tmp{os.getpid()}"
  try:
    with open(tmp, "wb") as f:  # a file object: np.savez would append .npz to a str path
      np.savez(f, **arrays)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


# ----------------------------------------------------------------------------------------------
# Features
# ----------------------------------------------------------------------------------------------


def preprocess(images: jax.Array) -> jax.Array:
  """``(N, H, W, C)`` uint8 or float in ``[-1, 1]``, C in {1, 3} -> ``(N, 299, 299, 3)`` in [-1, 1].

  Resizes ``[0, 255]`` values with ``jax.image.resize(..., 'bicubic')`` (Keys a = -0.5,
  antialiased when shrinking, edge weights renormalised: PIL's BICUBIC on mode 'F' images, which
  clean-fid uses), clips to ``[0, 255]``, then ``x / 127.5 - 1``. One channel is repeated to three.
  """
  if jnp.issubdtype(images.dtype, jnp.integer):
    x = images.astype(jnp.float32)
  else:
    x = (jnp.clip(images.astype(jnp.float32), -1.0, 1.0) + 1.0) * 127.5
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  size = inception_lib.INPUT_SIZE
  if x.shape[1:3] != (size, size):
    x = jax.image.resize(x, (x.shape[0], size, size, 3), method="bicubic", antialias=True)
    x = jnp.clip(x, 0.0, 255.0)
  return x / 127.5 - 1.0


@functools.partial(jax.jit, static_argnums=0)
def _forward(model: inception_lib.InceptionV3, variables, batch: jax.Array) -> jax.Array:
  """Module-level jit: feature functions with equal modules share compilations."""
  return model.apply(variables, preprocess(batch))


def make_feature_fn(variables, batch_size: int = 50, precision: Any = jax.lax.Precision.HIGHEST
                    ) -> Callable[[np.ndarray], np.ndarray]:
  """``fn(images) -> (N, 2048) float64`` pool3 features, one jitted preprocess + forward.

  ``images``: ``(N, H, W, C)``, uint8 in ``[0, 255]`` or float in ``[-1, 1]`` (clipped), C in
  {1, 3}. Images go through in batches of ``batch_size``; the last batch is zero-padded to
  ``batch_size`` so each input shape and dtype compiles once.
  """
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  model = inception_lib.InceptionV3(precision=precision)
  variables = jax.device_put(jax.tree_util.tree_map(jnp.asarray, variables))

  def feature_fn(images) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
      raise ValueError(f"images must be (N, H, W, C) with C in {{1, 3}}, got {images.shape}")
    if np.issubdtype(images.dtype, np.integer):
      if images.dtype != np.uint8:
        raise ValueError(f"integer images must be uint8, got {images.dtype}")
    elif np.issubdtype(images.dtype, np.floating):
      images = images.astype(np.float32)
      if not np.all(np.isfinite(images)):
        raise ValueError("images contain non-finite values")
    else:
      raise ValueError(f"images must be uint8 or float, got {images.dtype}")
    n = images.shape[0]
    out = np.empty((n, inception_lib.FEATURE_DIM), np.float64)
    for start in range(0, n, batch_size):
      batch = images[start:start + batch_size]
      count = batch.shape[0]
      if count < batch_size:
        pad = np.zeros((batch_size - count,) + batch.shape[1:], batch.dtype)
        batch = np.concatenate([batch, pad])
      out[start:start + count] = np.asarray(_forward(model, variables, batch),
                                             np.float64)[:count]
    return out

  return feature_fn


# ----------------------------------------------------------------------------------------------
# Statistics and the distance
# ----------------------------------------------------------------------------------------------


def statistics(features) -> tuple[np.ndarray, np.ndarray]:
  """Mean ``(d,)`` and unbiased covariance ``(d, d)`` (``np.cov``, divisor N-1), float64.

  Warns when ``N < d``: the covariance then has rank < d and the FID is biased (FID is usually
  reported with N = 50000 for d = 2048).
  """
  features = np.asarray(features, np.float64)
  if features.ndim != 2 or features.shape[0] < 2:
    raise ValueError(f"features must be (N >= 2, d), got {features.shape}")
  n, d = features.shape
  if n < d:
    warnings.warn(f"FID statistics from N = {n} < d = {d} features: the covariance is singular "
                  "(rank <= N - 1) and the FID estimate is biased; use N >= d (50000 is the "
                  "usual choice)", stacklevel=2)
  return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
  """``|mu1 - mu2|^2 + tr(S1 + S2 - 2 sqrtm(S1 S2))`` in float64 (Dowson & Landau 1982).

  ``sqrtm`` is ``scipy.linalg.sqrtm`` (Schur method). If it is not finite (near-singular
  product), ``eps * I`` is added to both covariances (pytorch-fid's fallback). The product of
  two PSD matrices has real non-negative eigenvalues, so an imaginary part is numerical noise: it
  is dropped when its diagonal is below 1e-3, else ValueError.
  """
  mu1, mu2 = (np.atleast_1d(np.asarray(m, np.float64)) for m in (mu1, mu2))
  s1, s2 = (np.atleast_2d(np.asarray(s, np.float64)) for s in (sigma1, sigma2))
  d = mu1.shape[0]
  if mu1.ndim != 1 or mu2.shape != mu1.shape or s1.shape != (d, d) or s2.shape != (d, d):
    raise ValueError(f"statistics shapes differ: mu1 {mu1.shape}, sigma1 {s1.shape}, "
                     f"mu2 {mu2.shape}, sigma2 {s2.shape}")
  diff = mu1 - mu2
  covmean = scipy.linalg.sqrtm(s1 @ s2)
  if not np.all(np.isfinite(covmean)):
    offset = eps * np.eye(d)
    covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
  if np.iscomplexobj(covmean):
    imag = np.max(np.abs(np.diagonal(covmean).imag))
    if imag > 1e-3:
      raise ValueError(f"sqrtm(S1 S2) has an imaginary component {imag:.3g}: the covariances "
                       "are not positive semi-definite")
    covmean = covmean.real
  return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


def fid_from_features(f_samples, f_reference) -> float:
  """FID between two feature sets ``(N, d)`` and ``(M, d)``."""
  f_samples, f_reference = np.asarray(f_samples), np.asarray(f_reference)
  if f_samples.ndim != 2 or f_reference.ndim != 2 or f_samples.shape[1] != f_reference.shape[1]:
    raise ValueError(f"feature shapes differ: {f_samples.shape} vs {f_reference.shape}")
  return frechet_distance(*statistics(f_samples), *statistics(f_reference))


def fid_from_images(feature_fn: Callable[[np.ndarray], np.ndarray], samples, reference) -> float:
  """FID between two image sets of the same ``(H, W, C)`` through ``feature_fn``."""
  samples, reference = np.asarray(samples), np.asarray(reference)
  if samples.ndim != 4 or samples.shape[1:] != reference.shape[1:]:
    raise ValueError(f"image shapes differ: samples {samples.shape}, reference {reference.shape}")
  return fid_from_features(feature_fn(samples), feature_fn(reference))


def reference_statistics(cache_path: str,
                         compute: Callable[[], tuple[np.ndarray, np.ndarray]]
                         ) -> tuple[np.ndarray, np.ndarray]:
  """``(mu, sigma)`` from the ``.npz`` at ``cache_path``, else from ``compute()`` (then cached).

  The cache is written atomically (temporary file + ``os.replace``) so an interrupted run never
  leaves a half-written file, and read with ``allow_pickle=False``.
  """
  if os.path.isfile(cache_path):
    try:
      with np.load(cache_path, allow_pickle=False) as npz:
        mu, sigma = np.asarray(npz["mu"], np.float64), np.asarray(npz["sigma"], np.float64)
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as e:
      raise ValueError(f"reference statistics cache {cache_path!r} is unreadable ({e}); "
                       "delete it to recompute") from e
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
      raise ValueError(f"reference statistics cache {cache_path!r} has mu {mu.shape}, sigma "
                       f"{sigma.shape}; delete it to recompute")
    return mu, sigma
  mu, sigma = compute()
  mu, sigma = np.asarray(mu, np.float64), np.asarray(sigma, np.float64)
  _atomic_savez(cache_path, {"mu": mu, "sigma": sigma})
  return mu, sigma
