"""The Process protocol: one forward noise process, its training target and its reverse steps.

Every family obeys a continuity equation ``d/dt p_t = -div(f p_t) + lap(V_t)`` with ``V_t`` linear
in ``p_t`` (docs/README.md, common ground). With the flux velocity ``v_t = grad V_t / p_t``:

* probability-flow ODE, forward time: ``dx/dt = f(x, t) - v_t(x)`` (reverse time: ``-f + v``);
* reverse SDE with the forward noise law: ``dx/dtau = -f + 2 v + (forward noise increment)``;
* training regresses the network onto a conditional target whose conditional mean is the marginal
  quantity (tower property), exactly like denoising score matching.

A process is a frozen dataclass of static numbers (hashable, safe to close over inside ``jit``).
Families with precomputed tables keep them out of the dataclass fields
(``functools.cached_property``) so hashing and equality stay cheap and exact.

Shapes: ``x0`` is ``(B, *data_shape)``; ``t`` is ``(B,)`` forward time in ``[t_min_train, t_max]``;
a sampler *state* is whatever pytree the family needs (the data array itself, or the GFDM augmented
state); ``model_out`` is the network output for ``model_input(state, t)``, of shape
``(B, *data_shape[:-1], data_shape[-1] * num_outputs)``.

The shared noise-level axis (the fair comparison of families; Karras et al. 2022, "Elucidating the
design space of diffusion-based generative models", §2-§5, for the Gaussian case): every family
writes its network channel as ``channel = gamma(t) (x0 + r(t) n / k)`` (exactly for location-scale
families; for jump in law of the second moment), with

* ``gamma(t)`` = :meth:`Process.signal_scale`, the scale of the data inside the channel;
* ``r(t)`` = :meth:`Process.noise_level`, the noise-to-signal ratio: the noise's scale (its standard
  deviation where finite; the stable scale for levy, normalised so that ``alpha = 2`` gives the
  Gaussian's standard deviation) over ``gamma(t)``; increasing in ``t``, with inverse
  :meth:`Process.time_at_noise_level`;
* ``k`` = :attr:`Process.head_units`, the per-head constant relating the native network target to
  unit-scale noise.

Training allocations, time grids and the preconditioned parameterisations
(:mod:`lim_jax.precondition`) are all stated in ``r``, so every family gets the same ones.

Key convention: a function that draws a Gaussian variable of data shape draws it from
``jax.random.split(key)[0]`` and any latent (stable mixing variable, jump count, mixture component)
from ``split(key)[1]``. All families follow it, so in their Gaussian limit they produce exactly the
Gaussian family's numbers for the same key.
"""

from __future__ import annotations

import abc
import dataclasses
import numbers
import types
import typing
from typing import Any, Callable, ClassVar, Collection, Mapping, NamedTuple, TypeVar

import jax
import jax.numpy as jnp
from ml_collections import config_dict

from lim_jax.processes.schedules import Schedule, schedule_from_config

Array = jax.Array
PRNGKey = jax.Array
State = Any  # a pytree whose leaves have a leading batch axis
StepFn = Callable[[PRNGKey, State, Array, Array, Array], State]


class Sampler(NamedTuple):
  """``sample(params, key, shape) -> x`` (jitted; ``shape`` static) and the NFE it spends."""

  sample: Callable[..., Any]
  nfe: int
  num_steps: int


class Perturbed(NamedTuple):
  """What a loss needs from one forward-noising draw.

  Attributes:
    model_input: data-shaped network input (``x_t``, or GFDM's ``u = x_t - a_t . y``).
    target: regression target, shaped like the network output.
    weight: per-example loss weight, shape ``(B,)``.
  """

  model_input: Array
  target: Array
  weight: Array


def split_noise_key(key: PRNGKey) -> tuple[PRNGKey, PRNGKey]:
  """``(k_gauss, k_latent)`` following the module's key convention."""
  k_gauss, k_latent = jax.random.split(key)
  return k_gauss, k_latent


