"""Tests of the Gaussian-mixture noise family (GM-SGM, docs/families/mixture.md).

References are independent of the module: scipy's normal CDF (kernel law), closed-form marginals of
Gaussian data under mixture noise (component ``k`` is ``N(m mu, (m^2 sd^2 + s^2 kappa_k^2) I)``),
the flux velocity written from its definition ``v = grad V / p`` with
``V = (g^2/2) sum_k pi_k kappa_k^2 p_k`` (docs/families/mixture.md §3), conjugate-Gaussian posterior
means, and the gaussian family itself.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from lim_jax import config_lib, losses, models, samplers
from lim_jax.processes import get_process, mixture

MU = np.array([1.0, -0.5], np.float32)  # Gaussian data N(MU, SD^2 I) in 2-D
SD = 0.5


def _process(**fields) -> mixture.MixtureProcess:
  """Through the config path users take: ``set_family`` + ``get_process``."""
  shared = {k: fields.pop(k) for k in list(fields) if k in ("sde", "schedule", "t_min")}
  config = config_lib.set_family(config_lib.default_config(), "mixture", **fields)
  for k, v in shared.items():
    config.process[k] = v
  return get_process(config.process)


def _gaussian_data_marginal(proc, x, t):
  """Closed form for data ``N(MU, SD^2 I)``: component posteriors, score, ``w`` and ``E[x0|x_t]``.

  ``p_t = sum_k pi_k p_k``, ``p_k = N(m MU, var_k I)`` (``'sample'``: over the whole vector;
  ``'coordinate'``: per element), ``var_k = m^2 SD^2 + s^2 kappa_k^2``.
  Returns ``(score, w, posterior_mean)`` with ``w = -(2 s / g^2) v``, ``v = grad V / p`` written
  from ``V = (g^2/2) sum_k pi_k kappa_k^2 p_k`` (so ``w = s sum_k P_k kappa_k^2 (-grad log p_k)``),
  and ``E[x0|x_t] = sum_k P_k (MU + m SD^2 / var_k (x - m MU))`` (conjugate Gaussian posterior per
  component), all shaped like ``x``.
  """
  m, s = proc.mean_std(t)
  m, s = m[:, None, None], s[:, None, None]
  scales = jnp.asarray(proc.mixture_scales)
  log_pi = jnp.log(jnp.asarray(proc.mixture_weights))
  var = m**2 * SD**2 + s**2 * scales**2  # (B, 1, M)
  u = (x - m[..., 0] * MU)[..., None]  # (B, D, 1)
  if proc.mixture_per == "sample":
    dim = x.shape[-1]
    log_pk = -0.5 * jnp.sum(u**2, axis=1, keepdims=True) / var - 0.5 * dim * jnp.log(var)
  else:
    log_pk = -0.5 * u**2 / var - 0.5 * jnp.log(var)
  post = jax.nn.softmax(log_pi + log_pk, axis=-1)  # P(k | x_t), (B, 1 or D, M)
  grad_log_pk = -u / var
  score = jnp.sum(post * grad_log_pk, axis=-1)
  w = -s[..., 0] * jnp.sum(post * scales**2 * grad_log_pk, axis=-1)
  posterior_mean = jnp.sum(post * (MU[:, None] + m * SD**2 / var * u), axis=-1)
  return score, w, posterior_mean


def _exact_apply(proc):
  """An ``apply_fn`` returning the exact heads for Gaussian data (ignores params)."""

  def apply_fn(params, x, t, train=False, rng=None):
    del params, train, rng
    score, w, _ = _gaussian_data_marginal(proc, x, t)
    e = -proc.schedule.std(t)[:, None] * score
    if proc.num_outputs == 1:
      return e
    return jnp.concatenate([e, w / proc.kappa_rms], axis=-1)

  return apply_fn


# ---- configuration and validation ------------------------------------------------------------
@pytest.mark.parametrize("fields, message", [
    (dict(mixture_weights=(0.9, -0.1, 0.2), mixture_scales=(1.0, 2.0, 3.0)),
     "process.mixture_weights must be finite and >= 0"),
    (dict(mixture_weights=(0.9, 0.2)), "process.mixture_weights must sum to 1"),
    (dict(mixture_weights=(0.5, 0.5 + 2e-6)), "process.mixture_weights must sum to 1"),
    (dict(mixture_weights=()), "process.mixture_weights must list at least one"),
    (dict(mixture_weights="0.9,0.1"), "process.mixture_weights must be a sequence of numbers"),
    (dict(mixture_scales=(1.0, 0.0)), "process.mixture_scales must be finite and > 0"),
    (dict(mixture_scales=(1.0, -3.0)), "process.mixture_scales must be finite and > 0"),
    (dict(mixture_scales=(1.0, 3.0, 5.0)), "process.mixture_scales must have the same length"),
    (dict(mixture_scales=(1.0, None)), "process.mixture_scales must be a sequence of numbers"),
    (dict(mixture_per="pixel"), "process.mixture_per must be one of"),
    (dict(target="mean"), "process.target must be one of"),
    (dict(langevin_noise="levy"), "process.langevin_noise must be one of"),
    (dict(sde="vx"), "process.sde must be one of"),
])
def test_bad_config_is_refused_with_field_name(fields, message):
  """Reference: the issue's list of bad inputs; the message must start with the dotted field."""
  with pytest.raises(ValueError) as err:
    _process(**fields)
  assert str(err.value).startswith(message), str(err.value)


