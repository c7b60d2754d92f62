"""Float64 numerics of the GFDM family (:mod:`lim_jax.processes.fbm`), computed once per config.

Markov-approximate fractional Brownian motion (MA-fBM, Daems et al. 2023; GFDM, Nobis et al. 2024,
docs/families/fbm.md §1). Per data coordinate, ``K`` Ornstein–Uhlenbeck processes share one
Brownian motion,
``dY^k = -gamma_k Y^k dt + dB``, ``Y^k_0 = 0``, and ``sum_k omega_k Y^k`` approximates type-II
(Riemann–Liouville) fBM ``B^H_t = Gamma(H+1/2)^{-1} int_0^t (t-s)^{H-1/2} dB_s``. The forward SDE
``dX = mu(t) X dt + g(t) d(sum_k omega_k Y^k)`` is linear in ``Z = (X, Y^1..Y^K)``:

    dZ = F Z dt + G dB,   F = [[mu, -g omega_1 gamma_1 .. -g omega_K gamma_K], [0, -diag(gamma)]],
                          G = (g sum_k omega_k, 1, .., 1).

Everything here is float64 numpy on a grid of forward times (units of the schedule, ``[0, t_max]``).

Conditional quantities, computed by an L2 projection instead of the Schur complement
----------------------------------------------------------------------------------------
Writing every component as a Wiener integral, ``Y^k_t = int_0^t phi_k(t, r) dB_r`` with
``phi_k = e^{-gamma_k (t-r)}`` and ``X_t - c_t x0 = int_0^t k_X(t, r) dB_r`` with

    k_X(t, r) = sum_k omega_k [g(r) c_t/c_r - gamma_k int_r^t g(s) (c_t/c_s) e^{-gamma_k (s-r)} ds],

covariances are L2[0, t] inner products, ``Sigma_YY = <phi, phi>``, ``Sigma_YX = <phi, k_X>``,
``Sigma_XX = |k_X|^2`` (``c_t`` is the schedule's mean coefficient). Quadrature (Gauss–Radau in the
lag ``tau = t - r`` with a node at ``tau = 0``, Gauss–Legendre for the inner integral) turns them
into a matrix ``Phi`` (M x K) and a vector ``kappa``. ``Phi`` is factored in the Newton basis of
divided differences, ``Phi = Psi T`` (:func:`exp_divided_differences`, :func:`newton_matrix`), and a
Householder QR ``Psi = Q R_psi`` gives, with ``L = (R_psi T)^T`` the Cholesky factor of
``Sigma_YY``,

* ``rho_t = L^{-1} Sigma_YX = Q^T kappa``   (whitened cross-covariance, ``a_t = L^{-T} rho_t``),
* ``s_c(t)^2 = |kappa - Q rho_t|^2``        (``Var(X_t | Y_t, x0)``, a residual norm),
* ``G_X - ell . rho`` = the residual function at ``r = t`` (the Radau node), ``G_X = g sum omega``,
* ``ell_t = L^{-1} 1 = R_psi^{-T} e_1``, ``v_t = L^T (omega * gamma) = R_psi T (omega * gamma)``.

``Sigma_YY`` is Hilbert-like: its condition number is ``1e9`` at ``K = 2, t = 1e-5`` and ``1e17``
at ``K = 5, t = 1e-2`` (FVP, gamma_max = 20). The float64 Schur complement
``s_c^2 = Sigma_XX - Sigma_XY a_t`` of the closed-form/ODE covariance then loses every digit (it is
1e4 times too large at FVE K=3, t=1e-3, negative for FVP). A QR of ``Phi`` itself works with
``cond(Phi) = sqrt(cond(Sigma_YY))`` (``4e8``); the Newton columns behave like ``tau^{j-1}/(j-1)!``
and are far better conditioned, so ``s_c`` matches a 60-digit reference to ``1e-6`` even where
``s_c / sqrt(Sigma_XX) = 5e-11``. The Lyapunov ODE ``dSigma/dt = F Sigma + Sigma F^T + G G^T`` and
the FVE closed form are the independent references of the tests.

Sigma_YY jitter (the official code's ``1e-4 e^{-2 gamma_k t}``) enters as ``K`` extra rows
``sqrt(jitter) diag(e^{-gamma_k t}) T^{-1}`` of ``Psi`` (zeros in ``kappa``), i.e. the QR factors
``Sigma_YY + J``. ``J = jitter e^{-2 Gamma t}`` solves the same Lyapunov equation as ``Sigma_YY``
(it is the covariance of OU processes started at ``Y_0 ~ N(0, jitter I)``), which keeps the whitened
dynamics of :mod:`fbm` unchanged.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import numpy as np
from numpy.polynomial import legendre
from numpy.polynomial.legendre import leggauss
from scipy import special

from lim_jax.processes.schedules import Schedule

#: Gauss–Legendre nodes of the outer and the inner quadrature (exact to ~1e-15 for gamma_max*t_max
#: up to ~60 on the linear VP and VE schedules; :func:`quadrature_nodes` raises it with gamma_max).
MIN_QUAD_NODES = 48
#: Relative floor of ``s_c / sqrt(Sigma_XX)`` in the tables (far below float32 resolution).
COND_STD_FLOOR = 1e-12


# ---- the Markov approximation -----------------------------------------------------------------
def ou_speeds(num_ou: int, gamma_max: float) -> np.ndarray:
  """Geometric OU speeds ``gamma_k = r^{k - (K+1)/2}``, ``k = 1..K``, spanning
  ``[1/gamma_max, gamma_max]`` (``r = gamma_max^{2/(K-1)}``); ``K = 1`` gives ``gamma = 1``
  (official code: ``gamma_by_gamma_max`` / ``gamma_by_r``). Shape ``(K,)``."""
  if num_ou == 0:
    return np.zeros((0,))
  if num_ou == 1:
    return np.ones((1,))
  ratio = gamma_max ** (2.0 / (num_ou - 1))
  k = np.arange(1, num_ou + 1, dtype=np.float64)
  return ratio ** (k - 0.5 * (num_ou + 1))


def weight_system(gamma: np.ndarray, hurst: float, horizon: float) -> tuple[np.ndarray, np.ndarray]:
  """``(A, b)`` of the type-II optimal weights (Daems et al. 2023; docs/families/fbm.md §1).

  ``omega`` minimises
  ``int_0^T (T-u) (u^{H-1/2}/Gamma(H+1/2) - sum_k omega_k e^{-gamma_k u})^2 du``:
  ``A_ij = [T + (e^{-(g_i+g_j)T} - 1)/(g_i+g_j)]/(g_i+g_j)``,
  ``b_k = T g_k^{-(H+1/2)} P(H+1/2, g_k T) - (H+1/2) g_k^{-(H+3/2)} P(H+3/2, g_k T)``, P the
  regularised lower incomplete gamma function.
  """
  gsum = gamma[:, None] + gamma[None, :]
  a_mat = (horizon + np.expm1(-gsum * horizon) / gsum) / gsum
  h = hurst + 0.5
  b_vec = (horizon * gamma ** (-h) * special.gammainc(h, gamma * horizon)
           - h * gamma ** (-h - 1.0) * special.gammainc(h + 1.0, gamma * horizon))
  return a_mat, b_vec


def optimal_weights(gamma: np.ndarray, hurst: float, horizon: float) -> np.ndarray:
  """Solves ``A omega = b`` (:func:`weight_system`); shape ``(K,)``."""
  if gamma.size == 0:
    return np.zeros((0,))
  a_mat, b_vec = weight_system(gamma, hurst, horizon)
  return np.linalg.solve(a_mat, b_vec)


def approximation_error(gamma: np.ndarray, omega: np.ndarray, hurst: float,
                        horizon: float) -> float:
  """The minimised objective ``c - 2 b.omega + omega^T A omega`` with
  ``c = T^{2H+1} / (2H (2H+1) Gamma(H+1/2)^2)`` (the objective at ``omega = 0``)."""
  c = horizon ** (2 * hurst + 1) / (2 * hurst * (2 * hurst + 1) * special.gamma(hurst + 0.5) ** 2)
  if gamma.size == 0:
    return float(c)
  a_mat, b_vec = weight_system(gamma, hurst, horizon)
  return float(c - 2 * b_vec @ omega + omega @ a_mat @ omega)


def ou_covariance(gamma: np.ndarray, t: np.ndarray) -> np.ndarray:
  """Closed-form ``Sigma_YY(t)_ij = (1 - e^{-(g_i+g_j) t})/(g_i+g_j)``, shape ``(*t.shape, K, K)``.
  """
  gsum = gamma[:, None] + gamma[None, :]
  t = np.asarray(t, np.float64)[..., None, None]
  return -np.expm1(-gsum * t) / gsum


# ---- schedule in float64 ----------------------------------------------------------------------
class ScheduleF64(NamedTuple):
  """Float64 callables ``mu(t)``, ``g(t)``, ``log c_t`` of a :class:`Schedule` (numpy in/out)."""

  mu: object
  g: object
  log_c: object


def schedule_f64(schedule: Schedule) -> ScheduleF64:
  """Evaluates the shared schedule's own formulas in float64 (``jax.enable_x64`` on CPU)."""
  try:
    cpu = jax.devices("cpu")[0]
  except RuntimeError:  # no CPU backend configured: use the default device
    cpu = None

  def wrap(fn):
    def call(t):
      with jax.ensure_compile_time_eval(), jax.enable_x64(True), jax.default_device(cpu):
        return np.asarray(fn(np.asarray(t, np.float64)), np.float64)
    return call

  def log_c(t):
    if schedule.sde == "ve":
      return np.zeros_like(np.asarray(t, np.float64))
    return -0.5 * wrap(schedule.int_beta)(t)

  return ScheduleF64(mu=wrap(schedule.drift_coeff),
                     g=lambda t: np.sqrt(wrap(schedule.diffusion_sq)(t)), log_c=log_c)