def bcast(v: Array, like: Array) -> Array:
  """Reshapes per-example ``v`` of shape ``(B,)`` to broadcast against ``like`` ``(B, ...)``."""
  v = jnp.asarray(v)
  if v.ndim == 0:
    return v
  return v.reshape(v.shape + (1,) * (like.ndim - v.ndim))


@dataclasses.dataclass(frozen=True, kw_only=True)
class Process(abc.ABC):
  """Base class of every noise family.

  Attributes:
    t_min: where samplers stop (forward time).
    t_min_train: lower end of the training time distribution ``U(t_min_train, t_max)``.
  """

  t_min: float = 1e-3
  t_min_train: float = 1e-5

  # ---- static description (class attributes, not fields) -----------------------------------
  family: ClassVar[str] = ""
  # Network output heads, each data-shaped. A family may override it with a property computed from
  # its fields (mixture: 1 head for one scale, 2 otherwise); always read it from the instance.
  num_outputs: ClassVar[int] = 1

  @property
  @abc.abstractmethod
  def t_max(self) -> float:
    """End of the forward time interval."""

  def validate(self) -> None:
    """Raises ``ValueError`` naming the config field of any bad parameter."""
    if not 0 < self.t_min_train <= self.t_min < self.t_max:
      raise ValueError(
          "process.t_min_train/t_min need 0 < t_min_train <= t_min < t_max, got "
          f"{self.t_min_train}, {self.t_min}, {self.t_max}")

  def describe(self) -> str:
    """One line for the run log."""
    return f"{self.family}: " + ", ".join(
        f"{f.name}={getattr(self, f.name)}" for f in dataclasses.fields(self) if f.init)

  # ---- training ------------------------------------------------------------------------------
  def sample_time(self, key: PRNGKey, batch: int) -> Array:
    """Training times ``t ~ U(t_min_train, t_max)``, shape ``(batch,)``."""
    return jax.random.uniform(key, (batch,), minval=self.t_min_train, maxval=self.t_max)

  @abc.abstractmethod
  def perturb(self, key: PRNGKey, x0: Array, t: Array) -> Perturbed:
    """Draws the forward kernel at ``t`` and returns network input, target and weight."""

  # ---- sampling ------------------------------------------------------------------------------
  @abc.abstractmethod
  def prior(self, key: PRNGKey, shape: tuple[int, ...]) -> State:
    """A sampler state at ``t_max`` for data of ``shape = (B, *data_shape)``."""

  def prior_at(self, key: PRNGKey, shape: tuple[int, ...], t: Array) -> State:
    """A sampler state at times ``t`` ``(B,)`` below ``t_max`` (a shared sampling range,
    :func:`lim_jax.processes.grids.sampling_range`): the family's kernel from ``x0 = 0``, the
    same approximation as :meth:`prior` (the signal term ``gamma(t) x0`` neglected, relatively
    ``1/r`` of the data's scale). By default the network input of :meth:`perturb`, for families
    whose sampler state is that input."""
    return self.perturb(key, jnp.zeros(shape, jnp.float32), t).model_input

  def model_input(self, state: State, t: Array) -> Array:
    """Data-shaped network input for a sampler state."""
    del t
    return state

  def readout(self, state: State) -> Array:
    """The data part of a sampler state."""
    return state

  @abc.abstractmethod
  def ode_drift(self, state: State, t: Array, model_out: Array) -> State:
    """Probability-flow ODE right-hand side ``d state / dt`` in forward time."""

  @abc.abstractmethod
  def sde_step(self, key: PRNGKey, state: State, t_cur: Array, t_next: Array,
               model_out: Array) -> State:
    """One Euler–Maruyama step of the reverse SDE from ``t_cur`` down to ``t_next < t_cur``."""

  def corrector_step(self, key: PRNGKey, state: State, t: Array, model_out: Array,
                     snr: float) -> State:
    """One Langevin corrector step at fixed ``t`` (predictor–corrector samplers)."""
    raise NotImplementedError(f"the {self.family} family has no corrector")

  def extra_steps(self) -> dict[str, StepFn]:
    """Family-specific one-evaluation step rules, by sampler name (e.g. exponential integrators)."""
    return {}

  def sampler_aliases(self) -> dict[str, str]:
    """Family sampler names served by a shared sampler (e.g. levy's exact ``ei_ode`` = ``ddim``)."""
    return {}

  def missing_samplers(self) -> dict[str, str]:
    """Why a family lacks a sampler name other families have (appended to the refusal message),
    e.g. a stochastic ``ei_sde`` where no consistent one exists."""
    return {}

  def trajectory_samplers(self) -> dict[str, Callable[..., Any]]:
    """Whole-trajectory samplers by name: ``factory(apply_fn, nfe, **options) -> Sampler``.

    For samplers that cannot be written as a one-evaluation step on a shared state (e.g. DLPM).
    """
    return {}

  # ---- the shared noise-level axis ------------------------------------------------------------
  #: True where the noise has infinite variance (levy with alpha < 2): the preconditioned network
  #: input is then bounded (:func:`lim_jax.precondition.squash`).
  heavy_tailed: ClassVar[bool] = False

  @property
  def head_units(self) -> tuple[float, ...]:
    """Per-head ``k_h`` with ``channel / gamma = x0 + (r / k_h) n_h`` (1 for unit-scale noise)."""
    return (1.0,) * self.num_outputs

  @property
  def denoiser_heads(self) -> tuple[bool, ...]:
    """Per head: True where ``D_h = channel/gamma - (r / k_h) n_h`` is a denoiser (the head's
    target is the noise itself), False for an auxiliary head whose target is another function of
    the noise (the mixture's score head; the jump's velocity head is one too but stays True,
    docs/families/jump.md §5). Under the ``x0``/``edm``
    parameterisations an auxiliary head is predicted directly, ``n_h = k_h F_h``
    (:func:`lim_jax.precondition.wrap`): mapped like a denoiser, its ``F`` target would grow
    linearly in ``r``."""
    return (True,) * self.num_outputs

  @abc.abstractmethod
  def signal_scale(self, t: Array) -> Array:
    """``gamma(t)`` ``(B,)``: the data's scale inside the network channel at time ``t``."""

  @abc.abstractmethod
  def noise_level(self, t: Array) -> Array:
    """``r(t)`` ``(B,)``: noise scale over signal scale, increasing in ``t`` (module docstring)."""

  @abc.abstractmethod
  def time_at_noise_level(self, r: Array) -> Array:
    """The inverse of :meth:`noise_level`: forward times ``(B,)`` at noise levels ``r > 0``."""

  def noise_level_range(self) -> tuple[float, float]:
    """``(r(t_min_train), r(t_max))`` as Python floats: the range a training allocation covers."""
    with jax.ensure_compile_time_eval():
      ends = self.noise_level(jnp.asarray([self.t_min_train, self.t_max], jnp.float32))
      return float(ends[0]), float(ends[1])

  def sampling_noise_range(self) -> tuple[float, float]:
    """``(r(t_min), r(t_max))``: the range a sampler's grid covers."""
    with jax.ensure_compile_time_eval():
      ends = self.noise_level(jnp.asarray([self.t_min, self.t_max], jnp.float32))
      return float(ends[0]), float(ends[1])

  @abc.abstractmethod
  def denoise(self, state: State, t: Array, model_out: Array) -> Array:
    """``E[x0 | x_t]`` ``(B, *data_shape)`` from the (native) network output at a sampler state."""

  # ---- denoiser-form sampling (lim_jax.samplers: ddim, edm_heun, dpmpp_2m, ancestral) ---------
  #: True where the channel is ``gamma(t) (x0 + r(t) n)`` with one fixed law of ``n`` for all t
  #: (gaussian, levy, mixture with per-sample kappa, GFDM's ``u`` given the OU state): the
  #: denoiser-form samplers then apply.
  location_scale: ClassVar[bool] = False

  @property
  def has_flow_form(self) -> bool:
    """Whether the deterministic denoiser-form samplers (``ddim``, ``edm_heun``, ``dpmpp_2m``)
    apply: the probability flow they integrate is ``dy/dr = (y - D)/r`` in ``y = channel /
    gamma(t)`` and the noise level ``r``, with ``D`` = :meth:`flow_denoise`. Every location-scale
    family (``D = E[x0 | x_t]``, the fixed-noise flow), and a family whose own PF-ODE has that form
    with another ``D`` (jump: its velocity head)."""
    return self.location_scale

  def flow_denoise(self, state: State, t: Array, model_out: Array) -> Array:
    """The ``D`` of the flow ``dy/dr = (y - D)/r`` that the deterministic denoiser-form samplers
    integrate (:attr:`has_flow_form`); ``E[x0 | x_t]`` (:meth:`denoise`) unless a family says
    otherwise. Shapes as :meth:`denoise`."""
    return self.denoise(state, t, model_out)

  @property
  def has_ancestral(self) -> bool:
    """Whether the ``ancestral`` and ``dpmpp_2m_sde`` denoiser-form steps apply
    (:meth:`ancestral_noise` keeps the law of ``n``); by default every location-scale family."""
    return self.location_scale

  @property
  def has_churn(self) -> bool:
    """Whether ``edm_sde``'s noise increase applies: :meth:`ancestral_noise` keeps the law of
    ``n`` without reading the state (it is called before any evaluation at the step); by default
    wherever ``ancestral`` applies."""
    return self.has_ancestral

  @property
  def noise_stability(self) -> float:
    """The stability index of ``n`` (2 for Gaussian noise): ``a n + b z`` with independent unit
    ``n, z`` and ``a^alpha + b^alpha = 1`` is again unit noise (the ``ancestral`` sampler)."""
    return 2.0

  def with_channel(self, state: State, t: Array, channel: Array) -> State:
    """The sampler state at ``t`` whose network channel is ``channel`` (latents kept)."""
    del t
    return channel

  def ancestral_noise(self, key: PRNGKey, n_hat: Array) -> Array:
    """Fresh unit noise (the law of ``n``) for one ``ancestral`` step; ``n_hat = E[n | x_t]`` may
    inform a latent (the mixture family draws its scale from the posterior given ``n_hat``)."""
    k_gauss, _ = split_noise_key(key)
    return jax.random.normal(k_gauss, n_hat.shape, n_hat.dtype)

  def has_corrector(self) -> bool:
    return type(self).corrector_step is not Process.corrector_step

  def log_notes(self) -> list[str]:
    """Warnings the run should log once (e.g. truncated tails)."""
    return []


