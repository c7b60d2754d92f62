"""Tests of the DDPM++ U-Net (lim_jax/models/ddpmpp.py, layers.py).

Tiny widths (ch 16, ch_mult (1, 2), one block) keep every compile and run small; the full CIFAR10
network is only shape-evaluated (``jax.eval_shape``), so nothing big is allocated.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lim_jax.models import make_apply
from lim_jax.models.ddpmpp import DDPMpp, param_count, param_count_analytic, validate_hparams

TINY = dict(ch=16, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(16,))
MICRO = dict(ch=8, ch_mult=(1,), num_res_blocks=1, attn_resolutions=())

# Measured by instantiating the original score-SDE flax network (yang-song/score_sde,
# models/ncsnpp.py) with configs/vp/cifar10_ddpmpp_continuous.py (nf 128, ch_mult (1,2,2,2),
# 4 blocks, attention at 16, BigGAN resblocks, no FIR, positional embedding) on 32x32x3 input.
SCORE_SDE_DDPMPP_CONT_CIFAR10 = 61_804_419
# The same with the "deep" settings (8 blocks, Fourier embedding): 106_698_243, of which 128 are
# the Fourier frequencies, a constant here (not a parameter).
SCORE_SDE_DDPMPP_DEEP_CIFAR10 = 106_698_243 - 128


def _init(model: DDPMpp, shape: tuple[int, ...], seed: int = 0):
  x = jnp.zeros(shape, jnp.float32)
  t = jnp.full((shape[0],), 0.5, jnp.float32)
  return jax.jit(model.init)(jax.random.PRNGKey(seed), x, t)["params"]


def _param_shapes(model: DDPMpp, shape: tuple[int, ...]):
  return jax.eval_shape(lambda: _init(model, shape))


def _random_params(model: DDPMpp, shape: tuple[int, ...], seed: int):
  """Unit-gain random parameters drawn with numpy on the init shapes (no init compile): kernels
  ~ N(0, 1/fan_in), norm scales 1 + N(0, 0.1^2), biases N(0, 0.1^2). Unlike at init, where the
  ~zero residual branches and head make the network ~identity and its output ~0, the output and
  every gradient are O(1)."""
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    if len(leaf.shape) >= 2:
      value = rng.standard_normal(leaf.shape) / math.sqrt(math.prod(leaf.shape[:-1]))
    else:
      value = 0.1 * rng.standard_normal(leaf.shape) + (path[-1].key == "scale")
    return jnp.asarray(value, jnp.float32)

  return jax.tree_util.tree_map_with_path(draw, _param_shapes(model, shape))


def _inputs(shape, seed=1):
  kx, kt = jax.random.split(jax.random.PRNGKey(seed))
  return (jax.random.normal(kx, shape, jnp.float32),
          jax.random.uniform(kt, (shape[0],), jnp.float32, 1e-3, 1.0))


@pytest.mark.parametrize("size,num_outputs", [(32, 1), (64, 2)])
def test_output_shape(size, num_outputs):
  """Reference: the contract ``(B, H, W, C) -> (B, H, W, C * num_outputs)`` float32 (finite), and
  the closed-form parameter count, which also fixes where attention sits (3 blocks at 32 px:
  down, middle, up at 16 px; only the middle one at 64 px, whose levels are 64 and 32)."""
  model = DDPMpp(out_channels=3 * num_outputs, **TINY)
  params = _random_params(model, (2, size, size, 3), seed=size)
  x, t = _inputs((2, size, size, 3))
  out = jax.jit(model.apply)({"params": params}, x, t)
  assert out.shape == (2, size, size, 3 * num_outputs)
  assert out.dtype == jnp.float32
  assert bool(jnp.all(jnp.isfinite(out)))
  assert param_count(params) == param_count_analytic(3, 3 * num_outputs, size, **TINY)
  num_attn = sum("AttnBlock" in k for k in params)
  assert num_attn == (3 if size == 32 else 1)


def test_initial_output_is_near_zero():
  """Reference: the init scales. The head conv (and every residual branch's last layer) has
  variance scale 1e-10, kernel std ~1e-5/sqrt(fan), so |out| ~ 1e-5 (measured max 2.5e-5); bound
  1e-3, which a unit-scale head (O(1) output) breaks by orders of magnitude."""
  model = DDPMpp(out_channels=3, **MICRO)
  params = _init(model, (2, 16, 16, 3))
  x, t = _inputs((2, 16, 16, 3))
  out = jax.jit(model.apply)({"params": params}, x, t)
  assert bool(jnp.all(jnp.isfinite(out)))
  assert 0.0 < float(jnp.max(jnp.abs(out))) < 1e-3


def test_param_count_variants_tiny():
  """Reference: :func:`param_count_analytic` (hand-summed layer sizes) for the other switches:
  plain-conv resampling and the Fourier embedding (2 ch wide), with two levels of attention."""
  for kw in (dict(resblock_updown=False), dict(embedding="fourier"),
             dict(ch_mult=(1, 2, 2), num_res_blocks=2, attn_resolutions=(16, 8))):
    cfg = {**TINY, **kw}
    model = DDPMpp(out_channels=1, **cfg)
    shapes = jax.eval_shape(lambda m=model: _init(m, (1, 32, 32, 1)))
    assert param_count(shapes) == param_count_analytic(1, 1, 32, **cfg), kw


def test_cifar10_param_count():
  """Reference: the original score-SDE network's parameter count for DDPM++ cont. (VP) CIFAR10
  (61,804,419; the LIM CIFAR10 config also uses ch 128, (1,2,2,2), 4 blocks, attention at 16) and
  for the deep variant (8 blocks, Fourier), and :func:`param_count_analytic`. Exact equality:
  a count is an integer. Shapes only (``jax.eval_shape``), nothing allocated."""
  model = DDPMpp(out_channels=3, ch=128, ch_mult=(1, 2, 2, 2), num_res_blocks=4,
                 attn_resolutions=(16,), dropout=0.1)
  shapes = jax.eval_shape(lambda: _init(model, (1, 32, 32, 3)))
  n = param_count(shapes)
  assert n == param_count_analytic(3, 3, 32, num_res_blocks=4) == SCORE_SDE_DDPMPP_CONT_CIFAR10
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(shapes))

  deep = DDPMpp(out_channels=3, num_res_blocks=8, embedding="fourier")
  n_deep = param_count(jax.eval_shape(lambda: _init(deep, (1, 32, 32, 3))))
  assert n_deep == param_count_analytic(3, 3, 32, num_res_blocks=8, embedding="fourier")
  assert n_deep == SCORE_SDE_DDPMPP_DEEP_CIFAR10


@pytest.mark.parametrize("embedding,cfg", [("positional", TINY), ("fourier", MICRO)])
@pytest.mark.integration
def test_gradients_finite_and_match_finite_differences(embedding, cfg):
  """Reference: central finite differences of the loss along a random direction scaled like the
  parameters (kernels: N(0, std(kernel)^2), vectors: N(0, 0.1^2)), step 3e-3, float32. The
  truncation error is O(step^2) (5e-3 relative at step 1e-2 in a probe, 4e-4 at 3e-3) and float32
  rounding of the loss adds ~1e-7 x 1.4 / 6e-3 ~ 3e-5 absolute (~2e-4 relative); measured
  relative errors 4.4e-4 (positional) and 7.8e-4 (Fourier). Tolerance 1e-2 relative. A wrong
  backward pass, or a NaN from log t at t = 0 (in the batch), fails it."""
  model = DDPMpp(out_channels=3, embedding=embedding, dropout=0.0, **cfg)
  params = _random_params(model, (2, 16, 16, 3), seed=2)
  x, _ = _inputs((2, 16, 16, 3))
  t = jnp.array([0.0, 0.7], jnp.float32)
  target = jax.random.normal(jax.random.PRNGKey(3), x.shape)

  def loss(p):
    return jnp.mean((model.apply({"params": p}, x, t) - target) ** 2)

  value, grads = jax.jit(jax.value_and_grad(loss))(params)
  assert np.isfinite(float(value))
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))

  rng = np.random.default_rng(4)
  direction = jax.tree.map(
      lambda p: rng.standard_normal(p.shape).astype(np.float32)
      * (float(np.std(p)) if p.ndim >= 2 else 0.1), params)
  loss_along = jax.jit(lambda s: loss(jax.tree.map(lambda p, d: p + s * d, params, direction)))
  step = 3e-3
  fd = (float(loss_along(step)) - float(loss_along(-step))) / (2 * step)
  analytic = sum(float(np.vdot(np.asarray(g, np.float64), d)) for g, d in
                 zip(jax.tree.leaves(grads), jax.tree.leaves(direction)))
  assert abs(fd - analytic) <= 1e-2 * abs(analytic), (fd, analytic)


def test_bfloat16_close_to_float32():
  """Reference: the float32 network with the same (float32) parameters. bf16 keeps 8 mantissa
  bits (relative rounding 2^-9 ~ 2e-3 per op); over ~25 layers the errors add up to a few 1e-2
  relative L2 at worst, so the tolerance is 5e-2 (measured 1.4e-2); a dtype bug (float16-style
  overflow, bf16 softmax or norm statistics, bf16 parameters) is far outside it. Also: the bf16
  model's parameters are float32 and its output is float32; the output depends on t (changing t
  moves it by 0.41 relative, > 10x the bf16 error)."""
  model32 = DDPMpp(out_channels=3, **TINY)
  model16 = DDPMpp(out_channels=3, dtype=jnp.bfloat16, **TINY)
  shapes16 = _param_shapes(model16, (2, 32, 32, 3))
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(shapes16))
  params = _random_params(model16, (2, 32, 32, 3), seed=5)
  x, t = _inputs((2, 32, 32, 3))
  apply32 = jax.jit(model32.apply)
  out32 = apply32({"params": params}, x, t)
  out16 = jax.jit(model16.apply)({"params": params}, x, t)
  assert out16.dtype == jnp.float32
  assert bool(jnp.all(jnp.isfinite(out16)))
  rel = float(jnp.linalg.norm(out16 - out32) / jnp.linalg.norm(out32))
  assert rel < 5e-2, rel
  # The time conditioning reaches the output (a far larger change than the bf16 error).
  out_t = apply32({"params": params}, x, 1.0 - t)
  assert float(jnp.linalg.norm(out_t - out32) / jnp.linalg.norm(out32)) > 10 * rel


def test_dropout_uses_rng_only_in_training():
  """Reference: exact equality/inequality. Through the repo's ``make_apply`` (which passes
  ``rngs={'dropout': rng}``): train=True with two keys differs (relative change > 1e-3; with
  rate 0.1 and O(1) features it is O(0.1): measured 0.43), with the same key is reproducible,
  train=False is deterministic and needs no key; with rate 0 train=True equals train=False to
  1e-6 (measured: exactly equal)."""
  model = DDPMpp(out_channels=3, dropout=0.1, **TINY)
  apply_fn = jax.jit(make_apply(model), static_argnames="train")
  params = _random_params(model, (2, 32, 32, 3), seed=6)
  x, t = _inputs((2, 32, 32, 3))
  k1, k2 = jax.random.PRNGKey(10), jax.random.PRNGKey(11)
  a = apply_fn(params, x, t, train=True, rng=k1)
  b = apply_fn(params, x, t, train=True, rng=k2)
  a_again = apply_fn(params, x, t, train=True, rng=k1)
  e1 = apply_fn(params, x, t, train=False)
  e2 = apply_fn(params, x, t, train=False, rng=k1)
  scale = float(jnp.linalg.norm(e1))
  assert float(jnp.linalg.norm(a - b)) > 1e-3 * scale
  assert float(jnp.linalg.norm(a - e1)) > 1e-3 * scale
  np.testing.assert_array_equal(np.asarray(a), np.asarray(a_again))
  np.testing.assert_array_equal(np.asarray(e1), np.asarray(e2))

  no_drop = DDPMpp(out_channels=3, dropout=0.0, **TINY)
  apply0 = jax.jit(make_apply(no_drop), static_argnames="train")
  np.testing.assert_allclose(np.asarray(apply0(params, x, t, train=True, rng=k1)),
                             np.asarray(e1), rtol=0, atol=1e-6 * scale)


@pytest.mark.parametrize("kw,field", [
    (dict(ch=6), "model.ch_mult"),
    (dict(ch=7, ch_mult=(4,)), "model.ch"),  # odd: the sinusoidal embedding needs an even width
    (dict(ch=144, ch_mult=(1,)), "model.ch_mult"),  # 144 is not a multiple of 32 groups
    (dict(embedding="learned"), "model.embedding"),
    (dict(dropout=1.0), "model.dropout"),
    (dict(num_res_blocks=0), "model.num_res_blocks"),
    (dict(ch_mult=(1, 2, 2, 2, 2, 2, 2)), "model.ch_mult"),  # 32 px is not divisible by 2^6
])
def test_invalid_hparams_name_the_field(kw, field):
  """Reference: the repo convention (a ``ValueError`` whose message starts with the field)."""
  model = DDPMpp(out_channels=3, **{**TINY, **kw})
  with pytest.raises(ValueError, match=f"^{field}"):
    jax.eval_shape(lambda: _init(model, (1, 32, 32, 3)))


def test_validate_hparams_checks_image_size_before_tracing():
  """Reference: the repo convention; a config can be checked before any data shape is known
  (36 px is not divisible by 2^3 for ch_mult (1,2,2,2); 32 px is)."""
  cifar = dict(ch=128, ch_mult=(1, 2, 2, 2), num_res_blocks=4, attn_resolutions=(16,),
               dropout=0.1, embedding="positional")
  validate_hparams(**cifar, image_size=32)
  with pytest.raises(ValueError, match="^model.ch_mult"):
    validate_hparams(**cifar, image_size=36)


# ---- NCSN++: FIR resampling and the residual input pyramid ---------------------------------------


def test_fir_resampling_matches_scipy_upfirdn():
  """Reference: ``scipy.signal.upfirdn`` applied along each axis (the filter is separable), with
  the StyleGAN2 / score-SDE alignment: up = full output [1 : 1 + 2N] of the gain-2 1-D filter per
  axis, down = the stride-2 samples [1 : 1 + N/2]. Float32 vs float64: 1e-5."""
  from scipy import signal
  from lim_jax.models import layers
  rng = np.random.default_rng(0)
  x = rng.standard_normal((2, 6, 8, 3))
  k = np.asarray(layers.FIR_KERNEL) / np.sum(layers.FIR_KERNEL)

  def along(a, axis, fn):
    return np.apply_along_axis(fn, axis, a)

  up_ref = along(along(x, 1, lambda v: signal.upfirdn(2 * k, v, up=2)[1:1 + 2 * len(v)]), 2,
                 lambda v: signal.upfirdn(2 * k, v, up=2)[1:1 + 2 * len(v)])
  down_ref = along(along(x, 1, lambda v: signal.upfirdn(k, v, down=2)[1:1 + len(v) // 2]), 2,
                   lambda v: signal.upfirdn(k, v, down=2)[1:1 + len(v) // 2])
  xj = jnp.asarray(x, jnp.float32)
  np.testing.assert_allclose(layers.upsample_fir(xj), up_ref, atol=1e-5)
  np.testing.assert_allclose(layers.downsample_fir(xj), down_ref, atol=1e-5)
  # A constant image stays constant away from the border (gain 4 up, 1 down).
  ones = jnp.ones((1, 8, 8, 1))
  np.testing.assert_allclose(layers.upsample_fir(ones)[0, 2:-2, 2:-2], 1.0, atol=1e-6)
  np.testing.assert_allclose(layers.downsample_fir(ones)[0, 1:-1, 1:-1], 1.0, atol=1e-6)


@pytest.mark.integration
def test_ncsnpp_shape_and_param_count():
  """Reference: :func:`param_count_analytic` with the pyramid convolutions added by hand; the
  registry's ``ncsnpp`` defaults (FIR, residual pyramid, Fourier) build that network; output
  shape equals input shape and differs from the DDPM++ output on the same parameters layout."""
  import ml_collections
  from lim_jax import models
  cfg = ml_collections.ConfigDict(dict(name="ncsnpp", dtype="float32", ch=16, ch_mult=(1, 2, 2),
                                       num_res_blocks=1, attn_resolutions=(8,), dropout=0.0))
  model = models.get_model(cfg, (16, 16, 3))
  assert model.fir and model.progressive_input == "residual" and model.embedding == "fourier"
  shapes = jax.eval_shape(lambda: _init(model, (1, 16, 16, 3)))
  assert param_count(shapes) == param_count_analytic(
      3, 3, 16, ch=16, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(8,),
      embedding="fourier", progressive_input="residual")
  params = _random_params(model, (2, 16, 16, 3), seed=0)
  x, t = _inputs((2, 16, 16, 3))
  out = model.apply({"params": params}, x, t)
  assert out.shape == x.shape and bool(jnp.all(jnp.isfinite(out)))
  cfg.progressive_input = "pyramid_typo"
  with pytest.raises(ValueError, match="^model.progressive_input"):
    models.validate(cfg)
