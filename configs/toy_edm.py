"""The EDM Gaussian baseline (Karras et al. 2022) on an embedded 2-D toy: the state-of-the-art
Gaussian design every other family is compared against.

``process.sde = 'edm'``: ``x_t = x0 + t eps`` with ``t = sigma`` in ``[0.002, 80]`` (EDM Table 1);
EDM preconditioning (``model.parameterization = 'edm'``: ``c_skip, c_out, c_in, c_noise`` with
``model.sigma_data``) and loss weight ``lambda(sigma) = 1/c_out^2``; log-normal training noise
levels (``P_mean = -1.2``, ``P_std = 1.2``); sampling with Heun's method on the rho = 7 grid and a
final denoising evaluation: 17 Heun steps + 1 = 35 NFE, EDM's CIFAR10 budget (Alg. 1, Table 2). Same
MLP, optimiser, batch and steps as every other ``toy_*.py``.

``--config=configs/toy_edm.py:DATASET`` picks another embedded set (default ``ring8``, as
``toy_gaussian.py``).
"""

from lim_jax import config_lib


def get_config(arg: str = "ring8"):
  config = config_lib.default_config()
  config_lib.set_family(config, "gaussian")
  config.data.dataset = arg or "ring8"
  config.process.sde = "edm"
  config.process.t_min = 0.002  # sigma_min
  config.process.t_min_train = 0.002
  config.model.parameterization = "edm"
  config.training.noise_levels = "lognormal"
  config.training.p_mean, config.training.p_std = -1.2, 1.2
  config.sampling.sampler = "heun"
  config.sampling.grid = "edm"
  config.sampling.rho = 7.0
  config.sampling.final_denoise = True
  config.sampling.nfe = 35
  return config
