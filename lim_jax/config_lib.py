"""The shared configuration: every field a run reads, and its validation.

Config files in ``configs/`` call :func:`default_config` and override fields; a family's own fields
(``process.alpha``, ``process.hurst``, ...) come from the family module's ``config_fields()``
through :func:`set_family`. Field names listed in the README (Configuration, Outputs) are a public
contract: never rename them.

:func:`validate` runs before anything is compiled and raises ``ValueError`` whose message starts
with the offending field's dotted name.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import numbers
import pathlib
from typing import Any

import jax
from ml_collections import config_dict

from lim_jax import data, losses, models, own_data, precondition, samplers
from lim_jax.metrics import registry as metric_registry
from lim_jax.processes import FAMILIES, get_process, grids

ConfigDict = config_dict.ConfigDict

ON_NONFINITE = ("stop", "skip")
OPTIMIZERS = ("adam", "adamw")
LR_SCHEDULES = ("constant", "cosine")


def default_config() -> ConfigDict:
  """All shared fields with their defaults (a Gaussian VP model on the 2-D ring)."""
  c = ConfigDict()
  c.seed = 0

  c.data = ConfigDict()
  c.data.dataset = "ring8"
  c.data.image_size = 0  # 0 for vector (toy) data
  c.data.num_train = 50_000  # size of the fixed training set drawn from the toy generator
  c.data.alpha = 1.7  # tail index of the heavy-tailed ``sas`` toy set (Baule 2025)
  # Own data (lim_jax/own_data.py): dataset 'array' (.npz/.npy) or 'image_folder' at ``path``.
  c.data.path = ""
  c.data.eval_fraction = 0.1  # held-out test split of own data
  c.data.validation_fraction = 0.0  # held-out validation split (lim_jax.compare --tune)
  c.data.split_seed = 0  # the split is the same for every run seed

  c.model = ConfigDict()
  c.model.name = "mlp"
  c.model.hidden = 128
  c.model.depth = 3
  c.model.time_embed_dim = 64
  c.model.dtype = "float32"
  c.model.num_classes = 0  # > 0: class-conditional on the dataset's labels (ring8, grid, images)
  # The shared parameterisation (lim_jax/precondition.py): eps (as in the papers) | x0 | edm.
  c.model.parameterization = "edm"
  c.model.sigma_data = 1.0  # the data's per-coordinate scale (EDM's sigma_data; 0.5 for images)
  # Squash the preconditioned input: always (default: heavy-tailed data such as ``sas`` needs it as
  # much as heavy-tailed noise; the identity on typical inputs) | auto (heavy-tailed noise only)
  # | never.
  c.model.input_bound = "always"
  c.model.input_bound_margin = 3.0  # the squash is the identity for |c_in y| <= sqrt(dim) + margin

  c.process = ConfigDict()
  c.process.family = "gaussian"
  c.process.sde = "vp"  # vp | ve
  c.process.schedule = "linear"  # VP schedule: linear | cosine
  c.process.beta_min = 0.1
  c.process.beta_max = 20.0
  c.process.cosine_s = 0.008
  c.process.sigma_min = 0.01
  c.process.sigma_max = 50.0
  c.process.t_max = config_dict.placeholder(float)  # None: 1 (0.9946 for cosine)
  c.process.t_min = 1e-3
  c.process.t_min_train = 1e-5

  c.training = ConfigDict()
  c.training.batch_size = 512  # global, over all devices and hosts
  c.training.num_steps = 4000
  c.training.log_every = 200
  c.training.checkpoint_every = 2000
  c.training.keep_checkpoints = 3
  c.training.steps_per_call = 20
  c.training.unroll = "auto"  # unroll the per-call scan: always/never/auto (= a U-Net on CPU)
  c.training.on_nonfinite = "stop"
  c.training.max_nonfinite = 10  # ``skip``: stop after this many non-finite steps in a row
  c.training.loss = "l2"
  c.training.huber_delta = 1.0
  c.training.sample_every = 0  # 0: write samples at the end only
  # The shared allocation of training noise levels (lim_jax/losses.py): uniform_t (the papers:
  # uniform in each family's own clock) | lognormal (EDM: log r ~ N(p_mean, p_std^2)) | loguniform.
  c.training.noise_levels = "lognormal"
  c.training.p_mean = -1.2
  c.training.p_std = 1.2

  c.optim = ConfigDict()
  c.optim.optimizer = "adam"
  c.optim.learning_rate = 1e-3
  c.optim.lr_schedule = "constant"
  c.optim.warmup_steps = 100
  # Global-norm clip. The shared EDM loss has unit residuals at every noise level, so on the toy MLP
  # its gradient norm is ~1 for every family (median; eps-prediction: ~0.5): 10 clips only the
  # outlier-dominated steps (train/clipped_fraction; benchmarks/RESULTS.md, "design space").
  c.optim.grad_clip = 10.0
  c.optim.ema_decay = 0.999
  c.optim.weight_decay = 0.0
  c.optim.b1 = 0.9
  c.optim.b2 = 0.999
  c.optim.eps = 1e-8

  c.sampling = ConfigDict()
  c.sampling.sampler = "ei_sde"
  c.sampling.nfe = 200
  c.sampling.num_samples = 4096
  c.sampling.batch_size = 4096
  c.sampling.snr = 0.16
  c.sampling.class_label = -1  # class-conditional models: -1 = classes in turn, c >= 0 = only c
  c.sampling.time_power = 1.0  # time grid t_i = (t_max^(1/p) + i/N (t_min^(1/p) - t_max^(1/p)))^p
  # The shared grid (lim_jax/processes/grids.py): uniform_t (the papers; time_power applies) | edm
  # (rho-spaced in the noise level) | loguniform (in the noise level).
  c.sampling.grid = "edm"
  c.sampling.rho = 7.0
  c.sampling.final_denoise = True  # the last evaluation returns E[x0 | x_t_min] (EDM's last step)
  # A shared sampling range in the noise level, one value for every family of a study (0: the
  # family's own end r(t_min) / r(t_max); levels beyond the family's range keep its end).
  c.sampling.noise_min = 0.0
  c.sampling.noise_max = 0.0
  # edm_sde only (EDM Alg. 2; lim_jax.samplers.Churn): churn, the noise-level window [s_tmin,
  # s_tmax] where noise is added (shared noise-level axis; s_tmax <= 0: no upper end), and the
  # added noise's scale. EDM's ImageNet-64 setting with S_noise = 1.
  c.sampling.s_churn = 40.0
  c.sampling.s_tmin = 0.05
  c.sampling.s_tmax = 50.0
  c.sampling.s_noise = 1.0
  # restart / restart_2m only (Xu et al. 2023, Alg. 1; lim_jax.samplers.Restart): restarts K, the
  # evaluations each spends, and the interval [restart_min, restart_max] in units of
  # model.sigma_data (the paper's CIFAR-10 [0.06, 0.30] at sigma_data = 0.5).
  c.sampling.restart_k = 2
  c.sampling.restart_nfe = 4
  c.sampling.restart_min = 0.12
  c.sampling.restart_max = 0.6

  c.eval = ConfigDict()
  c.eval.metrics = ("sliced_wasserstein", "mmd")
  c.eval.num_samples = 4096
  c.eval.inception_path = ""
  c.eval.nfe_sweep = ()  # e.g. (10, 20, 50): one row per NFE in eval/step_N.json
  c.eval.prdc_k = 3  # nearest neighbours of precision/recall/density/coverage (Kynkaanniemi 2019)
  c.eval.vendi_bandwidth = 0.1  # RBF bandwidth of the toy ``vendi`` metric (data units)
  c.eval.vendi_max_points = 2000  # samples used by ``vendi`` / ``pixel_vendi`` (O(n^2) memory)
  c.eval.batch_size = 50  # Inception batch of the image metrics
  return c


def set_family(config: ConfigDict, family: str, **overrides: Any) -> ConfigDict:
  """Sets ``process.family`` and adds that family's own fields (``config_fields()``), overridden."""
  if family not in FAMILIES:
    raise ValueError(f"process.family must be one of {sorted(FAMILIES)}, got {family!r}")
  module = importlib.import_module(FAMILIES[family])
  config.process.family = family
  fields = dict(getattr(module, "config_fields", dict)())
  for name in overrides:
    if name not in fields and name not in config.process:
      raise ValueError(f"process.{name} is not a field of family {family!r}")
  fields.update(overrides)
  with config.unlocked():
    for name, value in fields.items():
      config.process[name] = value
  return config


