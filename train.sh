#!/usr/bin/env bash
# Train with a preset; every other flag passes through to train.py (later flags win).
#   ./train.sh --tiny                     # the first run: 4 bundled clips, a few minutes on a CPU
#   ./train.sh --small --epochs 10
#   ./train.sh --large --data_dir /data/how2sign --mixed_precision bf16
#   NPROC=4 ./train.sh --standard --data_dir /data/how2sign      # torchrun, 4 GPUs (DDP)
set -euo pipefail
cd "$(dirname "$0")"
preset=standard
args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --tiny|--small|--standard|--large) preset="${1#--}"; shift ;;
    --epochs) args+=(--num_epochs "$2"); shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
if [[ "${NPROC:-1}" -gt 1 ]]; then
  exec torchrun --standalone --nproc_per_node="$NPROC" train.py --preset "$preset" "${args[@]}"
fi
exec python train.py --preset "$preset" "${args[@]}"