def test_defaults_and_toy_config():
  """Reference: the README's field names and the dataclass defaults; the toy config runs on
  ``grid_imbalanced``."""
  assert mixture.config_fields()["mixture_weights"] == (0.9, 0.1)
  assert mixture.config_fields()["mixture_scales"] == (1.0, 3.0)
  proc = _process()
  assert (proc.mixture_weights, proc.mixture_scales, proc.mixture_per, proc.target) == (
      (0.9, 0.1), (1.0, 3.0), "sample", "posterior")
  assert proc.num_outputs == 2 and math.isclose(proc.kappa_rms, math.sqrt(0.9 + 0.9))
  assert _process(mixture_weights=(1.0, 0.0)).num_outputs == 1  # one active scale
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location("toy_mixture", "configs/toy_mixture.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  assert config.data.dataset == "grid_imbalanced"
  assert get_process(config.process) == proc
  assert config.sampling.sampler in samplers.available(proc)


# ---- forward kernel ----------------------------------------------------------------------------
@pytest.mark.parametrize("per", ["sample", "coordinate"])
def test_kernel_matches_mixture_law(per):
  """Reference: the mixture CDF ``sum_k pi_k Phi(z / kappa_k)`` (scipy) and the binomial law.

  n = 20000 draws of ``z = (x_t - m_t x0)/s_t`` at t = 0.5, 2 coordinates. Checks: the key
  convention (``eps`` from ``split(key)[0]``, ``kappa`` from ``split(key)[1]``) reconstructs ``x_t``
  to float32 rounding; KS p-value per coordinate > 1e-3; the frequency of ``kappa = 3`` is 0.1
  within 5 binomial standard errors (5 * 0.0021); ``corr(z_1^2, z_2^2)`` is
  ``(E k^4 - (E k^2)^2) / (3 E k^4 - (E k^2)^2) = 0.2424`` per sample and 0 per coordinate, within
  0.05 (about 4 standard errors of a correlation of these heavy-tailed squares at n = 20000,
  estimated from the fourth moments).
  """
  proc = _process(mixture_per=per)
  n = 20_000
  key = jax.random.PRNGKey(3)
  x0 = jnp.full((n, 2), 0.7)
  t = jnp.full((n,), 0.5)
  pert = jax.jit(proc.perturb)(key, x0, t)
  m, s = proc.mean_std(t)
  k_gauss, k_latent = jax.random.split(key)
  eps = jax.random.normal(k_gauss, x0.shape)
  kappa = proc.sample_scales(k_latent, x0.shape)
  assert kappa.shape == ((n,) if per == "sample" else (n, 2))
  kappa_b = kappa[:, None] if per == "sample" else kappa
  np.testing.assert_allclose(pert.model_input, m[:, None] * x0 + s[:, None] * kappa_b * eps,
                             rtol=1e-6, atol=1e-6)
  z = np.asarray((pert.model_input - m[:, None] * x0) / s[:, None], np.float64)

  def mix_cdf(v):
    return 0.9 * scipy.stats.norm.cdf(v / 1.0) + 0.1 * scipy.stats.norm.cdf(v / 3.0)

  for i in range(2):
    assert scipy.stats.kstest(z[:, i], mix_cdf).pvalue > 1e-3
  freq = float(np.mean(np.asarray(kappa) == 3.0))
  assert abs(freq - 0.1) < 5 * math.sqrt(0.09 / kappa.size), freq
  corr = np.corrcoef(z[:, 0] ** 2, z[:, 1] ** 2)[0, 1]
  expected = (9.0 - 1.8**2) / (3 * 9.0 - 1.8**2) if per == "sample" else 0.0
  assert abs(corr - expected) < 0.05, (corr, expected)


# ---- training targets --------------------------------------------------------------------------
def _ols(features, y):
  """Least squares ``y ~ features @ beta``: coefficients and their standard errors."""
  beta, *_ = np.linalg.lstsq(features, y, rcond=None)
  resid = y - features @ beta
  sigma2 = resid @ resid / (len(y) - features.shape[1])
  se = np.sqrt(np.diag(sigma2 * np.linalg.inv(features.T @ features)))
  return beta, se


@pytest.mark.parametrize("per", ["sample", "coordinate"])
def test_dsm_minimizer_is_the_mixture_score_and_posterior_target_has_lower_variance(per):
  """Reference: the closed-form score and ``w = E[kappa eps | x_t]`` of Gaussian data (see
  ``_gaussian_data_marginal``).

  n = 200000 pairs at t = 0.3 (VP) with data ``N(MU, 0.25 I)``. The minimizer of the L2 loss is the
  regression function ``E[target | x_t]``; least squares of each target on the features
  ``[exact head, u, 1]`` (``u = x_t - m MU``) must give ``(1, 0, 0)`` within 5 standard errors
  (plus 1e-3 for float32 targets), for the score head with both targets (``posterior``,
  ``sampled``; same key, so the same ``x_t``) and for the velocity head. The exact head is nonlinear
  in ``u`` and differs between the per-sample and per-coordinate laws, so a wrong weighting
  (``kappa`` vs ``kappa^2``, per-coordinate posteriors for per-sample noise) moves the coefficients.
  The posterior-weighted target's residual variance around the exact head must be below the
  sampled one's (Rao–Blackwell); both are measured.
  """
  n = 200_000
  procs = {tgt: _process(mixture_per=per, target=tgt) for tgt in ("posterior", "sampled")}
  proc = procs["posterior"]
  k_data, k_noise = jax.random.split(jax.random.PRNGKey(7))
  x0 = MU + SD * jax.random.normal(k_data, (n, 2))
  t = jnp.full((n,), 0.3)
  perts = {tgt: jax.jit(p.perturb)(k_noise, x0, t) for tgt, p in procs.items()}
  xt = perts["posterior"].model_input
  np.testing.assert_array_equal(xt, perts["sampled"].model_input)
  score, w, _ = jax.jit(functools.partial(_gaussian_data_marginal, proc))(xt, t)
  m, s = proc.mean_std(t)
  u = np.asarray(xt - m[:, None] * MU, np.float64).ravel()
  exact_e = np.asarray(-s[:, None] * score, np.float64).ravel()
  exact_w = np.asarray(w / proc.kappa_rms, np.float64).ravel()

  def check(head, exact):
    beta, se = _ols(np.stack([exact, u, np.ones_like(u)], axis=1), head)
    assert np.all(np.abs(beta - [1.0, 0.0, 0.0]) < 5 * se + 1e-3), (beta, se)
    return beta

  residual_var = {}
  for tgt, pert in perts.items():
    target = np.asarray(pert.target, np.float64)
    assert target.shape == (n, 4)
    check(target[:, :2].ravel(), exact_e)
    check(target[:, 2:].ravel(), exact_w)
    residual_var[tgt] = float(np.mean((target[:, :2].ravel() - exact_e) ** 2))
  np.testing.assert_array_equal(perts["posterior"].target[:, 2:], perts["sampled"].target[:, 2:])
  print(f"residual variance of the score-head target ({per}): {residual_var}")
  assert residual_var["posterior"] < 0.9 * residual_var["sampled"], residual_var


@pytest.mark.parametrize("per", ["sample", "coordinate"])
def test_denoiser_is_component_weighted_tweedie(per):
  """Reference: ``E[x0|x_t] = sum_k P(k|x_t) (MU + m SD^2/var_k (x_t - m MU))`` (conjugate Gaussian
  posterior per component), fed the exact heads built from the flux definition ``v = grad V / p``.

  Deterministic, float32: relative tolerance 1e-4. Also checks ``velocity`` and ``score``
  against the closed forms at several times on VP and VE paths.
  """
  for sde in ("vp", "ve"):
    proc = _process(mixture_per=per, sde=sde)
    key = jax.random.PRNGKey(11)
    t = jnp.linspace(0.05, 0.95, 512)
    x = jnp.asarray(MU) + proc.schedule.std(t)[:, None] * 1.5 * jax.random.normal(key, (512, 2))

    @jax.jit
    def heads_and_reference(x, t, proc=proc):
      out = _exact_apply(proc)(None, x, t)
      got = proc.denoise(x, t, out), proc.score(x, t, out), proc.velocity(x, t, out)
      score, w, posterior_mean = _gaussian_data_marginal(proc, x, t)
      g2 = proc.schedule.diffusion_sq(t)[:, None]
      s = proc.schedule.std(t)[:, None]
      return got, (posterior_mean, score, -0.5 * g2 * w / s)

    got, want = heads_and_reference(x, t)
    for name, a, b in zip(("denoise", "score", "velocity"), got, want):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 if name == "denoise" else 1e-6,
                                 err_msg=f"{name} {sde}")


