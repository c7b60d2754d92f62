"""CIFAR10, LIM (Yoon et al. 2023) with alpha = 1.8 and LIM's CIFAR10 hyper-parameters: DDPM++-style
U-Net ch 128, ch_mult (1,2,2,2), 4 res blocks, attention at 16, dropout 0.1, batch 256, lr 1e-4,
EMA 0.9999, gradient clip 1 (LIM's cifar10 config; its FIR/progressive-input NCSN++ options are not
implemented here, see lim_jax/models/ddpmpp.py). Exact stable noise (no clamps), score
coefficient 2.
"""

from lim_jax import config_lib


def get_config():
  return config_lib.levy_image_config("cifar10", alpha=1.8)
