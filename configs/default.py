"""Every shared field with its default (a Gaussian VP model on the 2-D ring); see README."""

from lim_jax import config_lib


def get_config():
  return config_lib.default_config()
