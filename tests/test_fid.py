"""Tests for the FID pipeline: Fréchet distance, Inception-v3 module, torch/npz weight loading.

The real pytorch-fid weights cannot be downloaded here, so the loader is tested on a synthetic
state dict with the real key names and shapes (random values), written by minimal torch-format
writers below in both the zip layout and the legacy layout (the one the real 2019 file uses).
A 299x299 Inception forward costs about a second per image on CPU, so the network runs on 2-image
batches from one module-scoped fixture.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import os
import pickle
import struct
import sys
import types
import warnings
import zipfile

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from lim_jax.metrics import fid, inception, inception_features, inception_weights, torch_pickle

# ------------------------------------------------------------------------------------------------
# Independent references
# ------------------------------------------------------------------------------------------------


def _reference_fid(mu1, s1, mu2, s2) -> float:
  """FID with tr((S1 S2)^(1/2)) = sum sqrt(eig(S1^(1/2) S2 S1^(1/2))): symmetric eigh, no sqrtm."""
  w, v = np.linalg.eigh(s1)
  root = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
  m = root @ s2 @ root
  ev = np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0.0, None)
  diff = mu1 - mu2
  return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.sum(np.sqrt(ev)))


def _random_stats(rng, d, rank):
  a = rng.standard_normal((d, rank))
  b = rng.standard_normal((d, rank)) + 0.3 * a
  return rng.standard_normal(d), a @ a.T / rank, rng.standard_normal(d), b @ b.T / rank


def _numpy_basic_conv(x, weight, gamma, beta, mean, var, stride, padding):
  """PyTorch BasicConv2d in float64 numpy: cross-correlation with an OIHW kernel, BN, ReLU."""
  ph, pw = padding
  xp = np.pad(np.asarray(x, np.float64), ((0, 0), (ph, ph), (pw, pw), (0, 0)))
  o, _, kh, kw = weight.shape
  ho = (xp.shape[1] - kh) // stride + 1
  wo = (xp.shape[2] - kw) // stride + 1
  out = np.zeros((x.shape[0], ho, wo, o))
  for dy in range(kh):
    for dx in range(kw):
      patch = xp[:, dy:dy + stride * (ho - 1) + 1:stride, dx:dx + stride * (wo - 1) + 1:stride]
      out += np.einsum("nhwi,oi->nhwo", patch, weight[:, :, dy, dx].astype(np.float64))
  out = (out - mean) / np.sqrt(var.astype(np.float64) + 1e-3) * gamma + beta
  return np.maximum(out, 0.0)


# ------------------------------------------------------------------------------------------------
# Fréchet distance and statistics
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("d,rank", [(16, 32), (64, 128), (16, 8), (64, 32), (64, 8)])
def test_frechet_distance_matches_eigh_reference(d, rank):
  """Reference: :func:`_reference_fid` (symmetric eigendecompositions, no scipy sqrtm).

  Full rank (rank > d): rtol 1e-10 (both are backward-stable float64 computations). Rank
  deficient (rank < d, S1 S2 singular): rtol 1e-6, since a square root loses half the digits
  along zero eigenvalues (~sqrt(eps) = 1.5e-8 per direction, measured ~6e-9 relative).
  """
  rng = np.random.default_rng(d * 1000 + rank)
  mu1, s1, mu2, s2 = _random_stats(rng, d, rank)
  rtol = 1e-10 if rank > d else 1e-6
  np.testing.assert_allclose(fid.frechet_distance(mu1, s1, mu2, s2),
                             _reference_fid(mu1, s1, mu2, s2), rtol=rtol)


@pytest.mark.parametrize("rank", [128, 16])
def test_frechet_distance_identical_statistics_is_zero(rank):
  """Closed form: FID(P, P) = 0. Tolerance 1e-9 x tr(S) full rank, 1e-6 x tr(S) rank 16 < 64."""
  rng = np.random.default_rng(1)
  mu, s, _, _ = _random_stats(rng, 64, rank)
  tol = (1e-9 if rank > 64 else 1e-6) * np.trace(s)
  assert abs(fid.frechet_distance(mu, s, mu, s)) < tol


def test_frechet_distance_one_dimensional_closed_form():
  """Closed form for 1-D Gaussians: W2^2 = (m1 - m2)^2 + (s1 - s2)^2; rtol 1e-12 (float64)."""
  for m1, sd1, m2, sd2 in [(0.3, 1.7, -1.1, 0.4), (2.0, 1.0, 2.0, 3.0), (0.0, 1e-3, 1.0, 1.0)]:
    got = fid.frechet_distance(np.array([m1]), np.array([[sd1**2]]), np.array([m2]),
                               np.array([[sd2**2]]))
    np.testing.assert_allclose(got, (m1 - m2) ** 2 + (sd1 - sd2) ** 2, rtol=1e-12)
  # Scalars are accepted as 1-D statistics.
  np.testing.assert_allclose(fid.frechet_distance(1.0, 4.0, 0.0, 1.0), 1.0 + 1.0, rtol=1e-12)


def test_frechet_distance_eps_fallback_and_imaginary_part(monkeypatch):
  """Fallback: when sqrtm returns NaN, it is called again on (S1 + eps I)(S2 + eps I).

  Reference: the product formed in the test. Then a non-PSD pair (S1 = diag(-1, 1)) whose sqrtm
  has a unit imaginary diagonal must raise instead of silently dropping it.
  """
  rng = np.random.default_rng(2)
  mu1, s1, mu2, s2 = _random_stats(rng, 8, 16)
  real_sqrtm = scipy.linalg.sqrtm
  calls = []

  def flaky_sqrtm(a):
    calls.append(np.array(a))
    return np.full_like(a, np.nan) if len(calls) == 1 else real_sqrtm(a)

  monkeypatch.setattr(scipy.linalg, "sqrtm", flaky_sqrtm)
  eps = 1e-3
  got = fid.frechet_distance(mu1, s1, mu2, s2, eps=eps)
  assert len(calls) == 2
  np.testing.assert_allclose(calls[1], (s1 + eps * np.eye(8)) @ (s2 + eps * np.eye(8)),
                             rtol=1e-14)
  assert np.isfinite(got)
  monkeypatch.setattr(scipy.linalg, "sqrtm", real_sqrtm)
  with pytest.raises(ValueError, match="imaginary"):
    fid.frechet_distance(np.zeros(2), np.diag([-1.0, 1.0]), np.zeros(2), np.eye(2))


def test_statistics_float64_warns_below_dimension_and_shape_errors():
  """Reference: mean and sum (x - mu)(x - mu)^T / (N - 1) written out in numpy; rtol 1e-12.

  N = 10 < d = 16 must warn (singular covariance); N = 40 must not. Mismatched shapes raise.
  """
  rng = np.random.default_rng(3)
  x = rng.standard_normal((40, 16)).astype(np.float32)
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    mu, sigma = fid.statistics(x)
  assert mu.dtype == np.float64 and sigma.dtype == np.float64
  xc = x.astype(np.float64) - x.astype(np.float64).mean(0)
  np.testing.assert_allclose(mu, x.astype(np.float64).mean(0), rtol=1e-12)
  np.testing.assert_allclose(sigma, xc.T @ xc / 39, rtol=1e-12)
  with pytest.warns(UserWarning, match="singular"):
    fid.statistics(x[:10])
  with pytest.raises(ValueError):
    fid.statistics(x[:1])
  with pytest.raises(ValueError, match="shapes differ"):
    fid.frechet_distance(mu, sigma, mu[:8], sigma[:8, :8])
  with pytest.raises(ValueError, match="shapes differ"):
    fid.fid_from_features(x, x[:, :8])
  with pytest.raises(ValueError, match="image shapes differ"):
    fid.fid_from_images(lambda im: im.reshape(len(im), -1), np.zeros((4, 8, 8, 3), np.uint8),
                        np.zeros((4, 16, 16, 3), np.uint8))


def test_reference_statistics_cache(tmp_path):
  """compute() runs once; the second call reads the npz (exact float64 round trip), no temp file
  is left, and a corrupt cache raises ValueError saying to delete it."""
  path = str(tmp_path / "sub" / "ref_stats.npz")
  calls = []

  def compute():
    calls.append(1)
    rng = np.random.default_rng(4)
    return rng.standard_normal(5), np.eye(5) * 2.0

  mu1, s1 = fid.reference_statistics(path, compute)
  mu2, s2 = fid.reference_statistics(path, compute)
  assert len(calls) == 1
  np.testing.assert_array_equal(mu1, mu2)
  np.testing.assert_array_equal(s1, s2)
  assert os.listdir(tmp_path / "sub") == ["ref_stats.npz"]
  with open(path, "wb") as f:
    f.write(b"not an npz")
  with pytest.raises(ValueError, match="delete it"):
    fid.reference_statistics(path, compute)


# ------------------------------------------------------------------------------------------------
# Network pieces
# ------------------------------------------------------------------------------------------------


def test_pooling_matches_brute_force():
  """Reference: explicit numpy loops over 3x3 windows.

  avg pool excludes the padding from the count (corner = mean of 4 taps); max pool with
  -inf padding; stride-2 VALID max pool. Tolerance 1e-6 (float32 sums of 9 values ~ N(0, 1)).
  """
  rng = np.random.default_rng(5)
  x = rng.standard_normal((2, 7, 6, 3)).astype(np.float32)
  avg, mx = np.zeros_like(x), np.zeros_like(x)
  for i in range(7):
    for j in range(6):
      win = x[:, max(i - 1, 0):i + 2, max(j - 1, 0):j + 2]
      avg[:, i, j] = win.mean(axis=(1, 2))
      mx[:, i, j] = win.max(axis=(1, 2))
  mx2 = np.stack([np.stack([x[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3].max(axis=(1, 2))
                            for j in range(2)], 1) for i in range(3)], 1)
  np.testing.assert_allclose(inception.avg_pool_3x3_exclude_pad(jnp.asarray(x)), avg, atol=1e-6)
  np.testing.assert_allclose(inception.max_pool_3x3_same(jnp.asarray(x)), mx, atol=1e-6)
  np.testing.assert_allclose(inception.max_pool_3x3_stride2(jnp.asarray(x)), mx2, atol=1e-6)


def test_parameter_count_and_key_shapes_match_torchvision():
  """Reference: torchvision's published ``num_params`` of ``inception_v3`` = 27,161,264.

  That model has the AuxLogits head (conv0 768->128 1x1 + BN, conv1 128->768 5x5 + BN, fc
  768->1000) and a 2048->1000 fc; removing them leaves the conv + BN-affine parameters that FID
  uses, which must be what our key list holds. Spot-checked shapes are read off torchvision's
  ``Inception3`` / ``InceptionC`` / ``InceptionE`` definitions.
  """
  shapes = inception_weights.expected_state_dict_shapes()
  aux = (768 * 128 + 2 * 128) + (128 * 768 * 25 + 2 * 768) + (768 * 1000 + 1000)
  fc1000 = 2048 * 1000 + 1000
  params = sum(int(np.prod(s)) for k, s in shapes.items() if not k.endswith(("running_mean",
                                                                            "running_var")))
  assert params == 27161264 - aux - fc1000 == 21785568
  assert len(shapes) == 94 * 5  # 94 BasicConv2d: conv.weight + bn.{weight, bias, mean, var}
  assert shapes["Conv2d_1a_3x3.conv.weight"] == (32, 3, 3, 3)
  assert shapes["Conv2d_4a_3x3.bn.running_var"] == (192,)
  assert shapes["Mixed_5b.branch_pool.conv.weight"] == (32, 192, 1, 1)
  assert shapes["Mixed_6b.branch7x7_2.conv.weight"] == (128, 128, 1, 7)
  assert shapes["Mixed_6e.branch7x7dbl_2.conv.weight"] == (192, 192, 7, 1)
  assert shapes["Mixed_7a.branch3x3_2.conv.weight"] == (320, 192, 3, 3)
  assert shapes["Mixed_7c.branch3x3dbl_1.conv.weight"] == (448, 2048, 1, 1)
  assert shapes["Mixed_7c.branch_pool.conv.weight"] == (192, 2048, 1, 1)


def test_preprocess_matches_pil_bicubic_and_input_conventions():
  """Reference: PIL ``Image.resize(BICUBIC)`` of each channel as a float 'F' image (clean-fid).

  Up- (32 -> 299) and down-sampling (400 -> 299, antialiased): |diff| <= 0.02 on the [0, 255]
  scale (float32 rounding; measured <= 0.008), i.e. 1.6e-4 after mapping to [-1, 1]. Also:
  uint8 x and float x / 127.5 - 1 give the same input; one channel equals it repeated to three.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(6)
  for size in (32, 400):
    img = rng.integers(0, 256, (1, size, size, 3), dtype=np.uint8)
    got = np.asarray(inception_features.preprocess(jnp.asarray(img)))
    assert got.shape == (1, 299, 299, 3)
    ref = np.stack([np.asarray(Image.fromarray(img[0, :, :, c].astype(np.float32), mode="F")
                               .resize((299, 299), resample=Image.BICUBIC)) for c in range(3)], -1)
    ref = np.clip(ref, 0, 255) / 127.5 - 1.0
    np.testing.assert_allclose(got[0], ref, atol=0.02 / 127.5)
  img = rng.integers(0, 256, (2, 16, 16, 1), dtype=np.uint8)
  as_float = img.astype(np.float32) / 127.5 - 1.0
  preprocess = inception_features.preprocess
  np.testing.assert_allclose(preprocess(jnp.asarray(img)), preprocess(jnp.asarray(as_float)),
                             atol=1e-5)
  np.testing.assert_allclose(preprocess(jnp.asarray(img)),
                             preprocess(jnp.asarray(np.repeat(img, 3, -1))), atol=0)