@dataclasses.dataclass(frozen=True, kw_only=True)
class ScheduledProcess(Process):
  """A Process on a shared VP / VE path (:mod:`lim_jax.processes.schedules`).

  Attributes:
    schedule: the path; ``t_max`` is its end and ``validate`` checks it.
  """

  schedule: Schedule = Schedule()

  @property
  def t_max(self) -> float:
    return self.schedule.t_max

  def validate(self) -> None:
    self.schedule.validate()
    super().validate()

  # Location-scale on the path: channel = m_t x0 + s_t eps, so gamma = m_t and r = s_t / m_t.
  def signal_scale(self, t: Array) -> Array:
    return self.schedule.mean_coeff(t)

  def noise_level(self, t: Array) -> Array:
    return self.schedule.ratio(t)

  def time_at_noise_level(self, r: Array) -> Array:
    return self.schedule.time_at_ratio(r)


# ---- config <-> dataclass: one source of truth for a family's fields and defaults ---------------
ProcessT = TypeVar("ProcessT", bound=Process)


def _shared_field_names() -> frozenset[str]:
  """Fields every family shares (``process.t_min``, ``process.t_min_train``, the schedule): they
  live in the shared ``process`` config section, not in a family's ``config_fields()``."""
  return frozenset(f.name for f in dataclasses.fields(ScheduledProcess))