def test_two_head_loss_trains_through_the_generic_loss():
  """Reference: shapes of the Process protocol (``num_outputs`` heads); the L2 loss with the exact
  heads is
  the irreducible noise of the targets, below the loss of a zero network (which is E|target|^2 =
  E[(posterior factor)^2 kappa^2 eps^2]/2 + 1/2 > the conditional variance). Finite gradients."""
  proc = _process()
  model_cfg = config_lib.default_config().model
  model_cfg.hidden, model_cfg.depth = 32, 1
  model = models.get_model(model_cfg, (2,), proc.num_outputs)
  key = jax.random.PRNGKey(0)
  params = jax.jit(model.init)(key, jnp.zeros((4, 2)), jnp.zeros((4,)))["params"]
  apply_fn = models.make_apply(model)
  x0 = MU + SD * jax.random.normal(key, (2048, 2))
  (loss0, aux), grads = jax.jit(jax.value_and_grad(losses.make_loss_fn(proc, apply_fn),
                                                   has_aux=True))(params, key, x0)
  assert aux["per_example"].shape == (2048,)
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
  exact_loss, _ = jax.jit(losses.make_loss_fn(proc, _exact_apply(proc)))(None, key, x0)
  assert float(exact_loss) < 0.8 * float(loss0), (float(exact_loss), float(loss0))


