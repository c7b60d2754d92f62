"""MNIST, GFDM FVP with H = 0.9 and K = 3, the setting of the paper's best MNIST FID (0.72,
class-conditional; Nobis et al. 2024), with ``config_lib.mnist_config``'s network. Sampled with the
stiffness-free ``ei_sde`` (K = 3 makes explicit Euler–Maruyama stiff at low NFE; the paper's ``em``
is ``--config.sampling.sampler=em``).

Unconditional by default; ``--config.model.num_classes=10`` trains the class-conditional model.
"""

from lim_jax import config_lib


def get_config():
  config = config_lib.mnist_config("fbm", hurst=0.9, num_ou=3)
  config.sampling.sampler = "ei_sde"
  config.model.num_classes = 0  # 10: class-conditional, as the published numbers
  return config