# ------------------------------------------------------------------------------------------------
# Synthetic weights and the two torch writers
# ------------------------------------------------------------------------------------------------

_MAGIC = 0x1950a86a20f9469cfc6c


@contextlib.contextmanager
def _fake_torch():
  """Installs stand-in ``torch`` / ``torch._utils`` modules so pickle can name their globals.

  pickle writes a global as ``module\\nname`` after checking it can import it back, exactly as
  torch's own pickles reference ``torch.FloatStorage`` and ``torch._utils._rebuild_tensor_v2``.
  """
  torch_mod, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

  def _rebuild_tensor_v2(*args):
    raise AssertionError("never called")

  _rebuild_tensor_v2.__module__ = "torch._utils"
  _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
  utils._rebuild_tensor_v2 = _rebuild_tensor_v2
  torch_mod._utils = utils
  for name in ("FloatStorage", "LongStorage"):
    setattr(torch_mod, name, type(name, (), {"__module__": "torch"}))
  saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
  sys.modules["torch"], sys.modules["torch._utils"] = torch_mod, utils
  try:
    yield torch_mod
  finally:
    for k, v in saved.items():
      if v is None:
        sys.modules.pop(k, None)
      else:
        sys.modules[k] = v


@dataclasses.dataclass(eq=False)
class _Storage:
  key: str
  data: np.ndarray  # flat


