"""Samplers with exact models: jump's exponential integrators and fbm's stiffness (issue #17).

  python benchmarks/bench_samplers_exact.py --part=jump     # jump, exact velocity of a point mass
  python benchmarks/bench_samplers_exact.py --part=fbm      # fbm, exact score of Gaussian data
  python benchmarks/bench_samplers_exact.py --tiny          # smoke test (both parts, tiny sizes)
  python benchmarks/bench_samplers_exact.py --part=fbm --fbm_samplers=euler,heun,em \
      --fbm_grids=uniform_t,edm --num_ou=3,5                 # the stiffness table alone

Every sampler runs through :func:`lim_jax.samplers.make_sampler` with a network replaced by the
exact model, so the numbers measure the integrator and the grid alone (no training error).

jump (d = 1, x0 = 0, float64): the final scale of the samples at ``t_min`` over the exact one.

* ``pure``: ``g2 = 0``, ``lambda = b = c = 1``, ``T = 10``, ``t_min = 0.5``; the marginal is
  ``e^{-bt} delta_0 + (1 - e^{-bt}) Laplace(sqrt c)`` with the closed-form velocity
  ``v = -lambda [sqrt(c) sgn(u) e^{-bt}/(1 - e^{-bt}) + u/2]`` (Baule 2025). Scale: the 0.9
  quantile of ``|x|`` (the atom holds 61 % of the mass, so the IQR is 0).
* ``diffusion``: ``g2 = lambda = b = c = 1``, ``T = 10``, ``t_min = 1e-3`` (Baule's reference
  setting); velocity by Fourier inversion of ``phi_t(k) = exp(-g2 (1 - e^{-bt}) k^2/2)
  ((1 + c e^{-bt} k^2)/(1 + c k^2))^{lambda/b}`` (trapezoid on ``[0, K_t]``, ``K_t`` where the
  Gaussian factor is ``e^{-40}``; spectrally accurate, the integrands are even in ``k``); the
  reference is 4e5 exact kernel draws. Scale: the IQR of ``x``.

fbm (FVP, H = 0.9, data ``N(0.5, 0.25)`` per coordinate, exact ``E[eps | u]``): the final variance
over the true one (``c^2 v + Sigma_XX(t_min)``), for K = 3 and 5, the generic ``euler``, ``heun``,
``em``, the exponential integrators ``ei_ode``/``ei_sde`` and the denoiser-form samplers (``ddim``,
``edm_heun``, ``dpmpp_2m``, ``ancestral``: on the channel ``u`` with the OU state frozen), on the
``uniform_t`` grid, the power-3 ``uniform_t`` grid and the noise-level grids ``edm`` (rho = 7) and
``loguniform`` (``--fbm_samplers``, ``--fbm_grids``, ``--fbm_nfe``, ``--num_ou`` choose a subset:
every cell compiles its own sampler, so the full default grid takes an estimated hour or more on 2
CPU cores; ``--fbm_samplers=ddim,dpmpp_2m,edm_heun,ancestral --fbm_grids=edm --fbm_nfe=10,20,50
--fbm_samples=4000`` took 1.8 min and the five generic/exponential samplers on uniform_t and edm at
NFE 10-500 took 13.5 min on the loaded machine; RESULTS.md has both).

Tolerances: a ratio of sample quantiles from ``n`` draws has the standard error
``sqrt(p (1 - p)/n) / (f(q) q)``; the tables print it (``se``) next to the ratios. Variances: the
relative standard error is ``sqrt(2/n)``.
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np

JUMP_SAMPLERS = ("ei_ode", "ei_sde", "ei_ode_v", "ei_sde_v", "em", "heun")
FBM_SAMPLERS = ("euler", "heun", "em", "ei_ode", "ei_sde", "ddim", "edm_heun", "dpmpp_2m",
                "ancestral")
FBM_GRIDS = (("uniform_t", 1.0), ("uniform_t", 3.0), ("edm", 1.0), ("loguniform", 1.0))


# ---- jump ---------------------------------------------------------------------------------------
def _jump_process(case: str):
  from lim_jax.processes.jump import JumpProcess  # pylint: disable=g-import-not-at-top
  if case == "pure":
    return JumpProcess(b=1.0, g2=0.0, jump_rate=1.0, jump_scale=1.0, horizon=10.0, t_min=0.5)
  return JumpProcess(b=1.0, g2=1.0, jump_rate=1.0, jump_scale=1.0, horizon=10.0, t_min=1e-3)


def fourier_velocity(proc, x, t, num_k: int = 2048):
  """Marginal flux velocity of the point mass at 0 (d = 1, g2 > 0) by Fourier inversion."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  b, g2, lam, c = proc.b, proc.g2, proc.jump_rate, proc.jump_scale
  s2 = -jnp.expm1(-b * t)[:, None]
  k_max = jnp.sqrt(80.0 / (g2 * s2))
  frac = jnp.linspace(0.0, 1.0, num_k)[None, :]
  k = k_max * frac
  dk = k_max / (num_k - 1)
  w = jnp.where((frac == 0) | (frac == 1), 0.5, 1.0) * dk / jnp.pi
  e = jnp.exp(-b * t)[:, None]
  phi = jnp.exp(-0.5 * g2 * s2 * k * k) * ((1 + c * e * k * k) / (1 + c * k * k)) ** (lam / b)
  arg = x[:, :1] * k
  dens = jnp.sum(w * jnp.cos(arg) * phi, axis=-1)
  grad_v = -jnp.sum(w * k * jnp.sin(arg) * (0.5 * b * g2 + lam * c / (1 + c * k * k)) * phi,
                    axis=-1)
  return (grad_v / dens)[:, None]


