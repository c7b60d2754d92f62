"""Tests of the levy family (LIM) against independent references.

References: closed forms of LIM's schedules and automatic differentiation (schedule); a fine-step
Euler simulation of the forward SDE with stable increments and ``scipy.stats.levy_stable.ppf``
(kernel); the exact fractional score of a point mass, ``S = -x/(alpha sigma_t^alpha)``, whose
marginal is ``SaS(sigma_t)`` with scipy quantiles (samplers; docs/families/levy.md §4); the
Gaussian VP family
of this package (alpha = 2); and a short training run of the toy config.

Seeds are fixed. Sample quantiles are compared within 4 asymptotic standard errors
(``sqrt(p(1-p)/n)/f(q)``, scipy density). The interquartile ranges (IQR) of 2e4 samples have a
relative standard error of ~1.1 % (2e4 samples) or ~0.55 % (8e4); tolerances are stated per test.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import stats

from lim_jax import config_lib, losses, models, samplers, stable
from lim_jax.processes import gaussian, get_process, levy
from lim_jax.processes.schedules import Schedule

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _key(*ints: int) -> jax.Array:
  key = jax.random.PRNGKey(4242)
  for i in ints:
    key = jax.random.fold_in(key, i)
  return key


def _levy_config(**fields):
  config = config_lib.default_config()
  config_lib.set_family(config, "levy", **fields)
  return config


# ---- config and validation ---------------------------------------------------------------------
def test_from_config_defaults_and_registry():
  """``set_family`` adds the documented fields; ``get_process`` builds a validated process."""
  config = _levy_config()
  for name in ("alpha", "clamp_a", "clamp_eps", "lim_compat", "target"):
    assert name in config.process
  proc = get_process(config.process)
  assert isinstance(proc, levy.LevyProcess)
  assert (proc.alpha, proc.clamp_a, proc.clamp_eps, proc.lim_compat, proc.target) == (
      1.8, None, None, False, "eps")
  assert proc.log_notes() == []
  config.process.clamp_a = 20.0  # command-line style override of the placeholder
  config.process.lim_compat = True
  notes = " ".join(get_process(config.process).log_notes())
  assert "TRUNCATED" in notes and "coefficient" in notes


@pytest.mark.parametrize("field,value,message", [
    ("alpha", 2.5, r"^process\.alpha must be in \(0, 2\]"),
    ("alpha", 0.0, r"^process\.alpha must be in \(0, 2\]"),
    ("alpha", -1.0, r"^process\.alpha must be in \(0, 2\]"),
    ("alpha", float("nan"), r"^process\.alpha must be in \(0, 2\]"),
    ("clamp_a", 0.0, r"^process\.clamp_a must be > 0"),
    ("clamp_a", -20.0, r"^process\.clamp_a must be > 0"),
    ("clamp_eps", 0.0, r"^process\.clamp_eps must be > 0"),
    ("target", "score", r"^process\.target must be one of"),
    ("sde", "ve", r"^process\.sde must be 'vp'"),
    ("schedule", "quadratic", r"^process\.schedule must be one of"),
])
def test_bad_fields_refused_with_field_name(field, value, message):
  """Bad values raise ``ValueError`` starting with the dotted field name, before any compile."""
  config = _levy_config()
  config.process[field] = value
  with pytest.raises(ValueError, match=message):
    get_process(config.process)


def test_bad_sampler_and_loss_refused():
  """Unknown sampler / loss names are refused by the generic factories, naming the field."""
  proc = get_process(_levy_config().process)
  apply_fn = lambda params, x, t, train=False, rng=None: x
  with pytest.raises(ValueError, match=r"^sampling\.sampler must be one of"):
    samplers.make_sampler(proc, apply_fn, "dlpm_typo", 10)
  with pytest.raises(ValueError, match=r"^training\.loss must be one of"):
    losses.make_loss_fn(proc, apply_fn, "l1")
  assert {"euler", "heun", "em", "ei_ode", "ei_sde", "dlim"} <= set(samplers.available(proc))
  assert "pc" not in samplers.available(proc)  # no corrector for this family


# ---- schedule ----------------------------------------------------------------------------------
@pytest.mark.parametrize("alpha", (1.3, 1.8, 2.0))
def test_schedules_match_lim_closed_forms(alpha):
  """LIM's ``VPSDE``: linear ``log gamma = -(beta_min t + (beta_max-beta_min) t^2/2)/alpha``; cosine
  ``gamma = cos(pi/2 (t+s)/(1+s)) / cos(pi/2 s/(1+s))``; ``sigma^alpha + gamma^alpha = 1``; and the
  SDE rate equals ``-alpha d/dt log gamma`` (``jax.grad``), for both schedules."""
  t = jnp.linspace(1e-4, 0.99, 64)
  lin = levy.LevyProcess(schedule=Schedule(kind="linear", beta_min=0.1, beta_max=20.0),
                         alpha=alpha)
  expected = -(0.1 * t + 0.5 * 19.9 * t**2) / alpha
  np.testing.assert_allclose(lin.log_gamma(t), expected, rtol=1e-5)
  cos = levy.LevyProcess(schedule=Schedule(kind="cosine", t_max=0.9946), alpha=alpha)
  s = 0.008
  expected = np.cos(np.pi / 2 * (t + s) / (1 + s)) / np.cos(np.pi / 2 * s / (1 + s))
  np.testing.assert_allclose(cos.gamma(t), expected, rtol=1e-5)
  for proc in (lin, cos):
    np.testing.assert_allclose(proc.sigma(t) ** alpha + proc.gamma(t) ** alpha, 1.0, rtol=1e-5)
    dlog = jax.vmap(jax.grad(proc.log_gamma))(t)
    np.testing.assert_allclose(proc.rate(t), -alpha * dlog, rtol=1e-4)


@pytest.mark.parametrize("kind", ("linear", "cosine"))
def test_kernel_matches_forward_sde_simulation(kind):
  """``x_t = gamma_t x0 + sigma_t eps`` vs 200 Euler steps of ``dx = -(beta/alpha) x dt +
  beta^{1/alpha} dL`` with exact stable increments ``(beta h)^{1/alpha} L_k`` (2e4 paths, x0 = 1.5,
  alpha = 1.5, t = 0.3): quantiles 0.05..0.99 within 4 standard errors of
  ``scipy.stats.levy_stable(alpha, 0, loc=gamma x0, scale=sigma)``. Measured |z| <= 1.9. A wrong
  ``gamma`` (e.g. VP's ``exp(-B/2)`` for the linear schedule) shifts the median by ~60 se."""
  alpha, t_end, num_steps, n, x0 = 1.5, 0.3, 200, 20_000, 1.5
  t_max = 1.0 if kind == "linear" else 0.9946
  proc = levy.LevyProcess(schedule=Schedule(kind=kind, t_max=t_max), alpha=alpha)
  h = t_end / num_steps

  def body(x, i):
    beta = proc.rate((i + 0.5) * h)
    incr = stable.symmetric_stable(jax.random.fold_in(_key(1), i), alpha, (n, 1))
    return x - beta / alpha * x * h + (beta * h) ** (1 / alpha) * incr, None

  x, _ = jax.jit(lambda x: jax.lax.scan(body, x, jnp.arange(num_steps)))(jnp.full((n, 1), x0))
  x = np.asarray(x)[:, 0]
  law = stats.levy_stable(alpha, 0.0, loc=float(proc.gamma(t_end)) * x0,
                          scale=float(proc.sigma(t_end)))
  for p in (0.05, 0.25, 0.5, 0.75, 0.95, 0.99):
    q = float(law.ppf(p))
    se = math.sqrt(p * (1 - p) / n) / float(law.pdf(q))
    assert abs(np.quantile(x, p) - q) < 4 * se, (kind, p)
  # The kernel as drawn by ``perturb`` has the same law (same check on its own draws).
  pert = proc.perturb(_key(2), jnp.full((n, 1), x0), jnp.full((n,), t_end))
  xt = np.asarray(pert.model_input)[:, 0]
  for p in (0.25, 0.5, 0.75):
    q = float(law.ppf(p))
    assert abs(np.quantile(xt, p) - q) < 4 * math.sqrt(p * (1 - p) / n) / float(law.pdf(q))


# ---- perturb: targets, weights, clamps -----------------------------------------------------------
def test_perturb_structure(key):
  """``model_input = gamma x0 + sigma eps`` with ``eps = sqrt(A) G`` one ``A`` per example; target
  ``eps``; weight 1, or ``1/(A E[1/A])`` for ``a_conditioned`` (mean 1 by Monte Carlo, 2^14
  examples, relative standard error ~1 %, tolerance 5 %); clamps bound the noise."""
  proc = levy.LevyProcess(alpha=1.6)
  x0 = jax.random.normal(_key(3), (2**14, 3))
  t = jax.random.uniform(_key(4), (2**14,), minval=0.01, maxval=1.0)
  pert = proc.perturb(key, x0, t)
  eps, mix = proc.noise(key, x0.shape)
  np.testing.assert_array_equal(pert.target, eps)
  np.testing.assert_allclose(pert.model_input, proc.gamma(t)[:, None] * x0
                             + proc.sigma(t)[:, None] * eps, rtol=1e-6, atol=1e-6)
  np.testing.assert_array_equal(pert.weight, jnp.ones_like(t))
  assert mix.shape == (2**14,)
  cond = dataclasses.replace(proc, target="a_conditioned").perturb(key, x0, t)
  np.testing.assert_allclose(cond.weight, 1 / (mix * math.gamma(1 + 2 / 1.6)), rtol=1e-6)
  assert abs(float(jnp.mean(cond.weight)) - 1) < 0.05
  clamped = dataclasses.replace(proc, clamp_a=20.0, clamp_eps=50.0)
  eps_c, mix_c = clamped.noise(key, x0.shape)
  assert float(jnp.max(mix)) > 20 and float(jnp.max(mix_c)) <= 20
  assert float(jnp.max(jnp.abs(eps_c))) <= 50
  assert float(jnp.max(jnp.abs(clamped.prior(key, x0.shape)))) <= 50 * float(clamped.sigma(1.0))


# ---- point mass: exact fractional score --------------------------------------------------------
ALPHA_PM = 1.5
POINT_MASS = levy.LevyProcess(
    schedule=Schedule(kind="linear", beta_min=1.0, beta_max=1.0 + 1e-6, t_max=3.0),
    alpha=ALPHA_PM, t_min=0.3, t_min_train=0.3)  # beta = 1, T = 3 -> t = 0.3 (levy.md §4)


def _point_mass_eps(process):
  """Exact ``eps_hat = E[eps | x_t] = x / sigma_t`` for x0 = 0 (``S = -x/(alpha sigma^alpha)``)."""
  def apply_fn(params, x, t, train=False, rng=None):
    del params, train, rng
    return x / process.sigma(t)[:, None]
  return apply_fn


def _iqr(x) -> float:
  q1, q3 = np.percentile(np.asarray(x)[:, 0], [25, 75])
  return float(q3 - q1)


def _true_iqr() -> float:
  q1, q3 = stats.levy_stable.ppf([0.25, 0.75], ALPHA_PM, 0.0)
  return float(POINT_MASS.sigma(jnp.float32(0.3))) * float(q3 - q1)  # 0.788


@pytest.mark.parametrize("name,nfe,tol", [
    ("euler", 400, 1e-2), ("heun", 400, 1e-3), ("lim_ode", 400, 1e-2), ("ei_ode", 10, 1e-5),
    ("dlim", 10, 1e-5)])
def test_point_mass_ode_samplers_follow_exact_flow(name, nfe, tol):
  """With the exact score of a point mass the PF-ODE maps ``x_T`` to ``x_T sigma_t/sigma_T``
  (closed form: ``d log sigma/dt = (beta/alpha) gamma^alpha/sigma^alpha`` equals the drift rate).
  Each ODE sampler, from its own prior draw, must match that map pathwise (2e4 paths, t = 3 ->
  0.3): measured max relative error 0.4 % (Euler), 0.009 % (Heun, 200 steps), 0.2 % (LIM's
  ``lim_ode``), 5e-7 (``ei_ode`` = DLIM, exact for a point mass at any NFE); so its output has the
  SaS(sigma_t) law of the exactly-mapped prior (whose own law is tested in test_stable.py)."""
  key, shape = _key(10), (20_000, 1)
  x = samplers.make_sampler(POINT_MASS, _point_mass_eps(POINT_MASS), name, nfe).sample(
      None, key, shape)
  x_prior = POINT_MASS.prior(jax.random.split(key)[0], shape)  # samplers.make_sampler's key split
  exact = x_prior * POINT_MASS.sigma(jnp.float32(0.3)) / POINT_MASS.sigma(jnp.float32(3.0))
  assert float(jnp.max(jnp.abs(x / exact - 1))) < tol


@pytest.mark.parametrize("name,nfe,seed", [
    ("lim_sde", 400, 0), ("ei_sde", 10, 0), ("dlpm", 50, 0),
    pytest.param("em", 400, 0, marks=pytest.mark.slow),
    pytest.param("dlpm", 100, 1, marks=pytest.mark.slow)])
def test_point_mass_stochastic_samplers_reproduce_marginal(name, nfe, seed):
  """With the exact score of a point mass, the score-coefficient-2 reverse SDE (Euler–Maruyama and
  LIM's exponential integrator ``lim_sde``, exact stable noise), the stable ancestral step
  ``ei_sde`` (exact for a point mass at any NFE) and DLPM (exact given its A-chain) reproduce the
  IQR of ``SaS(sigma_t)`` at t = 0.3 (scipy quantiles: 0.788; docs/families/levy.md §4: 0.785)
  within 2 %.
  8e4 paths: the IQR's relative standard error is ~0.55 %; the SDEs' discretisation bias at 400
  steps was measured at +0.35 % (2e5 paths; +1 % at 200 steps), so the margin is ~3 standard
  errors."""
  apply_fn = _point_mass_eps(POINT_MASS)
  if name == "dlpm":
    smp = levy.make_dlpm_sampler(POINT_MASS, apply_fn, nfe)
  else:
    smp = samplers.make_sampler(POINT_MASS, apply_fn, name, nfe)
  x = smp.sample(None, _key(11, seed), (80_000, 1))
  assert bool(jnp.all(jnp.isfinite(x)))
  assert _iqr(x) == pytest.approx(_true_iqr(), rel=0.02)


@pytest.mark.parametrize("name", ("em", "lim_sde"))
def test_lim_compat_reproduces_known_bias(name):
  """LIM's published score coefficient alpha (``lim_compat``) over-disperses the point-mass
  marginal: IQR about 1.19 instead of 0.79 (docs/families/levy.md §4, checked there with 3000 Euler
  steps and 2e5 paths: 1.197; here 400 steps, 2e4 paths, IQR standard error ~1.1 %, measured
  1.196 / 1.195 with 500 steps). Asserted so the documented defect stays true: IQR within 5 % of
  1.197 and at least 1.4 times the true IQR."""
  proc = dataclasses.replace(POINT_MASS, lim_compat=True)
  smp = samplers.make_sampler(proc, _point_mass_eps(proc), name, 400)
  iqr = _iqr(smp.sample(None, _key(11), (20_000, 1)))
  assert iqr == pytest.approx(1.197, rel=0.05)
  assert iqr > 1.4 * _true_iqr()


# ---- alpha = 2: the Gaussian VP model ----------------------------------------------------------
SQRT2 = math.sqrt(2.0)


def _gauss_apply(params, x, t, train=False, rng=None):
  """An arbitrary smooth 'network' (ignores params) used on both sides of the correspondence."""
  del params, train, rng
  return jnp.tanh(x @ jnp.array([[0.7, -0.3], [0.2, 0.9]]) + t[:, None]) + 0.1 * x


def _levy_apply(params, x, t, train=False, rng=None):
  """``f_L(x, t) = sqrt(2) f_G(x / sqrt(2), t)``: the Lévy(alpha=2) network matching ``f_G``."""
  return SQRT2 * _gauss_apply(params, x / SQRT2, t, train, rng)


@pytest.mark.parametrize("kind", ("linear", "cosine"))
def test_alpha_two_is_the_gaussian_vp_model(kind):
  """alpha = 2 is the Gaussian VP family with noise ``N(0, 2I)``: scales ``gamma = m_t``,
  ``sigma = s_t``; for the same key, Lévy on data ``x0`` equals ``sqrt(2)`` times Gaussian on
  ``x0/sqrt(2)`` (inputs and targets); with ``f_L(x) = sqrt(2) f_G(x/sqrt(2))`` the losses are
  ``l2: 2x``, ``l2_norm: sqrt(2)x``, ``huber(delta sqrt 2): 2 huber(delta)``; and every matching
  one-step rule (PF-ODE drift, EM, DLIM <-> DDIM) maps the same way. All to float32 rounding."""
  t_max = 1.0 if kind == "linear" else 0.9946
  sched = Schedule(kind=kind, t_max=t_max)
  lev = levy.LevyProcess(schedule=sched, alpha=2.0)
  gau = gaussian.GaussianProcess(schedule=sched)
  t = jnp.linspace(1e-3, 0.99, 16)
  np.testing.assert_allclose(lev.gamma(t), sched.mean_coeff(t), rtol=1e-6)
  np.testing.assert_allclose(lev.sigma(t), sched.std(t), rtol=1e-5)
  np.testing.assert_allclose(lev.rate(t), sched.beta(t), rtol=1e-6)

  key = _key(20)
  x0 = jax.random.normal(_key(21), (512, 2)) * 2.0
  tt = jax.random.uniform(_key(22), (512,), minval=1e-3, maxval=0.99)
  pl, pg = lev.perturb(key, x0, tt), gau.perturb(key, x0 / SQRT2, tt)
  np.testing.assert_allclose(pl.model_input, SQRT2 * pg.model_input, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(pl.target, SQRT2 * pg.target, rtol=1e-6, atol=1e-6)

  for loss, delta_g, factor in (("l2", 1.0, 2.0), ("l2_norm", 1.0, SQRT2), ("huber", 0.5, 2.0)):
    delta_l = delta_g * SQRT2
    loss_l, _ = losses.make_loss_fn(lev, _levy_apply, loss, delta_l)(None, key, x0)
    loss_g, _ = losses.make_loss_fn(gau, _gauss_apply, loss, delta_g)(None, key, x0 / SQRT2)
    assert float(loss_l) == pytest.approx(factor * float(loss_g), rel=1e-5), loss

  xg = jax.random.normal(_key(23), (512, 2))
  tc, tn = jnp.full((512,), 0.5), jnp.full((512,), 0.47)
  out_g = _gauss_apply(None, xg, tc)
  out_l = _levy_apply(None, SQRT2 * xg, tc)
  np.testing.assert_allclose(lev.ode_drift(SQRT2 * xg, tc, out_l),
                             SQRT2 * gau.ode_drift(xg, tc, out_g), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(lev.sde_step(key, SQRT2 * xg, tc, tn, out_l),
                             SQRT2 * gau.sde_step(key, xg, tc, tn, out_g), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(lev.dlim_step(key, SQRT2 * xg, tc, tn, out_l),
                             SQRT2 * gau.ei_ode_step(key, xg, tc, tn, out_g), rtol=1e-5, atol=1e-5)
  # A whole sampler: the priors differ only by sigma_T vs 1 (VP neglects m_T), i.e. by < 1e-4.
  xl = samplers.make_sampler(lev, _levy_apply, "em", 20).sample(None, key, (256, 2))
  xgs = samplers.make_sampler(gau, _gauss_apply, "em", 20).sample(None, key, (256, 2))
  np.testing.assert_allclose(xl, SQRT2 * xgs, rtol=2e-3, atol=2e-3)


# ---- training the toy config -------------------------------------------------------------------
def _toy_config(arg: str):
  path = ROOT / "configs" / "toy_levy.py"
  spec = importlib.util.spec_from_file_location("toy_levy", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def _sliced_w1(x: np.ndarray, y: np.ndarray, num: int = 64) -> float:
  """Sliced W1 of equal-size 2-D samples: mean over fixed directions of mean |sorted diff.|."""
  angles = np.linspace(0, np.pi, num, endpoint=False)
  dirs = np.stack([np.cos(angles), np.sin(angles)])
  px, py = np.sort(x @ dirs, axis=0), np.sort(y @ dirs, axis=0)
  return float(np.mean(np.abs(px - py)))


@pytest.mark.integration
def test_training_toy_config_lowers_loss_and_sliced_wasserstein():
  """``configs/toy_levy.py:grid_imbalanced`` shortened to 600 steps (same model, loss, process and
  sampler; nfe 50): the loss on a fixed evaluation batch drops, and the sliced W1 of 4096 samples to
  fresh data drops far below that of the untrained model's samples and below that of the prior
  (same reference points). Plain optax loop (no train.py). Measured: loss 27.2 -> 0.93; sliced W1
  340 (untrained: a zero output makes the reverse SDE expand the prior), 0.39 (prior), 0.19
  (trained); the thresholds (loss x0.7, W1 x0.1 and x0.75) leave a >= 1.5x margin."""
  from lim_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  config = _toy_config("grid_imbalanced")
  proc = config_lib.validate(config, num_devices=1, num_processes=1)
  rng = np.random.default_rng(0)
  train_x = data_lib.toy_samples(config.data, rng, 20_000)
  ref = data_lib.toy_samples(config.data, rng, 4096)
  model = models.get_model(config.model, (2,), proc.num_outputs)
  apply_fn = models.make_apply(model)
  params = model.init(_key(30), jnp.zeros((1, 2)), jnp.zeros((1,)))["params"]
  loss_fn = losses.make_loss_fn(proc, apply_fn, config.training.loss, config.training.huber_delta)
  tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(2e-3))
  opt_state = tx.init(params)
  batch = 256

  @jax.jit
  def train_chunk(params, opt_state, key):
    def one(carry, i):
      params, opt_state = carry
      k_idx, k_loss = jax.random.split(jax.random.fold_in(key, i))
      x0 = jnp.asarray(train_x)[jax.random.randint(k_idx, (batch,), 0, len(train_x))]
      loss, grads = jax.value_and_grad(lambda p: loss_fn(p, k_loss, x0)[0])(params)
      updates, opt_state = tx.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), loss
    (params, opt_state), chunk_losses = jax.lax.scan(one, (params, opt_state), jnp.arange(100))
    return params, opt_state, chunk_losses

  eval_x0 = jnp.asarray(train_x[:2048])
  eval_loss = jax.jit(lambda p: loss_fn(p, _key(31), eval_x0)[0])
  smp = samplers.make_sampler(proc, apply_fn, config.sampling.sampler, 50)
  sw_prior = _sliced_w1(np.asarray(proc.prior(_key(32), (4096, 2))), ref)
  sw_before = _sliced_w1(np.asarray(smp.sample(params, _key(32), (4096, 2))), ref)
  loss_before = float(eval_loss(params))
  for chunk in range(6):
    params, opt_state, _ = train_chunk(params, opt_state, _key(33, chunk))
  loss_after = float(eval_loss(params))
  samples = np.asarray(smp.sample(params, _key(32), (4096, 2)))
  sw_after = _sliced_w1(samples, ref)
  assert np.all(np.isfinite(samples))
  assert loss_after < 0.7 * loss_before, (loss_before, loss_after)
  assert sw_after < 0.1 * sw_before and sw_after < 0.75 * sw_prior, (sw_prior, sw_before, sw_after)
