"""Workdir paths on a local disk or on Cloud Storage (``gs://``), through ``etils.epath``.

``epath`` is the path type Orbax itself uses; ``gs://`` paths go through ``gcsfs`` (the optional
extra ``gcs``: ``pip install 'lim_jax[gcs]'``). Everything lim_jax writes outside a checkpoint goes
through the helpers below, which keep one promise on both kinds of storage: a reader never sees half
a file.

* :func:`write_bytes` / :func:`write_text` / :func:`save_npz`: a local file is written under a
  temporary name in the same directory and renamed over the target (``os.replace`` is atomic on
  POSIX); an object is uploaded in one request, and Cloud Storage makes an object visible whole or
  not at all (there is no rename on object storage, and none is needed).
* :func:`copy_tree` / :func:`remove_tree`: the copy + delete that replaces a rename on object
  storage (the checkpoint quarantine decides the order that keeps it safe).
* :func:`probe_writable`: proves a directory (or bucket prefix) writable before anything compiles,
  and turns every way of failing (no ``gcs`` extra, missing bucket, no credentials, unreachable
  endpoint) into one ``ValueError`` naming the flag.

Two ``gcsfs`` settings are made here, before ``gcsfs`` is imported (each only as a default that an
environment variable of the same name overrides):

* ``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false``: recent gcsfs first asks the Storage Control API over
  gRPC for a bucket's layout (zonal / hierarchical), which lim_jax never needs (it writes whole
  objects); where that API cannot be reached (an emulator, a restricted network) each call waits
  for a timeout, and an answer of "unknown" is not cached, so every call would wait again.
* ``use_listings_cache=False`` for the ``gcs`` protocol: gcsfs caches directory listings per
  process, but checkpoints are written by tensorstore (and by the other hosts of a pod), which the
  cache never hears of; a stale listing would hide a checkpoint that exists.
"""

from __future__ import annotations

import importlib
import io
import os
import uuid
from typing import Any

import fsspec
import fsspec.config
import numpy as np
from etils import epath

# gcsfs is imported lazily (by fsspec, on the first gs:// path), so these defaults come first.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
fsspec.config.conf.setdefault("gcs", {}).setdefault("use_listings_cache", False)

GCS_EXTRA_HINT = "pip install 'lim_jax[gcs]' (gcsfs)"


def is_remote(path: str | os.PathLike) -> bool:
  """Whether ``path`` is a URL (``gs://bucket/...``) rather than a local path."""
  return "://" in os.fspath(path)


def require_backend(path: str | os.PathLike, field: str) -> None:
  """Refuses a path lim_jax cannot reach: an unsupported scheme, or ``gs://`` without gcsfs.

  Raises:
    ValueError: naming ``field``.
  """
  text = os.fspath(path)
  if not is_remote(text):
    return
  if not text.startswith("gs://"):
    raise ValueError(f"{field} {text!r}: unsupported scheme; use a local path or gs://BUCKET/...")
  if not text[len("gs://"):].split("/")[0]:
    raise ValueError(f"{field} {text!r}: no bucket name (expected gs://BUCKET/...)")
  try:
    importlib.import_module("gcsfs")
  except ImportError as e:
    raise ValueError(f"{field} {text!r}: gs:// paths need the optional gcs extra: "
                     f"{GCS_EXTRA_HINT} ({e})") from None


def as_path(path: str | os.PathLike) -> epath.Path:
  """``epath.Path`` of ``path``; local paths are made absolute (what Orbax expects)."""
  text = os.fspath(path)
  return epath.Path(text if is_remote(text) else os.path.abspath(text))


def describe_error(e: BaseException) -> str:
  """One line for a storage failure, with the likely cause for the usual Cloud Storage errors."""
  first = (str(e).strip().splitlines() or [""])[0]
  if len(first) > 300:  # keep the end too: that is where the OS reason ("No space left ...") is
    first = f"{first[:200]} ... {first[-100:]}"
  if type(e) is OSError and e.errno and first.startswith("[Errno"):
    text = first  # a bare OSError's "[Errno 30] Read-only file system: '...'" names the kind
  else:
    text = f"{type(e).__name__}: {first}" if first else type(e).__name__
  low = text.lower()
  code = getattr(e, "code", None)
  if code in (401, 403) or any(w in low for w in ("forbidden", "unauthorized", "credential",
                                                  "anonymous caller", "permission")):
    text += (" (missing or insufficient credentials: run `gcloud auth application-default "
             "login`, or give the VM's service account access to the bucket)")
  elif isinstance(e, FileNotFoundError):
    text += " (does the bucket exist?)"
  elif isinstance(e, (ConnectionError, TimeoutError)) or "connect" in low:
    text += " (the storage endpoint cannot be reached)"
  return text


