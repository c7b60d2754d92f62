"""A safe, torch-free reader of ``torch.save``d tensor state dicts (``.pth`` files).

Nothing in a file is executed: the pickle may name only the few globals a tensor state dict needs
(``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2`` / ``_rebuild_parameter`` and
the ``torch.<T>Storage`` types); any other global raises :class:`UnsafePickleError` before it can
run. Tensors come back as numpy arrays, bit for bit.

The two file formats:

* zip (``torch.save`` since torch 1.6): ``<archive>/data.pkl`` is a protocol-2 pickle whose
  tensors are ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`` and whose
  storages are persistent ids ``('storage', torch.<T>Storage, key, location, numel)`` with the
  raw little-endian bytes in ``<archive>/data/<key>`` (``<archive>/byteorder`` may say "big").
* legacy (torch < 1.6, and ``_use_new_zipfile_serialization=False``): five consecutive items:
  pickle(magic 0x1950a86a20f9469cfc6c), pickle(protocol 1001), pickle(sys info with
  ``little_endian``), the pickled object with persistent ids
  ``('storage', torch.<T>Storage, key, location, numel, view_metadata)``, pickle(sorted list of
  storage keys), then for each key an int64 element count followed by the raw storage bytes.

A tensor is the strided view ``storage[offset + sum_i k_i stride_i]`` for ``0 <= k_i < size_i``;
it is bounds-checked against its storage and copied out contiguously.

Every error message starts with ``field: 'path'`` (the config field the path came from) or, with
no field, ``'path'``.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import math
import pickle
import struct
import zipfile
from typing import Any, BinaryIO, Callable, Literal, Mapping

import ml_dtypes
import numpy as np

from lim_jax import storage

ZIP_MAGIC = b"PK\x03\x04"  # a zip archive's local file header
PICKLE_MAGIC = b"\x80"  # the PROTO opcode that starts a protocol >= 2 pickle
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


class UnsafePickleError(ValueError):
  """The torch file's pickle names a global that a tensor state dict never needs."""


def container_format(raw: bytes) -> Literal["zip", "legacy"] | None:
  """The torch container ``raw`` would be by its first bytes: a zip archive, a bare pickle (the
  legacy format), or neither (``None``). A zip need not be a torch file (an ``.npz`` is one too)."""
  if raw.startswith(ZIP_MAGIC):
    return "zip"
  if raw.startswith(PICKLE_MAGIC):
    return "legacy"
  return None


def load_torch_state_dict(path: str, field: str = "") -> dict[str, np.ndarray]:
  """Reads a ``torch.save``d state dict (zip or legacy format) into numpy, without torch.

  Args:
    path: a local path or ``gs://`` (through :mod:`lim_jax.storage`).
    field: the config field ``path`` came from, named first in every error ('' = none).

  Raises:
    FileNotFoundError: no file at ``path``.
    ValueError: not a torch file, damaged or truncated, or it names another global
      (:class:`UnsafePickleError`).
  """
  where = _where(field, path)
  if path:
    storage.require_backend(path, field or "path")
  if not path or not storage.isfile(path):
    raise FileNotFoundError(f"{where}: no such file")
  return state_dict_from_bytes(storage.read_bytes(path), path, field)


def state_dict_from_bytes(raw: bytes, path: str, field: str = "") -> dict[str, np.ndarray]:
  """:func:`load_torch_state_dict` of a file's content ``raw`` (``path`` is only named in
  errors)."""
  where = _where(field, path)
  kind = container_format(raw)
  if kind == "zip":
    obj = _read_zip(raw, where)
  elif kind == "legacy":
    obj = _read_legacy(raw, where)
  else:
    raise ValueError(f"{where} is neither a zip archive nor a pickle (starts with {raw[:8]!r}); "
                     "not a torch.save file")
  if not isinstance(obj, dict) or not all(isinstance(k, str) for k in obj):
    raise ValueError(f"{where} holds a {type(obj).__name__}, not a state dict")
  return dict(obj)


def _where(field: str, path: str) -> str:
  return f"{field}: {path!r}" if field else repr(path)


# ----------------------------------------------------------------------------------------------
# What the pickle builds: storage references and tensors awaiting their data
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