# ---- samplers ----------------------------------------------------------------------------------
SAMPLER_CASES = [
    # (sampler, nfe, fields, std tolerance): ODE samplers and em are first order; the tolerances
    # are 3% on the std at these step counts (measured errors <= 2%) and 5 SE on the mean.
    ("euler", 200, {}, 0.03),
    ("heun", 200, {}, 0.03),
    ("ei_ode", 200, {}, 0.03),
    ("em", 400, {}, 0.03),
    # ei_sde freezes E[x0|x_t] over a step (as DDPM does), which loses variance at O(step); with
    # lambda = kappa'^2 = 9 jumps the step is effectively longer: at 1000 steps 4%.
    ("ei_sde", 1000, {}, 0.04),
    # pc: unadjusted Langevin bias, predicted std factor 1/sqrt(1 - E[eta^2]/(2 sigma^2 E[eta]))
    # = 1.037 for snr 0.16 and kappa = (1, 3) (mixture-module docstring), so 6%.
    ("pc", 400, {}, 0.06),
    pytest.param("em", 400, {"sde": "ve"}, 0.03, marks=pytest.mark.slow),
    ("heun", 200, {"sde": "ve"}, 0.03),
    ("heun", 200, {"mixture_per": "coordinate"}, 0.03),
    pytest.param("pc", 400, {"mixture_per": "coordinate"}, 0.06, marks=pytest.mark.slow),
    ("ei_ode", 200, {"sde": "vp", "schedule": "cosine", "mixture_per": "coordinate"}, 0.03),
]


