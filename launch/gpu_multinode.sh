#!/usr/bin/env bash
# Multi-node GPU training under SLURM: one task per node, every task runs the same command.
# jax.distributed.initialize() reads the coordinator, process count and id from the SLURM job
# environment (SLURM_JOB_NODELIST, SLURM_NTASKS, SLURM_PROCID).
#
#   sbatch --nodes=4 --ntasks-per-node=1 --gpus-per-node=8 launch/gpu_multinode.sh \
#       configs/cifar10_levy.py /shared/runs/c10 [extra lim_jax flags...]
# WORKDIR may also be gs://BUCKET/PATH (with the gcs extra installed in VENV).
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: launch/gpu_multinode.sh CONFIG WORKDIR [extra lim_jax flags...]

Submit with sbatch (one task per node) or run inside an salloc allocation. WORKDIR is on a
filesystem shared by all nodes, or gs://BUCKET/PATH (then VENV needs the gcs extra,
pip install -e '.[gcs]', and credentials: GOOGLE_APPLICATION_CREDENTIALS or
gcloud auth application-default login). VENV (default .venv) is the environment with jax[cuda12]
and lim_jax.
Examples:
  sbatch --nodes=2 --ntasks-per-node=1 --gpus-per-node=8 launch/gpu_multinode.sh \
      configs/cifar10_levy.py /shared/runs/c10 --config.training.batch_size=512
  sbatch --nodes=2 --ntasks-per-node=1 --gpus-per-node=8 launch/gpu_multinode.sh \
      configs/cifar10_levy.py gs://bucket/runs/c10
USAGE
}

if [[ $# -lt 2 ]]; then usage; exit 2; fi
config=$1 workdir=$2
shift 2
if [[ -z "${SLURM_JOB_ID:-}" ]]; then
  echo "error: not inside a SLURM job (no SLURM_JOB_ID): submit with sbatch or use salloc" >&2
  exit 2
fi
venv=${VENV:-.venv}
# shellcheck disable=SC1091
. "$venv/bin/activate"
srun --ntasks-per-node=1 python -m lim_jax.main --distributed --config="$config" \
  --workdir="$workdir" "$@"
