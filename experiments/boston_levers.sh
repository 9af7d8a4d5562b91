#!/bin/bash
# Issue 19's rows: 16 px, v-prediction, 400 steps (cap 10 min) per fold; ablations on fold 0, the all-levers model on
# every fold. A rerun skips folds already complete.
cd "$(dirname "$0")/.."
COMMON="--image_size 16 --prediction_type v_prediction --max_steps 400 --minutes 10"
run() { name=$1; shift; echo "=== $name $(date)"; python experiments/boston_generalisation.py --ablation $name $COMMON "$@" || echo "FAILED $name"; }
LEVERS="--text_encoder lstm --tokenizer glosses --sign_track --signer_conditioning --composition_share 0.5"
run baseline --folds 0
run sign_track --folds 0 --sign_track
run signer --folds 0 --signer_conditioning
run composition --folds 0 --composition_share 0.5
run lstm_words --folds 0 --text_encoder lstm
run lstm_glosses --folds 0 --text_encoder lstm --tokenizer glosses --compared_with lstm_words
run all_levers --folds 0 1 2 3 4 $LEVERS --runs_dir experiments/runs/boston_final
echo "=== main table $(date)"
python experiments/boston_generalisation.py $COMMON $LEVERS --runs_dir experiments/runs/boston_final
echo "=== done $(date)"