def _own_fields(cls: type[Process], exclude: Collection[str]) -> list[dataclasses.Field]:
  shared = _shared_field_names()
  return [f for f in dataclasses.fields(cls)
          if f.init and f.name not in shared and f.name not in exclude]


def _optional_type(hint: Any) -> type | None:
  """``T`` for a hint ``T | None`` (``Optional[T]``), else None."""
  if typing.get_origin(hint) not in (typing.Union, types.UnionType):
    return None
  args = [a for a in typing.get_args(hint) if a is not type(None)]
  return args[0] if len(args) == 1 and isinstance(args[0], type) else None


def config_fields_of(cls: type[Process], exclude: Collection[str] = ()) -> dict[str, Any]:
  """A family's own ``process`` config fields and defaults, read off its dataclass.

  Every init field of ``cls`` except the shared ones (``t_min``, ``t_min_train``, ``schedule``)
  and ``exclude`` (fields filled from a shared config field, e.g. a ``horizon`` that is
  ``process.t_max``), in declaration order, with its dataclass default. A ``None`` default of a
  field annotated ``T | None`` becomes ``config_dict.placeholder(T)`` so the config field keeps
  its type. This is what a family module's ``config_fields()`` returns
  (:func:`lim_jax.config_lib.set_family` adds it to the config).
  """
  hints = typing.get_type_hints(cls)
  out: dict[str, Any] = {}
  for f in _own_fields(cls, exclude):
    if f.default is dataclasses.MISSING:
      raise TypeError(f"{cls.__name__}.{f.name} has no default: a family's config fields need one")
    inner = _optional_type(hints[f.name])
    out[f.name] = (config_dict.placeholder(inner) if f.default is None and inner is not None
                   else f.default)
  return out


