"""GFDM on 2-D toy data: fractional VP (FVP) with H = 0.9, K = 2 (Nobis et al. 2024;
docs/families/fbm.md).

The official CIFAR10 setting (FVP, linear beta 0.1..20, gamma_max = 20, omega normalised so that
Var(X_1 | x0 = 0) = 1, no Sigma_YY jitter) on the imbalanced Gaussian-mixture grid, whose rare modes
test the diversity GFDM claims. Sampling: ``ei_sde`` (the exponential integrator of the augmented
reverse SDE on ``u``: exact for point-mass data, stiffness-free) at 200 NFE, the NFE of the other
toy configs; the official code's Euler–Maruyama with 1000 steps from t = 1 to 1e-3 is
``--config.sampling.sampler=em --config.sampling.nfe=1000`` (consistent only, and unstable at low
NFE for K >= 3; at low NFE ``dpmpp_2m`` on the ``edm`` grid is the most accurate:
benchmarks/RESULTS.md, "fbm stiffness").

Run: ``python -m lim_jax.main --config configs/toy_fbm.py --workdir /tmp/toy_fbm``.
"""

from __future__ import annotations

from lim_jax import config_lib


def get_config():
  config = config_lib.default_config()
  config.data.dataset = "grid_imbalanced"
  config_lib.set_family(config, "fbm", hurst=0.9, num_ou=2, gamma_max=20.0,
                        normalize_variance=True, jitter=0.0)
  config.process.sde = "vp"
  config.process.schedule = "linear"
  config.sampling.sampler = "ei_sde"
  config.sampling.nfe = 200
  return config
