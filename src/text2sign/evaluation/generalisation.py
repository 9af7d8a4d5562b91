"""The generalisation benchmark's scoring: every method on every fold's held-out recordings, per-recording errors,
paired bootstrap intervals of the model against each reference, and a fold's model outputs on disk.

Methods (METHODS), all in one fold's coordinates (tracks.trajectory_of with that fold's signer bodies):
  model                 the trained model's video, hands read back by the extractor
  mean                  the mean training trajectory
  random                a random training recording (seeded)
  retrieval             the training recording whose gloss sentence is closest (nearest_caption_retrieval)
  stitching             gloss stitching (stitching.py), its variant chosen on the fold's validation split
  signer_mean           the mean training trajectory of the test recording's own signer: an ORACLE that knows the
                        signer, which no caption says
  ground_truth          the test recording rendered and read back: the extraction floor
  reversed_ground_truth that floor played backwards: the right positions in the wrong order, a check on the metric
Primary metric: DTW-MJE within a Sakoe-Chiba band (trajectory.PRIMARY_BAND_FRACTION); plain DTW-MJE beside it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from text2sign.data.folds import Coverage, Fold, Folds
from text2sign.data.render_tracks import render_trajectory
from text2sign.data.tracks import Recording, SignerBody, placed_positions, signer_bodies, trajectory_of
from text2sign.evaluation.extraction import extract_trajectory
from text2sign.evaluation.stitching import VARIANTS, GlossStitcher
from text2sign.evaluation.trajectory import (
    PRIMARY_METRIC, Prediction, as_prediction, band_window, dtw_mje_many, dtw_mje_matrix, fill_missing, hand_path_length, mean_training_trajectory,
    nearest_caption_retrieval, random_training_recording, retrieval_ranks,
)
from text2sign.json_io import read_json, write_json

TEST_SPLITS = ("seen_sentence", "new_sentence")
METHODS = ("model", "mean", "random", "retrieval", "stitching", "signer_mean", "ground_truth", "reversed_ground_truth")
REFERENCES = METHODS[1:]
IMAGE_SIZE = 32  # the real recordings' renders read back for the ground-truth floor, as the model's clips are drawn
DEFAULT_BOOTSTRAP_RESAMPLES = 10_000
DIFFERENT_SENTENCE_PAIRS = 300  # random pairs of different sentences: the reference distance in signer_distances
MODEL_FOLD_FILE = "model_fold.json"  # written last: its presence marks a fold's model run complete
MODEL_OUTPUTS_FILE = "model_outputs.npz"


# --------------------------------------------------------------------------------------------------------------
# A fold's model run on disk
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelFold:
    fold: int
    positions: dict[str, np.ndarray] = field(repr=False)  # name -> (f, 3, 2) extracted, NaN where not found
    found: dict[str, np.ndarray] = field(repr=False)  # name -> (f, 3) bool
    videos: dict[str, np.ndarray] = field(repr=False)  # name -> (f, h, w, 3) uint8, the generated clip
    steps: int
    training_minutes: float
    budget_minutes: float
    max_steps: int
    sampling_steps: int
    guidance: float
    seed: int
    num_frames: int
    text_encoder: str
    normalisation: str
    checkpoint: str
    generation_seconds_per_clip: float
    wall_minutes: float
    # The optional levers (issue 19) the fold's model trained with: tokenizer, signer_conditioning, sign_track, signer_given.
    # {} for runs written before they existed (all off).
    conditioning: dict = field(default_factory=dict)
    # Samples drawn per caption (seeds seed .. seed + candidates - 1); the one kept is their medoid under the primary
    # metric (trajectory.medoid_index). 1 for runs written before the option existed.
    candidates: int = 1
    # The peak learning rate and batch size it trained with; the boston_cpu preset's (5e-4, 8) for runs written before
    # they were recorded.
    learning_rate: float = 5e-4
    batch_size: int = 8
    # The checkpoint of an earlier, shorter run of these settings it resumed from and trained on (--continue_from; its
    # training_minutes then include that run's); "" when trained from scratch, as every run written before.
    continued_from: str = ""
    # Where sampling started: 1.0 = pure noise (every run written before); s < 1 = each caption's nearest-caption
    # retrieval (the training recording the `retrieval` reference replays) noised s of the way and redrawn by the text.
    init_strength: float = 1.0
    # The caption it sampled with: "sentence" (the held-out one), or "retrieved", a control in which the model redraws
    # the recording it started from under that recording's own caption, so the new sentence's part in the edit shows.
    init_caption: str = "sentence"

    def settings(self) -> dict:
        return {key: value for key, value in asdict(self).items() if key not in ("positions", "found", "videos")}


def write_model_fold(fold_dir: str | Path, model_fold: ModelFold) -> None:
    """model_outputs.npz (per name: positions, found, video), then model_fold.json, which marks it complete."""
    fold_dir = Path(fold_dir)
    fold_dir.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for name in model_fold.positions:
        arrays[f"{name}/positions"], arrays[f"{name}/found"], arrays[f"{name}/video"] = (
            model_fold.positions[name], model_fold.found[name], model_fold.videos[name])
    np.savez_compressed(fold_dir / MODEL_OUTPUTS_FILE, **arrays)
    write_json(fold_dir / MODEL_FOLD_FILE, model_fold.settings())


def read_model_fold(fold_dir: str | Path) -> ModelFold | None:
    """The fold's model run, or None when it has not completed."""
    fold_dir = Path(fold_dir)
    if not (fold_dir / MODEL_FOLD_FILE).is_file():
        return None
    settings = read_json(fold_dir / MODEL_FOLD_FILE)
    with np.load(fold_dir / MODEL_OUTPUTS_FILE) as arrays:
        by_kind = defaultdict(dict)
        for key in arrays.files:
            name, kind = key.rsplit("/", 1)
            by_kind[kind][name] = arrays[key]
    return ModelFold(positions=by_kind["positions"], found=by_kind["found"], videos=by_kind["video"], **settings)


