"""Building blocks of the score-SDE U-Nets (DDPM++ / NCSN++), NHWC, flax.linen.

The blocks follow Song et al. 2021 ("Score-based generative modeling through SDEs", App. H,
the DDPM++ architecture) and, through it, Ho et al. 2020 (DDPM, App. B) and BigGAN (Brock et al.
2019) residual blocks. Every module takes ``dtype`` (the compute dtype) and keeps its parameters
in float32 (flax's ``param_dtype`` default), so ``dtype=jnp.bfloat16`` is mixed precision.

Initialisation is DDPM's: ``variance_scaling(scale, 'fan_avg', 'uniform')`` kernels and zero biases;
``scale = 0`` means 1e-10 (score-SDE ``init_scale = 0``), which makes a residual branch or an output
head start at (almost exactly) zero.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array

# Score-SDE's ``init_scale = 0`` rounds to this, so that a "zero" layer still has a direction.
ZERO_INIT_SCALE = 1e-10


def ddpm_init(scale: float = 1.0) -> nn.initializers.Initializer:
  """DDPM kernel initialiser: uniform variance scaling over ``fan_avg``; ``scale = 0`` -> 1e-10."""
  return nn.initializers.variance_scaling(scale if scale > 0 else ZERO_INIT_SCALE, "fan_avg",
                                          "uniform")


def num_groups(channels: int) -> int:
  """GroupNorm groups for ``channels``: ``min(channels // 4, 32)`` as in score-SDE's U-Nets."""
  return min(channels // 4, 32)


def group_norm(x: Array, dtype: jnp.dtype) -> Array:
  """GroupNorm over the last axis with :func:`num_groups` groups (statistics in float32)."""
  return nn.GroupNorm(num_groups=num_groups(x.shape[-1]), dtype=dtype)(x)


def conv(x: Array, features: int, kernel: int = 3, stride: int = 1, init_scale: float = 1.0,
         dtype: jnp.dtype = jnp.float32) -> Array:
  """``kernel x kernel`` 'SAME' convolution with bias and DDPM initialisation."""
  return nn.Conv(features, (kernel, kernel), strides=(stride, stride), padding="SAME",
                 kernel_init=ddpm_init(init_scale), bias_init=nn.initializers.zeros,
                 dtype=dtype)(x)


def upsample_nearest(x: Array) -> Array:
  """``(B, H, W, C) -> (B, 2H, 2W, C)`` by repeating each pixel 2x2."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def downsample_mean(x: Array) -> Array:
  """``(B, H, W, C) -> (B, H/2, W/2, C)`` by averaging 2x2 blocks (H and W even)."""
  b, h, w, c = x.shape
  return x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


# The [1, 3, 3, 1] binomial FIR resampling filter of NCSN++ (Song et al. 2021, App. H, after
# StyleGAN2, Karras et al. 2020, App. B: "bilinear" up/down-sampling with a separable filter).
FIR_KERNEL = (1.0, 3.0, 3.0, 1.0)


def _fir_depthwise(x: Array, taps, gain: float, stride: int, lhs_dilation: int,
                   pad: tuple[int, int]) -> Array:
  """Separable 2-D FIR filter ``outer(taps, taps) / sum^2 * gain`` on every channel of ``x``."""
  k = jnp.asarray(taps, jnp.float32)
  k2 = jnp.outer(k, k) / jnp.sum(k) ** 2 * gain
  c = x.shape[-1]
  kernel = jnp.tile(k2[::-1, ::-1, None, None], (1, 1, 1, c)).astype(x.dtype)  # convolution
  return jax.lax.conv_general_dilated(
      x, kernel, window_strides=(stride, stride), padding=(pad, pad),
      lhs_dilation=(lhs_dilation, lhs_dilation), dimension_numbers=("NHWC", "HWIO", "NHWC"),
      feature_group_count=c)


def upsample_fir(x: Array, taps=FIR_KERNEL) -> Array:
  """``(B, H, W, C) -> (B, 2H, 2W, C)``: ``upfirdn2d(x, k, up=2)`` with gain 4 (zero insertion,
  then the FIR filter; pads ``((p+1)//2 + 1, p//2)``, ``p = len(k) - 2``, as StyleGAN2's
  ``upsample_2d``). The last zero of the insertion is the extra high pad of the dilated conv."""
  p = len(taps) - 2
  return _fir_depthwise(x, taps, 4.0, 1, 2, ((p + 1) // 2 + 1, p // 2 + 1))


def downsample_fir(x: Array, taps=FIR_KERNEL, extra_pad: int = 0) -> Array:
  """``(B, H, W, C) -> (B, H/2, W/2, C)``: ``upfirdn2d(x, k, down=2)`` (FIR filter, pads
  ``((p+1)//2, p//2)``, ``p = len(k) - 2``, keep every other sample). ``extra_pad`` pads both sides
  more and keeps full resolution (stride 1), the blur before a fused stride-2 conv."""
  p = len(taps) - 2
  if extra_pad:
    return _fir_depthwise(x, taps, 1.0, 1, 1, ((p + 1) // 2 + extra_pad, p // 2 + extra_pad))
  return _fir_depthwise(x, taps, 1.0, 2, 1, ((p + 1) // 2, p // 2))


class GaussianFourierTime(nn.Module):
  """Random Fourier features of a scalar (Tancik et al. 2020; score-SDE's NCSN++ embedding).

  ``(B,) -> (B, 2 * embedding_size)``: ``[sin(2 pi s W), cos(2 pi s W)]``, ``W ~ N(0, scale^2)``.
  ``W`` is a fixed constant drawn from ``PRNGKey(seed)``, not a parameter: score-SDE stops its
  gradient, and as a constant it is also out of reach of weight decay and takes no checkpoint
  space.
  """

  embedding_size: int
  scale: float = 16.0
  seed: int = 0

  def __call__(self, s: Array) -> Array:
    freqs = self.scale * jax.random.normal(jax.random.PRNGKey(self.seed), (self.embedding_size,))
    proj = 2.0 * math.pi * s.astype(jnp.float32)[:, None] * freqs[None, :]
    return jnp.concatenate([jnp.sin(proj), jnp.cos(proj)], axis=-1)


class ResnetBlockBigGAN(nn.Module):
  """BigGAN-style residual block with time conditioning (score-SDE's ``ResnetBlockBigGANpp``).

  ``h = Conv3(SiLU(GN(x)))`` (after 2x resampling of both ``h`` and ``x`` when ``up``/``down``),
  ``h += Dense(SiLU(temb))``, ``h = Conv3_0(Dropout(SiLU(GN(h))))`` with a ~zero-initialised last
  conv, ``x = Conv1(x)`` when the channels change or the block resamples, and the output is
  ``(x + h) / sqrt(2)`` when ``skip_rescale`` (``x + h`` otherwise).

  Shapes: ``x (B, H, W, C)``, ``temb (B, E)`` -> ``(B, H', W', out_ch or C)`` with
  ``H' = 2H`` (up), ``H/2`` (down) or ``H``.
  """

  out_ch: int | None = None
  up: bool = False
  down: bool = False
  dropout: float = 0.1
  skip_rescale: bool = True
  fir: bool = False  # resample with the FIR filter (NCSN++) instead of nearest / 2x2 mean (DDPM++)
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array, temb: Array | None, train: bool = False) -> Array:
    out_ch = self.out_ch or x.shape[-1]
    h = nn.silu(group_norm(x, self.dtype))
    up, down = ((upsample_fir, downsample_fir) if self.fir else
                (upsample_nearest, downsample_mean))
    if self.up:
      h, x = up(h), up(x)
    elif self.down:
      h, x = down(h), down(x)
    h = conv(h, out_ch, dtype=self.dtype)
    if temb is not None:
      t_proj = nn.Dense(out_ch, kernel_init=ddpm_init(), dtype=self.dtype)(nn.silu(temb))
      h = h + t_proj[:, None, None, :]
    h = nn.silu(group_norm(h, self.dtype))
    h = nn.Dropout(self.dropout)(h, deterministic=not train)
    h = conv(h, out_ch, init_scale=0.0, dtype=self.dtype)
    if x.shape[-1] != out_ch or self.up or self.down:
      x = conv(x, out_ch, kernel=1, dtype=self.dtype)
    out = x + h
    return out / math.sqrt(2.0) if self.skip_rescale else out


class AttnBlock(nn.Module):
  """Single-head spatial self-attention over all ``H*W`` positions (DDPM App. B, score-SDE).

  ``q, k, v = 1x1(GN(x))``, ``a = softmax(q k^T / sqrt(C))`` (softmax in float32),
  ``h = 1x1_0(a v)`` with a ~zero-initialised projection; returns ``(x + h) / sqrt(2)`` when
  ``skip_rescale``. ``(B, H, W, C) -> (B, H, W, C)``.
  """

  skip_rescale: bool = True
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    b, height, width, c = x.shape
    h = group_norm(x, self.dtype).reshape(b, height * width, c)
    q, k, v = (nn.Dense(c, kernel_init=ddpm_init(0.1), dtype=self.dtype, name=name)(h)
               for name in ("query", "key", "value"))
    logits = jnp.einsum("bqc,bkc->bqk", q, k).astype(jnp.float32) / math.sqrt(c)
    weights = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
    h = jnp.einsum("bqk,bkc->bqc", weights, v)
    h = nn.Dense(c, kernel_init=ddpm_init(0.0), dtype=self.dtype, name="out")(h)
    out = x + h.reshape(b, height, width, c)
    return out / math.sqrt(2.0) if self.skip_rescale else out


class FIRConvDownsample(nn.Module):
  """NCSN++'s fused "conv_downsample_2d": FIR blur (padded so a 3x3 VALID conv follows) then a 3x3
  stride-2 convolution, ``(B, H, W, C) -> (B, H/2, W/2, out_ch)``. Used on the input pyramid of
  ``progressive_input = 'residual'``."""

  out_ch: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    blurred = downsample_fir(x, extra_pad=1)  # pads (2, 2): H + 1 rows after the 4-tap filter
    return nn.Conv(self.out_ch, (3, 3), strides=(2, 2), padding="VALID",
                   kernel_init=ddpm_init(), bias_init=nn.initializers.zeros,
                   dtype=self.dtype)(blurred)


class Downsample(nn.Module):
  """Stride-2 3x3 convolution, ``(B, H, W, C) -> (B, H/2, W/2, C)`` (DDPM ``resamp_with_conv``)."""

  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    return conv(x, x.shape[-1], stride=2, dtype=self.dtype)


class Upsample(nn.Module):
  """Nearest 2x upsampling then a 3x3 convolution, ``(B, H, W, C) -> (B, 2H, 2W, C)``."""

  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    return conv(upsample_nearest(x), x.shape[-1], dtype=self.dtype)
