#!/bin/bash
# Issue 19's final model on every fold, at the protocol's budget (20 min or 1200 steps of training per fold), with the
# settings chosen on fold 0's validation recordings (`--validation` runs, docs/generalisation_runs/validation_*):
# 16 px, v-prediction, the frozen MiniLM, the timed sign track and the signer given, 4 candidates per caption with
# their medoid kept. One fold per call, so the page is rewritten after each and a rerun skips the folds already done.
cd "$(dirname "$0")/.."
FLAGS="--image_size 16 --prediction_type v_prediction --sign_track --signer_conditioning --candidates 4"
for fold in 0 1 2 3 4; do
  echo "=== fold $fold $(date)"
  python experiments/boston_generalisation.py $FLAGS --folds $fold --runs_dir experiments/runs/boston_final_chosen || exit 1
done
echo "=== done $(date)"