# --------------------------------------------------------------------------------------------------------------
# One fold
# --------------------------------------------------------------------------------------------------------------


@dataclass
class FoldScores:
    fold: int
    split_of: dict[str, str]  # test name -> seen_sentence | new_sentence
    stitching_variant: str
    stitching_validation: dict[str, float]  # variant -> mean primary on the validation split
    # method -> name -> {"primary", "dtw_mje", "path", "real_path", "detection", "nearest_training", "rank"}
    errors: dict[str, dict[str, dict[str, float]]]
    model: ModelFold | None = None
    real: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # test name -> (f, 3, 2)
    real_videos: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    model_predictions: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # test name -> filled (f, 3, 2)


def choose_stitching_variant(fold: Fold, recordings: Mapping[str, Recording], bodies, num_frames: int,
                             band_fraction: float) -> tuple[str, dict[str, float]]:
    """The variant with the lowest mean primary error on the fold's validation recordings, segments from the
    fold's other training recordings (fold.fit) only. Ties go to the earlier of VARIANTS; with no validation
    recordings (a tiny training folder), the first of VARIANTS and no scores."""
    if not fold.validation:
        return VARIANTS[0], {}
    fit = [recordings[name] for name in fold.fit]
    stitcher = GlossStitcher(fit, {recording.name: placed_positions(recording, bodies) for recording in fit})
    real = np.stack([trajectory_of(recordings[name], num_frames, bodies) for name in fold.validation])  # (v, f, 3, 2)
    scores = {}
    for variant in VARIANTS:
        stitched = np.stack([stitcher.trajectory(recordings[name].sentence, variant, num_frames) for name in fold.validation])
        scores[variant] = float(dtw_mje_many(stitched, real, band_fraction).mean())
    return min(VARIANTS, key=lambda variant: (scores[variant], VARIANTS.index(variant))), scores


