"""Time-conditioned MLP for low-dimensional (toy) data."""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array


def sinusoidal_embedding(t: Array, dim: int, scale: float = 1000.0,
                         max_period: float = 10_000.0) -> Array:
  """Transformer-style embedding of continuous time (Ho et al. 2020, App. B).

  Args:
    t: times ``(B,)`` in the process's units (``[0, t_max]``).
    dim: even embedding width.
    scale: ``t`` is multiplied by this first, so ``t in [0, 1]`` spans the DDPM index range.

  Returns:
    ``(B, dim)`` array ``[sin(scale t w_i), cos(scale t w_i)]``, ``w_i = max_period^{-i/(dim/2)}``.
  """
  half = dim // 2
  freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
  args = (scale * t.astype(jnp.float32))[:, None] * freqs[None, :]
  return jnp.concatenate([jnp.sin(args), jnp.cos(args)], axis=-1)


def label_embedding(num_classes: int, dim: int, y: Array | None, batch: int,
                    dtype=jnp.float32) -> Array:
  """``nn.Embed(num_classes, dim)(y)`` ``(B, dim)`` for a class-conditional network, else ``0``.

  Raises:
    ValueError: labels given to an unconditional network or missing for a conditional one.
  """
  if num_classes == 0:
    if y is not None:
      raise ValueError("model.num_classes is 0 (unconditional) but class labels were given")
    return jnp.zeros((), dtype)
  if y is None:
    raise ValueError(f"model.num_classes = {num_classes}: the network needs class labels y")
  y = jnp.broadcast_to(jnp.asarray(y, jnp.int32), (batch,))
  return nn.Embed(num_classes, dim, dtype=dtype, name="label_embed")(y)


class MLP(nn.Module):
  """Residual MLP ``(x (B, D), t (B,)) -> (B, D * num_outputs)``.

  Each block adds a projection of the time embedding before a SiLU layer (as the U-Nets of the
  score-SDE line add it to every residual block).
  """

  out_dim: int
  hidden: int = 256
  depth: int = 4
  time_embed_dim: int = 64
  dtype: jnp.dtype = jnp.float32
  num_classes: int = 0  # > 0: class-conditional (label embedding added to the time embedding)

  @nn.compact
  def __call__(self, x: Array, t: Array, train: bool = False, y: Array | None = None) -> Array:
    del train
    temb = sinusoidal_embedding(t, self.time_embed_dim)
    temb = nn.Dense(self.hidden, dtype=self.dtype)(temb)
    temb = nn.Dense(self.hidden, dtype=self.dtype)(nn.silu(temb))
    temb = temb + label_embedding(self.num_classes, self.hidden, y, x.shape[0], self.dtype)
    h = nn.Dense(self.hidden, dtype=self.dtype)(x)
    for _ in range(self.depth):
      z = nn.silu(h + nn.Dense(self.hidden, dtype=self.dtype)(temb))
      h = h + nn.Dense(self.hidden, dtype=self.dtype)(nn.silu(nn.Dense(self.hidden,
                                                                        dtype=self.dtype)(z)))
    out = nn.Dense(self.out_dim, dtype=self.dtype, kernel_init=nn.initializers.zeros)(nn.silu(h))
    return out.astype(jnp.float32)
