"""MNIST (zero-padded to 32x32), LIM with alpha = 1.8 on the small MNIST network of
``config_lib.mnist_config``."""

from lim_jax import config_lib


def get_config():
  config = config_lib.mnist_config("levy", alpha=1.8)
  config.sampling.sampler = "ei_sde"
  return config