def paper_settings(config: ConfigDict) -> ConfigDict:
  """Switches ``config`` to the papers' own design: training times uniform in the family's clock,
  eps-prediction with the family's loss weight, the uniform time grid, no final denoising step and
  the DDPM++ gradient clip of 1."""
  config.training.noise_levels = "uniform_t"
  config.optim.grad_clip = 1.0
  config.model.parameterization = "eps"
  config.sampling.grid = "uniform_t"
  config.sampling.final_denoise = False
  return config


def image_config(family: str, dataset: str = "cifar10", **process_fields: Any) -> ConfigDict:
  """The DDPM++ image setting of score SDE "DDPM++ cont." (Song et al. 2021, App. H; CIFAR10): ch
  128, ch_mult (1,2,2,2), 4 res blocks, attention at 16, dropout 0.1, batch 128, lr 2e-4 with 5000
  warm-up steps, grad clip 1, EMA 0.9999, 1.3M iterations, 1000-step EM sampling. The
  ``configs/<dataset>_<family>.py`` files start here and change what their paper changed."""
  config = default_config()
  set_family(config, family, **process_fields)
  config.data.dataset = dataset
  config.data.image_size = 32
  config.data.data_dir = ""
  config.data.random_flip = True
  m = config.model
  m.name, m.ch, m.ch_mult, m.num_res_blocks = "ddpmpp", 128, (1, 2, 2, 2), 4
  m.attn_resolutions, m.dropout, m.resblock_updown, m.skip_rescale = (16,), 0.1, True, True
  m.embedding, m.fourier_scale = "positional", 16.0
  m.sigma_data = 0.5  # images in [-1, 1] (EDM's CIFAR10 setting)
  tr = config.training
  tr.batch_size, tr.num_steps, tr.log_every = 128, 1_300_000, 500
  tr.checkpoint_every, tr.steps_per_call = 10_000, 10
  op = config.optim
  op.learning_rate, op.warmup_steps, op.grad_clip, op.ema_decay = 2e-4, 5000, 1.0, 0.9999
  sp = config.sampling
  sp.sampler, sp.nfe, sp.num_samples, sp.batch_size = "em", 1000, 64, 64
  config.eval.metrics = ("fid", "prdc", "pixel_vendi")  # fid/prdc need eval.inception_path
  config.eval.num_samples = 50_000
  return config