@pytest.mark.parametrize("sampler, nfe, fields, std_tol", SAMPLER_CASES)
def test_sampler_with_exact_heads_reproduces_gaussian_data(sampler, nfe, fields, std_tol):
  """Reference: the data law ``N(MU, 0.25 I)``; the network is replaced by the exact heads.

  n = 8000 samples, 2 coordinates: mean within 5 standard errors (5 * 0.5/sqrt(8000) = 0.028) and
  std within ``std_tol`` (relative; its sampling SE is 0.8%, the rest is the discretisation error
  stated per case); kurtosis within 0.3 of 3 (SE sqrt(24/n) = 0.055), which a mixture-shaped output
  (e.g. a wrong velocity head) would miss.
  """
  proc = _process(**fields)
  smp = samplers.make_sampler(proc, _exact_apply(proc), sampler, nfe)
  x = np.asarray(smp.sample(None, jax.random.PRNGKey(1), (8000, 2)), np.float64)
  mean, std = x.mean(0), x.std(0)
  kurt = np.mean(((x - mean) / std) ** 4, axis=0)
  print(f"{sampler} {fields}: mean {mean}, std {std}, kurtosis {kurt}")
  assert np.all(np.abs(mean - MU) < 5 * SD / math.sqrt(len(x))), mean
  assert np.all(np.abs(std / SD - 1) < std_tol), std
  assert np.all(np.abs(kurt - 3) < 0.3), kurt


def test_mixture_langevin_noise_draws_jumps_with_the_mixture_weights():
  """Reference: the mixture law. The per-step scale ``lambda = kappa'^2`` of ``em``/``ei_sde`` takes
  the values ``kappa_k^2`` with frequencies ``pi_k`` (5 binomial SE at n = 20000); the corrector's
  is divided by ``E[kappa^2] = 1.8``; ``langevin_noise='gaussian'`` gives 1.

  Then each stochastic step rule (em, ei_sde, corrector) on 4000 examples of dimension 64 at t = 0.5
  (step 1e-3, random network output): the squared increment of an example is ``lambda`` times a
  chi^2_64-like spread (about +-50%) plus a small drift, so the examples whose squared increment
  exceeds 3 times the median are the jumps (``kappa' = 3``: 9 times the roaming size). Their
  fraction must be 0.1 within 5 binomial SE (0.024) with mixture noise, and 0 with Gaussian noise.
  """
  proc = _process(langevin_noise="mixture")
  like = jnp.zeros((20_000, 2))
  lam = np.asarray(proc.langevin_scale(jax.random.PRNGKey(5), like)).ravel()
  assert set(np.unique(lam)) == {1.0, 9.0}
  assert abs(np.mean(lam == 9.0) - 0.1) < 5 * math.sqrt(0.09 / lam.size)
  lam_c = np.asarray(proc.langevin_scale(jax.random.PRNGKey(5), like, mean_one=True)).ravel()
  np.testing.assert_allclose(lam_c, lam / 1.8, rtol=1e-6)
  assert float(_process(langevin_noise="gaussian").langevin_scale(jax.random.PRNGKey(5), like)) == 1

  n, dim = 4000, 64
  k_x, k_out, k_step = jax.random.split(jax.random.PRNGKey(8), 3)
  x = jax.random.normal(k_x, (n, dim))
  out = jax.random.normal(k_out, (n, 2 * dim))
  t_cur, t_next = jnp.full((n,), 0.5), jnp.full((n,), 0.499)
  for noise, expected in (("mixture", 0.1), ("gaussian", 0.0)):
    proc = _process(langevin_noise=noise)
    steps = jax.jit(functools.partial(_all_steps, proc))(k_step, x, t_cur, t_next, out)
    for name in ("em", "ei_sde", "corrector"):
      sq = np.sum((np.asarray(steps[name]) - np.asarray(x)) ** 2, axis=1)
      frac = float(np.mean(sq > 3 * np.median(sq)))
      assert abs(frac - expected) < 5 * math.sqrt(0.09 / n), (noise, name, frac)