# ---- covariance by projection -----------------------------------------------------------------
def quadrature_nodes(gamma_max: float, schedule: Schedule) -> int:
  """Gauss–Legendre order of the nested quadrature: grows with the fastest OU rate; the cosine
  schedule (``beta`` has a pole 0.005 past ``t_max``) needs 96 (7e-6 relative error with 48)."""
  base_nodes = 96 if (schedule.sde == "vp" and schedule.kind == "cosine") else MIN_QUAD_NODES
  return int(max(base_nodes, math.ceil(1.5 * gamma_max * schedule.t_max) + 16))


class Projection(NamedTuple):
  """Conditional statistics at times ``t`` (float64, leading axis over ``t``).

  Attributes:
    sigma_xx: ``Var(X_t | x0)``, ``(N,)``.
    cond_std: ``s_c(t) = sqrt(Var(X_t | Y_t, x0))``, ``(N,)``.
    rho: ``L^{-1} Sigma_YX``, ``(N, K)``.
    ell: ``L^{-1} 1``, ``(N, K)``.
    chol: ``L`` (lower, ``L L^T = Sigma_YY (+ J)``), ``(N, K, K)``.
    v: ``L^T (omega * gamma)``, ``(N, K)``.
    innovation: ``G_X - ell . rho`` (``G_X = g sum omega``), the loading of the new noise ``dB``
      on ``X`` given ``Y``, ``(N,)``; ``d s_c^2/dt = 2 mu s_c^2 + innovation^2``.
  """

  sigma_xx: np.ndarray
  cond_std: np.ndarray
  rho: np.ndarray
  ell: np.ndarray
  chol: np.ndarray
  v: np.ndarray
  innovation: np.ndarray


