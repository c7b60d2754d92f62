"""Student-t noise (t-EDM / t-Flow; Pandey et al., ICLR 2025) on the heavy-tailed 2-D ``sas`` toy.

``--config=configs/toy_student_t.py`` is t-EDM: ``x_t = x0 + sigma eps`` with ``eps ~ t_nu(0, I)``,
``sigma = t`` in ``[0.002, 80]``, ``process.nu = 3`` (the heaviest tails the paper trains, its
Table 3 sweep runs nu = 3..9; the data are alpha-stable with alpha = 1.7). The paper's design is
the shared one: EDM preconditioning written in the noise's std ``r = sqrt(nu/(nu-2)) sigma``
(``model.parameterization = 'edm'``, the paper's Table 1), log-normal noise levels and Heun on the
rho = 7 grid with a final denoising step (``edm_heun``, 17 steps + 1 = 35 NFE, as
``configs/toy_edm.py``). ``--config=configs/toy_student_t.py:flow`` is t-Flow (``x_t = (1 - t) x0 +
t eps``, ``t`` up to 80/81) sampled with the paper's Heun in ``t`` (generic ``heun``;
``--config.sampling.grid=uniform_t`` for its uniform time grid). Same MLP, optimiser, batch and
steps as every other ``toy_*.py``; ``--config.process.nu=5`` etc. sets the tails.
"""

from lim_jax import config_lib
from lim_jax.processes import student_t

VARIANTS = student_t.VARIANTS
SIGMA_MIN = 0.002  # Karras et al. 2022, Table 1 (t-EDM keeps it)


def get_config(arg: str = "edm"):
  """``arg`` (after ``:`` on the command line): the variant, ``edm`` (default) or ``flow``."""
  variant = arg or "edm"
  if variant not in VARIANTS:
    raise ValueError(f"process.variant for toy_student_t must be one of {VARIANTS}, "
                     f"got {variant!r}")
  config = config_lib.default_config()
  config_lib.set_family(config, "student_t", nu=3.0, variant=variant)
  config.data.dataset = "sas"
  config.data.alpha = 1.7
  # The same noise levels for both variants: sigma/gamma = t (edm) or t/(1 - t) (flow) = 0.002.
  t_min = SIGMA_MIN if variant == "edm" else SIGMA_MIN / (1.0 + SIGMA_MIN)
  config.process.t_min = config.process.t_min_train = t_min
  config.sampling.sampler = "edm_heun" if variant == "edm" else "heun"
  config.sampling.nfe = 35
  config.eval.metrics = ("sliced_wasserstein", "mmd", "tail_quantile_log_error")
  return config
