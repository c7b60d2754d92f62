"""The FID variant of Inception-v3 (pool3 features) in flax.linen, NHWC, inference only.

This is the network of the original TensorFlow FID code (Heusel et al. 2017, "GANs trained by a
two time-scale update rule converge to a local Nash equilibrium"), i.e. the 2015-12-05 Inception
graph, in the layout that pytorch-fid ported to PyTorch (``pt_inception-2015-12-05-6726825d.pth``)
and that clean-fid also uses. It is torchvision's ``Inception3`` (Szegedy et al. 2016, "Rethinking
the Inception architecture", Fig. 5-7 and Table 1) with the changes that make it match the TF
graph:

* the 3x3 average pools inside the A, C and E blocks (Mixed_5b-d, Mixed_6b-e, Mixed_7b) do not
  count the zero padding (TF ``padding='SAME'`` average pooling, PyTorch
  ``count_include_pad=False``);
* the pool branch of the last E block (Mixed_7c) is a 3x3 *max* pool (stride 1, pad 1), a quirk
  of the 2015 graph;
* every convolution is ``BasicConv2d``: conv without bias -> BatchNorm (running statistics,
  ``eps = 1e-3``) -> ReLU.

Layout for an input ``(N, 299, 299, 3)`` in ``[-1, 1]`` (spatial sizes after each stage)::

  Conv2d_1a_3x3 (32, s2) 149 | Conv2d_2a_3x3 (32) 147 | Conv2d_2b_3x3 (64, pad 1) 147
  max 3x3/2 73 | Conv2d_3b_1x1 (80) 73 | Conv2d_4a_3x3 (192) 71 | max 3x3/2 35
  Mixed_5b A(32) 256 | Mixed_5c A(64) 288 | Mixed_5d A(64) 288        (35 x 35)
  Mixed_6a B 768 | Mixed_6b-e C(c7 = 128, 160, 160, 192) 768            (17 x 17)
  Mixed_7a D 1280 | Mixed_7b E(avg) 2048 | Mixed_7c E(max) 2048         (8 x 8)
  mean over H, W -> (N, 2048)  "pool3"

Submodule names are the PyTorch state-dict names (``Mixed_6b.branch7x7_2.conv`` ...), so a
state-dict key ``<path>.conv.weight`` is the flax parameter ``params[<path>]['conv']['kernel']``
(OIHW transposed to HWIO), ``<path>.bn.weight``/``bias`` are ``['bn']['scale']``/``['bias']``
and ``<path>.bn.running_mean``/``running_var`` are ``batch_stats[<path>]['bn']['mean']``/
``['var']`` (see :mod:`lim_jax.metrics.inception_weights`). The classifier (``fc``, 2048 -> 1008)
is not part of this module: FID uses the pool3 features only.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array

BN_EPS = 1e-3
FEATURE_DIM = 2048
INPUT_SIZE = 299
# The fc layer of the 2015-12-05 graph has 1008 outputs (1000 classes + 8 unused); the loader
# checks this shape to tell the FID weights from torchvision's 1000-class ImageNet weights.
FC_CLASSES = 1008


def avg_pool_3x3_exclude_pad(x: Array) -> Array:
  """3x3 average pool, stride 1, pad 1, mean over the in-image taps only.

  ``y[n, i, j, c] = mean{x[n, i', j', c] : |i' - i| <= 1, |j' - j| <= 1, (i', j') in image}``
  (PyTorch ``avg_pool2d(..., count_include_pad=False)``, TF ``SAME`` average pooling).
  Shape ``(N, H, W, C) -> (N, H, W, C)``.
  """
  return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)),
                     count_include_pad=False)


def max_pool_3x3_same(x: Array) -> Array:
  """3x3 max pool, stride 1, pad 1 (padding never wins: it is -inf). ``(N,H,W,C) -> same``."""
  return nn.max_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)))


def max_pool_3x3_stride2(x: Array) -> Array:
  """3x3 max pool, stride 2, no padding: ``(N, H, W, C) -> (N, (H-3)//2+1, (W-3)//2+1, C)``."""
  return nn.max_pool(x, (3, 3), strides=(2, 2), padding="VALID")


class BasicConv2d(nn.Module):
  """``relu(BN(conv(x)))``: bias-free conv, then BatchNorm with running statistics.

  ``BN(z) = (z - running_mean) / sqrt(running_var + 1e-3) * weight + bias``. ``kernel`` and
  ``padding`` are (height, width) as in PyTorch (``kernel_size=(1, 7), padding=(0, 3)``);
  padding is symmetric zero padding.
  """
  features: int
  kernel: tuple[int, int] = (1, 1)
  stride: int = 1
  padding: tuple[int, int] = (0, 0)
  precision: Any = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x: Array) -> Array:
    ph, pw = self.padding
    x = nn.Conv(self.features, self.kernel, strides=(self.stride, self.stride),
                padding=((ph, ph), (pw, pw)), use_bias=False, precision=self.precision,
                name="conv")(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=BN_EPS, name="bn")(x)
    return nn.relu(x)


