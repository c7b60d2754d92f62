"""CIFAR10, jump-diffusion (Baule 2025) with the DDPM++ U-Net.

Baule's paper works on 2-D data and gives no image hyper-parameters, so this is the score-SDE DDPM++
setting (``config_lib.image_config``) with the family's reference process (lambda = 1, g2 = 1,
c = 1, b = 1, T = 10) and the exponential-integrator reverse SDE with jumps.
"""

from lim_jax import config_lib


def get_config():
  config = config_lib.image_config("jump", "cifar10")
  config.process.t_max = 10.0
  config.sampling.sampler = "ei_sde"
  return config