class _Tensor:
  """Pickles as torch does: ``_rebuild_tensor_v2(storage, offset, size, stride, False, {})``."""

  def __init__(self, rebuild, storage, offset, shape, stride):
    self.args = (storage, offset, tuple(shape), tuple(stride), False, collections.OrderedDict())
    self.rebuild = rebuild

  def __reduce__(self):
    return self.rebuild, self.args


def _torch_pickle(obj, torch_mod, legacy: bool) -> bytes:
  import io  # pylint: disable=g-import-not-at-top

  class Pickler(pickle.Pickler):

    def persistent_id(self, o):
      if not isinstance(o, _Storage):
        return None
      kind = torch_mod.FloatStorage if o.data.dtype == np.float32 else torch_mod.LongStorage
      pid = ("storage", kind, o.key, "cpu", o.data.size)
      return pid + (None,) if legacy else pid

  buf = io.BytesIO()
  Pickler(buf, protocol=2).dump(obj)
  return buf.getvalue()


def _write_torch_file(path, state_dict, legacy: bool) -> None:
  """Minimal ``torch.save`` of a state dict (layouts: torch_pickle.py).

  Exercised layouts: contiguous tensors; one channels-last conv kernel (permuted strides);
  each BN's running mean and var sharing one storage (second at a non-zero offset); int64 0-d
  ``num_batches_tracked``. Legacy storage keys have mixed lengths so their sorted (write) order
  differs from the pickle order.
  """
  rng = np.random.default_rng(7)
  with _fake_torch() as torch_mod:
    rebuild = torch_mod._utils._rebuild_tensor_v2
    storages: list[_Storage] = []

    def new_storage(data):
      key = str(len(storages))
      if legacy:  # torch uses str(storage._cdata): big integers of varying length
        key = str(int(rng.integers(1, 10**int(rng.integers(3, 12)))))
      while any(s.key == key for s in storages):
        key += "7"
      storages.append(_Storage(key, np.ascontiguousarray(data).ravel()))
      return storages[-1]

    entries = collections.OrderedDict()
    for key, value in state_dict.items():
      value = np.asarray(value)
      contiguous_strides = tuple(s // value.itemsize for s in value.strides)
      if key == "Conv2d_1a_3x3.conv.weight":  # channels_last memory: (O, H, W, I) contiguous
        o, i, h, w = value.shape
        entries[key] = _Tensor(rebuild, new_storage(value.transpose(0, 2, 3, 1)), 0,
                               value.shape, (h * w * i, 1, w * i, i))
      elif key.endswith("running_mean"):
        var_key = key.replace("running_mean", "running_var")
        shared = new_storage(np.concatenate([value, state_dict[var_key]]))
        entries[key] = _Tensor(rebuild, shared, 0, value.shape, (1,))
        entries[var_key] = _Tensor(rebuild, shared, value.size, value.shape, (1,))
      elif key.endswith("running_var"):
        continue
      else:
        entries[key] = _Tensor(rebuild, new_storage(value), 0, value.shape, contiguous_strides)
    entries._metadata = collections.OrderedDict([("", {"version": 1})])
    payload = _torch_pickle(entries, torch_mod, legacy)
  if legacy:
    with open(path, "wb") as f:
      for item in (_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True,
                                  "type_sizes": {"short": 2, "int": 4, "long": 8}}):
        pickle.dump(item, f, protocol=2)
      f.write(payload)
      keys = sorted(s.key for s in storages)
      pickle.dump(keys, f, protocol=2)
      by_key = {s.key: s for s in storages}
      for k in keys:
        f.write(struct.pack("<q", by_key[k].data.size))
        f.write(by_key[k].data.astype(by_key[k].data.dtype.newbyteorder("<")).tobytes())
  else:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
      z.writestr("archive/data.pkl", payload)
      z.writestr("archive/byteorder", "little")
      for s in storages:
        z.writestr(f"archive/data/{s.key}", s.data.astype(s.data.dtype.newbyteorder("<")).tobytes())
      z.writestr("archive/version", "3\n")


