"""lim_jax: score-based generative models driven by non-Brownian noise, in JAX/Flax."""

__version__ = "0.1.0"
