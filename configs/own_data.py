"""Your own data: points with the toy MLP, or small images with a small DDPM++.

  python -m lim_jax.main --config=configs/own_data.py:points --workdir=runs/mine \\
      --config.data.path=my_points.npz
  python -m lim_jax.compare --config=configs/own_data.py:images --families=gaussian,levy \\
      --seeds=3 --workdir=runs/cmp --config.data.path=my_images.npz \\
      --config.eval.inception_path=/path/to/pt_inception-2015-12-05-6726825d.pth
  ... --config.data.dataset=image_folder --config.data.path=DIR --config.data.image_size=32

``data.path`` holds points ``(N, d)`` float or images ``(N, H, W, C)`` uint8 (``.npz``/``.npy``,
optional ``labels``), or, with ``data.dataset='image_folder'``, a folder of PNG/JPEG (optionally one
sub-folder per class). 10 % is held out for evaluation (``data.eval_fraction``). The images setting
is a DDPM++ of ch 32, ch_mult (1, 2), one residual block per level, attention only in the middle,
no dropout, lr 1e-3, batch 64 (the digits setting of ``benchmarks/bench_images.py``); its image
metrics ``fid`` and ``prdc`` need the Inception weights (``eval.inception_path``), ``pixel_vendi``
needs none. Everything here is a starting point to override.
"""

from lim_jax import config_lib

KINDS = ("points", "images")


def get_config(arg: str = "points"):
  """``arg`` (after ``:``): ``points`` (default) or ``images``."""
  kind = arg or "points"
  if kind not in KINDS:
    raise ValueError(f"configs/own_data.py takes one of {KINDS} after ':', got {kind!r}")
  config = config_lib.default_config()
  config_lib.set_family(config, "gaussian")
  config.data.dataset = "array"
  config.data.path = ""  # required: --config.data.path=...
  config.sampling.sampler = "ei_sde"
  config.eval.nfe_sweep = (10, 35, 100)
  if kind == "points":
    config.eval.metrics = ("sliced_wasserstein", "mmd", "prdc")
    config.eval.num_samples = 2000
    return config
  config.data.random_flip = False
  m = config.model
  m.name, m.ch, m.ch_mult, m.num_res_blocks, m.attn_resolutions = "ddpmpp", 32, (1, 2), 1, ()
  m.dropout, m.resblock_updown, m.skip_rescale = 0.0, True, True
  m.embedding, m.fourier_scale = "positional", 16.0
  tr = config.training
  tr.batch_size, tr.num_steps, tr.log_every, tr.checkpoint_every = 64, 4000, 200, 1000
  tr.steps_per_call = 10
  op = config.optim
  op.learning_rate, op.warmup_steps, op.ema_decay = 1e-3, 100, 0.999
  config.sampling.num_samples = config.sampling.batch_size = 64
  config.eval.metrics = ("fid", "prdc", "pixel_vendi")
  config.eval.num_samples = 1000
  return config
