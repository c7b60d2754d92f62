"""Image quality and diversity of the noise families at a fixed small budget (issues #11.4, #6).

  nice python benchmarks/bench_images.py [--out=DIR] [--families=gaussian,levy,jump,fbm,mixture]
      [--fbm_grid=0.5:0,0.5:2,...] [--steps=N] [--num_samples=N] [--nfe=N] [--seeds=0,1,2] [--full]
  python benchmarks/bench_images.py --dataset=mnist --data_dir=DIR --image_size=28 --full

Data. Default: the UCI handwritten digits shipped with scikit-learn
(``sklearn.datasets.load_digits``: 1797 images, 8x8, grey levels 0..16; no download), scaled
``x / 8 - 1`` to [-1, 1] and used at their native 8x8 (``--image_size=8``, no interpolation) or 2x
nearest-neighbour upsampled to 16x16 (``--image_size=16``: exact pixel replication, 4x the
compute). ``--dataset=mnist`` reads the prepared tfds ``mnist`` train split (array_record) from
``--data_dir`` (28x28 or zero-padded 32x32).

Models. Every family uses its ``configs/mnist_<family>.py`` (``configs/cifar10_<family>.py`` where
no MNIST config exists: jump, mixture) for the process fields (alpha, hurst, num_ou, t_max, ...),
the sampler name and the loss; the network and the budget are the same for all: DDPM++ (score SDE
"DDPM++ cont." blocks) at ch 32, ch_mult (1, 2), 1 residual block per level, no attention but the
middle one, no dropout; Adam lr ``--lr`` (1e-3; the configs' 2e-4 is tuned for 10^5-10^6 steps),
min(100, steps / 10) warm-up steps, grad clip 1, EMA 0.999 (with the min((1+n)/(10+n), 0.999)
warm-up of ``train.py``), batch 64, ``--steps`` steps. Training is the library's: the images
become own data (``own_data.from_array``, uint8), the state comes from ``lim_jax.state``, the
jitted step from ``train.make_jit_train_step`` and step ``n``'s minibatch from the data API
(drawn with replacement by ``default_rng([seed, n])``); the papers' parameterisation (eps,
uniform training times and time grid, no final denoising step; see :func:`library_config`).
``--fbm_grid`` adds fbm rows over (H, K); ``K = 0`` is Brownian motion whatever H is (the fbm
family then *is* the Gaussian family, exactly), so it is not run again when the gaussian row is in
the table.

Sampling. ``--num_samples`` images per model with the family's configured sampler at ``--nfe``
network evaluations (the configs' 500-1000 are for full-size runs; ``--nfe=0`` keeps the config's),
clipped to [-1, 1] and rounded to the data's grey levels (17 for the digits, 256 for MNIST), the
analogue of ``plotting.to_uint8`` for these data.

Metrics (reference = a fixed random half ``A`` of the images; the other half ``B`` is scored as if
it were a model, with as many images as a model's samples: the "real vs real" floor):

* ``FD``: Fréchet distance (``lim_jax.metrics.fid``) between Gaussians fitted to the penultimate
  features of a small CNN trained here on the same images (an FID with an in-project extractor; see
  :func:`_feature_net` for the architecture; the run prints its held-out accuracy). Values are not
  comparable to Inception FIDs.
* ``P, R, D, C``: precision / recall (Kynkäänniemi et al. 2019) and density / coverage (Naeem et
  al. 2020), k = 3, in the same features (``lim_jax.metrics.prdc``).
* ``pixVS``: pixel Vendi score (``lim_jax.metrics.diversity.pixel_vendi_score``: cosine kernel on
  uncentred [0, 1] pixels; Nobis et al. 2024); ``featVS``: cosine Vendi of the (non-negative,
  post-ReLU) CNN features. Higher = more diverse; compare with the data row.

Prints one Markdown table (mean ± std over seeds) and writes ``samples_<row>.png`` grids and
``results.json`` into ``--out``. The classifier is trained once and cached in ``--out``.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import pathlib
import platform
import sys
import tempfile
import time
from typing import Any, Callable

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_FAMILIES = "gaussian,levy,jump,fbm,mixture"
# H:K. The default (7 models with the five families) fits ~13 min on an idle 2-core CPU; --full runs
# the whole H in {0.5, 0.7, 0.9} x K in {0, 2, 3} grid (one K=0 row stands for all H).
DEFAULT_GRID = "0.7:2,0.9:2"
FULL_GRID = "0.5:0,0.5:2,0.5:3,0.7:2,0.7:3,0.9:2,0.9:3"
DIGIT_LEVELS = 16  # sklearn digits: integer grey levels 0..16
FEATURE_DIM = 64


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class ImageSet:
  """``images (N, H, W, C)`` float32 in [-1, 1], ``labels (N,)`` int, and the grey-level count."""

  name: str
  images: np.ndarray
  labels: np.ndarray
  levels: int  # images take values -1 + 2 i / levels, i = 0..levels


def load_digits(image_size: int) -> ImageSet:
  """UCI digits (sklearn): ``x / 8 - 1`` in [-1, 1]; 16x16 is a 2x nearest-neighbour upsample.

  Raises:
    ImportError: scikit-learn (the ``bench`` extra) is not installed.
  """
  try:
    from sklearn import datasets  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError("bench_images needs scikit-learn for the digits data set: "
                      "pip install 'lim_jax[bench]' (or pip install scikit-learn), or use "
                      "--dataset=mnist --data_dir=DIR") from e
  if image_size not in (8, 16):
    raise ValueError(f"--image_size must be 8 or 16 for the digits, got {image_size}")
  digits = datasets.load_digits()
  images = digits.images.astype(np.float32) / (DIGIT_LEVELS / 2) - 1.0  # (1797, 8, 8)
  if image_size == 16:
    images = images.repeat(2, axis=1).repeat(2, axis=2)
  return ImageSet("digits", images[..., None], digits.target.astype(np.int64), DIGIT_LEVELS)


def load_mnist(data_dir: str, image_size: int, limit: int) -> ImageSet:
  """The first ``limit`` images of the prepared tfds ``mnist`` train split (``image_data``)."""
  from ml_collections import config_dict  # pylint: disable=g-import-not-at-top
  from lim_jax import image_data  # pylint: disable=g-import-not-at-top
  cfg = config_dict.ConfigDict(dict(dataset="mnist", image_size=image_size, data_dir=data_dir,
                                    random_flip=False, prefetch=False))
  data = image_data.ImageData(cfg, seed=0)
  source = data.shard()  # the random-access train split (one process)
  n = min(limit, len(source))
  examples = [source[i] for i in range(n)]
  images = np.stack([data.preprocess(ex) for ex in examples]).astype(np.float32)
  labels = np.array([int(ex["label"]) for ex in examples], np.int64)
  return ImageSet("mnist", images, labels, 255)


def quantize(images: np.ndarray, levels: int) -> np.ndarray:
  """Clip to [-1, 1] and round to the grid ``-1 + 2 i / levels`` (non-finite -> -1)."""
  x = np.clip(np.nan_to_num(images, nan=-1.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
  return (np.round((x + 1.0) * levels / 2) * 2 / levels - 1.0).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Feature extractor: a small CNN classifier trained on the same images
# ---------------------------------------------------------------------------------------------
def _feature_net():
  import flax.linen as nn  # pylint: disable=g-import-not-at-top

  class FeatureNet(nn.Module):
    """Conv3x3(32)-ReLU-Conv3x3(64, stride 2)-ReLU-Conv3x3(64, stride 2)-ReLU-flatten-Dense(64)-ReLU
    [= features, 64-d] - Dense(10).

    ``(B, H, W, C)`` in [-1, 1] -> ``(features (B, 64), logits (B, 10))``."""

    @nn.compact
    def __call__(self, x):
      h = nn.relu(nn.Conv(32, (3, 3))(x))
      h = nn.relu(nn.Conv(64, (3, 3), strides=2)(h))
      h = nn.relu(nn.Conv(64, (3, 3), strides=2)(h))
      feats = nn.relu(nn.Dense(FEATURE_DIM)(h.reshape(h.shape[0], -1)))
      return feats, nn.Dense(10)(feats)

  return FeatureNet()


def train_classifier(data: ImageSet, out_dir: str, seed: int = 0, epochs: int = 40,
                     batch: int = 64) -> tuple[Callable[[np.ndarray], np.ndarray], dict]:
  """Trains (or loads from ``out_dir``) the feature CNN on a seeded 85 % split; reports the
  held-out 15 % accuracy. Returns ``(features(images) -> (N, 64) float64, info)``."""
  import flax  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  net = _feature_net()
  h, w, c = data.images.shape[1:]
  tag = f"classifier_{data.name}_{h}x{w}_n{len(data.images)}_s{seed}_e{epochs}"
  path_params, path_info = (os.path.join(out_dir, f"{tag}.{ext}") for ext in ("msgpack", "json"))
  params = net.init(jax.random.PRNGKey(seed), jnp.zeros((1, h, w, c)))["params"]
  apply = jax.jit(lambda p, x: net.apply({"params": p}, x))
  if os.path.exists(path_params) and os.path.exists(path_info):
    with open(path_params, "rb") as f:
      params = flax.serialization.from_bytes(params, f.read())
    with open(path_info, encoding="utf-8") as f:
      info = json.load(f) | {"cached": True}
  else:
    t0 = time.time()
    rng = np.random.default_rng([seed, 0xC1A5])
    order = rng.permutation(len(data.images))
    n_train = int(0.85 * len(order))
    tr, te = order[:n_train], order[n_train:]
    tx = optax.adam(1e-3)
    opt = tx.init(params)

    @jax.jit
    def step(params, opt, x, y):
      def loss(p):
        return optax.softmax_cross_entropy_with_integer_labels(
            net.apply({"params": p}, x)[1], y).mean()
      g = jax.grad(loss)(params)
      upd, opt = tx.update(g, opt, params)
      return optax.apply_updates(params, upd), opt

    for _ in range(epochs):
      perm = rng.permutation(tr)
      for i in range(0, len(perm) - batch + 1, batch):
        idx = perm[i:i + batch]
        params, opt = step(params, opt, data.images[idx], data.labels[idx])
    logits = np.concatenate([np.asarray(apply(params, data.images[te[i:i + 512]])[1])
                             for i in range(0, len(te), 512)])
    info = {"heldout_accuracy": float(np.mean(logits.argmax(-1) == data.labels[te])),
            "num_train": int(n_train), "num_heldout": int(len(te)), "epochs": epochs,
            "feature_dim": FEATURE_DIM, "train_seconds": time.time() - t0, "cached": False}
    os.makedirs(out_dir, exist_ok=True)
    with open(path_params, "wb") as f:
      f.write(flax.serialization.to_bytes(params))
    with open(path_info, "w", encoding="utf-8") as f:
      json.dump(info, f)

  def features(images: np.ndarray) -> np.ndarray:
    return np.concatenate([np.asarray(apply(params, images[i:i + 512])[0], np.float64)
                           for i in range(0, len(images), 512)])

  return features, info


# ---------------------------------------------------------------------------------------------
# Generative models
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Row:
  """One table row: a family config plus process-field overrides."""

  label: str
  family: str
  overrides: tuple[tuple[str, Any], ...] = ()


def family_config_path(family: str) -> pathlib.Path:
  for name in (f"mnist_{family}.py", f"cifar10_{family}.py"):
    path = ROOT / "configs" / name
    if path.exists():
      return path
  raise FileNotFoundError(f"no configs/mnist_{family}.py or configs/cifar10_{family}.py")


def bench_config(row: Row, args, seed: int, data_shape: tuple[int, ...]):
  """The family's config with the shared small network and budget (module docstring)."""
  from lim_jax import config_lib  # pylint: disable=g-import-not-at-top
  cfg = config_lib.load_file(family_config_path(row.family))
  cfg.seed = seed
  for name, value in row.overrides:
    cfg.process[name] = value
  m = cfg.model
  m.ch, m.ch_mult, m.num_res_blocks, m.attn_resolutions, m.dropout = args.ch, (1, 2), 1, (), 0.0
  cfg.training.batch_size = args.batch
  cfg.training.num_steps = args.steps
  cfg.optim.learning_rate = args.lr
  cfg.optim.warmup_steps = min(100, args.steps // 10)
  cfg.optim.ema_decay = 0.999
  cfg.optim.lr_schedule = "constant"
  if args.nfe:
    cfg.sampling.nfe = args.nfe
  cfg.data.image_size = data_shape[0]
  return cfg


def library_config(cfg, data: ImageSet, out_dir: str):
  """``cfg`` training on ``data`` through the library's own-data API (``data.dataset='array'``):
  the images are written once as uint8 (``round((x + 1) 127.5)``, exact for MNIST, within 1/255
  of the 17 digit grey levels) to ``out_dir``, all of them in the training split (no held-out
  split, no flip). The network parameterisation, training times and sampling grid are set to the
  papers' (eps-prediction, no input bound, times uniform in the family's clock, the uniform time
  grid, no final denoising step), the defaults of ``losses.make_loss_fn`` and
  ``samplers.make_sampler``; the scan over the steps of a call is unrolled (``training.unroll``:
  on XLA:CPU a convolution's gradient inside a rolled loop runs ~50x slower than outside it,
  jax-ml/jax#12868)."""
  from lim_jax import own_data, plotting  # pylint: disable=g-import-not-at-top
  h, w, c = data.images.shape[1:]
  path = os.path.join(os.path.abspath(out_dir), f"train_{data.name}_{h}x{w}x{c}_n{len(data.images)}"
                      ".npz")
  cfg = own_data.from_array(cfg, plotting.to_uint8(data.images), path)
  with cfg.unlocked():
    cfg.data.eval_fraction = 0.0
    cfg.data.validation_fraction = 0.0
    cfg.data.random_flip = False
    m = cfg.model
    m.parameterization, m.sigma_data, m.input_bound = "eps", 1.0, "never"
    cfg.training.noise_levels = "uniform_t"
    cfg.training.unroll = "always"
    sp = cfg.sampling
    sp.grid, sp.time_power, sp.snr, sp.final_denoise = "uniform_t", 1.0, 0.16, False
  return cfg


def train_and_sample(cfg, num_samples: int, steps_per_call: int,
                     sample_batch: int) -> dict[str, Any]:
  """Trains ``cfg`` (from :func:`library_config`) with the library's state factory, jitted train
  step and data batches, and draws ``num_samples`` with the configured sampler
  (``sample.draw_samples``)."""
  import jax  # pylint: disable=g-import-not-at-top
  from lim_jax import config_lib, models, parallel, sample, train  # pylint: disable=g-import-not-at-top
  from lim_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  from lim_jax import state as state_lib  # pylint: disable=g-import-not-at-top
  with cfg.unlocked():
    cfg.sampling.num_samples, cfg.sampling.batch_size = num_samples, sample_batch
  process = config_lib.validate(cfg)
  mesh = parallel.make_mesh()
  data = data_lib.get_dataset(cfg.data, cfg.seed)
  model = models.get_model(cfg.model, data.data_shape, process.num_outputs)
  apply_fn = models.make_apply(model)
  tr = cfg.training
  tx = state_lib.make_optimizer(cfg.optim, tr.num_steps)
  k_init, k_train, k_sample = jax.random.split(jax.random.PRNGKey(cfg.seed), 3)
  state = jax.jit(state_lib.make_state_factory(model, tx, data.data_shape),
                  out_shardings=parallel.replicated(mesh))(k_init)
  step_fn = train.make_jit_train_step(cfg, process, apply_fn, tx, mesh)

  t0 = time.time()
  losses_seen = []
  done = 0
  while done < tr.num_steps:  # step n's batch is a function of (seed, n): the library's stream
    s = min(steps_per_call, tr.num_steps - done)
    batches = parallel.put_batch(data.batches(done, s, tr.batch_size), mesh, leading_axes=1)
    state, m = step_fn(state, batches, k_train)
    done += s
    if done % max(tr.num_steps // 4, 1) < s:
      losses_seen.append(float(m["loss"]))
  jax.block_until_ready(state)
  train_s = time.time() - t0

  t0 = time.time()
  samples, nfe = sample.draw_samples(cfg, process, apply_fn, state.ema_params, mesh,
                                     data.data_shape, num=num_samples, key=k_sample)
  return {"samples": samples, "train_s": train_s, "sample_s": time.time() - t0, "nfe": nfe,
          "sampler": cfg.sampling.sampler, "losses": losses_seen,
          "nonfinite": int(state.nonfinite_total), "process": process.describe()}


# ---------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------
def score(fake: np.ndarray, ref_feats: np.ndarray, ref_stats, features) -> dict[str, float]:
  """FD, PRDC and Vendi of quantized images ``fake`` against the reference features."""
  from lim_jax.metrics import diversity, fid, prdc  # pylint: disable=g-import-not-at-top
  f = features(fake)
  row = {"FD": fid.frechet_distance(*fid.statistics(f), *ref_stats)}
  pr = prdc.prdc(ref_feats, f, k=3)
  row.update(P=pr["precision"], R=pr["recall"], D=pr["density"], C=pr["coverage"])
  row["pixVS"] = diversity.pixel_vendi_score((fake + 1.0) / 2.0)
  row["featVS"] = diversity.vendi_score(f, "cosine")
  return row


def save_grid(path: str, images: np.ndarray, scale: int) -> None:
  from lim_jax import plotting  # pylint: disable=g-import-not-at-top
  u8 = plotting.to_uint8(images[:64])
  u8 = u8.repeat(scale, axis=1).repeat(scale, axis=2)
  plotting.image_grid(path, u8)


def parse_grid(spec: str) -> list[tuple[float, int]]:
  out, seen_k0 = [], False
  for item in filter(None, spec.split(",")):
    try:
      h, k = item.split(":")
      h, k = float(h), int(k)
    except ValueError:
      raise ValueError(f"--fbm_grid entries are H:K, got {item!r}") from None
    if k == 0:  # K = 0 is Brownian motion for every H: one row
      if seen_k0:
        continue
      seen_k0 = True
    out.append((h, k))
  return out


def build_rows(families: str, grid: str) -> list[Row]:
  rows, labels = [], set()
  for family in filter(None, families.split(",")):
    rows.append(Row(family, family))
    labels.add(family)
  fbm_default = None
  if "fbm" in labels:
    from lim_jax import config_lib  # pylint: disable=g-import-not-at-top
    p = config_lib.load_file(family_config_path("fbm")).process
    fbm_default = (float(p.hurst), int(p.num_ou))
  for h, k in parse_grid(grid):
    if (h, k) == fbm_default:
      continue  # the family row already is this grid point
    if k == 0 and "gaussian" in labels:
      # fbm with K = 0 delegates every method to GaussianProcess (same keys, same numbers) and
      # its config trains and samples like the gaussian one: the gaussian row is this row.
      print("# fbm K=0 (Brownian motion, any H) is the gaussian family exactly: see its row")
      continue
    label = "fbm K=0 (BM, any H)" if k == 0 else f"fbm H={h:g} K={k}"
    rows.append(Row(label, "fbm", (("hurst", h), ("num_ou", k))))
  return rows


def environment() -> str:
  import jax  # pylint: disable=g-import-not-at-top
  import flax  # pylint: disable=g-import-not-at-top
  dev = jax.devices()[0]
  return (f"{platform.node()} | {platform.processor() or platform.machine()} | "
          f"{os.cpu_count()} CPUs | jax {jax.__version__} ({dev.platform}: {dev.device_kind}) | "
          f"flax {flax.__version__} | numpy {np.__version__} | python {platform.python_version()}")


def main(argv: list[str] | None = None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--dataset", default="digits", choices=("digits", "mnist"))
  p.add_argument("--data_dir", default="", help="tfds data_dir holding prepared mnist")
  p.add_argument("--image_size", type=int, default=0,
                 help="digits: 8 [default] | 16; mnist: 28 | 32 [default]")
  p.add_argument("--families", default=DEFAULT_FAMILIES)
  p.add_argument("--fbm_grid", default=None, help=f"H:K list (default {DEFAULT_GRID!r}; '' = none)")
  p.add_argument("--steps", type=int, default=None, help="training steps (default 500; full 6000)")
  p.add_argument("--batch", type=int, default=64)
  p.add_argument("--ch", type=int, default=32)
  p.add_argument("--lr", type=float, default=1e-3)
  p.add_argument("--num_samples", type=int, default=None,
                 help="default 500 (full: |B|, half the data)")
  p.add_argument("--sample_batch", type=int, default=500)
  p.add_argument("--nfe", type=int, default=None, help="default 50 (full: 0 = the config's)")
  p.add_argument("--seeds", default=None, help="default 0 (full: 0,1,2)")
  p.add_argument("--steps_per_call", type=int, default=1,
                 help="steps per jitted call (unrolled: compile time grows with it)")
  p.add_argument("--mnist_limit", type=int, default=20_000)
  p.add_argument("--classifier_epochs", type=int, default=40)
  p.add_argument("--full", action="store_true", help="6000 steps, config NFE, seeds 0,1,2")
  p.add_argument("--out", default="")
  args = p.parse_args(argv)
  full = args.full
  args.steps = args.steps if args.steps is not None else (6000 if full else 500)
  args.nfe = args.nfe if args.nfe is not None else (0 if full else 50)
  args.seeds = args.seeds or ("0,1,2" if full else "0")
  args.fbm_grid = args.fbm_grid if args.fbm_grid is not None else (FULL_GRID if full else
                                                                    DEFAULT_GRID)
  out = args.out or tempfile.mkdtemp(prefix="lim_bench_images_")
  os.makedirs(out, exist_ok=True)
  t_start = time.time()

  from absl import logging  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.WARNING)

  # ---- data, split and feature extractor ------------------------------------------------------
  try:
    if args.dataset == "digits":
      data = load_digits(args.image_size or 8)
    else:
      data = load_mnist(args.data_dir, args.image_size or 32, args.mnist_limit)
  except (ImportError, FileNotFoundError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  split = np.random.default_rng(0xA5).permutation(len(data.images))
  ref_idx, real_b = split[: len(split) // 2], split[len(split) // 2:]
  num_samples = args.num_samples or (len(real_b) if full else 500)
  features, cls_info = train_classifier(data, out, epochs=args.classifier_epochs)
  ref_feats = features(data.images[ref_idx])
  from lim_jax.metrics import fid  # pylint: disable=g-import-not-at-top
  ref_stats = fid.statistics(ref_feats)
  print(f"# {environment()}")
  print(f"# command: {' '.join([os.path.basename(sys.argv[0])] + (argv or sys.argv[1:]))}")
  how = "cached" if cls_info["cached"] else f"trained in {cls_info['train_seconds']:.0f} s"
  print(f"# data: {data.name} {data.images.shape[1:]} x {len(data.images)}; reference A = "
        f"{len(ref_idx)} images, real row B = {min(num_samples, len(real_b))}; feature CNN "
        f"held-out accuracy {cls_info['heldout_accuracy']:.3f} ({cls_info['num_heldout']} "
        f"images, {how}), "
        f"{FEATURE_DIM}-d features", flush=True)

  results: dict[str, list[dict]] = collections.defaultdict(list)
  meta: dict[str, dict] = {}
  # Coverage and recall grow with the number of fakes: the real row uses as many images as a model.
  real_row = real_b[:min(num_samples, len(real_b))]
  results["data (B vs A)"].append(score(data.images[real_row], ref_feats, ref_stats, features))
  scale = 4 if data.images.shape[1] <= 16 else 1
  save_grid(os.path.join(out, "samples_data.png"), data.images[real_b], scale)

  # ---- models --------------------------------------------------------------------------------
  for row in build_rows(args.families, args.fbm_grid):
    for seed in (int(s) for s in args.seeds.split(",")):
      cfg = library_config(bench_config(row, args, seed, data.images.shape[1:]), data, out)
      t0 = time.time()
      r = train_and_sample(cfg, num_samples, args.steps_per_call, args.sample_batch)
      fake = quantize(r["samples"], data.levels)
      finite = float(np.mean(np.all(np.isfinite(r["samples"]), axis=(1, 2, 3))))
      scores = score(fake, ref_feats, ref_stats, features) | {"finite": finite}
      results[row.label].append(scores)
      meta[row.label] = {k: r[k] for k in ("sampler", "nfe", "process")}
      if seed == int(args.seeds.split(",")[0]):
        save_grid(os.path.join(out, f"samples_{row.label.replace(' ', '_').replace('=', '')}.png"),
                  fake, scale)
      print(f"# {row.label} seed {seed}: {r['sampler']}@{r['nfe']} train {r['train_s']:.0f} s, "
            f"sample {r['sample_s']:.0f} s, total {time.time() - t0:.0f} s, loss "
            f"{' '.join(f'{v:.3f}' for v in r['losses'])}, non-finite steps {r['nonfinite']}: "
            + " ".join(f"{k}={v:.3g}" for k, v in scores.items()), flush=True)

  # ---- table ---------------------------------------------------------------------------------
  keys = ["FD", "P", "R", "D", "C", "pixVS", "featVS"]
  print(f"\n# {data.name} {data.images.shape[1]}x{data.images.shape[2]}, DDPM++ ch {args.ch} "
        f"(1,2) x1, batch {args.batch}, {args.steps} steps, {num_samples} samples, seeds "
        f"{args.seeds}; mean ± std over seeds; wall {time.time() - t_start:.0f} s")
  print("| model | sampler@NFE | " + " | ".join(keys) + " |")
  print("|---|---|" + "---|" * len(keys))
  for label, rows in results.items():
    cells = []
    for k in keys:
      v = np.array([r[k] for r in rows])
      cells.append(f"{v.mean():.3g}" + (f" ± {v.std():.2g}" if len(v) > 1 else ""))
    how = f"{meta[label]['sampler']}@{meta[label]['nfe']}" if label in meta else "-"
    print(f"| {label} | {how} | " + " | ".join(cells) + " |")
  with open(os.path.join(out, "results.json"), "w", encoding="utf-8") as f:
    json.dump({"args": vars(args), "classifier": cls_info, "meta": meta, "results": results}, f,
              indent=1)
  print(f"\n# outputs in {out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
