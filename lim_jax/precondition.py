"""Preconditioned denoisers: one generic network parameterisation for every noise family.

Every family writes its network channel (``x_t``, or GFDM's ``u``) in *denoiser units* as

    y = channel / gamma(t) = x0 + (r / k_h) * n_h,

where ``gamma(t)`` is :meth:`Process.signal_scale`, ``r = r(t)`` the shared noise level
(:meth:`Process.noise_level`) and ``n_h`` the regression target of output head ``h`` in the family's
own (native) units, with the per-head constant ``k_h`` of :meth:`Process.head_units`. For the noise
head of a location-scale family ``n_h`` *is* the noise (levy: ``k = sqrt(2)``, since its
``alpha = 2`` noise is ``N(0, 2 I)``), so ``D_h = y - (r / k_h) n_h`` is the denoiser and its
conditional mean is ``E[x0 | x_t]``. Auxiliary heads (``Process.denoiser_heads`` False: the
mixture's score head, whose target is another function of the noise) are *not* mapped that way:
``D_h = y - (r/k_h) n_h`` is then no denoiser, and its ``F`` target ``((1 - c_skip) y - (r/k_h)
n_h)/c_out`` grows linearly in ``r`` (rms 72 at ``r = 100`` against ~2.7 for a denoiser head on the
``sas`` data), so a rare high-noise draw dominated the shared network's loss and spoiled the
denoiser head the deterministic samplers read. They are predicted directly from the preconditioned
input, ``n_h = k_h F_h`` (unit scale), with unit loss weight on ``F_h``. The jump's velocity head
has the same growth but stays in the denoiser map: its frozen-velocity ``ei_ode`` reads that head
alone and needs the skip term's ``y/r`` baseline (docs/families/jump.md §5). Both maps are affine
and invertible for fixed ``(y, r)``, so neither changes a minimiser.

``model.parameterization`` (Karras et al. 2022, "Elucidating the design space of diffusion-based
generative models" (EDM), Table 1 and §5):

* ``'eps'``: the network sees the raw channel and the raw time and predicts ``n`` directly, with the
  family's own loss weight (as in the papers: score SDE, LIM, GFDM, Baule's notebook).
* ``'x0'``: ``D_h = sigma_data F_h(c_in y, c_noise)``.
* ``'edm'``: ``D_h = c_skip y + c_out F_h(c_in y, c_noise)`` with ``c_skip = sd^2/(r^2 + sd^2)``,
  ``c_out = r sd / sqrt(r^2 + sd^2)``, ``c_in = 1/sqrt(r^2 + sd^2)``, ``c_noise = log(r)/4``
  (``sd = model.sigma_data``; EDM Table 1 with ``sigma = r``).

Loss weight, one rule for every family (``'x0'`` and ``'edm'``): ``lambda(r) = (r^2 + sd^2)/(r sd)^2
= 1/c_out^2`` on the denoiser error ``|D - x0|^2`` (EDM eq. 8 and Table 1), i.e. the per-example
residual :func:`normalized_residual` ``sqrt(lambda) (D_hat - D_target) = (r sqrt(lambda)/k)
(n_target - n_hat)``. For ``'edm'`` this is exactly ``F - F_target``; for Gaussian data it has unit
variance at the optimum at every noise level (``Var(x0 | y) = r^2 sd^2/(r^2 + sd^2)``).

Bounded input (``model.input_bound``): for heavy-tailed noise (levy with ``alpha < 2``) ``c_in y``
is unbounded, so one draw can blow up a gradient. The input is then passed through the radial squash
:func:`squash`, the identity on the ball ``|z| <= R = sqrt(dim) + m`` and
``R + m tanh((|z| - R)/m)`` outside it (``m`` = ``model.input_bound_margin``): invertible, bounded
by ``R + m``, and the identity on every typical draw of a unit-variance input; because it is
invertible, ``D`` still ranges over every function of ``y`` and the minimiser is unchanged. The skip
term keeps the raw ``y``: squashing it too would bound ``F_target = (x0 - c_skip y)/c_out`` but
breaks the identity ``D ~ y`` at low noise for heavy-tailed *data* (a data outlier would need
``|F| ~ |y|/r``).

Shapes: channel ``(B, *data_shape)``, ``t`` and ``r`` ``(B,)``, network output
``(B, *data_shape[:-1], data_shape[-1] * num_outputs)`` (heads concatenated on the last axis).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import jax
import jax.numpy as jnp

from lim_jax.processes.base import Process, bcast

Array = jax.Array
ApplyFn = Callable[..., Array]

PARAMETERIZATIONS = ("eps", "x0", "edm")
INPUT_BOUNDS = ("auto", "always", "never")


def squash(z: Array, margin: float) -> Array:
  """Radial squash of ``z`` ``(B, ...)``: identity for ``|z| <= R``, ``R + m tanh((|z| - R)/m)``
  beyond, ``R = sqrt(dim) + m`` (norms over all but the batch axis); ``|squash(z)| < R + m``."""
  axes = tuple(range(1, z.ndim))
  dim = math.prod(z.shape[1:])
  radius = math.sqrt(dim) + margin
  norm = jnp.sqrt(jnp.sum(z * z, axis=axes, keepdims=True))
  outside = norm > radius
  safe = jnp.where(outside, norm, 1.0)
  squashed = radius + margin * jnp.tanh((safe - radius) / margin)
  return z * jnp.where(outside, squashed / safe, 1.0)


@dataclasses.dataclass(frozen=True)
class Preconditioning:
  """Static settings of the network parameterisation (hashable; safe to close over in jit).

  Attributes:
    parameterization: ``'eps'``, ``'x0'`` or ``'edm'`` (module docstring).
    sigma_data: ``model.sigma_data``, the data's per-coordinate scale.
    bound_input: apply :func:`squash` to ``c_in y`` (and to the skip term).
    bound_margin: the squash margin ``m``.
  """

  parameterization: str = "eps"
  sigma_data: float = 1.0
  bound_input: bool = False
  bound_margin: float = 3.0

  @property
  def native(self) -> bool:
    """True for ``'eps'``: raw inputs, raw time, the family's own loss weight."""
    return self.parameterization == "eps"

  def coefficients(self, r: Array) -> tuple[Array, Array, Array, Array]:
    """``(c_skip, c_out, c_in, c_noise)`` at noise levels ``r`` ``(B,)`` (EDM Table 1)."""
    sd2 = self.sigma_data**2
    total = r * r + sd2
    c_skip = sd2 / total
    c_out = r * self.sigma_data / jnp.sqrt(total)
    c_in = 1.0 / jnp.sqrt(total)
    return c_skip, c_out, c_in, 0.25 * jnp.log(r)

  def residual_scale(self, r: Array) -> Array:
    """``r sqrt(lambda(r))`` with ``lambda = (r^2 + sd^2)/(r sd)^2``: native residual -> F units
    (before the per-head ``1/k_h``)."""
    return jnp.sqrt(r * r + self.sigma_data**2) / self.sigma_data