def _jump_apply(proc, case: str):
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  def apply_fn(params, x, t, train=False, rng=None):
    del params, train, rng
    if case == "pure":
      e = jnp.exp(-proc.b * t)[:, None]
      lam, c = proc.jump_rate, proc.jump_scale
      v = -lam * (jnp.sqrt(c) * jnp.sign(x) * e / (1 - e) + 0.5 * x)
    else:
      v = fourier_velocity(proc, x, t)
    return proc.output_from_velocity(v, t, denoised=(x, jnp.zeros_like(x)))

  return apply_fn


def _jump_reference(proc, case: str, n: int, seed: int = 7):
  """Exact draws of ``x_{t_min}`` (closed form for ``pure``, the exact kernel otherwise)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  t = proc.t_min
  if case == "pure":
    atom = math.exp(-proc.b * t)
    lap = rng.laplace(scale=math.sqrt(proc.jump_scale), size=n)
    return np.where(rng.uniform(size=n) < atom, 0.0, lap)
  w = proc.kernel_variance(jax.random.PRNGKey(seed), jnp.full((n,), t))
  return np.asarray(jnp.sqrt(w) * jax.random.normal(jax.random.PRNGKey(seed + 1), (n,)))


def _scale(x: np.ndarray, case: str) -> float:
  if case == "pure":
    return float(np.quantile(np.abs(x), 0.9))
  return float(np.subtract(*np.quantile(x, [0.75, 0.25])))


def _scale_se(ref: np.ndarray, case: str, n: int) -> float:
  """Relative standard error of :func:`_scale` from ``n`` draws (density by central differences of
  the reference quantile function)."""
  def dq(level, data):
    return (np.quantile(data, level + 0.01) - np.quantile(data, level - 0.01)) / 0.02

  if case == "pure":
    a = np.abs(ref)
    return math.sqrt(0.09 / n) * dq(0.9, a) / np.quantile(a, 0.9)
  # IQR: quantiles at 0.25/0.75 of a symmetric law are negatively correlated halves; bound it by
  # the sum of the two standard errors.
  se = sum(math.sqrt(p * (1 - p) / n) * dq(p, ref) for p in (0.25, 0.75))
  return se / _scale(ref, case)


def run_jump(args) -> str:
  import jax  # pylint: disable=g-import-not-at-top
  jax.config.update("jax_enable_x64", True)
  from lim_jax import samplers  # pylint: disable=g-import-not-at-top
  nfes = (10, 20) if args.tiny else (10, 20, 50, 200)
  n = 500 if args.tiny else args.jump_samples
  n_ref = 4000 if args.tiny else 400_000
  grids = (("edm", 1.0), ("uniform_t", 1.0)) if not args.tiny else (("edm", 1.0),)
  names = JUMP_SAMPLERS[:2] if args.tiny else JUMP_SAMPLERS
  lines = []
  for case in ("pure", "diffusion"):
    proc = _jump_process(case)
    ref = _jump_reference(proc, case, n_ref)
    true = _scale(ref, case)
    se = _scale_se(ref, case, n)
    apply_fn = _jump_apply(proc, case)
    what = "0.9 quantile of |x|" if case == "pure" else "IQR of x"
    lines += [f"#### jump `{case}` (t_min = {proc.t_min:g}, T = {proc.t_max:g}): {what} over the "
              f"exact one ({true:.4g}); {n} samples, se {se:.3f}", "",
              "| sampler | grid | " + " | ".join(f"{m} NFE" for m in nfes) + " |",
              "|---|---|" + "---|" * len(nfes)]

    def cell(name, grid, power, nfe, proc=proc, apply_fn=apply_fn, case=case, true=true):
      smp = samplers.make_sampler(proc, apply_fn, name, nfe, grid=grid, time_power=power)
      x = np.asarray(smp.sample(None, jax.random.PRNGKey(0), (n, 1)))[:, 0]
      return f"{_scale(x, case) / true:.3f}" if np.isfinite(x).all() else "nan"

    lines += _table_rows(names, grids, nfes, cell)
  return "\n".join(lines)


def _table_rows(names, grids, nfes, cell) -> list[str]:
  """One Markdown row per (sampler, grid): ``cell(name, grid, power, nfe)`` per NFE, printed as
  it is made; then a blank line."""
  rows = []
  for name in names:
    for grid, power in grids:
      cells = [cell(name, grid, power, nfe) for nfe in nfes]
      label = grid if power == 1.0 else f"{grid} p={power:g}"
      rows.append(f"| `{name}` | {label} | " + " | ".join(cells) + " |")
      print(rows[-1], flush=True)
  return rows + [""]


# ---- fbm ----------------------------------------------------------------------------------------
def _fbm_exact_eps(proc, mean: float, var: float):
  """``E[eps | u]`` for ``x0 ~ N(mean, var)`` and ``u = c x0 + s_c eps``."""
  def apply_fn(params, u, t, train=False, rng=None):
    del params, train, rng
    c = proc.schedule.mean_coeff(t)[:, None]
    s = proc.cond_std(t)[:, None]
    return s * (u - c * mean) / (c**2 * var + s**2)

  return apply_fn


def fbm_variance_ratio(proc, sampler: str, nfe: int, grid: str, power: float, n: int,
                       mean: float = 0.5, var: float = 0.25, seed: int = 11,
                       final_denoise: bool = False) -> float:
  """Final sample variance over the true ``c(t_min)^2 var + Sigma_XX(t_min)`` (per coordinate)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from lim_jax import samplers  # pylint: disable=g-import-not-at-top
  from lim_jax.processes import fbm_tables  # pylint: disable=g-import-not-at-top
  smp = samplers.make_sampler(proc, _fbm_exact_eps(proc, mean, var), sampler, nfe, grid=grid,
                              time_power=power, final_denoise=final_denoise)
  x = np.asarray(smp.sample(None, jax.random.PRNGKey(seed), (n, 2)), np.float64)
  c = float(proc.schedule.mean_coeff(jnp.asarray(proc.t_min)))
  if final_denoise:
    # E[x0 | x_t, y_t] of Gaussian data: its variance is var * c^2 var / (c^2 var + s_c^2).
    s_c = float(proc.cond_std(jnp.asarray([proc.t_min]))[0])
    true = var * c * c * var / (c * c * var + s_c * s_c)
  else:
    sched = fbm_tables.schedule_f64(proc.schedule)
    sigma = fbm_tables.covariance(fbm_tables.project(np.array([proc.t_min]), proc.tables.gamma,
                                                      proc.tables.omega, sched))[0]
    true = c * c * var + sigma[0, 0]
  if not np.all(np.isfinite(x)):
    return float("nan")
  return float(x.var() / true)


