"""Networks, selected by ``model.name``.

:func:`get_model` returns a flax module and :func:`make_apply` the pure
``apply_fn(params, x, t, train=False, rng=None, y=None) -> out`` that losses and samplers call
(``y``: ``(B,)`` int class labels, only for a class-conditional network, ``model.num_classes > 0``).
"""

from __future__ import annotations

import jax.numpy as jnp

from lim_jax.models.ddpmpp import PROGRESSIVE_INPUTS, DDPMpp, validate_hparams
from lim_jax.models.mlp import MLP
from lim_jax.models.ncsnpp import NCSNPP_DEFAULTS

MODELS = ("mlp", "ddpmpp", "ncsnpp")
UNETS = ("ddpmpp", "ncsnpp")
# DDPM++ fields and defaults (score SDE "DDPM++ cont.", CIFAR10); image configs override them.
DDPMPP_DEFAULTS = dict(ch=128, ch_mult=(1, 2, 2, 2), num_res_blocks=4, attn_resolutions=(16,),
                       dropout=0.1, resblock_updown=True, skip_rescale=True,
                       embedding="positional", fourier_scale=16.0, fir=False,
                       progressive_input="none")


def _ddpmpp_field(model_cfg, name):
  defaults = {**DDPMPP_DEFAULTS, **(NCSNPP_DEFAULTS if model_cfg.name == "ncsnpp" else {})}
  value = model_cfg.get(name, defaults[name])
  return tuple(value) if isinstance(value, (list, tuple)) else value
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def validate(model_cfg) -> None:
  if model_cfg.name not in MODELS:
    raise ValueError(f"model.name must be one of {MODELS}, got {model_cfg.name!r}")
  if model_cfg.dtype not in DTYPES:
    raise ValueError(f"model.dtype must be one of {tuple(DTYPES)}, got {model_cfg.dtype!r}")
  nc = model_cfg.get("num_classes", 0)
  if isinstance(nc, bool) or not isinstance(nc, int) or nc < 0:
    raise ValueError(f"model.num_classes must be an integer >= 0 (0 = unconditional), got {nc!r}")
  if model_cfg.name in UNETS:
    validate_hparams(**{k: _ddpmpp_field(model_cfg, k) for k in (
        "ch", "ch_mult", "num_res_blocks", "attn_resolutions", "dropout", "embedding")})
    if _ddpmpp_field(model_cfg, "progressive_input") not in PROGRESSIVE_INPUTS:
      raise ValueError(f"model.progressive_input must be one of {PROGRESSIVE_INPUTS}, got "
                       f"{_ddpmpp_field(model_cfg, 'progressive_input')!r}")
    if not isinstance(_ddpmpp_field(model_cfg, "fir"), bool):
      raise ValueError(f"model.fir must be a bool, got {_ddpmpp_field(model_cfg, 'fir')!r}")
    return
  for f in ("hidden", "depth", "time_embed_dim"):
    v = model_cfg[f]
    if not (isinstance(v, int) and v > 0):
      raise ValueError(f"model.{f} must be a positive integer, got {v!r}")
  if model_cfg.time_embed_dim % 2:
    raise ValueError(f"model.time_embed_dim must be even, got {model_cfg.time_embed_dim}")


def get_model(model_cfg, data_shape: tuple[int, ...], num_outputs: int = 1):
  """The network for data of ``data_shape`` (without batch) with ``num_outputs`` heads."""
  validate(model_cfg)
  if model_cfg.name in UNETS:
    return DDPMpp(out_channels=int(data_shape[-1]) * num_outputs,
                  **{k: _ddpmpp_field(model_cfg, k) for k in DDPMPP_DEFAULTS},
                  dtype=DTYPES[model_cfg.dtype], num_classes=num_classes(model_cfg))
  return MLP(out_dim=int(data_shape[-1]) * num_outputs, hidden=model_cfg.hidden,
             depth=model_cfg.depth, time_embed_dim=model_cfg.time_embed_dim,
             dtype=DTYPES[model_cfg.dtype], num_classes=num_classes(model_cfg))


def num_classes(model_cfg) -> int:
  """``model.num_classes`` (0, the default, means unconditional)."""
  return int(model_cfg.get("num_classes", 0))


def make_apply(model):
  """``apply_fn(params, x, t, train=False, rng=None, y=None)`` for a flax module (params = the
  'params'); ``y`` are the class labels of a conditional network."""

  def apply_fn(params, x, t, train: bool = False, rng=None, y=None):
    rngs = {"dropout": rng} if (train and rng is not None) else None
    if y is None:
      return model.apply({"params": params}, x, t, train=train, rngs=rngs)
    return model.apply({"params": params}, x, t, train=train, rngs=rngs, y=y)

  return apply_fn
