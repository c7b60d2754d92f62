"""The generic DSM loss against the analytic optimum for Gaussian data."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lim_jax import losses
from test_samplers import MU, S0, exact_eps, gaussian_process


@pytest.mark.parametrize("sde", ["vp", "ve"])
def test_optimal_predictor_has_lowest_dsm_loss(sde):
  """For x0 ~ N(mu, s0^2) the DSM minimiser is E[eps | x_t] = s_t (x_t - m_t mu) / v_t
  (closed form).

  Perturbing it by a scale (1 +- 0.1) or a shift (+-0.1) must raise the Monte-Carlo loss (2^16
  draws, common random numbers). The expected increase is >= 0.01 * E[eps_hat^2] or 0.01, far
  above the Monte-Carlo noise of the difference (~1e-3).
  """
  proc = gaussian_process(sde)
  optimum = exact_eps(proc)
  x0 = MU + S0 * jax.random.normal(jax.random.PRNGKey(1), (2**16, 1))
  key = jax.random.PRNGKey(2)

  def loss_with(scale, shift):
    apply_fn = lambda p, x, t, train=False, rng=None: scale * optimum(p, x, t) + shift
    return float(losses.make_loss_fn(proc, apply_fn)(None, key, x0)[0])

  best = loss_with(1.0, 0.0)
  for scale, shift in ((0.9, 0.0), (1.1, 0.0), (1.0, 0.1), (1.0, -0.1)):
    assert loss_with(scale, shift) > best + 1e-3, (scale, shift)


def test_penalties_match_their_definitions():
  """l2 = mean r^2, huber = optax.huber_loss mean, l2_norm = sqrt(mean r^2) (hand computation)."""
  r = jnp.array([[0.5, -2.0, 3.0], [0.0, 0.0, 0.0]])
  np.testing.assert_allclose(losses.PENALTIES["l2"](r, 1.0), [(0.25 + 4 + 9) / 3, 0.0], rtol=1e-6)
  huber = (0.125 + 1.5 + 2.5) / 3  # 0.5 r^2 inside delta=1, |r| - 0.5 outside
  np.testing.assert_allclose(losses.PENALTIES["huber"](r, 1.0), [huber, 0.0], rtol=1e-6)
  np.testing.assert_allclose(losses.PENALTIES["l2_norm"](r, 1.0),
                             [np.sqrt((0.25 + 4 + 9) / 3), 1e-6], rtol=1e-5)
  grad = jax.grad(lambda z: jnp.sum(losses.PENALTIES["l2_norm"](z, 1.0)))(r)
  assert np.all(np.isfinite(grad))  # finite at r = 0
  assert optax.huber_loss(jnp.array(3.0), delta=1.0) == 2.5
