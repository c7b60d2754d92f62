"""GM-SGM (Gaussian-mixture noise, Ma et al. 2023; docs/families/mixture.md) on the imbalanced
2-D grid of Gaussians.

Defaults: VP linear path, two per-sample noise scales ``kappa = (1, 3)`` with weights
``(0.9, 0.1)``, the posterior-weighted score target, a two-headed MLP (score and flux velocity) and
the ``ei_sde`` sampler with Gaussian Langevin noise (``process.langevin_noise = 'mixture'`` draws
the per-step scale from the mixture, the paper's "large jumps": slower to converge in NFE).
Run with ``--config configs/toy_mixture.py``.
"""

from __future__ import annotations

from lim_jax import config_lib


def get_config():
  config = config_lib.default_config()
  config.data.dataset = "grid_imbalanced"
  config_lib.set_family(config, "mixture", mixture_weights=(0.9, 0.1), mixture_scales=(1.0, 3.0),
                        mixture_per="sample", target="posterior", langevin_noise="gaussian")
  config.sampling.sampler = "ei_sde"
  return config