def from_config(model_cfg, process: Process) -> Preconditioning:
  """``model.parameterization`` / ``sigma_data`` / ``input_bound`` -> :class:`Preconditioning`."""
  bound = model_cfg.get("input_bound", "auto")
  if bound == "auto":
    bound_input = process.heavy_tailed
  else:
    bound_input = bound == "always"
  return Preconditioning(parameterization=model_cfg.get("parameterization", "eps"),
                         sigma_data=float(model_cfg.get("sigma_data", 1.0)),
                         bound_input=bool(bound_input),
                         bound_margin=float(model_cfg.get("input_bound_margin", 3.0)))


def validate(model_cfg) -> None:
  """Raises ``ValueError`` naming the bad ``model.*`` preconditioning field."""
  p = model_cfg.get("parameterization", "eps")
  if p not in PARAMETERIZATIONS:
    raise ValueError(f"model.parameterization must be one of {PARAMETERIZATIONS}, got {p!r}")
  sd = model_cfg.get("sigma_data", 1.0)
  if isinstance(sd, bool) or not isinstance(sd, (int, float)) or not (math.isfinite(sd)
                                                                       and sd > 0):
    raise ValueError(f"model.sigma_data must be a finite number > 0, got {sd!r}")
  b = model_cfg.get("input_bound", "auto")
  if b not in INPUT_BOUNDS:
    raise ValueError(f"model.input_bound must be one of {INPUT_BOUNDS}, got {b!r}")
  m = model_cfg.get("input_bound_margin", 3.0)
  if isinstance(m, bool) or not isinstance(m, (int, float)) or not (math.isfinite(m) and m > 0):
    raise ValueError(f"model.input_bound_margin must be a finite number > 0, got {m!r}")