def radau_nodes(num_nodes: int) -> tuple[np.ndarray, np.ndarray]:
  """Gauss–Radau nodes and weights on ``[-1, 1]`` with the fixed node ``x_0 = -1`` (exact for
  degree ``2M - 2``): roots of ``P_{M-1} + P_M``, Newton-polished, weights
  ``(1 - x)/(M^2 P_{M-1}(x)^2)`` and ``2/M^2`` at -1."""
  coef = np.zeros(num_nodes + 1)
  coef[-2:] = 1.0
  x = np.sort(np.real(legendre.legroots(coef)))
  x[0] = -1.0
  dcoef = legendre.legder(coef)
  for _ in range(3):
    x[1:] -= legendre.legval(x[1:], coef) / legendre.legval(x[1:], dcoef)
  p_prev = legendre.legval(x, np.eye(num_nodes)[num_nodes - 1])
  w = (1.0 - x) / (num_nodes**2 * p_prev**2)
  w[0] = 2.0 / num_nodes**2
  return x, w


def exp_divided_differences(gamma: np.ndarray, tau: np.ndarray) -> np.ndarray:
  """Newton basis ``psi_j(tau) = e^{-gamma tau}[gamma_1..gamma_j]`` (divided differences in gamma),
  ``j = 1..K``, with entrywise relative accuracy; shape ``(*tau.shape, K)``.

  Opitz: for the lower-bidiagonal ``B`` (``gamma`` on the diagonal, ones below),
  ``expm(-tau B)[:, 0]`` holds these divided differences. With ``D = diag((-1)^j)``,
  ``-tau B = -tau gamma_max I + D (tau C) D`` where ``C = diag(gamma_max - gamma) + subdiag(1)`` is
  entrywise non-negative, so a Taylor series with scaling and squaring of ``tau C`` never subtracts.
  """
  num_ou = gamma.size
  gmax = float(gamma.max())
  c_mat = np.diag(gmax - gamma) + np.diag(np.ones(num_ou - 1), -1)
  tau = np.asarray(tau, np.float64)
  flat = tau.reshape(-1)
  norm = float(flat.max()) * float(np.abs(c_mat).sum(axis=0).max())
  squarings = max(0, math.ceil(math.log2(max(norm, 1e-300) / 0.5)))
  a_mat = (flat / 2.0**squarings)[:, None, None] * c_mat
  term = np.broadcast_to(np.eye(num_ou), a_mat.shape).copy()
  expo = term.copy()
  for n in range(1, 20):
    term = term @ a_mat / n
    expo = expo + term
  expo = expo * np.exp(-flat * gmax / 2.0**squarings)[:, None, None]
  for _ in range(squarings):
    expo = expo @ expo
  signs = (-1.0) ** np.arange(num_ou)
  return (expo[:, :, 0] * signs).reshape(tau.shape + (num_ou,))


