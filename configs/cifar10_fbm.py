"""CIFAR10, GFDM (fractional diffusion) FVP with H = 0.9, K = 2 and the official code's
hyper-parameters (Nobis et al. 2024, GabrielNobis/gfdm): DDPM++ ch 128, 4 blocks, ch_mult (1,2,2,2),
attention at 8, dropout 0.1, batch 128, lr 2e-4; 1000 steps, t from 1 to 1e-3, sampled with the
exponential integrator ``ei_sde`` (exact for point-mass data, stiffness-free); the official code's
Euler–Maruyama is ``--config.sampling.sampler=em``.

The published FID (3.77) is class-conditional; this config is unconditional by default. For the
class-conditional model: ``--config.model.num_classes=10`` (samples cycle through the classes;
``--config.sampling.class_label=c`` draws class ``c`` only).
"""

from lim_jax import config_lib


def get_config():
  config = config_lib.image_config("fbm", "cifar10", hurst=0.9, num_ou=2)
  config.model.attn_resolutions = (8,)
  config.sampling.sampler = "ei_sde"
  config.sampling.nfe = 1000
  config.model.num_classes = 0  # 10: class-conditional, as the published numbers
  return config
