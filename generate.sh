#!/usr/bin/env bash
# Generate videos from a trained checkpoint; presets choose sampling quality, other flags pass through.
#   ./generate.sh --checkpoint ./checkpoints/best_model.pt --prompts "Hello" "How are you?" "Thank you"
#   ./generate.sh --tiny --checkpoint ./checkpoints --prompts "Hello"      # after ./train.sh --tiny
#   ./generate.sh --small --checkpoint ./checkpoints --prompts "Hello"     # DPM-Solver++ 20 steps: fast
#   ./generate.sh --large --checkpoint ./checkpoints --prompts_file prompts.txt --format mp4
#   ./generate.sh --small --checkpoint ./checkpoints --prompts "JOHN CAN GO CAN" --signer woman-1   # a model trained with signers
#   ./generate.sh --small --checkpoint ./checkpoints --prompts "JOHN CAN GO CAN" --init_video recorded.gif --strength 0.5   # edit a clip
set -euo pipefail
cd "$(dirname "$0")"
sampling=(--scheduler ddim --num_inference_steps 50)        # standard
args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --tiny) sampling=(--scheduler ddim --num_inference_steps 20 --guidance_scale 2); shift ;;
    --small) sampling=(--scheduler dpm --num_inference_steps 20); shift ;;
    --standard) sampling=(--scheduler ddim --num_inference_steps 50); shift ;;
    --large) sampling=(--scheduler ddim --num_inference_steps 100); shift ;;
    *) args+=("$1"); shift ;;
  esac
done
exec python inference.py "${sampling[@]}" "${args[@]}"
