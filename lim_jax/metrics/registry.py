"""The metric registry: the names ``eval.metrics`` may hold, the kind of data each suits, and the
validation of the ``eval`` section's metric fields.

It knows names only: the functions that compute them are in :mod:`lim_jax.evaluate` (which checks
at import that it implements exactly these names), so :mod:`lim_jax.config_lib` validates a config
without importing the evaluation.
"""

from __future__ import annotations

TOY_ONLY = ("sliced_wasserstein", "mmd", "tail_quantile_log_error", "mode_coverage", "vendi")
IMAGE_ONLY = ("fid", "pixel_vendi")
BOTH = ("prdc",)
NAMES = TOY_ONLY + BOTH + IMAGE_ONLY  # every metric name of ``eval.metrics``
DEFAULT_IMAGE_METRICS = ("fid", "prdc", "pixel_vendi")


def validate_metrics(eval_cfg, is_image: bool) -> None:
  """``eval.metrics`` entries exist and suit the kind of data, ``eval.prdc_k`` is an integer >= 1
  and ``eval.vendi_bandwidth`` > 0.

  Raises:
    ValueError: naming the field.
  """
  for m in eval_cfg.metrics:
    if m not in NAMES:
      raise ValueError(f"eval.metrics entries must be in {sorted(NAMES)}, got {m!r}")
    if is_image and m in TOY_ONLY:
      raise ValueError(f"eval.metrics: {m!r} is for toy (vector) data; image metrics are "
                       f"{DEFAULT_IMAGE_METRICS}")
    if not is_image and m in IMAGE_ONLY:
      raise ValueError(f"eval.metrics: {m!r} needs an image dataset")
  k = eval_cfg.get("prdc_k", 3)
  if not (isinstance(k, int) and not isinstance(k, bool) and k >= 1):
    raise ValueError(f"eval.prdc_k must be an integer >= 1, got {k!r}")
  bw = eval_cfg.get("vendi_bandwidth", 0.1)
  if not (isinstance(bw, (int, float)) and bw > 0):
    raise ValueError(f"eval.vendi_bandwidth must be > 0, got {bw!r}")
