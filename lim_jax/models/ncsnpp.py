"""NCSN++ (Song et al. 2021, "Score-based generative modeling through SDEs", App. H): the DDPM++
U-Net of :mod:`lim_jax.models.ddpmpp` with

* FIR (``[1, 3, 3, 1]``, StyleGAN2) up/down-sampling inside the BigGAN residual blocks,
* ``progressive_input = 'residual'``: an input pyramid (FIR blur + 3x3 stride-2 conv per level)
  added to the features after every downsampling,
* Gaussian Fourier features of ``log t`` as the time embedding (scale 16),

the score-SDE CIFAR10 ``ncsnpp`` settings (``progressive = 'none'``,
``progressive_combine = 'sum'``, ``resblock_type = 'biggan'``). Selected by
``model.name = 'ncsnpp'``; every DDPM++ field still applies and overrides these defaults.
"""

from __future__ import annotations

NCSNPP_DEFAULTS = dict(fir=True, progressive_input="residual", embedding="fourier",
                       resblock_updown=True)