def _grid_spec(text: str) -> tuple[str, float]:
  """``'uniform_t'`` -> ``('uniform_t', 1.0)``; ``'uniform_t:3'`` -> the power-3 grid."""
  name, _, power = text.partition(":")
  return name, float(power or 1.0)


def run_fbm(args) -> str:
  from lim_jax.processes.fbm import FBMProcess  # pylint: disable=g-import-not-at-top
  from lim_jax.processes.schedules import Schedule  # pylint: disable=g-import-not-at-top
  nfes = (10, 20) if args.tiny else tuple(int(v) for v in args.fbm_nfe.split(","))
  n = 1000 if args.tiny else args.fbm_samples
  names = FBM_SAMPLERS[:3] if args.tiny else tuple(args.fbm_samplers.split(","))
  grids = FBM_GRIDS[:2] if args.tiny else tuple(_grid_spec(g) for g in args.fbm_grids.split(","))
  lines = []
  for k in ((3,) if args.tiny else tuple(int(v) for v in args.num_ou.split(","))):
    proc = FBMProcess(schedule=Schedule(sde="vp"), num_ou=k, hurst=0.9)
    r_lo, r_hi = proc.sampling_noise_range()
    lines += [f"#### fbm FVP H = 0.9, K = {k}: variance / true (noise level r = s_c/c_t from "
              f"{r_lo:.2g} to {r_hi:.2g}); {n} x 2 samples, se {math.sqrt(2 / (2 * n)):.3f}", "",
              "| sampler | grid | " + " | ".join(f"{m} NFE" for m in nfes) + " |",
              "|---|---|" + "---|" * len(nfes)]

    def cell(name, grid, power, nfe, proc=proc):
      try:
        ratio = fbm_variance_ratio(proc, name, nfe, grid, power, n)
      except ValueError as err:  # a sampler the grid/nfe cannot serve
        print(f"# {name} {grid} {nfe}: {err}")
        return "-"
      if not math.isfinite(ratio):
        return "nan"
      return f"{ratio:.3f}" if ratio < 100 else f"{ratio:.2e}"

    lines += _table_rows(names, grids, nfes, cell)
  return "\n".join(lines)


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--part", default="jump,fbm", help="jump, fbm or both")
  p.add_argument("--tiny", action="store_true", help="smoke-test sizes")
  p.add_argument("--jump_samples", type=int, default=20_000)
  p.add_argument("--fbm_samples", type=int, default=10_000)
  p.add_argument("--fbm_samplers", default=",".join(FBM_SAMPLERS), help="fbm samplers")
  p.add_argument("--fbm_grids", default="uniform_t,uniform_t:3,edm,loguniform",
                 help="fbm grids, NAME or NAME:POWER for a power-POWER uniform_t grid")
  p.add_argument("--fbm_nfe", default="10,20,50,100,200,500", help="fbm NFEs")
  p.add_argument("--num_ou", default="3,5", help="fbm K values")
  p.add_argument("--out", default="", help="also write the tables to OUT/samplers_exact.md")
  args = p.parse_args()
  from absl import logging  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.WARNING)
  t0 = time.perf_counter()
  parts = args.part.split(",")
  for part in parts:
    if part not in ("jump", "fbm"):
      raise ValueError(f"--part: unknown part {part!r}; choose from jump, fbm")
  md = []
  if "fbm" in parts:  # float32 (jump's part switches JAX to float64)
    md.append(run_fbm(args))
  if "jump" in parts:
    md.append(run_jump(args))
  text = "\n".join(md) + f"\n({(time.perf_counter() - t0) / 60:.1f} min)\n"
  print(text)
  if args.out:
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "samplers_exact.md"), "w", encoding="utf-8") as f:
      f.write(text)


if __name__ == "__main__":
  main()
