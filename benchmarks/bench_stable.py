"""Alpha-stable variate throughput: ``lim_jax.stable`` vs ``scipy.stats.levy_stable.rvs``.

  python benchmarks/bench_stable.py [--n=1000000] [--alphas=1.2,1.5,1.8]

Both draw ``n`` symmetric alpha-stable variates (char. fn ``exp(-|k|^alpha)``) in one run; the
jitted JAX sampler is timed after a compile call, on the default device. Prints draws/s and the
ratio; also the isotropic 2-D vector sampler in coordinates/s.
"""

from __future__ import annotations

import argparse
import time

import jax
from scipy import stats

from lim_jax import stable


def rate(fn, n: int, repeats: int = 3) -> float:
  fn()  # compile / warm up
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    best = min(best, time.perf_counter() - t0)
  return n / best


def table_row(alpha: float, n: int) -> str:
  """The markdown row of one ``alpha``: 1-D draws/s (lim_jax, scipy, ratio), 2-D coords/s."""
  one_d = jax.jit(lambda k: stable.symmetric_stable(k, alpha, (n,)))
  iso = jax.jit(lambda k: stable.isotropic_stable(k, alpha, (n // 2, 2)))
  key = jax.random.PRNGKey(0)
  r_jax = rate(lambda: one_d(key).block_until_ready(), n)
  r_iso = rate(lambda: iso(key).block_until_ready(), n)
  # scipy's scale for exp(-|k|^alpha) is 1; same law as stable.symmetric_stable.
  r_scipy = rate(lambda: stats.levy_stable.rvs(alpha, 0.0, size=n, random_state=0), n,
                 repeats=1)
  return f"| {alpha} | {r_jax:.3g} | {r_scipy:.3g} | {r_jax / r_scipy:.1f}x | {r_iso:.3g} |"


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--n", type=int, default=1_000_000)
  p.add_argument("--alphas", default="1.2,1.5,1.8")
  args = p.parse_args()
  n = args.n
  print(f"# jax {jax.__version__} on {jax.devices()[0].device_kind}; n = {n}")
  print("| alpha | lim_jax 1-D draws/s | scipy draws/s | ratio | lim_jax isotropic 2-D coords/s |")
  print("|---|---|---|---|---|")
  for alpha in (float(a) for a in args.alphas.split(",")):
    print(table_row(alpha, n))


if __name__ == "__main__":
  main()
