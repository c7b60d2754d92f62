"""CIFAR10-LT (imbalance ratio 100, Cao et al. 2019), LIM with alpha = 1.8: the imbalanced-data
setting of Yoon et al. 2023 (§5), same network and training as ``cifar10_levy.py``."""

from lim_jax import config_lib


def get_config():
  config = config_lib.levy_image_config("cifar10_lt", alpha=1.8)
  config.data.lt_ratio = 100.0
  return config