def _synthetic_state_dict(seed=0) -> dict[str, np.ndarray]:
  """Real key names and shapes (plus fc and num_batches_tracked); He-scaled random conv weights."""
  rng = np.random.default_rng(seed)
  sd = {}
  for key, shape in inception_weights.expected_state_dict_shapes().items():
    if key.endswith("conv.weight"):
      scale = np.sqrt(2.0 / np.prod(shape[1:]))
      sd[key] = (rng.standard_normal(shape, dtype=np.float32) * scale).astype(np.float32)
    elif key.endswith(("bn.weight", "running_var")):
      sd[key] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
    else:
      sd[key] = (0.1 * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)
    if key.endswith("running_var"):
      sd[key.replace("running_var", "num_batches_tracked")] = np.array(0, np.int64)
  sd["fc.weight"] = rng.standard_normal((1008, 2048), dtype=np.float32) * 0.02
  sd["fc.bias"] = np.zeros(1008, np.float32)
  return sd


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
  """The synthetic state dict written as npz, torch zip and torch legacy, and loaded back."""
  root = tmp_path_factory.mktemp("inception")
  sd = _synthetic_state_dict()
  paths = {"npz": str(root / "w.npz"), "zip": str(root / "w_zip.pth"),
           "legacy": str(root / "w_legacy.pth")}
  inception_weights.save_npz(sd, paths["npz"])
  _write_torch_file(paths["zip"], sd, legacy=False)
  _write_torch_file(paths["legacy"], sd, legacy=True)
  loaded = {"npz": inception_weights.load_inception_params(paths["npz"])}
  for fmt in ("zip", "legacy"):  # random weights: not the release's SHA-256
    with pytest.warns(UserWarning, match="SHA-256"):
      loaded[fmt] = inception_weights.load_inception_params(paths[fmt])
  return {"state_dict": sd, "paths": paths, "variables": loaded, "root": root}


