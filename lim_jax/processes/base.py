"""The Process protocol: one forward noise process, its training target and its reverse steps.

Every family obeys a continuity equation ``d/dt p_t = -div(f p_t) + lap(V_t)`` with ``V_t`` linear in
``p_t`` (DESIGN.md §2). With the flux velocity ``v_t = grad V_t / p_t``:

* probability-flow ODE, forward time: ``dx/dt = f(x, t) - v_t(x)`` (reverse time: ``-f + v``);
* reverse SDE with the forward noise law: ``dx/dtau = -f + 2 v + (forward noise increment)``;
* training regresses the network onto a conditional target whose conditional mean is the marginal
  quantity (tower property), exactly like denoising score matching.

A process is a frozen dataclass of static numbers (hashable, safe to close over inside ``jit``).
Families with precomputed tables keep them out of the dataclass fields (``functools.cached_property``)
so hashing and equality stay cheap and exact.

Shapes: ``x0`` is ``(B, *data_shape)``; ``t`` is ``(B,)`` forward time in ``[t_min_train, t_max]``; a
sampler *state* is whatever pytree the family needs (the data array itself, or the GFDM augmented
state); ``model_out`` is the network output for ``model_input(state, t)``, of shape
``(B, *data_shape[:-1], data_shape[-1] * num_outputs)``.

Key convention: a function that draws a Gaussian variable of data shape draws it from
``jax.random.split(key)[0]`` and any latent (stable mixing variable, jump count, mixture component)
from ``split(key)[1]``. All families follow it, so in their Gaussian limit they produce exactly the
Gaussian family's numbers for the same key.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, Callable, ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from lim_jax.processes.schedules import Schedule

Array = jax.Array
PRNGKey = jax.Array
State = Any  # a pytree whose leaves have a leading batch axis
StepFn = Callable[[PRNGKey, State, Array, Array, Array], State]


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

  def trajectory_samplers(self) -> dict[str, Callable[..., Any]]:
    """Whole-trajectory samplers by name: ``factory(apply_fn, nfe, **options) -> Sampler``.

    For samplers that cannot be written as a one-evaluation step on a shared state (e.g. DLPM).
    """
    return {}

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