def probe_writable(path: str | os.PathLike, field: str) -> None:
  """Creates ``path`` (a local directory; nothing on object storage, which has no directories) and
  writes and deletes one probe file in it, so that a workdir that cannot be written fails before
  anything compiles.

  Buckets are never created: a missing bucket is an error here (``gcsfs``'s ``makedirs`` would
  create one).

  Raises:
    ValueError: ``f"{field} {path!r} is not a writable directory: <reason>"``.
  """
  require_backend(path, field)
  p = as_path(path)
  try:
    if not is_remote(path):
      p.mkdir(parents=True, exist_ok=True)
    probe = p / f".write_probe_{uuid.uuid4().hex}"
    probe.write_bytes(b"")
    probe.unlink()
  except Exception as e:  # any client failure (auth, network, bucket) becomes the one line
    raise ValueError(f"{field} {os.fspath(path)!r} is not a writable directory: "
                     f"{describe_error(e)}") from e


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
  """Writes ``data`` to ``path`` so that a reader sees the old content or the new, never half.

  Local: parents created, then a temporary file in the same directory renamed over ``path``.
  Object storage: one upload (visible whole or not at all).
  """
  p = as_path(path)
  if is_remote(path):
    p.write_bytes(data)
    return
  p.parent.mkdir(parents=True, exist_ok=True)
  tmp = p.parent / f".{p.name}.tmp{os.getpid()}"
  try:
    tmp.write_bytes(data)
    os.replace(tmp, p)
  finally:
    if tmp.exists():
      tmp.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
  """UTF-8 ``text`` to ``path`` with :func:`write_bytes`."""
  write_bytes(path, text.encode("utf-8"))


def read_bytes(path: str | os.PathLike) -> bytes:
  return as_path(path).read_bytes()


def isfile(path: str | os.PathLike) -> bool:
  return as_path(path).is_file()


def save_npz(path: str | os.PathLike, **arrays: Any) -> None:
  """``np.savez`` into memory, then :func:`write_bytes` (the name is kept as given)."""
  buf = io.BytesIO()
  np.savez(buf, **arrays)
  write_bytes(path, buf.getvalue())


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """All arrays of the ``.npz`` at ``path`` (``allow_pickle=False``)."""
  with np.load(io.BytesIO(read_bytes(path)), allow_pickle=False) as npz:
    return {k: np.asarray(npz[k]) for k in npz.files}


def files_under(root: epath.Path) -> list[epath.Path]:
  """Every file below ``root``, sorted.

  ``epath`` refuses a recursive glob on ``gs://``, and its ``walk`` yields ``gs://`` directories
  without the scheme (etils 1.15), so each one is rebuilt from ``root`` and its relative part.
  """
  root_text = os.fspath(root)
  bare = root_text.split("://", 1)[1] if is_remote(root_text) else root_text
  out = []
  for directory, _, names in root.walk():
    rel = os.path.relpath(os.fspath(directory).split("://", 1)[-1], bare)
    base = root if rel == "." else root / rel
    out.extend(base / n for n in names)
  return sorted(out)


def copy_tree(src: epath.Path, dst: epath.Path) -> int:
  """Copies every file below ``src`` to the same relative place below ``dst``; returns the count.

  On Cloud Storage each object is copied by the service (gcsfs ``copy``: no download).
  """
  files = files_under(src)
  for f in files:
    target = dst / os.path.relpath(os.fspath(f), os.fspath(src))
    if is_remote(os.fspath(target)):
      fsspec.filesystem("gcs").copy(os.fspath(f), os.fspath(target))
    else:
      target.parent.mkdir(parents=True, exist_ok=True)
      f.copy(target, overwrite=True)
  return len(files)


def remove_tree(path: epath.Path) -> None:
  if path.exists():
    path.rmtree()
