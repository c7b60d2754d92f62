"""The FID Inception weights: pytorch-fid's state dict <-> the variables of
:class:`lim_jax.metrics.inception.InceptionV3`.

Weights: the 2015-12-05 TF Inception ported by pytorch-fid,
``pt_inception-2015-12-05-6726825d.pth`` (:data:`WEIGHTS_URL`), read from ``eval.inception_path``
(a local path or ``gs://``) without torch and without running arbitrary pickle code
(:mod:`lim_jax.metrics.torch_pickle`), or an ``.npz`` of the same state dict (:func:`save_npz`).
The pytorch-fid weights file came with pytorch-fid commit f64228c (2019-05-27), a year before
torch 1.6 made zip the default, so it is in torch's legacy format.

Mapping (:func:`state_dict_to_variables`; key names as in :mod:`lim_jax.metrics.inception`):
conv kernels go from PyTorch ``OIHW`` to flax ``HWIO`` (``W.transpose(2, 3, 1, 0)``), BatchNorm's
``weight, bias, running_mean, running_var`` become ``scale, bias, mean, var``; the classifier
``fc`` (1008 x 2048) and the ``num_batches_tracked`` counters are checked and dropped. Every error
names ``eval.inception_path``.
"""

from __future__ import annotations

import functools
import hashlib
import io
import warnings
import zipfile
from typing import Any, Mapping

import numpy as np

from lim_jax import storage
from lim_jax.metrics import inception as inception_lib
from lim_jax.metrics import torch_pickle

WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
               "pt_inception-2015-12-05-6726825d.pth")
# torch.hub names a file ``<name>-<first 8+ hex digits of its SHA-256>.<ext>``.
WEIGHTS_SHA256_PREFIX = "6726825d"
_FIELD = "eval.inception_path"
# What to load instead, appended to the refusal of a pickle that names a foreign global.
_UNSAFE_HINT = "Use the pytorch-fid weights file or an .npz made by save_npz."
# State-dict entries that exist in the file but that pool3 features do not use.
_FC_SHAPES = {"fc.weight": (inception_lib.FC_CLASSES, inception_lib.FEATURE_DIM),
              "fc.bias": (inception_lib.FC_CLASSES,)}
_IGNORED_SUFFIX = ".num_batches_tracked"  # BatchNorm's step counter (torch >= 0.4.1)

Variables = dict[str, dict[str, Any]]  # {'params': ..., 'batch_stats': ...}


def load_inception_params(path: str) -> Variables:
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
  if _is_npz(raw, path):
    state_dict = _npz_state_dict_from_bytes(raw, path)
  else:
    state_dict = _torch_state_dict_from_bytes(raw, path)
    digest = hashlib.sha256(raw).hexdigest()
    if not digest.startswith(WEIGHTS_SHA256_PREFIX):
      warnings.warn(f"{_FIELD}: {path!r} has SHA-256 {digest[:16]}..., not the pytorch-fid "
                    f"release's {WEIGHTS_SHA256_PREFIX}...; FID values are comparable with "
                    "published ones only with those exact weights", stacklevel=2)
  return state_dict_to_variables(state_dict, path)


def load_npz_state_dict(path: str) -> dict[str, np.ndarray]:
  """An ``.npz`` state dict (pytorch-fid key names), read with ``allow_pickle=False``."""
  return _npz_state_dict_from_bytes(_read_bytes(path), path)


def save_npz(state_dict: Mapping[str, Any], path: str) -> None:
  """Writes a state dict (str -> array) as an uncompressed ``.npz``, atomically
  (:func:`lim_jax.storage.save_npz`: local or ``gs://``)."""
  storage.save_npz(path, **{k: np.asarray(v) for k, v in state_dict.items()})


def expected_state_dict_shapes() -> dict[str, tuple[int, ...]]:
  """The pytorch-fid key names and PyTorch shapes that the flax module needs (no fc)."""
  return {key: shape for _, _, key, shape, _ in _layout()}


def state_dict_to_variables(state_dict: Mapping[str, Any],
                            path: str = "<state dict>") -> Variables:
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
  variables: Variables = {"params": {}, "batch_stats": {}}
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


# ----------------------------------------------------------------------------------------------
# Reading eval.inception_path
# ----------------------------------------------------------------------------------------------


def _read_bytes(path: str) -> bytes:
  """The file at ``path``: a local path or ``gs://`` (through :mod:`lim_jax.storage`)."""
  if path:
    storage.require_backend(path, _FIELD)
  if not path or not storage.isfile(path):
    raise FileNotFoundError(
        f"{_FIELD} = {path!r}: no such file. FID needs the Inception weights of pytorch-fid: "
        f"download {WEIGHTS_URL} (or an .npz written by "
        f"lim_jax.metrics.inception_weights.save_npz) and set {_FIELD} to its path")
  return storage.read_bytes(path)


def _is_npz(raw: bytes, path: str) -> bool:
  """Whether ``raw`` is a zip archive of ``.npy`` members only (a torch zip has a data.pkl)."""
  if torch_pickle.container_format(raw) != "zip":
    return False
  try:
    names = zipfile.ZipFile(io.BytesIO(raw)).namelist()
  except (zipfile.BadZipFile, OSError, EOFError) as e:
    raise ValueError(f"{_FIELD}: {path!r} is a damaged zip archive ({e})") from e
  return bool(names) and all(n.endswith(".npy") for n in names)


def _torch_state_dict_from_bytes(raw: bytes, path: str) -> dict[str, np.ndarray]:
  if torch_pickle.container_format(raw) is None:
    raise ValueError(f"{_FIELD}: {path!r} is neither a zip archive nor a pickle "
                     f"(starts with {raw[:8]!r}); expected the pytorch-fid .pth or an .npz")
  try:
    return torch_pickle.state_dict_from_bytes(raw, path, _FIELD)
  except torch_pickle.UnsafePickleError as e:
    raise torch_pickle.UnsafePickleError(f"{e} {_UNSAFE_HINT}") from None


def _npz_state_dict_from_bytes(raw: bytes, path: str) -> dict[str, np.ndarray]:
  try:
    with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
      return {k: npz[k] for k in npz.files}
  except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
    raise ValueError(f"{_FIELD}: {path!r} is not a readable .npz ({e})") from e


# ----------------------------------------------------------------------------------------------
# The layout of the flax variables
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


def _flatten(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
  out = {}
  for k, v in tree.items():
    if isinstance(v, Mapping):
      out.update(_flatten(v, prefix + (k,)))
    else:
      out[prefix + (k,)] = v
  return out
