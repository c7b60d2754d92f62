"""Jump-diffusion Laplace model (Baule 2025) on heavy-tailed 2-D data: the reference setting.

Forward ``dx = -(b/2) x dt + sqrt(b g2) dW + dJ`` with d = 2, lambda = 1, g2 = 1, c = 1, b = 1,
T = 10 (Baule's notebook), on the isotropic alpha-stable toy set (``sas``, alpha = 1.7). The network
regresses the Rao–Blackwellised generalized-score target (lim_jax/processes/jump.py); samples come
from the exponential-integrator reverse SDE with compound-Poisson Laplace jumps.
"""

from lim_jax import config_lib


def get_config():
  config = config_lib.default_config()
  config_lib.set_family(config, "jump", jump_rate=1.0, jump_scale=1.0, g2=1.0, b=1.0)
  config.process.t_max = 10.0
  config.data.dataset = "sas"
  config.data.alpha = 1.7
  config.sampling.sampler = "ei_sde"
  config.sampling.nfe = 200
  return config
