"""Every validation rule refuses its bad value with a message naming the field, before compiling."""

import pytest

from lim_jax import config_lib

# (dotted field, bad value, the field named in the error)
BAD = [
    ("data.dataset", "mnist_typo", "data.dataset"),
    ("data.num_train", 0, "data.num_train"),
    ("model.name", "resnet", "model.name"),
    ("model.hidden", 0, "model.hidden"),
    ("model.time_embed_dim", 63, "model.time_embed_dim"),
    ("model.dtype", "float16", "model.dtype"),
    ("process.family", "brownian", "process.family"),
    ("process.sde", "vpx", "process.sde"),
    ("process.schedule", "quadratic", "process.schedule"),
    ("process.beta_min", -0.1, "process.beta_min"),
    ("process.beta_max", 0.05, "process.beta_min/beta_max"),
    ("process.t_min", 0.0, "process.t_min"),
    ("process.t_min", 2.0, "process.t_min"),
    ("training.batch_size", 0, "training.batch_size"),
    ("training.batch_size", 30, "training.batch_size"),  # not divisible by 4 devices
    ("training.num_steps", -5, "training.num_steps"),
    ("training.num_steps", 0, "training.num_steps"),
    ("training.log_every", 0, "training.log_every"),
    ("training.checkpoint_every", 0, "training.checkpoint_every"),
    ("training.keep_checkpoints", 0, "training.keep_checkpoints"),
    ("training.steps_per_call", 0, "training.steps_per_call"),
    ("training.unroll", "sometimes", "training.unroll"),
    ("training.on_nonfinite", "ignore", "training.on_nonfinite"),
    ("training.loss", "l1", "training.loss"),
    ("training.huber_delta", 0.0, "training.huber_delta"),
    ("training.sample_every", -1, "training.sample_every"),
    ("optim.optimizer", "sgd", "optim.optimizer"),
    ("optim.learning_rate", 0.0, "optim.learning_rate"),
    ("optim.learning_rate", -1e-3, "optim.learning_rate"),
    ("optim.learning_rate", float("nan"), "optim.learning_rate"),
    ("optim.lr_schedule", "step", "optim.lr_schedule"),
    ("optim.warmup_steps", -1, "optim.warmup_steps"),
    ("optim.grad_clip", -1.0, "optim.grad_clip"),
    ("optim.ema_decay", 1.0, "optim.ema_decay"),
    ("optim.weight_decay", -0.1, "optim.weight_decay"),
    ("sampling.sampler", "ddpm_typo", "sampling.sampler"),
    ("sampling.nfe", 0, "sampling.nfe"),
    ("sampling.num_samples", 0, "sampling.num_samples"),
    ("sampling.batch_size", 6, "sampling.batch_size"),  # not divisible by 4 devices
    ("sampling.snr", 0.0, "sampling.snr"),
    ("sampling.time_power", 0.5, "sampling.time_power"),
    ("eval.num_samples", 0, "eval.num_samples"),
    ("eval.metrics", ("fid_typo",), "eval.metrics"),
]


@pytest.mark.parametrize("field,value,named", BAD, ids=[f"{f}={v!r}" for f, v, _ in BAD])
def test_bad_value_is_refused_with_field_named(field, value, named):
  config = config_lib.default_config()
  section, name = field.split(".") if "." in field else (None, field)
  with config.unlocked():
    if section is None:
      config[name] = value
    else:
      config[section][name] = value
  with pytest.raises(ValueError) as err:
    config_lib.validate(config, num_devices=4, num_processes=1)
  assert str(err.value).startswith(named), str(err.value)


def test_wrong_type_is_refused_by_configdict_naming_the_field():
  """ml_collections' type safety refuses a float for an int field and names it."""
  config = config_lib.default_config()
  with pytest.raises(TypeError, match="seed"):
    config.seed = 1.5


def test_pc_needs_nfe_of_two():
  config = config_lib.default_config()
  config.sampling.sampler, config.sampling.nfe = "pc", 1
  with pytest.raises(ValueError, match="^sampling.nfe"):
    config_lib.validate(config, num_devices=1, num_processes=1)


def test_batch_not_divisible_by_processes():
  config = config_lib.default_config()
  config.training.batch_size = 6
  with pytest.raises(ValueError, match=r"^training.batch_size .*processes \(4\)"):
    config_lib.validate(config, num_devices=2, num_processes=4)


def test_default_and_shipped_configs_validate(tmp_path):
  """The default config and every shipped configs/*.py pass validation on 4 devices (the own-data
  config with a generated file of its kind: it has no default data.path)."""
  import pathlib
  import numpy as np
  from lim_jax import own_data
  for path in sorted(pathlib.Path(__file__).parent.parent.glob("configs/*.py")):
    config = config_lib.load_file(path)
    if config.data.dataset in own_data.OWN_DATASETS:
      np.save(tmp_path / "points.npy", np.zeros((1000, 2), np.float32))
      config.data.path = str(tmp_path / "points.npy")
      config_lib.validate(config, num_devices=4, num_processes=1)
      config = config_lib.load_file(path, "images")
      np.save(tmp_path / "images.npy", np.zeros((100, 8, 8, 1), np.uint8))
      config.data.path = str(tmp_path / "images.npy")
      config.eval.metrics = ("pixel_vendi",)
    config_lib.validate(config, num_devices=4, num_processes=1)


def test_set_family_rejects_unknown_field():
  with pytest.raises(ValueError, match="^process.nonsense"):
    config_lib.set_family(config_lib.default_config(), "gaussian", nonsense=1)
