"""MNIST (zero-padded to 32x32), Gaussian VP baseline (``config_lib.mnist_config``)."""

from lim_jax import config_lib


def get_config():
  return config_lib.mnist_config("gaussian")
