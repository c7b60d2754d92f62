"""CelebA 64x64 (centre crop 140, bicubic resize), LIM with alpha = 1.5 (Yoon et al. 2023: their
CelebA config uses alpha 1.5 and a U-Net with ch_mult (1,2,2,2,4), 2 res blocks,
attention at 16)."""

from lim_jax import config_lib


def get_config():
  config = config_lib.levy_image_config("celeb_a", alpha=1.5)
  config.data.image_size = 64
  config.model.ch_mult = (1, 2, 2, 2, 4)
  config.model.num_res_blocks = 2
  return config
