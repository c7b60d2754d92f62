"""Figures and image grids: the scatter of 2-D samples over data, the uint8 quantisation of images
and the PNG grid of images. Written through :mod:`lim_jax.storage` (local or ``gs://``).

matplotlib and PIL are imported where they are first needed: the rest of the package runs without
loading them.
"""

from __future__ import annotations

import io

import numpy as np

from lim_jax import storage


def scatter_plot(path: str, samples: np.ndarray, reference: np.ndarray, title: str) -> None:
  """Scatter of 2-D ``samples (n, 2)`` over ``reference (m, 2)`` data; axes cover the
  reference's 0.5-99.5 % quantiles plus 10 % padding, and the title says how many samples fall
  outside them (or are non-finite)."""
  import matplotlib  # optional heavy library, loaded only to draw
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  lo = np.quantile(reference, 0.005, axis=0)
  hi = np.quantile(reference, 0.995, axis=0)
  pad = 0.1 * (hi - lo)
  lo, hi = lo - pad, hi + pad
  finite = np.all(np.isfinite(samples), axis=1)
  outside = np.mean(np.any((samples < lo) | (samples > hi), axis=1) | ~finite)
  fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
  ax.scatter(reference[:, 0], reference[:, 1], s=2, alpha=0.3, c="tab:gray", label="data")
  ax.scatter(samples[finite, 0], samples[finite, 1], s=2, alpha=0.5, c="tab:blue", label="samples")
  ax.set_xlim(lo[0], hi[0])
  ax.set_ylim(lo[1], hi[1])
  ax.set_title(f"{title}\n{100 * outside:.1f}% of samples outside the axes", fontsize=9)
  ax.legend(loc="upper right", markerscale=4, fontsize=8)
  fig.tight_layout()
  buf = io.BytesIO()
  fig.savefig(buf, format="png")
  plt.close(fig)
  storage.write_bytes(path, buf.getvalue())


def to_uint8(images: np.ndarray) -> np.ndarray:
  """[-1, 1] float images -> uint8 ``round((x + 1) * 127.5)`` clipped to [0, 255] (non-finite
  values become 0, +inf 255)."""
  images = np.nan_to_num(images, nan=-1.0, posinf=1.0, neginf=-1.0)
  return np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def image_grid(path: str, images: np.ndarray, max_images: int = 64) -> None:
  """Writes up to ``max_images`` uint8 images ``(n, H, W, C)`` as one PNG grid (2-pixel gaps)."""
  from PIL import Image  # optional heavy library, loaded only to encode the PNG
  images = images[:max_images]
  n, h, w, c = images.shape
  cols = int(np.ceil(np.sqrt(n)))
  rows = int(np.ceil(n / cols))
  grid = np.zeros((rows * (h + 2) + 2, cols * (w + 2) + 2, c), np.uint8)
  for i, img in enumerate(images):
    r, q = divmod(i, cols)
    grid[2 + r * (h + 2):2 + r * (h + 2) + h, 2 + q * (w + 2):2 + q * (w + 2) + w] = img
  buf = io.BytesIO()
  Image.fromarray(grid[..., 0] if c == 1 else grid).save(buf, format="PNG")
  storage.write_bytes(path, buf.getvalue())
