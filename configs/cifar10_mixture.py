"""CIFAR10, Gaussian-mixture noise (GM-SGM) on the VP path with the DDPM++ U-Net.

The paper gives no hyper-parameters, so this is the score-SDE DDPM++ setting
(``config_lib.image_config``) with the family defaults: per-sample kappa in (1, 3) with weights
(0.9, 0.1) and the posterior-weighted target; two output heads (score, velocity). Sampled with the
family's ``ei_sde`` (exponential integrator, Gaussian Langevin noise; docs/families/mixture.md);
the generic Euler–Maruyama is ``--config.sampling.sampler=em``.
"""

from lim_jax import config_lib


def get_config():
  config = config_lib.image_config("mixture", "cifar10")
  config.sampling.sampler = "ei_sde"
  return config