def _rebuild_tensor_v2(storage_ref: _StorageRef, storage_offset: int, size: tuple[int, ...],
                       stride: tuple[int, ...], *unused: Any) -> _PendingTensor:
  """Stand-in for ``torch._utils._rebuild_tensor_v2``: records where the tensor's data lies."""
  del unused  # requires_grad, backward_hooks (and metadata in torch >= 2.0): irrelevant here
  return _PendingTensor(storage_ref, int(storage_offset), tuple(int(s) for s in size),
                        tuple(int(s) for s in stride))


def _rebuild_parameter(data: Any, *unused: Any) -> Any:
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

  def __init__(self, file: BinaryIO, where: str):
    super().__init__(file)
    self._where = where

  def find_class(self, module: str, name: str) -> Any:
    try:
      factory = _ALLOWED_GLOBALS[(module, name)]
    except KeyError:
      raise UnsafePickleError(
          f"{self._where} refers to the Python global {module}.{name}, which a tensor state dict "
          "never needs; refusing to load it (only collections.OrderedDict, "
          "torch._utils._rebuild_tensor_v2 / _rebuild_parameter and torch.*Storage are "
          "allowed).") from None
    return factory()

  def persistent_load(self, pid: Any) -> _StorageRef:
    if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"
            and isinstance(pid[1], _StorageType)):
      raise ValueError(f"{self._where} has an unsupported persistent id {pid!r:.200}")
    view = None
    if len(pid) == 6 and pid[5] is not None:
      view_key, view_offset, view_numel = pid[5]
      view = (str(view_key), int(view_offset), int(view_numel))
    return _StorageRef(str(pid[2]), pid[1].dtype, int(pid[4]), view)


def _unpickle(stream: BinaryIO, where: str) -> Any:
  try:
    return _RestrictedUnpickler(stream, where).load()
  except ValueError:
    raise
  except Exception as e:  # any corrupt pickle -> one clear error
    raise ValueError(f"{where} is not a readable torch state dict "
                     f"({type(e).__name__}: {e})") from e


# ----------------------------------------------------------------------------------------------
# Tensors from their storages
# ----------------------------------------------------------------------------------------------


def _materialize(obj: Any, storages: Mapping[str, np.ndarray], where: str) -> Any:
  """Replaces every :class:`_PendingTensor` in ``obj`` (dicts/lists/tuples) by a numpy array."""
  if isinstance(obj, _PendingTensor):
    ref = obj.storage
    if ref.key not in storages:
      raise ValueError(f"{where} has no data for storage {ref.key!r}")
    flat = storages[ref.key]
    if ref.view is not None:
      flat = flat[ref.view[1]:ref.view[1] + ref.view[2]]
    if any(s < 0 for s in obj.size) or any(s < 0 for s in obj.stride) or obj.offset < 0 \
        or len(obj.size) != len(obj.stride):
      raise ValueError(f"{where} has a tensor with an invalid layout "
                       f"(size {obj.size}, stride {obj.stride}, offset {obj.offset})")
    if math.prod(obj.size) == 0:
      return np.zeros(obj.size, flat.dtype)
    if math.prod(obj.size) > max(flat.size, 1 << 20):  # stride-0 blow-up of a tiny storage
      raise ValueError(f"{where} has a tensor of {math.prod(obj.size)} elements over a "
                       f"storage of {flat.size}")
    last = obj.offset + sum((n - 1) * s for n, s in zip(obj.size, obj.stride))
    if last >= flat.size:
      raise ValueError(f"{where} has a tensor reaching element {last} of a storage "
                       f"of {flat.size} elements (truncated file?)")
    view = np.lib.stride_tricks.as_strided(
        flat[obj.offset:], shape=obj.size,
        strides=tuple(s * flat.itemsize for s in obj.stride), writeable=False)
    return np.array(view)  # own, contiguous copy
  if isinstance(obj, dict):
    out = collections.OrderedDict() if isinstance(obj, collections.OrderedDict) else {}
    for k, v in obj.items():
      out[k] = _materialize(v, storages, where)
    return out
  if isinstance(obj, (list, tuple)):
    return type(obj)(_materialize(v, storages, where) for v in obj)
  return obj


