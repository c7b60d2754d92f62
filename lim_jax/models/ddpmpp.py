"""DDPM++ U-Net of Song et al. 2021 ("Score-based generative modeling through SDEs", App. H).

This is the "DDPM++ cont." network (score-SDE ``configs/vp/cifar10_ddpmpp_continuous.py``):
NCSN++'s sibling without FIR resampling and without progressive input/output growing. Layout for
``ch_mult = (m_0, ..., m_{L-1})`` and input ``(B, H, W, C)``::

  temb = Dense(4ch) . SiLU . Dense(4ch) (embed(t))         embed: sinusoidal (ch) | Fourier (2ch)
  h = Conv3(x) -> ch
  down, level i = 0..L-1 (resolution H / 2^i):
      num_res_blocks x [ResBlock(-> ch m_i), Attn if resolution in attn_resolutions]
      if i < L-1: ResBlock(down) (resblock_updown) | stride-2 Conv3
      every output above is kept as a skip
  middle: ResBlock, Attn, ResBlock
  up, level i = L-1..0:
      (num_res_blocks + 1) x ResBlock(concat(h, skip) -> ch m_i)
      Attn if resolution in attn_resolutions (once per level, after the blocks)
      if i > 0: ResBlock(up) (resblock_updown) | nearest 2x + Conv3
  out = Conv3_0(SiLU(GN(h))) -> out_channels               (~zero init: initial output ~ 0)

Residual blocks are BigGAN-style (:class:`lim_jax.models.layers.ResnetBlockBigGAN`); with
``resblock_updown`` the resampling is done inside a residual block (nearest up / 2x2 mean down,
score-SDE's ``resblock_type = 'biggan'``), otherwise by plain convolutions (DDPM's
``resamp_with_conv``). The time ``t`` is the process's continuous time (``[0, t_max]``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from lim_jax.models import layers
from lim_jax.models.mlp import label_embedding, sinusoidal_embedding

Array = jax.Array

PROGRESSIVE_INPUTS = ("none", "residual")
EMBEDDINGS = ("positional", "fourier")
# ``log t`` is taken for the Fourier embedding; this keeps t = 0 finite.
_LOG_T_FLOOR = 1e-12


def validate_hparams(*, ch: int, ch_mult: Sequence[int], num_res_blocks: int,
                     attn_resolutions: Sequence[int], dropout: float, embedding: str,
                     out_channels: int | None = None, image_size: int | None = None) -> None:
  """Raise ``ValueError`` (message starting with ``model.<field>``) for an unbuildable network.

  ``out_channels`` and ``image_size`` (square images) are checked when given, so a config can be
  validated before the data shape is known.
  """
  if out_channels is not None and not (isinstance(out_channels, int) and out_channels > 0):
    raise ValueError(f"model.out_channels must be a positive integer, got {out_channels!r}")
  if not (isinstance(ch, int) and ch > 0 and ch % 2 == 0):
    raise ValueError(f"model.ch must be a positive even integer, got {ch!r}")
  if not ch_mult or not all(isinstance(m, int) and m > 0 for m in ch_mult):
    raise ValueError(f"model.ch_mult must be a non-empty sequence of positive integers, "
                     f"got {ch_mult!r}")
  for m in ch_mult:
    width = ch * m
    if width < 4 or width % 4 or width % layers.num_groups(width):
      raise ValueError(f"model.ch_mult: width ch*m = {width} must be a multiple of 4 (and of 32 "
                       f"when >= 128) for GroupNorm(min(C//4, 32)); got ch={ch}, ch_mult={ch_mult}")
  if not (isinstance(num_res_blocks, int) and num_res_blocks > 0):
    raise ValueError(f"model.num_res_blocks must be a positive integer, got {num_res_blocks!r}")
  if not all(isinstance(r, int) and r > 0 for r in attn_resolutions):
    raise ValueError(f"model.attn_resolutions must be positive integers, got {attn_resolutions!r}")
  if not 0.0 <= dropout < 1.0:
    raise ValueError(f"model.dropout must be in [0, 1), got {dropout!r}")
  if embedding not in EMBEDDINGS:
    raise ValueError(f"model.embedding must be one of {EMBEDDINGS}, got {embedding!r}")
  factor = 2 ** (len(ch_mult) - 1)
  if image_size is not None and image_size % factor:
    raise ValueError(f"model.ch_mult: image size {image_size} must be divisible by "
                     f"2**(len(ch_mult) - 1) = {factor}")


class DDPMpp(nn.Module):
  """DDPM++ U-Net ``(x (B, H, W, C), t (B,)) -> (B, H, W, out_channels)`` float32.

  Attributes:
    out_channels: ``C * num_outputs`` (families with two heads stack them on the channel axis).
    ch: base width; level ``i`` has ``ch * ch_mult[i]`` channels, the time embedding ``4 ch``.
    ch_mult: per-resolution width multipliers; ``H`` and ``W`` must be divisible by
      ``2 ** (len(ch_mult) - 1)``.
    num_res_blocks: residual blocks per resolution on the way down (one more on the way up).
    attn_resolutions: spatial sizes (``H`` of the feature map) that get self-attention.
    dropout: dropout rate inside every residual block (active only with ``train=True``; uses the
      ``'dropout'`` rng).
    resblock_updown: resample inside BigGAN residual blocks (DDPM++) or with plain convolutions.
    skip_rescale: divide every residual sum by ``sqrt(2)``.
    embedding: ``'positional'``: :func:`lim_jax.models.mlp.sinusoidal_embedding` of ``t`` (width
      ``ch``, ``t`` scaled by 1000 as for the MLP; score-SDE feeds ``999 t``); ``'fourier'``:
      Gaussian Fourier features (width ``2 ch``, ``W ~ N(0, fourier_scale^2)``) of ``log t``, as
      score-SDE embeds the log of its noise label.
    fourier_scale: standard deviation of the Fourier frequencies (score-SDE: 16).
    dtype: compute dtype; parameters stay float32, the output is float32.
    fir: resample with the [1, 3, 3, 1] FIR filter (NCSN++) instead of nearest / 2x2 mean.
    progressive_input: ``'none'`` (DDPM++) or ``'residual'`` (NCSN++): an input pyramid, the image
      FIR-blurred and stride-2 convolved once per level, is added to the downsampled features,
      ``h = (pyramid + h) / sqrt(2)``, and carried on as the next pyramid level.
    num_classes: ``0``: unconditional; ``C > 0``: class-conditional, a learned ``C x 4ch`` label
      embedding is added to the time embedding (the class conditioning of the score-SDE / EDM
      U-Nets) and ``__call__`` needs ``y (B,)`` integer labels.
  """

  out_channels: int
  ch: int = 128
  ch_mult: Sequence[int] = (1, 2, 2, 2)
  num_res_blocks: int = 2
  attn_resolutions: Sequence[int] = (16,)
  dropout: float = 0.1
  resblock_updown: bool = True
  skip_rescale: bool = True
  embedding: str = "positional"
  fourier_scale: float = 16.0
  dtype: jnp.dtype = jnp.float32
  num_classes: int = 0
  fir: bool = False
  progressive_input: str = "none"

  def _time_embedding(self, t: Array) -> Array:
    if self.embedding == "positional":
      return sinusoidal_embedding(t, self.ch)
    log_t = jnp.log(jnp.maximum(t.astype(jnp.float32), _LOG_T_FLOOR))
    return layers.GaussianFourierTime(self.ch, scale=self.fourier_scale)(log_t)

  @nn.compact
  def __call__(self, x: Array, t: Array, train: bool = False, y: Array | None = None) -> Array:
    validate_hparams(ch=self.ch, ch_mult=tuple(self.ch_mult), num_res_blocks=self.num_res_blocks,
                     attn_resolutions=tuple(self.attn_resolutions), dropout=self.dropout,
                     embedding=self.embedding, out_channels=self.out_channels)
    if x.ndim != 4:
      raise ValueError(f"DDPMpp expects x of shape (B, H, W, C), got {x.shape}")
    factor = 2 ** (len(self.ch_mult) - 1)
    if x.shape[1] % factor or x.shape[2] % factor:
      raise ValueError(f"model.ch_mult: image size {x.shape[1:3]} must be divisible by "
                       f"2**(len(ch_mult) - 1) = {factor}")
    t = jnp.broadcast_to(jnp.asarray(t, jnp.float32), (x.shape[0],))

    if self.progressive_input not in PROGRESSIVE_INPUTS:
      raise ValueError(f"model.progressive_input must be one of {PROGRESSIVE_INPUTS}, "
                       f"got {self.progressive_input!r}")
    resblock = lambda **kw: layers.ResnetBlockBigGAN(  # noqa: E731
        dropout=self.dropout, skip_rescale=self.skip_rescale, fir=self.fir, dtype=self.dtype,
        **kw)
    attn = lambda: layers.AttnBlock(skip_rescale=self.skip_rescale, dtype=self.dtype)  # noqa: E731

    temb = self._time_embedding(t)
    temb = nn.Dense(4 * self.ch, kernel_init=layers.ddpm_init(), dtype=self.dtype)(temb)
    temb = nn.Dense(4 * self.ch, kernel_init=layers.ddpm_init(), dtype=self.dtype)(nn.silu(temb))
    temb = temb + label_embedding(self.num_classes, 4 * self.ch, y, x.shape[0], self.dtype)

    # Down: every intermediate is kept for the skip connections of the up path.
    pyramid = x
    skips = [layers.conv(x, self.ch, dtype=self.dtype)]
    num_levels = len(self.ch_mult)
    for level, mult in enumerate(self.ch_mult):
      for _ in range(self.num_res_blocks):
        h = resblock(out_ch=self.ch * mult)(skips[-1], temb, train)
        if h.shape[1] in self.attn_resolutions:
          h = attn()(h)
        skips.append(h)
      if level != num_levels - 1:
        if self.resblock_updown:
          h = resblock(down=True)(skips[-1], temb, train)
        else:
          h = layers.Downsample(dtype=self.dtype)(skips[-1])
        if self.progressive_input == "residual":
          pyramid = layers.FIRConvDownsample(h.shape[-1], dtype=self.dtype)(pyramid)
          pyramid = (pyramid + h) / math.sqrt(2.0) if self.skip_rescale else pyramid + h
          h = pyramid
        skips.append(h)

    # Middle.
    h = resblock()(skips[-1], temb, train)
    h = attn()(h)
    h = resblock()(h, temb, train)

    # Up: one more block per level than on the way down consumes the downsampling skip too.
    for level in reversed(range(num_levels)):
      for _ in range(self.num_res_blocks + 1):
        h = resblock(out_ch=self.ch * self.ch_mult[level])(
            jnp.concatenate([h, skips.pop()], axis=-1), temb, train)
      if h.shape[1] in self.attn_resolutions:
        h = attn()(h)
      if level != 0:
        if self.resblock_updown:
          h = resblock(up=True)(h, temb, train)
        else:
          h = layers.Upsample(dtype=self.dtype)(h)
    assert not skips, "every skip connection must be consumed"

    h = nn.silu(layers.group_norm(h, self.dtype))
    h = layers.conv(h, self.out_channels, init_scale=0.0, dtype=self.dtype)
    return h.astype(jnp.float32)


# ----------------------------------------------------------------------------------------------
# Closed-form parameter count (an independent check of the module above; see tests/test_ddpmpp).
# ----------------------------------------------------------------------------------------------

def _conv_params(kernel: int, c_in: int, c_out: int) -> int:
  return kernel * kernel * c_in * c_out + c_out


def _norm_params(c: int) -> int:
  return 2 * c  # GroupNorm scale and bias


def _resblock_params(c_in: int, c_out: int, temb_dim: int, resample: bool) -> int:
  n = _norm_params(c_in) + _conv_params(3, c_in, c_out) + _conv_params(1, temb_dim, c_out)
  n += _norm_params(c_out) + _conv_params(3, c_out, c_out)
  if c_in != c_out or resample:
    n += _conv_params(1, c_in, c_out)
  return n


def _attn_params(c: int) -> int:
  return _norm_params(c) + 4 * _conv_params(1, c, c)  # q, k, v, out


def param_count_analytic(in_channels: int, out_channels: int, image_size: int, ch: int = 128,
                         ch_mult: Sequence[int] = (1, 2, 2, 2), num_res_blocks: int = 2,
                         attn_resolutions: Sequence[int] = (16,), resblock_updown: bool = True,
                         embedding: str = "positional", num_classes: int = 0,
                         progressive_input: str = "none") -> int:
  """Number of parameters of :class:`DDPMpp`, summed by hand from the layer sizes.

  A ``k x k`` conv ``c_in -> c_out`` has ``k^2 c_in c_out + c_out`` parameters (a dense layer is
  the ``k = 1`` case), a GroupNorm ``2 c``; a residual block has two norms, two 3x3 convs, the time
  projection ``4ch -> c_out`` and a 1x1 skip when it changes width or resamples; attention has a
  norm and four ``c x c`` projections. ``image_size`` only decides where attention goes.
  """
  temb_dim = 4 * ch
  embed_dim = ch if embedding == "positional" else 2 * ch  # Fourier W is a constant, not counted
  total = _conv_params(1, embed_dim, temb_dim) + _conv_params(1, temb_dim, temb_dim)
  total += _conv_params(3, in_channels, ch)

  skip_widths = [ch]
  width, res, pyramid_width = ch, image_size, in_channels
  for level, mult in enumerate(ch_mult):
    for _ in range(num_res_blocks):
      total += _resblock_params(width, ch * mult, temb_dim, resample=False)
      width = ch * mult
      if res in attn_resolutions:
        total += _attn_params(width)
      skip_widths.append(width)
    if level != len(ch_mult) - 1:
      total += (_resblock_params(width, width, temb_dim, resample=True) if resblock_updown
                else _conv_params(3, width, width))
      if progressive_input == "residual":  # 3x3 conv of the pyramid: previous width -> width
        total += _conv_params(3, pyramid_width, width)
        pyramid_width = width
      skip_widths.append(width)
      res //= 2

  total += 2 * _resblock_params(width, width, temb_dim, resample=False) + _attn_params(width)

  for level in reversed(range(len(ch_mult))):
    for _ in range(num_res_blocks + 1):
      total += _resblock_params(width + skip_widths.pop(), ch * ch_mult[level], temb_dim,
                                resample=False)
      width = ch * ch_mult[level]
    if res in attn_resolutions:
      total += _attn_params(width)
    if level != 0:
      total += (_resblock_params(width, width, temb_dim, resample=True) if resblock_updown
                else _conv_params(3, width, width))
      res *= 2

  total += _norm_params(width) + _conv_params(3, width, out_channels)
  return total + num_classes * temb_dim  # the class-label embedding table


def param_count(params) -> int:
  """Number of scalars in a parameter pytree (works on ``jax.eval_shape`` output too)."""
  return sum(math.prod(p.shape) for p in jax.tree.leaves(params))