# ---- Gaussian limit ----------------------------------------------------------------------------
@pytest.mark.parametrize("sde", ["vp", "ve"])
def test_one_unit_component_is_the_gaussian_family(sde):
  """Reference: the gaussian family. One component with kappa = 1 must give the same network shape,
  the same kernel draw, target, weight and loss (bitwise) and the same prior and samples for the
  same key (loss: a randomly perturbed small MLP; steps: a random network output): bitwise for every
  step rule but ``ei_sde``, whose exponential-integrator form rounds differently from the DDPM
  coefficients (float32 rounding, 1e-5 relative).
  """
  base = config_lib.default_config()
  base.process.sde = sde
  gauss = get_process(base.process)
  config = config_lib.set_family(config_lib.default_config(), "mixture", mixture_weights=(1.0,),
                                 mixture_scales=(1.0,))
  config.process.sde = sde
  mix = get_process(config.process)
  assert mix.num_outputs == gauss.num_outputs == 1
  assert samplers.available(mix) == samplers.available(gauss)

  key = jax.random.PRNGKey(42)
  x0 = MU + SD * jax.random.normal(key, (256, 2))
  t = jnp.linspace(1e-3, 1.0, 256)
  for a, b in zip(jax.jit(mix.perturb)(key, x0, t), jax.jit(gauss.perturb)(key, x0, t)):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(mix.prior(key, (256, 2)), gauss.prior(key, (256, 2)))

  model_cfg = base.model
  model_cfg.hidden, model_cfg.depth = 32, 1
  model = models.get_model(model_cfg, (2,), 1)
  params = jax.jit(model.init)(key, jnp.zeros((4, 2)), jnp.zeros((4,)))["params"]
  params = jax.jit(_jitter)(params, jax.random.PRNGKey(1))
  apply_fn = models.make_apply(model)
  loss_m, _ = jax.jit(losses.make_loss_fn(mix, apply_fn))(params, key, x0)
  loss_g, _ = jax.jit(losses.make_loss_fn(gauss, apply_fn))(params, key, x0)
  np.testing.assert_array_equal(loss_m, loss_g)

  # Steps: every rule on the same random state, times and network output (one compile per family);
  # the samplers are generic, so equal prior and steps give equal samples (checked end to end for
  # ``pc``, which runs the em predictor and the corrector).
  k_x, k_out, k_t = jax.random.split(jax.random.PRNGKey(3), 3)
  x = 2.0 * jax.random.normal(k_x, (256, 2))
  out = jax.random.normal(k_out, (256, 2))
  t_cur = jax.random.uniform(k_t, (256,), minval=0.05, maxval=1.0)
  t_next = 0.9 * t_cur
  steps_m = jax.jit(functools.partial(_all_steps, mix))(key, x, t_cur, t_next, out)
  steps_g = jax.jit(functools.partial(_all_steps, gauss))(key, x, t_cur, t_next, out)
  assert steps_m.keys() == steps_g.keys()
  for name in steps_g:
    if name == "ei_sde":
      np.testing.assert_allclose(steps_m[name], steps_g[name], rtol=1e-5, atol=1e-6, err_msg=name)
    else:
      np.testing.assert_array_equal(steps_m[name], steps_g[name], err_msg=name)
  if sde == "vp":
    exact = _exact_apply(mix)
    xm = samplers.make_sampler(mix, exact, "pc", 40).sample(None, key, (64, 2))
    xg = samplers.make_sampler(gauss, exact, "pc", 40).sample(None, key, (64, 2))
    np.testing.assert_array_equal(xm, xg)


def _jitter(params, key):
  """Adds N(0, 0.01) to every parameter (the MLP's zero-initialised output layer included)."""
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(key, len(leaves))
  return jax.tree.unflatten(
      tree, [p + 0.1 * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)])


def _all_steps(proc, key, x, t_cur, t_next, out):
  """Every step rule of ``proc`` from one state (the pieces ``samplers.make_sampler`` chains)."""
  steps = {"ode_drift": proc.ode_drift(x, t_cur, out),
           "em": proc.sde_step(key, x, t_cur, t_next, out),
           "corrector": proc.corrector_step(key, x, t_cur, out, 0.16)}
  for name, step in proc.extra_steps().items():
    steps[name] = step(key, x, t_cur, t_next, out)
  return steps