def _over_heads(values, like: Array) -> Array:
  """One value per head, repeated over that head's part of the concatenated last axis of
  ``like``."""
  values = jnp.asarray(values)
  return jnp.repeat(values, like.shape[-1] // values.shape[0])


def _head_scale(process: Process, like: Array) -> Array:
  """The per-head ``k_h`` broadcast over the concatenated last axis of ``like``."""
  return _over_heads(jnp.asarray(process.head_units, like.dtype), like)


def _direct_heads(process: Process, like: Array) -> Array | None:
  """Boolean mask over the last axis of ``like``: True on auxiliary (directly predicted) heads;
  None when every head is a denoiser head."""
  heads = process.denoiser_heads
  return None if all(heads) else _over_heads([not h for h in heads], like)


def wrap(process: Process, apply_fn: ApplyFn, precond: Preconditioning) -> ApplyFn:
  """``apply_fn(params, x, t, ...)`` -> the same signature returning the *native* output.

  ``x`` is the family's channel (:meth:`Process.model_input`), ``t`` forward times ``(B,)``. For
  ``'eps'`` this is ``apply_fn`` itself. Otherwise the network is called on the preconditioned
  (and, if ``bound_input``, squashed) ``c_in y`` and ``c_noise``, and its raw output ``F`` is turned
  into ``n_h = k_h (y - D_h)/r`` per head (written without the cancellation ``y - D``).
  """
  if precond.native:
    return apply_fn

  def net(params, x, t, **kwargs):
    r = process.noise_level(t)
    y = x / bcast(process.signal_scale(t), x)
    _, c_out, c_in, c_noise = precond.coefficients(r)
    z = bcast(c_in, y) * y
    if precond.bound_input:
      z = squash(z, precond.bound_margin)
    raw = apply_fn(params, z, c_noise, **kwargs)
    heads = process.num_outputs
    k = _head_scale(process, raw)
    y_rep = jnp.concatenate([y] * heads, axis=-1) if heads > 1 else y
    r_b = bcast(r, raw)
    if precond.parameterization == "x0":
      native = k * (y_rep - precond.sigma_data * raw) / r_b
    else:
      # y - D = (1 - c_skip) y - c_out F, with 1 - c_skip = r^2/(r^2 + sd^2) (no cancellation).
      one_minus_skip = r * r / (r * r + precond.sigma_data**2)
      native = k * (bcast(one_minus_skip, raw) * y_rep - bcast(c_out, raw) * raw) / r_b
    direct = _direct_heads(process, raw)
    return native if direct is None else jnp.where(direct, k * raw, native)

  return net


def normalized_residual(process: Process, precond: Preconditioning, t: Array, out: Array,
                        target: Array) -> Array:
  """The residual the penalty sees: ``out - target`` for ``'eps'``; otherwise the denoiser error in
  units of its optimal spread, ``(r sqrt(lambda(r)) / k_h) (out - target)``, and ``(out -
  target) / k_h`` on auxiliary heads (module docstring)."""
  diff = out - target
  if precond.native:
    return diff
  scale = bcast(precond.residual_scale(process.noise_level(t)), diff)
  direct = _direct_heads(process, diff)
  if direct is not None:  # auxiliary heads: F_target - F = (n_target - n_hat) / k_h
    scale = jnp.where(direct, 1.0, scale)
  return scale * diff / _head_scale(process, diff)
