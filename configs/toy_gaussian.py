"""Gaussian VP baseline (score SDE, linear beta 0.1..20) on the embedded 8-Gaussian ring.

About 2 minutes on 2 CPU cores: 4000 steps of a 4-block residual MLP, batch 512, then 4096 samples
with the ancestral (``ei_sde``) sampler at 200 NFE.
"""

from lim_jax import config_lib


def get_config():
  config = config_lib.default_config()
  config_lib.set_family(config, "gaussian")
  config.data.dataset = "ring8"
  return config
