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

  @nn.compact
  def __call__(self, x: Array, t: Array, train: bool = False) -> Array:
    del train
    temb = sinusoidal_embedding(t, self.time_embed_dim)
    temb = nn.Dense(self.hidden, dtype=self.dtype)(temb)
    temb = nn.Dense(self.hidden, dtype=self.dtype)(nn.silu(temb))
    h = nn.Dense(self.hidden, dtype=self.dtype)(x)
    for _ in range(self.depth):
      z = nn.silu(h + nn.Dense(self.hidden, dtype=self.dtype)(temb))
      h = h + nn.Dense(self.hidden, dtype=self.dtype)(nn.silu(nn.Dense(self.hidden,
                                                                        dtype=self.dtype)(z)))
    out = nn.Dense(self.out_dim, dtype=self.dtype, kernel_init=nn.initializers.zeros)(nn.silu(h))
    return out.astype(jnp.float32)