def retrieved_recordings(fold: Fold, recordings: Mapping[str, Recording]) -> dict[str, str]:
    """Test name -> the training recording the `retrieval` reference replays for it (nearest_caption_retrieval over the
    fold's training captions); the model's start with --init_strength is the same recording."""
    captions = {name: recordings[name].sentence for name in fold.train}
    return {name: nearest_caption_retrieval(captions, recordings[name].sentence) for name in fold.test}


def fold_predictions(fold: Fold, recordings: Mapping[str, Recording], bodies, num_frames: int, variant: str,
                     model_fold: ModelFold | None, seed: int) -> tuple[dict[str, dict[str, Prediction]], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(method -> name -> Prediction, real trajectories, real renders) for the fold's test recordings."""
    names = fold.test
    train = {name: trajectory_of(recordings[name], num_frames, bodies) for name in fold.train}
    real = {name: trajectory_of(recordings[name], num_frames, bodies) for name in names}
    real_videos = {name: render_trajectory(real[name], IMAGE_SIZE) for name in names}
    mean = mean_training_trajectory(list(train.values()))
    by_signer = defaultdict(list)
    for name, trajectory in train.items():
        by_signer[recordings[name].speaker].append(trajectory)
    random_picks = random_training_recording(list(train), names, seed=seed)
    retrieved = retrieved_recordings(fold, recordings)
    stitcher = GlossStitcher([recordings[name] for name in fold.train], {name: placed_positions(recordings[name], bodies) for name in fold.train})
    predictions = {
        "mean": {name: as_prediction(mean) for name in names},
        "random": {name: as_prediction(train[random_picks[name]]) for name in names},
        "retrieval": {name: as_prediction(train[retrieved[name]]) for name in names},
        "stitching": {name: as_prediction(stitcher.trajectory(recordings[name].sentence, variant, num_frames)) for name in names},
        "signer_mean": {name: as_prediction(mean_training_trajectory(by_signer[recordings[name].speaker])) for name in names},
        "ground_truth": {name: Prediction(*extract_trajectory(real_videos[name])) for name in names},
    }
    predictions["reversed_ground_truth"] = {name: Prediction(p.positions[::-1].copy(), p.found[::-1].copy()) for name, p in predictions["ground_truth"].items()}
    if model_fold is not None:
        missing = sorted(set(names) - set(model_fold.positions))
        if missing:
            raise ValueError(f"fold {fold.index}'s model run has no outputs for {missing[:5]}: the folds changed since it ran; rerun it")
        predictions["model"] = {name: Prediction(model_fold.positions[name], model_fold.found[name]) for name in names}
    return predictions, real, real_videos


def score_fold(fold: Fold, recordings: Mapping[str, Recording], bodies: dict[str, SignerBody] | None, num_frames: int,
               band_fraction: float, model_fold: ModelFold | None = None, seed: int = 0) -> FoldScores:
    """Every method's per-recording errors on the fold's held-out recordings."""
    variant, validation = choose_stitching_variant(fold, recordings, bodies, num_frames, band_fraction)
    predictions, real, real_videos = fold_predictions(fold, recordings, bodies, num_frames, variant, model_fold, seed)
    split_of = {**{name: "seen_sentence" for name in fold.seen_sentence}, **{name: "new_sentence" for name in fold.new_sentence}}
    train = np.stack([trajectory_of(recordings[name], num_frames, bodies) for name in fold.train])  # (t, f, 3, 2)
    errors = {}
    for method, by_name in predictions.items():
        names = sorted(by_name)
        filled = np.stack([fill_missing(*by_name[name]) for name in names])  # (n, f, 3, 2)
        reals = np.stack([real[name] for name in names])
        primary = dtw_mje_many(filled, reals, band_fraction)
        plain = dtw_mje_many(filled, reals)
        nearest = dtw_mje_matrix(filled, train).min(axis=1)  # (n,)
        ranks = {}
        for split in TEST_SPLITS:  # retrieval among the fold's recordings of the same split, by the primary metric
            members = [index for index, name in enumerate(names) if split_of[name] == split]
            if len(members) >= 2:
                pairs = dtw_mje_matrix(filled[members], reals[members], band_fraction)  # (members, members)
                ranks.update(zip([names[index] for index in members], retrieval_ranks(pairs).tolist()))
        errors[method] = {name: {"primary": float(primary[index]), "dtw_mje": float(plain[index]), "path": hand_path_length(filled[index]),
                                 "real_path": hand_path_length(reals[index]), "detection": float(np.mean(by_name[name].found)),
                                 "nearest_training": float(nearest[index]), "rank": ranks.get(name), "pool": len([n for n in names if split_of[n] == split_of[name]])}
                          for index, name in enumerate(names)}
    model_predictions = {name: fill_missing(*predictions["model"][name]) for name in fold.test} if model_fold is not None else {}
    return FoldScores(fold.index, split_of, variant, validation, errors, model_fold, real, real_videos, model_predictions)


# --------------------------------------------------------------------------------------------------------------
# Statistics and the results JSON
# --------------------------------------------------------------------------------------------------------------


def paired_bootstrap(first, second, num_resamples: int = DEFAULT_BOOTSTRAP_RESAMPLES, seed: int = 0) -> tuple[float, tuple[float, float]]:
    """(mean of first - second, its 95% percentile interval over num_resamples resamples of the pairs)."""
    first, second = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    if first.shape != second.shape or first.ndim != 1 or len(first) < 2:
        raise ValueError(f"paired_bootstrap needs two equal-length 1-D arrays of at least 2 pairs, got {first.shape} and {second.shape}")
    differences = first - second
    picks = np.random.default_rng(seed).integers(0, len(differences), size=(num_resamples, len(differences)))
    means = differences[picks].mean(axis=1)  # (num_resamples,)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(differences.mean()), (float(low), float(high))


def method_summary(rows: Mapping[str, Mapping[str, float]]) -> dict:
    """One method on one split: means over its recordings, motion ratio as summed path / summed real path."""
    names = sorted(rows)
    ranks = [rows[name]["rank"] for name in names if rows[name]["rank"] is not None]
    return {
        "primary": float(np.mean([rows[name]["primary"] for name in names])),
        "dtw_mje": float(np.mean([rows[name]["dtw_mje"] for name in names])),
        "motion_ratio": float(sum(rows[name]["path"] for name in names) / sum(rows[name]["real_path"] for name in names)),
        "top1": float(np.mean([rank <= 1 for rank in ranks])) if ranks else None,
        "detection_rate": float(np.mean([rows[name]["detection"] for name in names])),
        "nearest_training_dtw_mje": float(np.mean([rows[name]["nearest_training"] for name in names])),
        "n": len(names),
        "per_recording": {name: rows[name]["primary"] for name in names},
        "per_recording_dtw_mje": {name: rows[name]["dtw_mje"] for name in names},
    }


def benchmark_results(scored: Sequence[FoldScores], folds: Folds, coverage: Sequence[Coverage], num_frames: int, band_fraction: float,
                      normalisation: str, signer_check: dict, bootstrap_resamples: int = DEFAULT_BOOTSTRAP_RESAMPLES, seed: int = 0) -> dict:
    """docs/generalisation.json: per split, every method's means and per-recording errors, and model_vs."""
    results: dict = {"primary_metric": {"name": PRIMARY_METRIC, "band_fraction": band_fraction, "window_frames": band_window(num_frames, num_frames, band_fraction),
                                        "num_frames": num_frames, "normalisation": normalisation,
                                        "description": "DTW-MJE of both hands relative to the head, path within a Sakoe-Chiba band of "
                                                       "window_frames either side of the diagonal, frame widths of the canonical body"},
                     "folds": {str(fold.index): fold.test for fold in folds.folds}}
    model_folds = [fold_scores.fold for fold_scores in scored if fold_scores.model is not None]
    for split in TEST_SPLITS:
        rows = {method: {} for method in METHODS}
        for fold_scores in scored:
            for method, by_name in fold_scores.errors.items():
                rows[method].update({name: row for name, row in by_name.items() if fold_scores.split_of[name] == split})
        if not rows["mean"]:
            continue
        split_results = {method: method_summary(rows[method]) for method in METHODS if rows[method]}
        split_results["model_vs"] = {}
        model_names = sorted(rows["model"])
        if len(model_names) >= 2:
            for reference in REFERENCES:
                model_errors = np.array([rows["model"][name]["primary"] for name in model_names])
                reference_errors = np.array([rows[reference][name]["primary"] for name in model_names])
                difference, interval = paired_bootstrap(model_errors, reference_errors, bootstrap_resamples, seed)
                split_results["model_vs"][reference] = {"difference": difference, "ci95": list(interval),
                                                        "wins": int((model_errors < reference_errors).sum()), "n": len(model_names),
                                                        "reference_primary_on_these": float(reference_errors.mean())}
        split_results["num_recordings"] = len(rows["mean"])
        results[split] = split_results
    results["coverage"] = [asdict(row) for row in coverage]
    results["signer_distances"] = signer_check
    results["stitching"] = {str(fold_scores.fold): {"variant": fold_scores.stitching_variant, "validation_primary": fold_scores.stitching_validation}
                            for fold_scores in scored}
    results["model_folds"] = {"complete": model_folds, "not_run": [fold.index for fold in folds.folds if fold.index not in model_folds],
                              "runs": {str(fold_scores.fold): fold_scores.model.settings() for fold_scores in scored if fold_scores.model is not None}}
    results["ineligible_single_sentences"] = folds.ineligible
    results["validation"] = {str(fold.index): fold.validation for fold in folds.folds}
    results["setup"] = {"num_frames": num_frames, "normalisation": normalisation, "num_folds": len(folds.folds), "bootstrap_resamples": bootstrap_resamples}
    return results


def signer_distances(recordings: Sequence[Recording], num_frames: int, band_fraction: float) -> dict:
    """Two recordings of one sentence, by the same and by different signers: mean DTW-MJE (plain and primary)
    in raw pixels (the global SCALE) and signer-normalised (bodies from all these recordings), with pairs of
    different sentences as the reference. A benchmark that scores the signing puts different-signer pairs of
    one sentence nearer than pairs of different sentences."""
    by_sentence = defaultdict(list)
    for recording in recordings:
        by_sentence[recording.sentence].append(recording)
    pairs = {"same_signer": [], "different_signer": []}
    for group in by_sentence.values():
        for index, first in enumerate(group):
            for second in group[index + 1:]:
                pairs["same_signer" if first.speaker == second.speaker else "different_signer"].append((first, second))
    ordered = sorted(recordings, key=lambda recording: recording.name)
    different = [(first, second) for index, first in enumerate(ordered) for second in ordered[index + 1:] if first.sentence != second.sentence]
    picks = np.random.default_rng(0).permutation(len(different))[:DIFFERENT_SENTENCE_PAIRS]  # seeded: the same pairs every run
    pairs["different_sentence"] = [different[index] for index in sorted(picks)]
    output = {"bodies_from": "all recordings", "pairs": {kind: len(items) for kind, items in pairs.items()}}
    for mode, bodies in (("raw", None), ("signer", signer_bodies(recordings))):
        output[mode] = {}
        for kind, items in pairs.items():
            if not items:
                output[mode][kind] = None
                continue
            first = np.stack([trajectory_of(a, num_frames, bodies) for a, _ in items])
            second = np.stack([trajectory_of(b, num_frames, bodies) for _, b in items])
            output[mode][kind] = {"dtw_mje": float(dtw_mje_many(first, second).mean()), "primary": float(dtw_mje_many(first, second, band_fraction).mean())}
    return output


ABLATION_REFERENCE = "baseline"  # the ablation row a lever is compared with unless it names another: all levers off


def ablation_row(name: str, settings: dict, results: dict, compared_with: str | None = None) -> dict:
    """One lever's row of generalisation.json's "ablations", from benchmark_results of its run: the model's primary
    and model_vs per split, on the folds its model ran (rows compare when their folds and budget agree). compared_with:
    the row with this lever off (default ABLATION_REFERENCE, all levers off); a lever that needs another (gloss tokens
    need the lstm) names the row that differs from it in that lever only."""
    complete = results["model_folds"]["complete"]
    if not complete:
        raise ValueError(f"ablation {name!r}: no model fold is complete, so there is no row to write")
    compared_with = compared_with or ABLATION_REFERENCE
    if compared_with == name and name != ABLATION_REFERENCE:
        raise ValueError(f"ablation {name!r} cannot be compared with itself")
    row = {"name": name, "settings": settings, "folds": complete, "compared_with": None if name == ABLATION_REFERENCE else compared_with,
           "steps": {fold: run["steps"] for fold, run in results["model_folds"]["runs"].items()}}
    for split in TEST_SPLITS:
        if split in results and "model" in results[split]:
            model = results[split]["model"]
            row[split] = {"primary": model["primary"], "motion_ratio": model["motion_ratio"], "detection": model["detection_rate"], "n": model["n"],
                          "model_vs": results[split]["model_vs"],
                          "per_recording": model["per_recording"]}
    return row


# An ablation row's settings that make its budget: a lever's effect is measured only against a row with the same ones.
BUDGET_SETTINGS = ("minutes", "max_steps", "image_size", "prediction_type", "sampling_steps")


def budget_differences(row: dict, reference: dict) -> dict:
    """setting -> (row's, reference's) for the BUDGET_SETTINGS the two ablation rows do not share."""
    mine, theirs = row.get("settings", {}), reference.get("settings", {})
    return {key: (mine.get(key), theirs.get(key)) for key in BUDGET_SETTINGS if mine.get(key) != theirs.get(key)}


def ablation_effects(rows: Sequence[dict], split: str = "new_sentence", num_resamples: int = DEFAULT_BOOTSTRAP_RESAMPLES, seed: int = 0) -> dict:
    """name -> {"compared_with", "difference", "ci95", "n", "verdict"}: each row's model minus its compared_with row's
    (ABLATION_REFERENCE for rows written before the field) on their common recordings (paired bootstrap); verdict
    "helped" / "hurt" when the interval excludes zero, else "no clear difference". A row whose compared_with row ran
    another budget (budget_differences) gets no effect."""
    by_name = {row["name"]: row for row in rows if split in row}
    effects = {}
    for row in by_name.values():
        if row["name"] == ABLATION_REFERENCE:
            continue
        reference = by_name.get(row.get("compared_with") or ABLATION_REFERENCE)
        if reference is None or budget_differences(row, reference):  # another budget: its difference is not the lever's
            continue
        common = sorted(set(row[split]["per_recording"]) & set(reference[split]["per_recording"]))
        if len(common) < 2:
            continue
        difference, interval = paired_bootstrap([row[split]["per_recording"][name] for name in common],
                                                [reference[split]["per_recording"][name] for name in common], num_resamples, seed)
        verdict = "helped" if interval[1] < 0 else "hurt" if interval[0] > 0 else "no clear difference"
        effects[row["name"]] = {"compared_with": reference["name"], "difference": difference, "ci95": list(interval), "n": len(common), "verdict": verdict}
    return effects
