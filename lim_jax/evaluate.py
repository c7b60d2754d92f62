"""``--mode=eval``: sample from a checkpoint and score the samples against fresh data.

Writes ``workdir/eval/step_<N>.json`` with one row per NFE (``eval.nfe_sweep``, or the configured
``sampling.nfe``) and logs each row to ``metrics.jsonl`` under ``eval/``. For the toy sets the JSON
also holds ``data_floor``: the same metrics for fresh data against the same reference
(:func:`data_floor`), what an exact sampler scores at ``eval.num_samples``.

Metrics (``eval.metrics``), by kind of data:

* toy (vector) data: ``sliced_wasserstein``, ``mmd``, ``tail_quantile_log_error``,
  ``mode_coverage`` (``grid_imbalanced``), ``prdc`` (precision/recall/density/coverage of the raw
  points, k = ``eval.prdc_k``) and ``vendi`` (RBF-kernel Vendi score, bandwidth
  ``eval.vendi_bandwidth``, on at most ``eval.vendi_max_points`` samples).
* images: ``fid`` (clean-fid conventions, :mod:`lim_jax.metrics.fid`; the reference statistics of
  ``eval.num_samples`` training images are cached in ``workdir/eval/``), ``prdc`` (in the same
  Inception pool3 features, k = ``eval.prdc_k``) and ``pixel_vendi`` (cosine Vendi on raw pixels,
  GFDM's diversity measure). Samples are quantised to uint8 first, as they are saved. The Inception
  weights are read from ``eval.inception_path`` before any sampling, so a missing file
  costs nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Callable

import numpy as np

from lim_jax import data as data_lib
from lim_jax import sample as sample_lib
from lim_jax import storage
from lim_jax.metric_writers import MetricWriter, log
from lim_jax.metrics import diversity, fid, inception_features, inception_weights
from lim_jax.metrics import prdc as prdc_lib
from lim_jax.metrics import toy as toy_metrics
# The metric names and their validation (config_lib uses them without importing this module;
# tests/test_layering.py checks that METRICS implements exactly registry.NAMES).
from lim_jax.metrics.registry import (  # noqa: F401  (re-exported: evaluate's public names)
    DEFAULT_IMAGE_METRICS, IMAGE_ONLY, TOY_ONLY, validate_metrics)
from lim_jax.plotting import to_uint8 as _to_uint8


class Context:
  """What image metrics share for one evaluation: the Inception feature function (loaded once from
  ``eval.inception_path``) and the reference set's features and statistics (cached in
  ``workdir/eval/`` when a workdir is given).

  Args:
    config: the run config.
    reference: ``(M, H, W, C)`` reference images in ``[-1, 1]``.
    workdir: where ``eval/reference_<dataset>_<size>_<M>_<hash of data config and seed>.npz`` is
      cached ('' = no cache).
    feature_fn: optional ``fn(uint8 images) -> (N, d) features`` replacing Inception (tests,
      benchmarks with another extractor).
  """

  def __init__(self, config, reference: np.ndarray, workdir: str = "",
               feature_fn: Callable[[np.ndarray], np.ndarray] | None = None):
    self.config, self.reference, self.workdir = config, reference, workdir
    self._feature_fn = feature_fn
    self._reference_features: np.ndarray | None = None
    self._samples: np.ndarray | None = None  # the sample set whose features are cached
    self._sample_features: np.ndarray | None = None

  def needs_features(self) -> bool:
    return any(m in ("fid", "prdc") for m in self.config.eval.metrics)

  def feature_fn(self) -> Callable[[np.ndarray], np.ndarray]:
    if self._feature_fn is None:
      path = self.config.eval.get("inception_path", "")
      if not path:
        raise FileNotFoundError(
            "eval.inception_path is empty: the image metrics (fid, prdc) need the Inception-v3 "
            f"weights of pytorch-fid ({inception_weights.WEIGHTS_URL}); download the file and "
            "pass --config.eval.inception_path=/path/to/pt_inception-2015-12-05-6726825d.pth")
      self._feature_fn = inception_features.make_feature_fn(
          inception_weights.load_inception_params(path),
          batch_size=int(self.config.eval.get("batch_size", 50)))
    return self._feature_fn

  def sample_features(self, samples: np.ndarray) -> np.ndarray:
    """Features ``(N, d)`` of ``samples`` (``[-1, 1]`` images, quantised to uint8 as saved),
    computed once per sample set: ``fid`` and ``prdc`` of one row share them."""
    if samples is not self._samples:
      self._samples, self._sample_features = samples, self.feature_fn()(_to_uint8(samples))
    return self._sample_features

  def reference_features(self) -> np.ndarray:
    """Features ``(M, d)`` float32 of the reference images (computed once, cached on disk)."""
    if self._reference_features is None:
      path = ""
      if self.workdir:
        d = self.config.data
        # The data section and seed decide which images the reference holds (subset, crop...).
        tag = hashlib.sha1(json.dumps([d.to_dict(), self.config.seed], sort_keys=True,
                                      default=str).encode()).hexdigest()[:8]
        path = os.path.join(self.workdir, "eval", f"reference_{d.dataset}_"
                            f"{self.reference.shape[1]}_{len(self.reference)}_{tag}.npz")
      if path and storage.isfile(path):
        feats = storage.load_npz(path)["features"]
        if feats.shape[0] != len(self.reference):
          raise ValueError(f"reference feature cache {path!r} has {feats.shape[0]} rows, "
                           f"expected {len(self.reference)}; delete it to recompute")
      else:
        feats = self.feature_fn()(_to_uint8(self.reference)).astype(np.float32)
        if path:
          storage.save_npz(path, features=feats)  # atomic: never half a cache
          log(f"cached the reference features in {path}")
      self._reference_features = feats
    return self._reference_features


def _modes(samples, reference, config, ctx):
  del reference, ctx
  if config.data.dataset != "grid_imbalanced":
    return {}
  centers, weights, std = data_lib.grid_modes()
  return toy_metrics.mode_coverage(samples, centers, weights, std)


def _fid(samples, reference, config, ctx: Context):
  del reference, config
  return {"fid": fid.fid_from_features(ctx.sample_features(samples), ctx.reference_features())}


def _prdc(samples, reference, config, ctx: Context | None):
  k = int(config.eval.get("prdc_k", 3))
  if samples.ndim == 4:
    return prdc_lib.prdc(ctx.reference_features(), ctx.sample_features(samples), k=k)
  return prdc_lib.prdc(reference, samples, k=k)


def _pixel_vendi(samples, reference, config, ctx):
  del reference, ctx
  n = int(config.eval.get("vendi_max_points", 2000))
  return {"pixel_vendi": diversity.pixel_vendi_score(_to_uint8(samples[:n]))}


def _vendi(samples, reference, config, ctx):
  del reference, ctx
  n = int(config.eval.get("vendi_max_points", 2000))
  return {"vendi": diversity.vendi_score(samples[:n], kernel="rbf",
                                         bandwidth=float(config.eval.get("vendi_bandwidth", 0.1)))}


# The implementations of the names of :data:`lim_jax.metrics.registry.NAMES`.
METRICS: dict[str, Callable[..., dict[str, float]]] = {
    "sliced_wasserstein": lambda s, r, c, ctx: {
        "sliced_wasserstein": toy_metrics.sliced_wasserstein(s, r, seed=c.seed)},
    "mmd": lambda s, r, c, ctx: {"mmd": toy_metrics.mmd(s, r, seed=c.seed)},
    "tail_quantile_log_error": lambda s, r, c, ctx: {
        "tail_quantile_log_error": toy_metrics.tail_quantile_log_error(s, r)},
    "mode_coverage": _modes,
    "prdc": _prdc,
    "vendi": _vendi,
    "fid": _fid,
    "pixel_vendi": _pixel_vendi,
}


def score(samples: np.ndarray, reference: np.ndarray, config,
          context: Context | None = None) -> dict[str, float]:
  """The metrics named in ``eval.metrics`` over the finite samples.

  Args:
    samples: ``(N, *data_shape)``.
    reference: ``(M, *data_shape)`` data to compare with.
    config: the run config (``eval.*``, ``seed``, ``data.dataset``).
    context: shared image-metric state (:class:`Context`); built from ``reference`` if omitted.
  """
  finite = np.all(np.isfinite(samples), axis=tuple(range(1, samples.ndim)))
  out = {"finite_fraction": float(finite.mean())}
  if samples.ndim == 4:  # images keep their non-finite members (uint8 quantisation clips them)
    if samples.shape[1:] != reference.shape[1:]:
      raise ValueError(f"image shapes differ: samples {samples.shape[1:]}, "
                       f"reference {reference.shape[1:]}")
    kept, context = samples, context or Context(config, reference)
  else:
    kept = samples[finite]
  for name in config.eval.metrics:
    out.update(METRICS[name](kept, reference, config, context))
  return out


def data_floor(data, reference: np.ndarray, config,
               metrics: tuple[str, ...] | None = None) -> dict[str, float]:
  """The metrics of fresh data: ``len(reference)`` points of the data law (salt
  ``data.FLOOR_SALT``) scored against ``reference`` like a model's samples (:func:`score`, the same
  projections and seeds).

  What an exact sampler of the data law scores at this sample size: a reference, not a bound (a
  slightly under-dispersed model can score below it), and differences between models much smaller
  than its spread over seeds are not resolved by the metric (measured at 1000 samples on ``sas``:
  sliced W1 0.21, larger than most trained models' gaps). Toy sets only: own data and images have
  no independent draw beside their test split.

  Args:
    data: a toy dataset (``data.get_dataset``; :func:`lim_jax.data.has_generator`).
    reference: ``(M, *data_shape)``, the draw the samples are scored against (any salt but
      ``FLOOR_SALT``).
    config: the run config (``eval.metrics``, ``seed``).
    metrics: the metrics to compute instead of ``eval.metrics``.

  Raises:
    ValueError: the data have no generator.
  """
  if not data_lib.has_generator(data):
    raise ValueError(f"data.dataset {config.data.dataset!r}: the data floor needs a toy set, whose "
                     "generator gives fresh points beside the test draw")
  if metrics is not None:
    config = config.copy_and_resolve_references()
    with config.unlocked():
      config.eval.metrics = tuple(metrics)
  fresh = data.reference(len(reference), salt=data_lib.FLOOR_SALT)
  out = score(fresh, reference, config)
  out.pop("finite_fraction")
  return out


SPLITS = {"test": data_lib.TEST_SALT, "validation": data_lib.VALIDATION_SALT}


def evaluate(config, workdir: str,
             feature_fn: Callable[[np.ndarray], np.ndarray] | None = None,
             split: str = "test") -> list[dict[str, float]]:
  """The rows (one per NFE) of :func:`evaluate_record`."""
  return evaluate_record(config, workdir, feature_fn, split)["rows"]


def evaluate_record(config, workdir: str,
                    feature_fn: Callable[[np.ndarray], np.ndarray] | None = None,
                    split: str = "test") -> dict:
  """Samples ``eval.num_samples`` per NFE from the latest checkpoint, writes the JSON and returns
  its content: ``step``, ``family``, ``dataset``, ``split``, ``rows`` and, for the toy sets,
  ``data_floor`` (:func:`data_floor` against the same reference).

  ``feature_fn`` (images only) replaces the Inception features of ``fid``/``prdc`` (a notebook or a
  benchmark with its own extractor); by default the weights come from ``eval.inception_path``.
  ``split`` picks the reference: ``'test'`` (``eval/step_<N>.json``) or ``'validation'`` (an
  independent draw, the validation split of own data; ``eval/validation_step_<N>.json``), which
  ``lim_jax.compare --tune`` selects on so that the test numbers stay unbiased.

  Raises:
    FileNotFoundError: no checkpoint, or image metrics without the Inception file
      (``eval.inception_path``), before any sampling.
  """
  if split not in SPLITS:
    raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
  if data_lib.is_image(config.data) and feature_fn is None:
    probe = Context(config, np.zeros((0,)))
    if probe.needs_features():  # a missing Inception file fails first, before data and checkpoint
      feature_fn = probe.feature_fn()
  r = sample_lib.restore_for_inference(config, workdir)
  is_image = len(r["data"].data_shape) == 3
  validate_metrics(config.eval, is_image)
  sweep = tuple(config.eval.get("nfe_sweep", ())) or (config.sampling.nfe,)
  reference = r["data"].reference(config.eval.num_samples, salt=SPLITS[split])
  context = None
  if is_image:
    # The on-disk feature cache holds the test reference; a validation draw is not cached.
    context = Context(config, reference, workdir if split == "test" else "", feature_fn)
    if context.needs_features():
      context.feature_fn()  # a missing or malformed Inception file fails here, before sampling
    if config.eval.num_samples < 2048 and context.needs_features():
      log(f"warning: eval.num_samples = {config.eval.num_samples} < 2048 Inception features: "
          "the covariance is singular and FID is biased (50000 is the usual choice)")
  rows = []
  writer = MetricWriter(workdir, tensorboard=False)
  for nfe in sweep:
    samples, used = sample_lib.draw_samples(
        config, r["process"], r["apply_fn"], r["state"].ema_params, r["mesh"],
        r["data"].data_shape, num=config.eval.num_samples, nfe=nfe)
    row = {"nfe": used, "sampler": config.sampling.sampler,
           **score(samples, reference, config, context)}
    rows.append(row)
    prefix = "eval" if split == "test" else f"eval_{split}"
    writer.write(r["step"], {f"{prefix}/{k}": v for k, v in row.items() if k != "sampler"})
    log(f"eval step {r['step']} " + " ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
  writer.close()
  record = {"step": r["step"], "family": r["process"].family, "dataset": config.data.dataset,
            "split": split, "rows": rows}
  if data_lib.has_generator(r["data"]):
    record["data_floor"] = data_floor(r["data"], reference, config)
    log("eval data floor (fresh data against the same reference) " + " ".join(
        f"{k}={v:.4g}" for k, v in record["data_floor"].items()))
  name = ("" if split == "test" else f"{split}_") + f"step_{r['step']}.json"
  path = os.path.join(workdir, "eval", name)
  storage.write_text(path, json.dumps(record, indent=2))  # atomic, local or gs://
  log(f"wrote {path}")
  return record
