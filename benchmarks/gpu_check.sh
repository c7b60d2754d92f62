#!/usr/bin/env bash
# GPU check, under 8 minutes on one GPU; writes one results file for benchmarks/RESULTS.md.
#
#   benchmarks/gpu_check.sh [OUT_DIR]            # default OUT_DIR=runs/gpu_check
#   GPU_CHECK_TINY=1 benchmarks/gpu_check.sh     # CPU-size pieces (a check of the script itself;
#                                                # ~30 min on 2 busy CPU cores, U-Net compiles)
#   INCEPTION_PATH=/path/pt_inception-2015-12-05-6726825d.pth benchmarks/gpu_check.sh  # + fid, prdc
#
# 1. the card and the software (nvidia-smi, jax devices);
# 2. DDPM++ at the CIFAR10 setting (configs/cifar10_gaussian.py: ch 128, ch_mult (1,2,2,2),
#    4 blocks, attention at 16, batch 128): train images/s in float32 and bfloat16 and sampler images/s
#    (benchmarks/bench_unet.py --full, median of 3 timed calls after a warm-up call);
# 3. a digits-size lim_jax.compare run: the UCI digits (1797 8x8 images, written as
#    data.dataset='array'), configs/own_data.py:images (a small DDPM++), gaussian vs levy, 2 seeds,
#    1000 steps, NFE 10 and 35, pixel Vendi (and fid/prdc with INCEPTION_PATH).
# Everything lands in OUT_DIR/gpu_check.md (card, commands, tables, wall times). CI never runs this.
set -euo pipefail

cd "$(dirname "$0")/.."
OUT="${1:-runs/gpu_check}"
TINY="${GPU_CHECK_TINY:-0}"
mkdir -p "$OUT"
RESULT="$OUT/gpu_check.md"
export PYTHONPATH="${PYTHONPATH:-$PWD}"

section() { printf '\n## %s\n\n' "$1" >> "$RESULT"; }
timed() {  # timed NAME CMD...: runs CMD (log in OUT/NAME.log), appends its output and wall time
  local name="$1"; shift
  local log="$OUT/$name.log" t0 t1 rc
  t0=$(date +%s)
  set +e
  "$@" > "$log" 2>&1
  rc=$?
  set -e
  t1=$(date +%s)
  { printf '```\n$ %s\n' "$*"; grep -v -e '^[IWE][0-9]\{4\} ' -e '^\*\+$' -e 'Very slow compile' "$log" \
      | tail -n 40 || true
    printf '```\n%s: %d s (exit %d)\n\n' "$name" "$((t1 - t0))" "$rc"; } >> "$RESULT"
  if [ "$rc" -ne 0 ]; then
    echo "gpu_check: $name failed (exit $rc), see $log" >&2
    exit "$rc"
  fi
  echo "gpu_check: $name done in $((t1 - t0)) s"
}

{
  echo "# GPU check ($(date -u +%Y-%m-%dT%H:%MZ), $( [ "$TINY" = 1 ] && echo tiny || echo full ))"
  echo
  echo '```'
  if command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
  else
    echo "no nvidia-smi on this machine"
  fi
  python -c "import jax, flax, platform; print('jax', jax.__version__, '| flax', flax.__version__, \
'| python', platform.python_version(), '|', jax.devices())"
  echo '```'
} > "$RESULT"

section "DDPM++ at the CIFAR10 setting: train and sampler images/s"
if [ "$TINY" = 1 ]; then
  # XLA:CPU runs a U-Net gradient ~25x slower inside a rolled scan: one unrolled step per call
  timed bench_unet python benchmarks/bench_unet.py --family=gaussian --ch=16 \
    --num_res_blocks=1 --dtypes=float32,bfloat16 --nfe=4 --repeats=1 --variants=unrolled \
    --steps_per_call=1
else
  timed bench_unet python benchmarks/bench_unet.py --full --family=gaussian \
    --dtypes=float32,bfloat16 --nfe=35 --repeats=3
fi

section "Digits-size lim_jax.compare (gaussian vs levy)"
DIGITS="$OUT/digits.npz"
python benchmarks/bench_verdicts.py --write_digits="$DIGITS"
EXTRA=()
if [ "$TINY" = 1 ]; then
  STEPS=10; NFE=4; SAMPLES=64
  EXTRA+=(--config.training.steps_per_call=1)  # XLA:CPU unrolls the U-Net scan: one copy compiles
else
  STEPS=1000; NFE=10,35; SAMPLES=1000
fi
METRICS="('pixel_vendi',)"
if [ -n "${INCEPTION_PATH:-}" ]; then
  METRICS="('fid','prdc','pixel_vendi')"
  EXTRA+=("--config.eval.inception_path=$INCEPTION_PATH")
fi
timed compare python -m lim_jax.compare --config=configs/own_data.py:images \
  --families=gaussian,levy --seeds=2 --nfe="$NFE" --workdir="$OUT/compare" \
  --config.data.path="$DIGITS" --config.data.eval_fraction=0.3 \
  --config.training.num_steps="$STEPS" --config.training.log_every="$STEPS" \
  --config.training.checkpoint_every="$STEPS" --config.eval.num_samples="$SAMPLES" \
  --config.sampling.num_samples=64 --config.sampling.batch_size=64 \
  "--config.eval.metrics=$METRICS" ${EXTRA[@]+"${EXTRA[@]}"}
sed -n '/^## NFE/,/^Best mean/p' "$OUT/compare/compare.md" >> "$RESULT"

echo "gpu_check: wrote $RESULT"
