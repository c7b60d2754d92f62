"""Jump-diffusion family (Baule 2025, "Generative modelling with jump-diffusions").

The maths in full: docs/families/jump.md.

Forward SDE, forward time ``t in [0, T]`` (``T = process.t_max``, default 10), constant OU rate b:

    dx = -(b/2) x dt + sqrt(b g2) dW + dJ,

``J`` compound Poisson with rate ``lambda`` (``jump_rate``) and isotropic Laplace amplitudes
``A = sqrt(2 c Z) xi``, ``Z ~ Exp(1)``, ``xi ~ N(0, I_d)`` (char. fn ``1/(1 + c|k|^2)``,
``c = jump_scale``). ``d`` is the whole data dimension: one jump moves every pixel at once.

Kernel (exact): ``x_t = m_t x0 + u``, ``m_t = e^{-bt/2}``, ``u | W ~ N(0, W I)`` with
``W = g2 (1 - e^{-bt}) + sum_{i<=N} 2 c Z_i e^{-b(t - s_i)}``, ``N ~ Poisson(lambda t)``, ``s_i``
the jump times. ``N`` is drawn by inverting the Poisson(lambda t) distribution with one
32-bit uniform (:meth:`JumpProcess.jump_count`), at most ``max_jumps``, a cap whose Poisson tail
mass at ``lambda T`` is below 1e-9 (checked by :meth:`JumpProcess.validate`); given ``N`` the
``s_i`` are iid ``U(0, t)`` (a sampler step draws them a few slots at a time, only as far as the
batch's largest ``N``; :meth:`JumpProcess._jump_slots`).

Generalized score (Baule 2025 §2; docs/families/jump.md §3): the Fokker–Planck equation reads
``d_t p = div((b/2) x p) + lap V`` with ``V_hat = (b g2/2 + lambda c/(1 + c|k|^2)) p_hat``, i.e.
``V = (b g2/2) p + lambda c (f_A * p)`` (with the factor ``b``, because the diffusion is
``sqrt(b g2)``), and the flux velocity is ``v = grad V / p``. ``V`` is linear in ``p``, so for
any split ``p_t = E_L[p_c(. | L)]`` over latents ``L`` the regression target
``v_c = grad V[p_c] / p_c`` has the marginal ``v`` as its conditional mean given ``x_t`` (tower
property).

Target (``process.target``):

* ``conditional_w`` (docs/families/jump.md §4): ``L`` = everything, ``p_c = N(u; 0, W I)``,
  ``v_c = -(u/W) [b g2/2 + lambda c E_Z(N(u; W + 2cZ) W/(W + 2cZ)) / N(u; W)]``. Its jump part has
  INFINITE variance (``u | W`` has Gaussian tails, ``f_A * p_c`` Laplace tails; measured: one
  example in 1e6 carries 70% of the mean squared target), and with ``g2 = 0`` the no-jump examples
  have no density at all (weight 0, biased).
* ``rao_blackwell`` (default): one jump's decayed size is integrated out. Given ``N >= 2`` and the
  other jumps, ``p_c = E_Y N(u; W_r + 2cY)`` with ``Y = Z e^{-b tau}``, ``tau ~ U(0, t)``, density
  ``f_Y(y) = (e^{-y} - e^{-y e^{bt}})/(b t y)``; if ``N <= 1`` the count is integrated over
  ``{0, 1}`` too (weights ``1 : lambda t``). Then ``f_A * p_c`` mixes over ``f_S = f_Y * Exp(1)``,
  ``f_S(s) = e^{-s} Ein((e^{bt} - 1) s)/(b t)``; both ``p_c`` and ``f_A * p_c`` have Laplace-type
  tails, so the target has finite variance, and an example on the ``g2 = 0`` atom gets target 0
  without bias. Same minimizer. The 1-D integrals (:mod:`lim_jax.processes.jump_quadrature`:
  Gauss–Legendre with ``quad_nodes`` = 5 nodes on 23 panels in ``log z`` placed at the
  integrand's features) have float32 relative error below 1e-5 for d = 1..3072.

Network parametrisation: with ``q = g2 + 2 lambda c / b`` (so ``E[W] = q (1 - e^{-bt})``) and
``sigma_t = sqrt(q (1 - e^{-bt}))`` the network predicts ``r = -2 sigma_t v / (b q)``, an eps-like
quantity: at ``lambda = 0`` it is exactly the Gaussian VP eps of the constant-rate schedule
``beta = b`` (and ``g2 = 1``). Velocity ``v = -(b q / (2 sigma_t)) r``. With jumps
(``lambda > 0``) a second head predicts ``E[u | x_t] / sigma_t`` (target ``u / sigma_t``), which
gives the denoiser ``E[x0 | x_t] = (x_t - sigma_t head_2) / m_t`` (:meth:`JumpProcess.denoise`): the
velocity is not a function of ``E[x0 | x_t]`` for this non-Gaussian kernel, nor the reverse, so the
denoiser needs its own head (as the mixture family's velocity does). At ``lambda = 0`` both targets
are ``eps`` and one head serves both.

Shared noise level (:mod:`lim_jax.processes.base`): ``gamma = m_t`` and
``r = sqrt(E|u|^2/d)/m_t = sigma_t/m_t = sqrt(q (e^{bt} - 1))``, inverse ``t = log1p(r^2/q)/b``.

Samplers (reverse time ``tau = T - t``, step from ``s = t_cur`` to ``t = t_next``, ``h = s - t``):

* generic ``euler``/``heun`` on the PF-ODE ``dx/dtau = (b/2) x + v`` (Baule 2025, PF-ODE);
* ``em``: reverse SDE ``dx/dtau = (b/2) x + 2 v`` + ``sqrt(b g2) dW`` + the same compound-Poisson
  Laplace jumps (Baule 2025, reverse SDE; docs/families/jump.md §7);
* ``ei_ode`` / ``ei_sde``: exact integration with ``r`` frozen. With ``a = m_t/m_s = e^{bh/2}`` and
  ``s_t = sqrt(1 - e^{-bt})``: ``x_t = a x_s + k sqrt(q) r (s_t - a s_s)`` (``k = 1`` ODE, ``k = 2``
  SDE) plus, for the SDE, the exact OU-propagated forward noise ``sqrt(g2 (e^{bh} - 1) +
  sum_i 2 c Z_i e^{b(h - tau_i)}) xi``. At ``lambda = 0`` the ODE rule is DDIM and the SDE rule the
  first-order noise-prediction SDE solver (SDE-DPM-Solver-1).
* ``ei_ode_v`` / ``ei_sde_v``: the reference code's rule, ``v`` frozen:
  ``x_t = a x_s + k (2/b)(a - 1) v`` (+ the same noise for the SDE).
* ``ddim`` / ``edm_heun`` / ``dpmpp_2m`` (:mod:`lim_jax.samplers`): in ``y = x/m_t`` and the
  noise level ``r`` the PF-ODE is ``dy/dr = r_hat``, the denoiser-form flow with
  ``D_v = y - r r_hat`` (:meth:`JumpProcess.flow_denoise`); ``ddim`` is then ``ei_ode``, and
  ``edm_heun`` (Karras et al. 2022, Alg. 1) and ``dpmpp_2m`` (Lu et al. 2022) are second-order
  rules for it. The stochastic denoiser-form rules (``restart`` included) need a fixed noise law
  and are not offered.

Bad parameters are refused by :meth:`JumpProcess.validate` with the config field named.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
from ml_collections import config_dict

from lim_jax.processes import base
from lim_jax.processes import jump_quadrature as quad

Array = jax.Array

DEFAULT_T_MAX = 10.0
JUMP_TAIL_TOL = 1e-9  # Poisson mass beyond ``max_jumps`` allowed at ``lambda * t_max``
JUMP_CHUNK = 4  # jump slots per pass of the samplers' jump loop (:meth:`JumpProcess._jump_slots`)
TRAIN_JUMP_CHUNK = 8  # the same for the training latents (:meth:`JumpProcess.draw_latents`)
TARGETS = ("rao_blackwell", "conditional_w")


# ---- Poisson cap -------------------------------------------------------------------------------
def poisson_tail(cap: int, mean: float) -> float:
  """``P(N > cap)`` for ``N ~ Poisson(mean)``, summed directly (no ``1 - cdf`` cancellation)."""
  if mean <= 0:
    return 0.0
  total, n = 0.0, cap + 1
  log_pmf = -mean + n * math.log(mean) - math.lgamma(n + 1)
  while True:
    term = math.exp(log_pmf)
    total += term
    if n > mean and term < 1e-18 * max(total, 1e-300):
      return total
    n += 1
    log_pmf += math.log(mean) - math.log(n)


def min_jump_cap(mean: float, tol: float = JUMP_TAIL_TOL) -> int:
  """Smallest ``cap >= 1`` with ``P(Poisson(mean) > cap) < tol``."""
  cap = max(1, int(mean))
  while poisson_tail(cap, mean) >= tol:
    cap += 1
  return cap


# ---- the process -------------------------------------------------------------------------------
class JumpLatents(NamedTuple):
  """Per-example jump latents ``(B,)`` of the training target (:meth:`JumpProcess.draw_latents`).

  Attributes:
    few: ``N <= 1``: the count is integrated over ``{0, 1}`` in the target.
    omega: the conditioned kernel variance over ``2c``.
    y0: the integrated-out jump's decayed size ``Y_0`` (0 if none); ``W = 2c (omega + y0)``.
  """

  few: Array
  omega: Array
  y0: Array


@dataclasses.dataclass(frozen=True, kw_only=True)
class JumpProcess(base.Process):
  """OU jump-diffusion with Laplace jumps; the network predicts ``r = -2 sigma_t v / (b q)``.

  Attributes:
    b: OU rate (``process.b``), time units ``1/t``.
    g2: Gaussian strength, diffusion ``sqrt(b g2) dW`` (``process.g2``; 0 = pure jump).
    jump_rate: Poisson rate ``lambda`` (``process.jump_rate``).
    jump_scale: Laplace scale ``c``, amplitude char. fn ``1/(1 + c|k|^2)`` (``process.jump_scale``).
    max_jumps: cap on the jumps drawn per example and interval (None: smallest admissible).
    quad_nodes: Gauss–Legendre nodes per panel of the target's integrals (``process.quad_nodes``;
      23 panels; float64 rule error 4e-5 at 4 nodes, 3e-6 at 5, below float32 rounding above).
    target: ``rao_blackwell`` (one jump's size and, if ``N <= 1``, the count integrated out: finite
      variance) or ``conditional_w`` (conditional on the full ``W``, docs/families/jump.md §4: the
      jump part of the target then has infinite variance).
    horizon: ``T`` (``process.t_max``, default 10 as in Baule's reference setting).
  """

  b: float = 1.0
  g2: float = 1.0
  jump_rate: float = 1.0
  jump_scale: float = 1.0
  max_jumps: int | None = None
  quad_nodes: int = 5
  target: str = "rao_blackwell"
  horizon: float = DEFAULT_T_MAX
  family: ClassVar[str] = "jump"

  @property
  def t_max(self) -> float:
    return self.horizon

  @property
  def jump_cap(self) -> int:
    """Jumps drawn per example and interval (``max_jumps`` or the smallest admissible cap)."""
    if self.max_jumps is not None:
      return int(self.max_jumps)
    return min_jump_cap(self.jump_rate * self.horizon)

  @property
  def num_outputs(self) -> int:  # overrides the base ClassVar
    """2 heads (velocity, denoiser) with jumps; 1 at ``jump_rate = 0`` (both targets are eps)."""
    return 1 if self.jump_rate == 0 else 2

  @property
  def noise_var(self) -> float:
    """``q = g2 + 2 lambda c/b``: ``E[W] = q (1 - e^{-bt})``, and ``v ~ -(b q/2) u/W`` at large
    scale."""
    return self.g2 + 2.0 * self.jump_rate * self.jump_scale / self.b

  def validate(self) -> None:
    def finite(x) -> bool:
      return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)

    if not (finite(self.jump_rate) and self.jump_rate >= 0):
      raise ValueError(f"process.jump_rate must be a finite number >= 0, got {self.jump_rate!r}")
    if not (finite(self.g2) and self.g2 >= 0):
      raise ValueError(f"process.g2 must be a finite number >= 0, got {self.g2!r}")
    if not (finite(self.jump_scale) and self.jump_scale > 0):
      raise ValueError(f"process.jump_scale must be a finite number > 0, got {self.jump_scale!r}")
    if not (finite(self.b) and self.b > 0):
      raise ValueError(f"process.b must be a finite number > 0, got {self.b!r}")
    if self.g2 == 0 and self.jump_rate == 0:
      raise ValueError("process.g2 and process.jump_rate are both 0: the forward process adds no "
                       "noise, got g2=0, jump_rate=0")
    if not (finite(self.horizon) and self.horizon > 0):
      raise ValueError(f"process.t_max must be > 0, got {self.horizon!r}")
    if self.target not in TARGETS:
      raise ValueError(f"process.target must be one of {TARGETS}, got {self.target!r}")
    if not (isinstance(self.quad_nodes, int) and not isinstance(self.quad_nodes, bool)
            and self.quad_nodes >= 4):
      raise ValueError(f"process.quad_nodes must be an integer >= 4, got {self.quad_nodes!r}")
    mean = self.jump_rate * self.horizon
    if self.max_jumps is not None:
      if not (isinstance(self.max_jumps, int) and not isinstance(self.max_jumps, bool)
              and self.max_jumps >= 1):
        raise ValueError(f"process.max_jumps must be a positive integer or None, got "
                         f"{self.max_jumps!r}")
      tail = poisson_tail(self.max_jumps, mean)
      if tail >= JUMP_TAIL_TOL:
        raise ValueError(
            f"process.max_jumps is too small for jump_rate * t_max = {mean:g}: the Poisson mass "
            f"beyond it is {tail:.2e} >= {JUMP_TAIL_TOL:g} (need >= {min_jump_cap(mean)}), "
            f"got {self.max_jumps}")
    super().validate()

  def log_notes(self) -> list[str]:
    notes = [f"jump: at most {self.jump_cap} jumps per example and interval (Poisson mass beyond "
             f"it at lambda*T = {self.jump_rate * self.horizon:g}: "
             f"{poisson_tail(self.jump_cap, self.jump_rate * self.horizon):.1e}); constant OU rate "
             f"b = {self.b:g}: process.sde/schedule/beta_*/sigma_* are not used"]
    if self.target == "conditional_w":
      notes.append("jump: target=conditional_w regresses on v(u | W), whose jump part has infinite "
                   "variance (Gaussian tails of u given W against Laplace tails of f_A * p); "
                   "rao_blackwell has the same minimizer and finite variance")
      if self.g2 == 0:
        notes.append("jump: g2 = 0 with conditional_w: examples without a jump (x_t = m_t x0) get "
                     "loss weight 0, which biases the learned velocity; use rao_blackwell")
    return notes

  # ---- coefficients (per example, t of shape (B,)) -------------------------------------------
  def mean_coeff(self, t: Array) -> Array:
    """``m_t = e^{-bt/2}``."""
    return jnp.exp(-0.5 * self.b * t)

  def unit_std(self, t: Array) -> Array:
    """``s_t = sqrt(1 - e^{-bt})``, the kernel std of a unit-strength OU process."""
    return jnp.sqrt(-jnp.expm1(-self.b * t))

  def sigma(self, t: Array) -> Array:
    """``sigma_t = sqrt(q) s_t = sqrt(E[W])``, the output scale of the parametrisation."""
    return math.sqrt(self.noise_var) * self.unit_std(t)

  # ---- the shared noise-level axis (lim_jax.processes.base) ------------------------------------
  def signal_scale(self, t: Array) -> Array:
    return self.mean_coeff(t)

  def noise_level(self, t: Array) -> Array:
    """``r = sigma_t / m_t = sqrt(q (e^{bt} - 1))``."""
    return jnp.sqrt(self.noise_var * jnp.expm1(self.b * t))

  def time_at_noise_level(self, r: Array) -> Array:
    return jnp.log1p(jnp.asarray(r) ** 2 / self.noise_var) / self.b

  # ---- heads ---------------------------------------------------------------------------------
  def split_heads(self, model_out: Array) -> tuple[Array, Array]:
    """``(r_hat, n_hat)``: the velocity head and the denoiser head (the same head at lambda = 0)."""
    if self.num_outputs == 1:
      return model_out, model_out
    return tuple(jnp.split(model_out, 2, axis=-1))

  def velocity(self, model_out: Array, t: Array) -> Array:
    """Network output (velocity head ``r``) -> flux velocity ``v = -(b q / (2 sigma_t)) r``."""
    r_hat, _ = self.split_heads(model_out)
    return -base.bcast(0.5 * self.b * self.noise_var / self.sigma(t), r_hat) * r_hat

  def output_from_velocity(self, v: Array, t: Array, denoised: Array | None = None) -> Array:
    """Flux velocity ``v`` -> a network output: ``r = -2 sigma_t v / (b q)``, and for two heads the
    denoiser head ``(x_t - m_t D)/sigma_t`` of ``denoised = (x_t, D)`` (zeros if None)."""
    r_out = -base.bcast(2.0 * self.sigma(t) / (self.b * self.noise_var), v) * v
    if self.num_outputs == 1:
      return r_out
    if denoised is None:
      n_out = jnp.zeros_like(r_out)
    else:
      x, d = denoised
      n_out = (x - base.bcast(self.mean_coeff(t), x) * d) / base.bcast(self.sigma(t), x)
    return jnp.concatenate([r_out, n_out], axis=-1)

  def denoise(self, state, t: Array, model_out: Array) -> Array:
    """``E[x0 | x_t] = (x_t - sigma_t n_hat) / m_t`` from the denoiser head."""
    _, n_hat = self.split_heads(model_out)
    return ((state - base.bcast(self.sigma(t), state) * n_hat)
            / base.bcast(self.mean_coeff(t), state))

  # ---- the PF-ODE in flow form (lim_jax.samplers: ddim, edm_heun, dpmpp_2m) --------------------
  @property
  def has_flow_form(self) -> bool:
    return True

  def missing_samplers(self) -> dict[str, str]:
    why = ("jump's kernel is not location-scale, so the stochastic denoiser-form steps, which add "
           "fresh noise of one fixed law, do not apply; its own reverse SDE is em / ei_sde, and "
           "ddim / edm_heun / dpmpp_2m integrate its PF-ODE")
    return {name: why for name in ("ancestral", "dpmpp_2m_sde", "edm_sde", "restart",
                                   "restart_2m")}

  def flow_denoise(self, state, t: Array, model_out: Array) -> Array:
    """``D_v = y - r r_hat``: in ``y = x / m_t`` and the noise level ``r = sqrt(q (e^{bt} - 1))``
    the PF-ODE ``dx/dt = -(b/2) x - v`` reads ``dy/dr = r_hat`` exactly (``v = -(b q / (2
    sigma_t)) r_hat`` and ``dr/dt = b q e^{bt} / (2 r)``), i.e. ``dy/dr = (y - D_v)/r``: the form
    the deterministic denoiser-form samplers integrate (docs/families/jump.md §7). Not
    ``E[x0 | x_t]`` (:meth:`denoise`) unless ``lambda = 0``, where both are the Gaussian
    denoiser."""
    r_hat, _ = self.split_heads(model_out)
    y = state / base.bcast(self.mean_coeff(t), state)
    return y - base.bcast(self.noise_level(t), state) * r_hat

  # ---- latents -------------------------------------------------------------------------------
  def jump_count(self, key: jax.Array, mean: Array) -> Array:
    """``N ~ Poisson(mean)`` capped at :attr:`jump_cap`, shape ``(B,)`` int32, by inversion.

    ``N = #{k < cap : V < P(N > k)}`` with one uniform ``V`` per example, formed from 32 random
    bits so that it resolves tail probabilities down to ``2^-32`` (a float32 uniform stops at
    ``2^-23``, above the cap's tolerance :data:`JUMP_TAIL_TOL`); ``P(N > k)`` is summed downwards
    from the cap, so small tails carry no ``1 - cdf`` cancellation. One random number per example
    instead of one per slot: the cost of the old arrival-time count (``cap`` exponentials and a
    cumulative sum) was most of the latents' time.
    """
    bits = jax.random.bits(key, mean.shape, jnp.uint32)
    v = (bits.astype(jnp.float32) + 0.5) * 2.0**-32
    log_mean = jnp.log(jnp.maximum(mean, 1e-30))
    tail = jnp.zeros_like(mean)  # P(k < N <= cap) for k = cap, cap - 1, ..., 0
    count = jnp.zeros(mean.shape, jnp.int32)
    for k in range(self.jump_cap, 0, -1):
      tail = tail + jnp.exp(k * log_mean - mean - math.lgamma(k + 1.0))
      count = count + (v < tail).astype(jnp.int32)
    return jnp.where(mean > 0, count, 0)

  def _jump_slots(self, key: jax.Array, count: Array, slot_value,
                  chunk: int) -> tuple[Array, Array]:
    """``(value of slot 0, sum of slots 1..count-1)``, each ``(B,)``, over iid jump slots.

    Slots are drawn ``chunk`` at a time (``slot_value(key_j) -> (B, chunk)`` with
    ``key_j = fold_in(key, j)`` for pass ``j``) until every example's ``count`` is covered: the
    loop runs ``ceil(max count / chunk)`` passes. The reverse-SDE steps (``lambda h ~ 0.2``) use
    :data:`JUMP_CHUNK` and draw one pass instead of :attr:`jump_cap` slots; the training latents use
    :data:`TRAIN_JUMP_CHUNK` = 8: under the log-normal allocation most training times are small and
    the batch's largest count is about 5-9, one or two passes (measured on the toy batch of 512:
    0.11 ms vs 0.17 ms for all 34 slots in one pass; 0.20 vs 0.17 ms under ``uniform_t``). An
    example's values depend only on ``key``, its row and its own count, not on how many passes the
    batch needs.
    """
    dtype = jax.eval_shape(slot_value, key).dtype  # float64 under jax_enable_x64
    zero = jnp.zeros(count.shape, dtype)
    slots = jnp.arange(chunk)

    def body(carry):
      j, first, rest = carry
      values = slot_value(jax.random.fold_in(key, j))
      values = jnp.where(j * chunk + slots < count[:, None], values, 0.0)
      head = jnp.where(j == 0, values[:, 0], 0.0)
      return j + 1, first + head, rest + jnp.sum(values, axis=-1) - head

    def more(carry):
      return carry[0] * chunk < jnp.max(count)

    _, first, rest = jax.lax.while_loop(more, body, (jnp.zeros((), jnp.int32), zero, zero))
    return first, rest

  def _jump_sum(self, key: jax.Array, duration: Array, growth: float) -> Array:
    """``sum_{i <= N} Z_i exp(growth (duration - tau_i))``, shape ``(B,)``.

    ``N ~ Poisson(lambda duration)`` (:meth:`jump_count`), and given ``N`` the jump times ``tau_i``
    are iid ``U(0, duration)`` and the Laplace mixing variables ``Z_i ~ Exp(1)``: the compound
    Poisson process of the forward SDE over one step. ``growth`` is ``0`` for an EM step and ``+b``
    for the exponential integrators.
    """
    k_count, k_slots = jax.random.split(key)
    count = self.jump_count(k_count, self.jump_rate * duration)
    shape = duration.shape + (JUMP_CHUNK,)

    def slot_value(k):
      k_time, k_size = jax.random.split(k)
      lag = duration[:, None] * jax.random.uniform(k_time, shape)  # duration - tau_i
      return jax.random.exponential(k_size, shape) * jnp.exp(growth * lag)

    first, rest = self._jump_slots(k_slots, count, slot_value, JUMP_CHUNK)
    return first + rest

  def draw_latents(self, key: jax.Array, t: Array) -> JumpLatents:
    """Jump latents at forward times ``t`` ``(B,)``; the kernel variance is ``2c (omega + y0)``.

    The count ``N ~ Poisson(lambda t)`` (at most :attr:`jump_cap`; :meth:`jump_count`); given
    ``N`` the jumps carry iid ``Y_i = Z_i e^{-b(t - s_i)}``, ``s_i ~ U(0, t)``, so slot 0 is a
    uniformly chosen jump. ``rao_blackwell``: ``y0 = Y_0`` (0 if ``N = 0``) is integrated out of
    the target, ``omega = g2 s_t^2/(2c) + sum_{1 <= i < N} Y_i``, ``few = N <= 1``.
    ``conditional_w``: ``omega = W/(2c)``, ``y0 = 0`` (everything conditioned on).
    """
    k_count, k_slots = jax.random.split(key)
    gauss = self.g2 * -jnp.expm1(-self.b * t) / (2.0 * self.jump_scale)
    if self.jump_rate == 0:
      return JumpLatents(few=jnp.ones(t.shape, bool), omega=gauss, y0=jnp.zeros_like(t))
    count = self.jump_count(k_count, self.jump_rate * t)
    chunk = min(TRAIN_JUMP_CHUNK, self.jump_cap)
    shape = t.shape + (chunk,)

    def slot_value(k):
      k_time, k_size = jax.random.split(k)
      lag = t[:, None] * jax.random.uniform(k_time, shape)  # t - s_i with s_i ~ U(0, t)
      return jax.random.exponential(k_size, shape) * jnp.exp(-self.b * lag)

    y0, others = self._jump_slots(k_slots, count, slot_value, chunk)
    if self.target == "conditional_w":
      return JumpLatents(few=count <= 1, omega=gauss + y0 + others, y0=jnp.zeros_like(t))
    return JumpLatents(few=count <= 1, omega=gauss + others, y0=y0)

  def kernel_variance(self, key: jax.Array, t: Array) -> Array:
    """A draw of ``W`` at forward times ``t`` (shape ``(B,)``): Gaussian plus OU-decayed jumps."""
    lat = self.draw_latents(key, t)
    return 2.0 * self.jump_scale * (lat.omega + lat.y0)

  def _noise(self, key: jax.Array, like: Array, h: Array, growth: float) -> Array:
    """Forward-noise increment over a reverse step ``h``: Gaussian plus jumps, one data Gaussian.

    ``growth = 0``: plain increment, variance ``b g2 h + 2c sum Z_i`` (EM); ``growth = b``: the
    increment propagated by ``e^{b(h - tau)/2}``, variance
    ``g2 (e^{bh}-1) + 2c sum Z_i e^{b(h-tau_i)}``.
    Given the Z's a sum of Laplace jumps is Gaussian, so one Gaussian ``xi`` carries all of it.
    """
    k_gauss, k_latent = base.split_noise_key(key)
    var = self.g2 * (self.b * h if growth == 0 else jnp.expm1(self.b * h))
    if self.jump_rate > 0:
      var = var + 2.0 * self.jump_scale * self._jump_sum(k_latent, h, growth)
    xi = jax.random.normal(k_gauss, like.shape, like.dtype)
    return base.bcast(jnp.sqrt(var), like) * xi

  # ---- generalized score ---------------------------------------------------------------------
  def mixture_logs(self, rho: Array, t: Array, omega: Array, ref: Array, few: Array,
                   dim: int) -> tuple[Array, Array, Array]:
    """Logs of ``p_c``, ``-grad p_c``, ``-grad(f_A * p_c)`` relative to ``N(u; 2c ref)``.

    ``p_c`` is the conditional law of ``u`` given the latents that :meth:`draw_latents` keeps:
    ``E_mu N(u; 2c(omega + z))`` with mixing law ``mu`` = ``f_Y`` (``N >= 2``: one jump's size
    integrated out), ``pi0 delta_0 + pi1 f_Y`` (``N <= 1``, ``pi0 = 1/(1 + lambda t)``), or
    ``delta_0`` (``conditional_w``). ``f_A * p_c`` mixes over ``mu * Exp(1)`` (``f_S``, ``Exp``).
    Returns ``(log I_p, log I_grad, log I_jump)`` with ``p_c = N_ref I_p``,
    ``grad p_c = -(u/(2c ref)) N_ref I_grad``, ``grad(f_A * p_c) = -(u/(2c ref)) N_ref I_jump``.

    Args: per example ``(B,)``: ``rho = |u|^2/(2c ref)``, times ``t``, ``omega``, any ``ref > 0``
    (the sample's own ``omega + y0`` in training), ``few = N <= 1``; ``dim`` = d (static).
    """
    a = 0.5 * dim
    bt = self.b * t
    atom = lambda aa: jnp.where(omega > 0, quad.log_gauss_ratio(0.0, omega, ref, rho, aa),
                                -jnp.inf)
    panels = quad.quadrature_panels(rho, omega, ref, bt, dim)
    if self.target == "conditional_w":
      (log_fresh,) = quad.log_mixture_integrals((("fresh", a + 1.0),), panels, rho, omega, ref,
                                                bt, self.quad_nodes)
      return atom(a), atom(a + 1.0), log_fresh
    log_y_p, log_y_grad, log_s, log_fresh = quad.log_mixture_integrals(
        (("decayed", a), ("decayed", a + 1.0), ("decayed_plus_fresh", a + 1.0),
         ("fresh", a + 1.0)), panels, rho, omega, ref, bt, self.quad_nodes)
    log_pi0 = -jnp.log1p(self.jump_rate * t)
    log_pi1 = jnp.log(self.jump_rate * t) + log_pi0
    mix = lambda atom_part, dens_part: jnp.where(
        few, jnp.logaddexp(log_pi0 + atom_part, log_pi1 + dens_part), dens_part)
    return (mix(atom(a), log_y_p), mix(atom(a + 1.0), log_y_grad), mix(log_fresh, log_s))

  def flux_factor(self, rho: Array, t: Array, omega: Array, ref: Array, few: Array,
                  dim: int) -> Array:
    """``kappa`` with conditional velocity ``v = -kappa u / (2c ref)`` (see :meth:`mixture_logs`):
    ``kappa = [(b g2/2) I_grad + lambda c I_jump] / I_p``."""
    log_p, log_grad, log_jump = self.mixture_logs(rho, t, omega, ref, few, dim)
    return (0.5 * self.b * self.g2 * jnp.exp(log_grad - log_p)
            + self.jump_rate * self.jump_scale * jnp.exp(log_jump - log_p))

  # ---- training ------------------------------------------------------------------------------
  def perturb(self, key, x0, t) -> base.Perturbed:
    """``x_t = m_t x0 + sqrt(W) eps`` and ``r = -2 sigma_t v_c / (b q)``, ``v_c = grad V_c / p_c``.

    At ``lambda = 0`` the target is exactly ``eps``. An example with ``W = 0`` (``g2 = 0``, no jump)
    sits on the atom ``x_t = m_t x0``: ``rao_blackwell`` gives it target 0 (the atom's share of
    ``V`` is carried by the other examples' targets, so this is unbiased); ``conditional_w`` cannot,
    and gives it weight 0.
    """
    k_gauss, k_latent = base.split_noise_key(key)
    eps = jax.random.normal(k_gauss, x0.shape, x0.dtype)
    lat = self.draw_latents(k_latent, t)
    ref = lat.omega + lat.y0  # W / (2c)
    w = 2.0 * self.jump_scale * ref
    xt = base.bcast(self.mean_coeff(t), x0) * x0 + base.bcast(jnp.sqrt(w), x0) * eps
    if self.jump_rate == 0:
      return base.Perturbed(model_input=xt, target=eps, weight=jnp.ones_like(t))
    has_density = ref > 0
    ref_safe = jnp.where(has_density, ref, 1.0)
    rho = jnp.sum(eps * eps, axis=tuple(range(1, x0.ndim)))  # = |u|^2 / W exactly
    kappa = self.flux_factor(rho, t, lat.omega, ref_safe, lat.few, math.prod(x0.shape[1:]))
    # v = -kappa u / W = -kappa eps / sqrt(W);  r = -2 sigma v / (b q).
    scale = (2.0 * self.sigma(t) * kappa
             / (self.b * self.noise_var * jnp.sqrt(jnp.where(has_density, w, 1.0))))
    target = base.bcast(jnp.where(has_density, scale, 0.0), eps) * eps
    # Denoiser head: u / sigma_t, whose conditional mean gives E[x0 | x_t].
    denoiser_target = base.bcast(jnp.sqrt(w) / self.sigma(t), eps) * eps
    target = jnp.concatenate([target, denoiser_target], axis=-1)
    if self.target == "conditional_w":
      weight = has_density.astype(x0.dtype)
    else:
      weight = jnp.ones_like(t)
    return base.Perturbed(model_input=xt, target=target, weight=weight)

  # ---- sampling ------------------------------------------------------------------------------
  def prior(self, key, shape):
    """The exact noise law at ``T`` (``m_T x0`` neglected): ``sqrt(W_T) xi``."""
    k_gauss, k_latent = base.split_noise_key(key)
    t = jnp.full((shape[0],), self.horizon)
    std = jnp.sqrt(self.kernel_variance(k_latent, t))
    return std.reshape((-1,) + (1,) * (len(shape) - 1)) * jax.random.normal(k_gauss, shape)

  def ode_drift(self, state, t, model_out):
    """Forward-time PF-ODE ``dx/dt = -(b/2) x - v`` (reverse: ``dx/dtau = (b/2) x + v``)."""
    return -0.5 * self.b * state - self.velocity(model_out, t)

  def sde_step(self, key, state, t_cur, t_next, model_out):
    """Euler–Maruyama: ``x + h((b/2) x + 2 v) + sqrt(b g2 h) xi + jumps in the step``."""
    h = t_cur - t_next
    drift = 0.5 * self.b * state + 2.0 * self.velocity(model_out, t_cur)
    return state + base.bcast(h, state) * drift + self._noise(key, state, h, 0.0)

  def _ei_frozen_output(self, key, state, t_cur, t_next, model_out, k: float):
    h = t_cur - t_next
    a = jnp.exp(0.5 * self.b * h)
    coef = k * math.sqrt(self.noise_var) * (self.unit_std(t_next) - a * self.unit_std(t_cur))
    r_hat, _ = self.split_heads(model_out)
    out = base.bcast(a, state) * state + base.bcast(coef, state) * r_hat
    return out if k == 1.0 else out + self._noise(key, state, h, self.b)

  def ei_ode_step(self, key, state, t_cur, t_next, model_out):
    """``x_t = a x_s + sqrt(q) r (s_t - a s_s)``: exact for frozen ``r`` (DDIM at lambda = 0)."""
    del key
    return self._ei_frozen_output(None, state, t_cur, t_next, model_out, 1.0)

  def ei_sde_step(self, key, state, t_cur, t_next, model_out):
    """``x_t = a x_s + 2 sqrt(q) r (s_t - a s_s)`` + OU-propagated Gaussian and jump noise."""
    return self._ei_frozen_output(key, state, t_cur, t_next, model_out, 2.0)

  def _ei_frozen_velocity(self, key, state, t_cur, t_next, model_out, k: float):
    h = t_cur - t_next
    a = jnp.exp(0.5 * self.b * h)
    v = self.velocity(model_out, t_cur)
    out = base.bcast(a, state) * state + base.bcast(k * 2.0 / self.b * (a - 1.0), state) * v
    return out if k == 1.0 else out + self._noise(key, state, h, self.b)

  def ei_ode_v_step(self, key, state, t_cur, t_next, model_out):
    """Baule's reference rule ``x <- e^{bh/2} x + (2/b)(e^{bh/2} - 1) v`` (``v`` frozen)."""
    del key
    return self._ei_frozen_velocity(None, state, t_cur, t_next, model_out, 1.0)

  def ei_sde_v_step(self, key, state, t_cur, t_next, model_out):
    """``x <- e^{bh/2} x + (4/b)(e^{bh/2} - 1) v`` + OU-propagated Gaussian and jump noise."""
    return self._ei_frozen_velocity(key, state, t_cur, t_next, model_out, 2.0)

  def extra_steps(self):
    return {"ei_ode": self.ei_ode_step, "ei_sde": self.ei_sde_step,
            "ei_ode_v": self.ei_ode_v_step, "ei_sde_v": self.ei_sde_v_step}


#: The family's own ``process`` fields (``process.t_max``, ``t_min``, ``t_min_train`` are shared).
FAMILY_FIELDS = ("b", "g2", "jump_rate", "jump_scale", "max_jumps", "quad_nodes", "target")
_FLOAT_FIELDS = ("b", "g2", "jump_rate", "jump_scale")  # ints from a config become floats


def _defaults() -> dict:
  """The dataclass defaults of :class:`JumpProcess`, the one place they are written."""
  return {f.name: f.default for f in dataclasses.fields(JumpProcess) if f.init}


def config_fields() -> dict:
  """The family's own ``process`` fields and their defaults, read off the dataclass (Baule 2025's
  reference setting ``b = g2 = lambda = c = 1``); ``max_jumps`` None becomes an int placeholder."""
  fields = {name: _defaults()[name] for name in FAMILY_FIELDS}
  if fields["max_jumps"] is None:
    fields["max_jumps"] = config_dict.placeholder(int)
  return fields


def from_config(cfg) -> JumpProcess:
  """``process`` ConfigDict -> :class:`JumpProcess` (validated). ``t_max`` None means 10."""
  defaults = _defaults()
  fields = {name: cfg.get(name, defaults[name]) for name in FAMILY_FIELDS}
  fields.update({name: _number(fields[name]) for name in _FLOAT_FIELDS})
  t_max = cfg.get("t_max", None)
  proc = JumpProcess(
      **fields, horizon=defaults["horizon"] if t_max is None else _number(t_max),
      t_min=float(cfg.get("t_min", defaults["t_min"])),
      t_min_train=float(cfg.get("t_min_train", defaults["t_min_train"])))
  proc.validate()
  return proc


def _number(x):
  """Ints become floats; anything else is left for :meth:`JumpProcess.validate` to refuse."""
  if isinstance(x, int) and not isinstance(x, bool):
    return float(x)
  return x