def levy_image_config(dataset: str, alpha: float) -> ConfigDict:
  """LIM's image training setting (Yoon et al. 2023, App. C and its cifar10 config): batch 256,
  lr 1e-4, EMA 0.9999, gradient clip 1, on :func:`image_config`'s network; ``ei_sde`` at 500 NFE."""
  config = image_config("levy", dataset, alpha=alpha)
  config.training.batch_size = 256
  config.optim.learning_rate = 1e-4
  config.optim.ema_decay = 0.9999
  config.optim.grad_clip = 1.0
  config.sampling.sampler = "ei_sde"
  config.sampling.nfe = 500
  return config


def mnist_config(family: str, **process_fields: Any) -> ConfigDict:
  """MNIST zero-padded to 32x32 with a small DDPM++ (GFDM's MNIST setting: ch 64, ch_mult (1,2,4),
  batch 1024, lr 2e-4; attention at 8, 2 blocks, 50k steps are our choices)."""
  config = image_config(family, "mnist", **process_fields)
  config.data.image_size = 32
  config.data.random_flip = False
  m = config.model
  m.ch, m.ch_mult, m.num_res_blocks, m.attn_resolutions = 64, (1, 2, 4), 2, (8,)
  config.training.batch_size = 1024
  config.training.num_steps = 50_000
  return config


def _require(cond: bool, field: str, msg: str, value: Any) -> None:
  if not cond:
    raise ValueError(f"{field} {msg}, got {value!r}")


def _finite_number(section: ConfigDict, field: str, default: float, lo: float = 0.0,
                   strict: bool = False, note: str = "") -> float:
  """Refuses ``field`` (read from its ``section``, ``default`` if absent) unless it is a finite real
  number ``> lo`` (``strict``) or ``>= lo``; returns it."""
  value = section.get(field.split(".")[-1], default)
  ok = (not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)
        and (value > lo if strict else value >= lo))
  _require(ok, field, f"must be a finite number {'>' if strict else '>='} {lo:g}{note}", value)
  return value


def _positive_int(config: ConfigDict, field: str) -> None:
  section, name = field.split(".")
  value = config[section][name]
  _require(isinstance(value, numbers.Integral) and not isinstance(value, bool) and value > 0,
           field, "must be a positive integer", value)


