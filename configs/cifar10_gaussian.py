"""CIFAR10, Gaussian VP baseline with the DDPM++ U-Net: the score-SDE "DDPM++ cont." setting
(Song et al. 2021, App. H; see ``config_lib.image_config``).

Needs the prepared dataset: ``tfds build cifar10 --file_format=array_record`` on a machine with
network, then ``--config.data.data_dir=DIR`` (README, Images).
"""

from lim_jax import config_lib


def get_config():
  return config_lib.image_config("gaussian", "cifar10")