def _collect_refs(obj: Any, refs: dict[str, _StorageRef]) -> None:
  if isinstance(obj, _PendingTensor):
    refs.setdefault(obj.storage.key, obj.storage)
  elif isinstance(obj, dict):
    for v in obj.values():
      _collect_refs(v, refs)
  elif isinstance(obj, (list, tuple)):
    for v in obj:
      _collect_refs(v, refs)


def _from_bytes(buf: bytes, dtype: np.dtype, count: int, big_endian: bool) -> np.ndarray:
  arr = np.frombuffer(buf, dtype.newbyteorder(">" if big_endian else "<"), count=count)
  return arr.astype(dtype.newbyteorder("="), copy=True)


# ----------------------------------------------------------------------------------------------
# The two containers
# ----------------------------------------------------------------------------------------------


def _read_zip(raw: bytes, where: str) -> Any:
  try:
    archive = zipfile.ZipFile(io.BytesIO(raw))
    names = archive.namelist()
  except (zipfile.BadZipFile, OSError, EOFError) as e:
    raise ValueError(f"{where} is a damaged zip archive ({e})") from e
  pkls = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
  if len(pkls) != 1:
    raise ValueError(f"{where} is a zip archive without exactly one data.pkl "
                     f"(found {pkls[:3]}); not a torch.save file")
  prefix = pkls[0][:-len("data.pkl")]
  try:
    obj = _unpickle(io.BytesIO(archive.read(pkls[0])), where)
    byteorder = "little"
    if prefix + "byteorder" in names:
      byteorder = archive.read(prefix + "byteorder").decode("ascii", "replace").strip()
    refs: dict[str, _StorageRef] = {}
    _collect_refs(obj, refs)
    storages = {}
    for key, ref in refs.items():
      name = f"{prefix}data/{key}"
      if name not in names:
        raise ValueError(f"{where} lacks the record {name!r}")
      buf = archive.read(name)
      if len(buf) < ref.numel * ref.dtype.itemsize:
        raise ValueError(f"{where} record {name!r} has {len(buf)} bytes, expected "
                         f"{ref.numel * ref.dtype.itemsize}")
      storages[key] = _from_bytes(buf, ref.dtype, ref.numel, byteorder == "big")
  except (zipfile.BadZipFile, OSError, EOFError, KeyError) as e:
    raise ValueError(f"{where} is a damaged zip archive ({e})") from e
  return _materialize(obj, storages, where)


def _read_legacy(raw: bytes, where: str) -> Any:
  stream = io.BytesIO(raw)
  magic = _unpickle(stream, where)
  if magic != _LEGACY_MAGIC:
    raise ValueError(f"{where} is a pickle but not a torch.save file "
                     f"(magic number {magic!r:.40})")
  protocol = _unpickle(stream, where)
  if protocol != _LEGACY_PROTOCOL:
    raise ValueError(f"{where} has torch legacy protocol {protocol!r}, "
                     f"expected {_LEGACY_PROTOCOL}")
  sys_info = _unpickle(stream, where)
  little = bool(sys_info.get("little_endian", True)) if isinstance(sys_info, dict) else True
  obj = _unpickle(stream, where)
  keys = _unpickle(stream, where)
  if not isinstance(keys, list):
    raise ValueError(f"{where} has no storage key list after the pickled object")
  refs: dict[str, _StorageRef] = {}
  _collect_refs(obj, refs)  # keyed by root storage key (a legacy view slices its root)
  storages = {}
  for key in keys:
    key = str(key)
    ref = refs.get(key)
    if ref is None:
      raise ValueError(f"{where} lists storage {key!r} that no tensor uses")
    header = stream.read(8)
    if len(header) != 8:
      raise ValueError(f"{where} ends before storage {key!r} (truncated file?)")
    (count,) = struct.unpack("<q" if little else ">q", header)
    if count != ref.numel:
      raise ValueError(f"{where} storage {key!r} holds {count} elements, the pickle "
                       f"says {ref.numel}")
    nbytes = count * ref.dtype.itemsize
    buf = stream.read(nbytes)
    if len(buf) != nbytes:
      raise ValueError(f"{where} ends inside storage {key!r} (truncated file?)")
    storages[key] = _from_bytes(buf, ref.dtype, count, not little)
  return _materialize(obj, storages, where)