def newton_matrix(gamma: np.ndarray) -> np.ndarray:
  """``T`` with ``e^{-gamma_k tau} = sum_j T_jk psi_j(tau)``:
  ``T_jk = prod_{i<j}(gamma_k - gamma_i)`` for ``j <= k`` (Newton's interpolation form); upper
  triangular, positive diagonal for increasing gamma."""
  num_ou = gamma.size
  t_mat = np.zeros((num_ou, num_ou))
  for k in range(num_ou):
    for j in range(k + 1):
      t_mat[j, k] = np.prod(gamma[k] - gamma[:j])
  return t_mat


def project(times: np.ndarray, gamma: np.ndarray, omega: np.ndarray, sched: ScheduleF64,
            jitter: float = 0.0, num_nodes: int = MIN_QUAD_NODES,
            chunk: int = 128) -> Projection:
  """Conditional statistics of ``X_t`` given ``Y_t`` at ``times`` (shape ``(N,)``, all > 0).

  The span of ``phi_k(t, r) = e^{-gamma_k (t-r)}`` is factored in the Newton basis
  (:func:`exp_divided_differences`), ``Phi = Psi T``, whose columns behave like ``tau^{j-1}/(j-1)!``
  and are well conditioned (``cond(Phi)`` itself reaches ``4e8`` at K=5, t=1e-2); then
  ``Psi = Q R_psi``, ``L = (R_psi T)^T``, ``ell = L^{-1} 1 = R_psi^{-T} e_1`` (as
  ``psi(0) = e_1``),
  ``v = R_psi T (omega * gamma)``.
  """
  times = np.asarray(times, np.float64)
  num_ou = gamma.size
  x, wq = leggauss(num_nodes)
  unit = 0.5 * (x + 1.0)  # Gauss–Legendre nodes on [0, 1]
  xr, wqr = radau_nodes(num_nodes)
  lag_unit = 0.5 * (xr + 1.0)  # Gauss–Radau nodes on [0, 1], lag_unit[0] = 0
  t_mat = newton_matrix(gamma)
  newton_load = t_mat @ (omega * gamma)
  out = []
  for start in range(0, times.size, chunk):
    t = times[start:start + chunk]
    lag = t[:, None] * lag_unit  # outer nodes in tau = t - r, (n, M); lag[:, 0] = 0 (r = t)
    r = t[:, None] - lag
    wr = 0.5 * t[:, None] * wqr
    s = r[:, :, None] + (t[:, None, None] - r[:, :, None]) * unit  # inner nodes on [r, t]
    ws = 0.5 * (t[:, None, None] - r[:, :, None]) * wq
    log_ct = sched.log_c(t)
    # g(s) c_t / c_s on the inner nodes and g(r) c_t / c_r on the outer ones.
    inner = ws * sched.g(s) * np.exp(log_ct[:, None, None] - sched.log_c(s))
    outer = sched.g(r) * np.exp(log_ct[:, None] - sched.log_c(r))
    kernel = outer * omega.sum()
    for k in range(num_ou):
      decay = np.exp(-gamma[k] * (s - r[:, :, None]))
      kernel = kernel - omega[k] * gamma[k] * np.sum(inner * decay, axis=-1)
    sqrt_w = np.sqrt(wr)
    kappa = sqrt_w * kernel  # (n, M)
    sigma_xx = np.sum(kappa**2, axis=1)
    if num_ou == 0:
      out.append((sigma_xx, np.sqrt(sigma_xx), np.zeros((t.size, 0)), np.zeros((t.size, 0)),
                  np.zeros((t.size, 0, 0)), np.zeros((t.size, 0)), kernel[:, 0]))
      continue
    psi = sqrt_w[:, :, None] * exp_divided_differences(gamma, lag)  # (n, M, K)
    if jitter > 0:
      # [Phi; J^{1/2}] = [Psi; J^{1/2} T^{-1}] T.
      rows = math.sqrt(jitter) * np.exp(-gamma * t[:, None])[:, :, None] * np.linalg.inv(t_mat)
      psi = np.concatenate([psi, rows], axis=1)
      kappa = np.concatenate([kappa, np.zeros((t.size, num_ou))], axis=1)
    q, r_psi = np.linalg.qr(psi)
    sign = np.sign(np.diagonal(r_psi, axis1=1, axis2=2))
    sign[sign == 0] = 1.0
    q = q * sign[:, None, :]
    r_psi = r_psi * sign[:, :, None]
    rho = np.einsum("nmk,nm->nk", q, kappa)
    resid = kappa - np.einsum("nmk,nk->nm", q, rho)
    cond_std = np.sqrt(np.sum(resid**2, axis=1))
    chol = np.swapaxes(r_psi @ t_mat, 1, 2)
    unit_e = np.zeros((t.size, num_ou, 1))
    unit_e[:, 0] = 1.0
    ell = np.linalg.solve(np.swapaxes(r_psi, 1, 2), unit_e)[..., 0]
    v = r_psi @ newton_load
    innovation = resid[:, 0] / sqrt_w[:, 0]  # the residual function at r = t
    out.append((sigma_xx, cond_std, rho, ell, chol, v, innovation))
  return Projection(*(np.concatenate(parts, axis=0) for parts in zip(*out)))