def validate(config: ConfigDict, num_devices: int | None = None,
             num_processes: int | None = None):
  """Checks every shared field; builds and validates the Process, model and sampler names.

  Args:
    config: the run configuration.
    num_devices: global device count the batch is split over (default: ``jax.device_count()``).
    num_processes: host count (default: ``jax.process_count()``).

  Returns:
    The validated :class:`~lim_jax.processes.Process`.

  Raises:
    ValueError: naming the first bad field.
  """
  num_devices = jax.device_count() if num_devices is None else num_devices
  num_processes = jax.process_count() if num_processes is None else num_processes

  _require(isinstance(config.seed, numbers.Integral), "seed", "must be an integer", config.seed)
  data.validate(config.data)
  models.validate(config.model)
  precondition.validate(config.model)
  classes = models.num_classes(config.model)
  if classes:
    have = data.num_classes(config.data)
    _require(have is not None, "model.num_classes",
             f"needs a labelled dataset; data.dataset {config.data.dataset!r} has no class labels",
             classes)
    _require(classes == have, "model.num_classes",
             f"must be 0 or the {have} classes of data.dataset {config.data.dataset!r}", classes)
  process = get_process(config.process)

  tr = config.training
  for f in ("batch_size", "num_steps", "log_every", "checkpoint_every", "keep_checkpoints",
            "steps_per_call", "max_nonfinite"):
    _positive_int(config, f"training.{f}")
  _require(tr.get("unroll", "auto") in ("auto", "always", "never"), "training.unroll",
           "must be 'auto', 'always' or 'never'", tr.get("unroll"))
  _require(tr.batch_size % num_devices == 0, "training.batch_size",
           f"must be divisible by the number of devices ({num_devices})", tr.batch_size)
  _require(tr.batch_size % num_processes == 0, "training.batch_size",
           f"must be divisible by the number of processes ({num_processes})", tr.batch_size)
  _require(tr.on_nonfinite in ON_NONFINITE, "training.on_nonfinite",
           f"must be one of {ON_NONFINITE}", tr.on_nonfinite)
  _require(tr.loss in losses.PENALTIES, "training.loss",
           f"must be one of {sorted(losses.PENALTIES)}", tr.loss)
  _require(tr.huber_delta > 0, "training.huber_delta", "must be > 0", tr.huber_delta)
  losses.validate_allocation(tr)
  _require(isinstance(tr.sample_every, numbers.Integral) and tr.sample_every >= 0,
           "training.sample_every", "must be an integer >= 0", tr.sample_every)
  own_data.validate_run(config)  # own data: enough examples for the batch, a network that fits

  op = config.optim
  _require(op.optimizer in OPTIMIZERS, "optim.optimizer", f"must be one of {OPTIMIZERS}",
           op.optimizer)
  _require(op.lr_schedule in LR_SCHEDULES, "optim.lr_schedule", f"must be one of {LR_SCHEDULES}",
           op.lr_schedule)
  _require(math.isfinite(op.learning_rate) and op.learning_rate > 0, "optim.learning_rate",
           "must be a finite number > 0", op.learning_rate)
  _require(isinstance(op.warmup_steps, numbers.Integral) and op.warmup_steps >= 0,
           "optim.warmup_steps", "must be an integer >= 0", op.warmup_steps)
  _require(op.grad_clip >= 0, "optim.grad_clip", "must be >= 0 (0 disables clipping)",
           op.grad_clip)
  _require(0 <= op.ema_decay < 1, "optim.ema_decay", "must be in [0, 1)", op.ema_decay)
  _require(op.weight_decay >= 0, "optim.weight_decay", "must be >= 0", op.weight_decay)

  sp = config.sampling
  names = samplers.available(process)
  why = process.missing_samplers().get(sp.sampler)
  _require(sp.sampler in names, "sampling.sampler",
           f"must be one of {names} for family {process.family!r}" + (f" ({why})" if why else ""),
           sp.sampler)
  for f in ("nfe", "num_samples", "batch_size"):
    _positive_int(config, f"sampling.{f}")
  final = sp.get("final_denoise", False) is True
  d = samplers.Restart()  # restart / restart_2m: checked whatever the sampler, as the s_* fields
  k, per_restart = sp.get("restart_k", d.k), sp.get("restart_nfe", d.nfe)
  _require(isinstance(k, numbers.Integral) and not isinstance(k, bool) and k >= 0,
           "sampling.restart_k", "must be an integer >= 0", k)
  _require(isinstance(per_restart, numbers.Integral) and not isinstance(per_restart, bool)
           and per_restart > 0, "sampling.restart_nfe", "must be a positive integer",
           per_restart)
  lo = _finite_number(sp, "sampling.restart_min", d.r_lo, strict=True)
  hi = _finite_number(sp, "sampling.restart_max", d.r_hi, strict=True)
  _require(lo < hi, "sampling.restart_min", f"must be below sampling.restart_max ({hi!r})", lo)
  restart = None
  if sp.sampler in samplers.RESTART_SAMPLERS:
    restart = samplers.restart_from_config(config)
    samplers.check_restart(sp.sampler, restart)  # restart_nfe a multiple of the step's NFE
  least = samplers.min_nfe(sp.sampler, final, restart)
  _require(sp.nfe >= least, "sampling.nfe",
           f"is too small for sampler {sp.sampler!r} (it needs at least {least}"
           + (f", of which {samplers.restart_nfe(sp.sampler, restart)} on restarts"
              if restart is not None else "")
           + (", including the final denoising evaluation" if final else "") + ")", sp.nfe)
  _require(sp.batch_size % num_devices == 0, "sampling.batch_size",
           f"must be divisible by the number of devices ({num_devices})", sp.batch_size)
  _require(sp.snr > 0, "sampling.snr", "must be > 0", sp.snr)
  _require(sp.time_power >= 1, "sampling.time_power", "must be >= 1", sp.time_power)
  _require(sp.get("grid", "uniform_t") in grids.GRIDS, "sampling.grid",
           f"must be one of {grids.GRIDS}", sp.get("grid"))
  _finite_number(sp, "sampling.rho", 7.0, strict=True)
  final = sp.get("final_denoise", False)
  _require(isinstance(final, bool), "sampling.final_denoise", "must be a bool", final)
  churn = samplers.Churn()
  s_churn, s_tmin, s_tmax = (_finite_number(sp, f"sampling.{f}", getattr(churn, f))
                             for f in ("s_churn", "s_tmin", "s_tmax"))
  _finite_number(sp, "sampling.s_noise", churn.s_noise, strict=True)
  _require(s_tmax <= 0 or s_tmax > s_tmin, "sampling.s_tmax",
           "must be > sampling.s_tmin (or <= 0: no upper end)", s_tmax)
  noise_min, noise_max = (_finite_number(sp, f"sampling.{f}", 0.0,
                                         note=" (0: the family's own end)")
                          for f in ("noise_min", "noise_max"))
  # The span on this family's own noise levels, and whether its sampler accepts one.
  samplers.sampling_span(process, sp.sampler, noise_min, noise_max)
  if restart is not None:  # the restart point on the run's own main grid
    samplers.check_restart_config(config, process)
  label = sp.get("class_label", -1)
  _require(isinstance(label, numbers.Integral) and not isinstance(label, bool)
           and (label == -1 or 0 <= label < classes), "sampling.class_label",
           f"must be -1 (classes in turn) or a class in [0, {classes}) of a class-conditional "
           "model",
           label)

  ev = config.eval
  _positive_int(config, "eval.num_samples")
  for nfe in tuple(ev.get("nfe_sweep", ())):  # each is a sampling.nfe of the evaluation
    _require(isinstance(nfe, numbers.Integral) and not isinstance(nfe, bool) and nfe >= least,
             "eval.nfe_sweep", f"entries must be integers >= {least} for sampler "
             f"{sp.sampler!r} (its smallest sampling.nfe)", tuple(ev.nfe_sweep))
    if restart is not None:
      samplers.check_restart_config(config, process, nfe)
  metric_registry.validate_metrics(ev, data.is_image(config.data))
  return process


def load_file(path, arg: str | None = None) -> ConfigDict:
  """``get_config()`` (or ``get_config(arg)``) of a config file, as ``--config=path[:arg]`` does."""
  path = pathlib.Path(path)
  spec = importlib.util.spec_from_file_location(path.stem, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config() if arg is None else module.get_config(arg)


def to_json(config: ConfigDict) -> str:
  """The resolved config as JSON (``workdir/config.json``)."""
  return json.dumps(config.to_dict(), indent=2, sort_keys=True, default=str)
