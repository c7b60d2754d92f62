#!/usr/bin/env bash
# Run lim_jax on every worker of a Cloud TPU VM pod slice (JAX multi-controller: every host runs the
# same command; jax.distributed.initialize() finds the coordinator from the TPU metadata).
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: launch/tpu_pod.sh NAME ZONE ACCELERATOR CONFIG WORKDIR [extra lim_jax flags...]

  NAME         TPU VM name (created if it does not exist)
  ZONE         e.g. us-central2-b
  ACCELERATOR  e.g. v4-32 (ignored when NAME exists)
  CONFIG       config file inside the repo, e.g. configs/cifar10_levy.py
  WORKDIR      gs://BUCKET/PATH (a pod has no shared disk), the same for every worker; the
               bucket must exist and the TPU VM's service account must be able to write to it

Every worker installs lim_jax with the gcs extra (gcsfs), so data.data_dir and
eval.inception_path may be gs:// paths too. Credentials come from the VM's service account.
Environment: REPO (git URL to clone, default: this checkout's origin), BRANCH (default main),
             RUNTIME (TPU software version, default tpu-ubuntu2204-base).
Example:
  launch/tpu_pod.sh lim-pod us-central2-b v4-32 configs/cifar10_levy.py gs://bucket/runs/c10 \
      --config.data.data_dir=gs://bucket/tensorflow_datasets
USAGE
}

if [[ $# -lt 5 ]]; then usage; exit 2; fi
name=$1 zone=$2 accel=$3 config=$4 workdir=$5
shift 5
extra=("$@")
repo=${REPO:-$(git config --get remote.origin.url || true)}
branch=${BRANCH:-main}
runtime=${RUNTIME:-tpu-ubuntu2204-base}
if [[ -z "$repo" ]]; then echo "error: set REPO to the git URL of lim_jax" >&2; exit 2; fi

if ! gcloud compute tpus tpu-vm describe "$name" --zone "$zone" >/dev/null 2>&1; then
  echo "creating TPU VM $name ($accel) in $zone"
  gcloud compute tpus tpu-vm create "$name" --zone "$zone" --accelerator-type "$accel" \
    --version "$runtime"
fi

setup="set -e; if [ ! -d lim_jax ]; then git clone --branch '$branch' '$repo' lim_jax; fi; \
cd lim_jax && git fetch -q && git checkout -q '$branch' && git pull -q; \
python3 -m venv .venv && . .venv/bin/activate && pip install -q -U pip && \
pip install -q 'jax[tpu]' -e '.[gcs]'"
gcloud compute tpus tpu-vm ssh "$name" --zone "$zone" --worker=all --command "$setup"

printf -v extra_q '%q ' "${extra[@]+"${extra[@]}"}"
run="cd lim_jax && . .venv/bin/activate && python -m lim_jax.main --distributed \
--config='$config' --workdir='$workdir' $extra_q"
gcloud compute tpus tpu-vm ssh "$name" --zone "$zone" --worker=all --command "$run"