def covariance(proj: Projection) -> np.ndarray:
  """The ``(K+1) x (K+1)`` covariance of ``Z_t = (X, Y)`` given ``x0 = 0`` from a projection
  (``Sigma_YY`` includes the jitter when it is on); shape ``(N, K+1, K+1)``."""
  n, num_ou = proj.rho.shape
  sigma = np.zeros((n, num_ou + 1, num_ou + 1))
  sigma[:, 0, 0] = proj.sigma_xx
  sigma_yx = np.einsum("nij,nj->ni", proj.chol, proj.rho)
  sigma[:, 1:, 0] = sigma_yx
  sigma[:, 0, 1:] = sigma_yx
  sigma[:, 1:, 1:] = proj.chol @ np.swapaxes(proj.chol, 1, 2)
  return sigma


# ---- tables for jit ----------------------------------------------------------------------------
class Tables(NamedTuple):
  """Per-config constants of the process and its interpolation table.

  The table holds, on ``N`` times uniform in ``log t`` over ``[t_lo, t_max]``, the columns
  ``[log s_c, rho/sqrt(t) (K), ell*sqrt(t) (K), v/sqrt(t) (K), gain*sqrt(t), L/sqrt(t) (K*K,
  row-major)]`` with the eps gain ``gain = (G_X - ell . rho)/s_c``; the ``sqrt(t)`` factors remove
  the small-``t`` power laws (``|ell|^2 t -> K^2``, ``gain^2 t -> 2K + 1``) so linear interpolation
  in ``log t`` is accurate.
  """

  gamma: np.ndarray
  omega: np.ndarray
  omega_raw: np.ndarray
  log_t_lo: float
  log_t_step: float
  table: np.ndarray  # (N, 1 + 3K + K*K) float64
  sigma_xx_max: float  # Var(X_{t_max} | x0 = 0)
  cond_std_max: float  # s_c(t_max)