def as_float(value: Any) -> Any:
  """An int (not a bool) becomes a float; anything else is left for ``validate`` to refuse."""
  if isinstance(value, numbers.Integral) and not isinstance(value, bool):
    return float(value)
  return value


def _coerce(value: Any, hint: Any) -> Any:
  """Config value -> field value: an int for a ``float`` (or ``float | None``) field becomes a
  float, a list or tuple of numbers for a ``tuple[float, ...]`` field a tuple of floats (hashable).
  Anything else is returned as is, for the family's ``validate`` to refuse with the field named."""
  if hint is float or _optional_type(hint) is float:
    return as_float(value)
  if typing.get_origin(hint) is tuple and isinstance(value, (list, tuple)):
    args = typing.get_args(hint)
    if args and args[0] is float and all(
        isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value):
      return tuple(float(v) for v in value)
    return tuple(value)
  return value


def from_config_of(cls: type[ProcessT], cfg: Mapping[str, Any], **given: Any) -> ProcessT:
  """``process`` ConfigDict -> validated ``cls``, every field read from ``cfg`` by its own name.

  A field missing from ``cfg`` takes its dataclass default, so the defaults are written once, in
  the dataclass. ``schedule`` (of a :class:`ScheduledProcess`) is built from the shared fields
  ``process.sde``, ``.schedule``, ``.beta_min``, ... (:func:`schedule_from_config`). ``given``
  fixes fields that are not read under their own name (e.g. ``horizon`` from ``process.t_max``).
  Values pass through :func:`_coerce`; :meth:`Process.validate` then refuses a bad one naming
  ``process.<field>``, before anything compiles.
  """
  hints = typing.get_type_hints(cls)
  kwargs = dict(given)
  for f in dataclasses.fields(cls):
    if not f.init or f.name in kwargs:
      continue
    if f.name == "schedule" and issubclass(cls, ScheduledProcess):
      kwargs["schedule"] = schedule_from_config(cfg)
    elif f.name in cfg:
      kwargs[f.name] = _coerce(cfg[f.name], hints[f.name])
  proc = cls(**kwargs)
  proc.validate()
  return proc