class InceptionA(nn.Module):
  """35x35 block: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool(excl. pad)-1x1; out 224 + pool_features."""
  pool_features: int
  precision: Any = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x: Array) -> Array:
    conv = lambda f, k, p, name: BasicConv2d(f, k, 1, p, self.precision, name=name)
    b1 = conv(64, (1, 1), (0, 0), "branch1x1")(x)
    b5 = conv(48, (1, 1), (0, 0), "branch5x5_1")(x)
    b5 = conv(64, (5, 5), (2, 2), "branch5x5_2")(b5)
    b3 = conv(64, (1, 1), (0, 0), "branch3x3dbl_1")(x)
    b3 = conv(96, (3, 3), (1, 1), "branch3x3dbl_2")(b3)
    b3 = conv(96, (3, 3), (1, 1), "branch3x3dbl_3")(b3)
    bp = conv(self.pool_features, (1, 1), (0, 0), "branch_pool")(avg_pool_3x3_exclude_pad(x))
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
  """35 -> 17 reduction (Mixed_6a): 3x3/2 | 1x1-3x3-3x3/2 | maxpool 3x3/2; out 480 + C_in."""
  precision: Any = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x: Array) -> Array:
    b3 = BasicConv2d(384, (3, 3), 2, (0, 0), self.precision, name="branch3x3")(x)
    bd = BasicConv2d(64, (1, 1), 1, (0, 0), self.precision, name="branch3x3dbl_1")(x)
    bd = BasicConv2d(96, (3, 3), 1, (1, 1), self.precision, name="branch3x3dbl_2")(bd)
    bd = BasicConv2d(96, (3, 3), 2, (0, 0), self.precision, name="branch3x3dbl_3")(bd)
    return jnp.concatenate([b3, bd, max_pool_3x3_stride2(x)], axis=-1)


class InceptionC(nn.Module):
  """17x17 block with factorised 7x7 convs (c7 = channels_7x7); out 4 x 192 = 768."""
  channels_7x7: int
  precision: Any = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x: Array) -> Array:
    c7 = self.channels_7x7
    conv = lambda f, k, p, name: BasicConv2d(f, k, 1, p, self.precision, name=name)
    row, col = ((1, 7), (0, 3)), ((7, 1), (3, 0))  # (kernel, padding) as (height, width)
    b1 = conv(192, (1, 1), (0, 0), "branch1x1")(x)
    b7 = conv(c7, (1, 1), (0, 0), "branch7x7_1")(x)
    b7 = conv(c7, *row, "branch7x7_2")(b7)
    b7 = conv(192, *col, "branch7x7_3")(b7)
    bd = conv(c7, (1, 1), (0, 0), "branch7x7dbl_1")(x)
    bd = conv(c7, *col, "branch7x7dbl_2")(bd)
    bd = conv(c7, *row, "branch7x7dbl_3")(bd)
    bd = conv(c7, *col, "branch7x7dbl_4")(bd)
    bd = conv(192, *row, "branch7x7dbl_5")(bd)
    bp = conv(192, (1, 1), (0, 0), "branch_pool")(avg_pool_3x3_exclude_pad(x))
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
  """17 -> 8 reduction (Mixed_7a): 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool 3x3/2; 512 + C_in."""
  precision: Any = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x: Array) -> Array:
    conv = lambda f, k, s, p, name: BasicConv2d(f, k, s, p, self.precision, name=name)
    b3 = conv(192, (1, 1), 1, (0, 0), "branch3x3_1")(x)
    b3 = conv(320, (3, 3), 2, (0, 0), "branch3x3_2")(b3)
    b7 = conv(192, (1, 1), 1, (0, 0), "branch7x7x3_1")(x)
    b7 = conv(192, (1, 7), 1, (0, 3), "branch7x7x3_2")(b7)
    b7 = conv(192, (7, 1), 1, (3, 0), "branch7x7x3_3")(b7)
    b7 = conv(192, (3, 3), 2, (0, 0), "branch7x7x3_4")(b7)
    return jnp.concatenate([b3, b7, max_pool_3x3_stride2(x)], axis=-1)