def build_tables(schedule: Schedule, hurst: float, num_ou: int, gamma_max: float,
                 normalize_variance: bool, jitter: float, table_size: int,
                 t_lo: float) -> Tables:
  """Speeds, optimal (optionally normalised) weights and the interpolation table."""
  t_max = schedule.t_max
  gamma = ou_speeds(num_ou, gamma_max)
  omega_raw = optimal_weights(gamma, hurst, t_max)
  if num_ou == 0:  # Brownian motion: the process delegates to the Gaussian family, no table.
    var_end = float(schedule.std(np.float64(t_max)))**2
    return Tables(gamma=gamma, omega=omega_raw, omega_raw=omega_raw, log_t_lo=math.log(t_lo),
                  log_t_step=1.0, table=np.zeros((0, 2)), sigma_xx_max=var_end,
                  cond_std_max=math.sqrt(var_end))
  sched = schedule_f64(schedule)
  nodes = quadrature_nodes(gamma_max, schedule)
  omega = omega_raw
  if normalize_variance and num_ou > 0:
    # Var(X_T | x0 = 0) is quadratic in omega: one rescaling hits the Gaussian prior's variance.
    var_end = project(np.array([t_max]), gamma, omega_raw, sched, 0.0, nodes).sigma_xx[0]
    omega = omega_raw * (schedule.prior_std() / math.sqrt(var_end))
  times = np.exp(np.linspace(math.log(t_lo), math.log(t_max), table_size))
  times[-1] = t_max
  proj = project(times, gamma, omega, sched, jitter, nodes)
  root = np.sqrt(times)[:, None]
  # Below ~1e-14 sqrt(Sigma_XX) the residual is rounding noise of the QR (error ~ 1e-16 cond(Psi)
  # |kappa|); the floor keeps s_c smooth and s_c/c_t increasing there (K >= 3, t < 1e-4), and the
  # eps gain holds its last resolved value of gain*sqrt(t) (it tends to sqrt(2K+1) as t -> 0).
  floor = COND_STD_FLOOR * np.sqrt(proj.sigma_xx)
  resolved = proj.cond_std > floor
  cond_std = np.where(resolved, proj.cond_std, floor)
  gain = np.where(resolved, proj.innovation / np.maximum(proj.cond_std, 1e-300), 0.0)
  gain_root = gain * root[:, 0]
  if num_ou > 0 and resolved.any():
    first = int(np.argmax(resolved))
    gain_root[:first] = gain_root[first]
  table = np.concatenate([
      np.log(cond_std)[:, None], proj.rho / root, proj.ell * root, proj.v / root,
      gain_root[:, None], proj.chol.reshape(times.size, -1) / root], axis=1)
  return Tables(gamma=gamma, omega=omega, omega_raw=omega_raw, log_t_lo=math.log(t_lo),
                log_t_step=(math.log(t_max) - math.log(t_lo)) / (table_size - 1), table=table,
                sigma_xx_max=float(proj.sigma_xx[-1]), cond_std_max=float(cond_std[-1]))