def _flat(tree, prefix=""):
  out = {}
  for k, v in tree.items():
    out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k: v})
  return out


def test_loaders_round_trip_all_formats(weights):
  """Reference: the original arrays; flax kernels must equal OIHW.transpose(2, 3, 1, 0) exactly.

  Every format (npz, torch zip, torch legacy) yields bit-identical variables; the raw torch
  readers return every key (including fc and the int64 0-d counters) bit-exactly.
  """
  sd = weights["state_dict"]
  for fmt in ("zip", "legacy"):
    raw = torch_pickle.load_torch_state_dict(weights["paths"][fmt])
    assert set(raw) == set(sd)
    for key, value in sd.items():
      assert raw[key].dtype == value.dtype and raw[key].shape == value.shape, key
      np.testing.assert_array_equal(raw[key], value, err_msg=f"{fmt} {key}")
  v = weights["variables"]["npz"]
  np.testing.assert_array_equal(v["params"]["Conv2d_1a_3x3"]["conv"]["kernel"],
                                sd["Conv2d_1a_3x3.conv.weight"].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(v["params"]["Mixed_6b"]["branch7x7_2"]["conv"]["kernel"],
                                sd["Mixed_6b.branch7x7_2.conv.weight"].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(v["params"]["Mixed_7c"]["branch_pool"]["bn"]["scale"],
                                sd["Mixed_7c.branch_pool.bn.weight"])
  np.testing.assert_array_equal(v["batch_stats"]["Mixed_5b"]["branch1x1"]["bn"]["var"],
                                sd["Mixed_5b.branch1x1.bn.running_var"])
  flat = {fmt: _flat(weights["variables"][fmt]) for fmt in ("npz", "zip", "legacy")}
  assert len(flat["npz"]) == 94 * 5
  for fmt in ("zip", "legacy"):
    assert flat[fmt].keys() == flat["npz"].keys()
    for k in flat["npz"]:
      np.testing.assert_array_equal(flat[fmt][k], flat["npz"][k], err_msg=f"{fmt} {k}")


@pytest.mark.parametrize("layer,kernel,stride,padding", [
    ("Mixed_6b.branch7x7_2", (1, 7), 1, (0, 3)),
    ("Mixed_6b.branch7x7_3", (7, 1), 1, (3, 0)),
    ("Conv2d_1a_3x3", (3, 3), 2, (0, 0)),
])
def test_loaded_conv_layer_matches_numpy_pytorch_convention(weights, layer, kernel, stride,
                                                            padding):
  """Reference: :func:`_numpy_basic_conv` (float64 numpy, PyTorch NCHW semantics on OIHW data).

  Runs one BasicConv2d with the *loaded* (transposed) variables of ``layer`` against the
  original state-dict tensors, so a wrong OIHW -> HWIO transpose or a swapped (1, 7)/(7, 1)
  kernel fails. Tolerance 1e-4 absolute (float32 sums of <= 1344 products of O(1) terms).
  """
  sd = weights["state_dict"]
  v = weights["variables"]["legacy"]
  node_p, node_b = v["params"], v["batch_stats"]
  for part in layer.split("."):
    node_p, node_b = node_p[part], node_b[part]
  w = sd[f"{layer}.conv.weight"]
  x = np.random.default_rng(8).standard_normal((2, 9, 11, w.shape[1])).astype(np.float32)
  module = inception.BasicConv2d(w.shape[0], kernel, stride, padding)
  got = module.apply({"params": node_p, "batch_stats": node_b}, jnp.asarray(x))
  ref = _numpy_basic_conv(x, w, sd[f"{layer}.bn.weight"], sd[f"{layer}.bn.bias"],
                          sd[f"{layer}.bn.running_mean"], sd[f"{layer}.bn.running_var"], stride,
                          padding)
  assert got.shape == ref.shape
  np.testing.assert_allclose(got, ref, atol=1e-4)


# PyTorch reference features for the synthetic weights (``_synthetic_state_dict(0)``) and the two
# images of the forward test below, computed offline in float64 by torchvision 0.29's
# ``Inception3(num_classes=1008, aux_logits=False)`` with the FID patches (A/C/E avg pools with
# count_include_pad=False, Mixed_7c max pool) on our preprocessed 299x299 input, i.e. pytorch-fid's
# network. Two channels per branch of Mixed_7c (1x1 | 3x3 a, b | 3x3dbl a, b | pool) + row sums.
_GOLDEN_INDEX = [0, 160, 320, 500, 704, 893, 1088, 1281, 1472, 1672, 1856, 1954]
_GOLDEN_VALUES = np.array([
    [2.65704268518, 1.406673056165, 0.593424315583, 0.865584925654, 1.224527676021,
     5.047006857018, 4.110194498826, 4.797396830971, 2.996274758913, 6.819688439627,
     21.946191374283, 9.715497802454],
    [2.528142955672, 1.300238830083, 0.596643775521, 0.727749108015, 1.134969982002,
     4.875696239596, 4.048975593004, 4.724225707611, 2.879163296834, 6.95715820304,
     22.097535008441, 9.323967812477]])
_GOLDEN_SUMS = np.array([6189.053587786961, 6076.200231799541])


def test_inception_features_match_pytorch_and_are_deterministic(weights):
  """Random-weight forward vs PyTorch, determinism, padding, load independence.

  Reference: :data:`_GOLDEN_VALUES` / :data:`_GOLDEN_SUMS` (PyTorch float64, see above).
  Tolerance atol 1e-4 on values up to 35 and rtol 2e-5 on the row sums: float32 through 94
  conv layers (measured max |diff| 1.0e-5 over all 2x2048 features). Any layer or pooling
  mistake moves these by O(1) (swapping the Mixed_7c max pool for an average: 6.4).
  Determinism: image 0 is repeated as image 2, which runs in the second, zero-padded batch, so
  equal rows (exact) also show that padding does not leak into other rows. The
  torch-legacy-loaded network must give the same features as the npz-loaded one (exact: same
  arrays, same compiled function).
  """
  rng = np.random.default_rng(9)
  a, b = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
  images = np.stack([a, b, a])
  feats = inception_features.make_feature_fn(weights["variables"]["npz"], batch_size=2)(images)
  assert feats.shape == (3, 2048) and feats.dtype == np.float64
  assert np.all(np.isfinite(feats)) and np.all(feats >= 0) and np.std(feats) > 0
  np.testing.assert_allclose(feats[:2, _GOLDEN_INDEX], _GOLDEN_VALUES, rtol=0, atol=1e-4)
  np.testing.assert_allclose(feats[:2].sum(axis=1), _GOLDEN_SUMS, rtol=2e-5)
  np.testing.assert_array_equal(feats[0], feats[2])
  assert not np.allclose(feats[0], feats[1])
  legacy = inception_features.make_feature_fn(weights["variables"]["legacy"],
                                              batch_size=2)(images[:2])
  np.testing.assert_array_equal(legacy, feats[:2])
  with pytest.raises(ValueError, match="C in"):
    inception_features.make_feature_fn(weights["variables"]["npz"], batch_size=2)(images[..., :2])


# ------------------------------------------------------------------------------------------------
# Errors and the restricted unpickler
# ------------------------------------------------------------------------------------------------


class _Evil:

  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("layout", ["zip", "legacy"])
def test_restricted_unpickler_refuses_other_globals(tmp_path, layout):
  """A pickle that calls ``os.system`` must raise UnsafePickleError and must not run it.

  Reference: a marker file the payload would create; it must not exist afterwards.
  """
  marker = tmp_path / "pwned"
  payload = pickle.dumps(collections.OrderedDict(x=_Evil(str(marker))), protocol=2)
  path = tmp_path / "evil.pth"
  if layout == "zip":
    with zipfile.ZipFile(path, "w") as z:
      z.writestr("archive/data.pkl", payload)
  else:
    with open(path, "wb") as f:
      for item in (_MAGIC, 1001, {"little_endian": True}):
        pickle.dump(item, f, protocol=2)
      f.write(payload)
      pickle.dump([], f, protocol=2)
  with pytest.raises(torch_pickle.UnsafePickleError, match=r"eval\.inception_path.*system"):
    inception_weights.load_inception_params(str(path))
  assert not marker.exists()


def test_missing_and_malformed_files_give_named_errors(weights, tmp_path):
  """Missing -> FileNotFoundError naming eval.inception_path and the download URL; garbage,
  truncated (both torch layouts), missing key, wrong shape and torchvision-like fc -> ValueError
  naming eval.inception_path (and the offending key)."""
  for missing in (str(tmp_path / "nope.pth"), ""):
    with pytest.raises(FileNotFoundError, match=r"eval\.inception_path.*pt_inception-2015-12-05"):
      inception_weights.load_inception_params(missing)
  garbage = tmp_path / "garbage.pth"
  garbage.write_bytes(b"this is not a weights file" * 10)
  with pytest.raises(ValueError, match=r"eval\.inception_path"):
    inception_weights.load_inception_params(str(garbage))
  for fmt in ("zip", "legacy"):
    data = open(weights["paths"][fmt], "rb").read()
    for cut in (len(data) // 2, 200):
      truncated = tmp_path / f"trunc_{fmt}_{cut}.pth"
      truncated.write_bytes(data[:cut])
      with pytest.raises(ValueError, match=r"eval\.inception_path"):
        inception_weights.load_inception_params(str(truncated))
  tiny = tmp_path / "tiny.npz"
  inception_weights.save_npz({"fc.bias": np.zeros(1008, np.float32)}, str(tiny))
  with pytest.raises(ValueError, match=r"eval\.inception_path.*lacks the key 'Conv2d_1a_3x3\."):
    inception_weights.load_inception_params(str(tiny))
  # The rest goes through the same validation without writing 90 MB files.
  sd = dict(weights["state_dict"])
  del sd["Mixed_6c.branch7x7dbl_3.bn.running_mean"]
  with pytest.raises(ValueError, match=r"eval\.inception_path.*Mixed_6c\.branch7x7dbl_3\.bn\."
                                       r"running_mean"):
    inception_weights.state_dict_to_variables(sd, "x.npz")
  sd = dict(weights["state_dict"])
  sd["Mixed_7b.branch3x3_2a.conv.weight"] = np.zeros((384, 384, 3, 1), np.float32)
  with pytest.raises(ValueError, match=r"eval\.inception_path.*Mixed_7b\.branch3x3_2a\.conv"):
    inception_weights.state_dict_to_variables(sd, "x.npz")
  sd = dict(weights["state_dict"])
  sd["fc.weight"], sd["fc.bias"] = np.zeros((1000, 2048), np.float32), np.zeros(1000, np.float32)
  with pytest.raises(ValueError, match=r"eval\.inception_path.*fc\.weight"):
    inception_weights.state_dict_to_variables(sd, "x.npz")
  sd = dict(weights["state_dict"])
  sd["AuxLogits.conv0.conv.weight"] = np.zeros((128, 768, 1, 1), np.float32)
  with pytest.raises(ValueError, match=r"unexpected key 'AuxLogits.*torchvision"):
    inception_weights.state_dict_to_variables(sd, "x.npz")