class InceptionE(nn.Module):
  """8x8 block with split 1x3/3x1 heads; out 320 + 768 + 768 + 192 = 2048.

  ``max_pool`` selects the pool branch: False = average pool excluding padding (Mixed_7b),
  True = 3x3 max pool (Mixed_7c, the FID graph's quirk).
  """
  max_pool: bool = False
  precision: Any = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x: Array) -> Array:
    conv = lambda f, k, p, name: BasicConv2d(f, k, 1, p, self.precision, name=name)
    b1 = conv(320, (1, 1), (0, 0), "branch1x1")(x)
    b3 = conv(384, (1, 1), (0, 0), "branch3x3_1")(x)
    b3 = jnp.concatenate([conv(384, (1, 3), (0, 1), "branch3x3_2a")(b3),
                          conv(384, (3, 1), (1, 0), "branch3x3_2b")(b3)], axis=-1)
    bd = conv(448, (1, 1), (0, 0), "branch3x3dbl_1")(x)
    bd = conv(384, (3, 3), (1, 1), "branch3x3dbl_2")(bd)
    bd = jnp.concatenate([conv(384, (1, 3), (0, 1), "branch3x3dbl_3a")(bd),
                          conv(384, (3, 1), (1, 0), "branch3x3dbl_3b")(bd)], axis=-1)
    pooled = max_pool_3x3_same(x) if self.max_pool else avg_pool_3x3_exclude_pad(x)
    bp = conv(192, (1, 1), (0, 0), "branch_pool")(pooled)
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class InceptionV3(nn.Module):
  """FID Inception-v3 up to pool3: ``(N, H, W, 3)`` in ``[-1, 1]`` -> ``(N, 2048)``.

  ``H = W = 299`` is the FID convention (:func:`lim_jax.metrics.inception_features.make_feature_fn`
  resizes); the network is fully convolutional down to the global mean, so any ``H, W >= 75`` runs.
  ``precision`` is the convolution precision; HIGHEST keeps GPUs from using TF32, which would
  move the features by ~1e-3 relative and the FID with them.
  """
  precision: Any = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x: Array) -> Array:
    p = self.precision
    x = BasicConv2d(32, (3, 3), 2, (0, 0), p, name="Conv2d_1a_3x3")(x)
    x = BasicConv2d(32, (3, 3), 1, (0, 0), p, name="Conv2d_2a_3x3")(x)
    x = BasicConv2d(64, (3, 3), 1, (1, 1), p, name="Conv2d_2b_3x3")(x)
    x = max_pool_3x3_stride2(x)
    x = BasicConv2d(80, (1, 1), 1, (0, 0), p, name="Conv2d_3b_1x1")(x)
    x = BasicConv2d(192, (3, 3), 1, (0, 0), p, name="Conv2d_4a_3x3")(x)
    x = max_pool_3x3_stride2(x)
    x = InceptionA(32, p, name="Mixed_5b")(x)
    x = InceptionA(64, p, name="Mixed_5c")(x)
    x = InceptionA(64, p, name="Mixed_5d")(x)
    x = InceptionB(p, name="Mixed_6a")(x)
    for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
      x = InceptionC(c7, p, name=name)(x)
    x = InceptionD(p, name="Mixed_7a")(x)
    x = InceptionE(False, p, name="Mixed_7b")(x)
    x = InceptionE(True, p, name="Mixed_7c")(x)
    return jnp.mean(x, axis=(1, 2))


def variable_shapes(image_size: int = INPUT_SIZE) -> dict[str, Any]:
  """Shape tree (``jax.ShapeDtypeStruct``) of ``{'params', 'batch_stats'}``, without computing."""
  x = jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.float32)
  return jax.eval_shape(InceptionV3().init, jax.random.PRNGKey(0), x)