# ---- independent references (used by the tests) ----------------------------------------------
def lyapunov_covariance(times: np.ndarray, gamma: np.ndarray, omega: np.ndarray,
                        sched: ScheduleF64, rtol: float = 1e-11) -> np.ndarray:
  """``Sigma_t`` from ``dSigma/dt = F Sigma + Sigma F^T + G G^T``, ``Sigma_0 = 0`` (DOP853), with
  the closed-form ``Sigma_YY``; shape ``(N, K+1, K+1)``."""
  from scipy.integrate import solve_ivp  # pylint: disable=g-import-not-at-top
  num_ou = gamma.size
  wg = omega * gamma
  wsum = omega.sum()

  def rhs(t, row):
    sxx, sxy = row[0], row[1:]
    mu = float(sched.mu(np.array(t)))
    g = float(sched.g(np.array(t)))
    syy = ou_covariance(gamma, np.array(t))
    dxx = 2 * mu * sxx - 2 * g * wg @ sxy + (g * wsum) ** 2
    dxy = (mu - gamma) * sxy - g * syy @ wg + g * wsum
    return np.concatenate([[dxx], dxy])

  times = np.asarray(times, np.float64)
  sol = solve_ivp(rhs, (0.0, float(times.max())), np.zeros(num_ou + 1), t_eval=times,
                  method="DOP853", rtol=rtol, atol=1e-14)
  rows = sol.y.T
  sigma = np.zeros((times.size, num_ou + 1, num_ou + 1))
  sigma[:, 0, :] = rows
  sigma[:, :, 0] = rows
  sigma[:, 1:, 1:] = ou_covariance(gamma, times)
  return sigma


def fve_covariance(times: np.ndarray, gamma: np.ndarray, omega: np.ndarray, sigma_min: float,
                   sigma_max: float) -> np.ndarray:
  """Closed-form FVE ``Sigma_t`` (``mu = 0``, ``g = a e^{lam t}``, ``a = s_min sqrt(2 lam)``,
  ``lam = ln(s_max/s_min)``), derived from the Wiener-integral kernel
  ``k_X(t, r) = a sum_l omega_l [lam/(lam-g_l) e^{lam r} - g_l/(lam-g_l) e^{lam t - g_l (t-r)}]``
  (needs ``gamma_l != lam``); shape ``(N, K+1, K+1)``."""
  lam = math.log(sigma_max / sigma_min)
  amp = sigma_min * math.sqrt(2 * lam)
  t = np.asarray(times, np.float64)[:, None]
  alpha = lam / (lam - gamma)
  beta = gamma / (lam - gamma)
  syy = ou_covariance(gamma, t[:, 0])
  e_lt = np.exp(lam * t)
  cross = (e_lt - np.exp(-gamma * t)) / (lam + gamma)  # int_0^t e^{lam r - g (t-r)} dr, (N, K)
  a_sum = omega @ alpha
  wb = omega * beta
  sxy = amp * (a_sum * cross - e_lt * np.einsum("nlk,l->nk", syy, wb))
  sxx = amp**2 * (a_sum**2 * np.expm1(2 * lam * t[:, 0]) / (2 * lam)
                  - 2 * a_sum * e_lt[:, 0] * (cross @ wb)
                  + e_lt[:, 0] ** 2 * np.einsum("k,nkl,l->n", wb, syy, wb))
  sigma = np.zeros((t.shape[0], gamma.size + 1, gamma.size + 1))
  sigma[:, 0, 0] = sxx
  sigma[:, 0, 1:] = sxy
  sigma[:, 1:, 0] = sxy
  sigma[:, 1:, 1:] = syy
  return sigma
