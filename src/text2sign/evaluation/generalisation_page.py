"""docs/generalisation.md and generalisation.png, written from the benchmark's results JSON (every number on the
page is read from it) and, for the picture, the scored folds' trajectories. report.write_generalisation_report
calls these."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from text2sign.data.render_tracks import FigureStyle
from text2sign.evaluation.generalisation import ABLATION_REFERENCE, METHODS, REFERENCES, TEST_SPLITS, ModelFold, ablation_effects, budget_differences
from text2sign.evaluation.trajectory import hands_relative_to_head
from text2sign.video_io import frames_grid

HISTORY_PAGE = "generalisation_history.md"
PICTURE_ITEMS = 3  # test recordings pictured per split
PICTURE_FRAME_SIZE = 64
CHART_SIZE = (480, 120)
HAND_COLOURS = (FigureStyle().left_hand, FigureStyle().right_hand)
# Settings an ablation row or a fold's run records that ones written before them lack, at the value those ran with:
# ModelFold's defaults, which say the same for a run read back from disk.
SETTINGS_BEFORE_RECORDED = {name: getattr(ModelFold, name) for name in ("candidates", "learning_rate", "batch_size")}


def candidates_text(run: dict) -> str:
    """How a fold's model picked its one video per caption."""
    count = run.get("candidates", 1)
    if count == 1:
        return f"seed {run['seed']}"
    return f"seeds {run['seed']}-{run['seed'] + count - 1}, the medoid of the {count} samples kept (minimum Bayes risk under the primary metric)"


def _number(value, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _signed(value, digits: int = 4) -> str:
    return f"{value:+.{digits}f}"


def coverage_lines(results: dict) -> list[str]:
    lines = ["| frames | glosses with 0 samples | exactly 1 | 2 or more |", "|---|---|---|---|"]
    for row in results["coverage"]:
        chosen = " (chosen)" if row["num_frames"] == results["primary_metric"]["num_frames"] else ""
        lines.append(f"| {row['num_frames']}{chosen} | {row['none']:.1%} | {row['one']:.1%} | {row['two_or_more']:.1%} |")
    return lines


def signer_lines(results: dict) -> list[str]:
    check = results["signer_distances"]
    lines = ["| pairs | n | raw DTW-MJE | raw primary | signer-normalised DTW-MJE | signer-normalised primary |", "|---|---|---|---|---|---|"]
    labels = {"same_signer": "same sentence, same signer", "different_signer": "same sentence, different signers",
              "different_sentence": "different sentences (random pairs)"}
    for kind, label in labels.items():
        if check["raw"][kind] is None:
            lines.append(f"| {label} | 0 | | | | |")
            continue
        lines.append(f"| {label} | {check['pairs'][kind]} | {check['raw'][kind]['dtw_mje']:.4f} | {check['raw'][kind]['primary']:.4f} | "
                     f"{check['signer'][kind]['dtw_mje']:.4f} | {check['signer'][kind]['primary']:.4f} |")
    return lines


def split_lines(results: dict, split: str) -> list[str]:
    scores = results[split]
    lines = [f"## {split} ({scores['num_recordings']} held-out recordings over all folds)", "",
             "| method | primary (banded DTW-MJE) | DTW-MJE | motion ratio | top-1 in fold | detection | DTW-MJE to nearest training | n |",
             "|---|---|---|---|---|---|---|---|"]
    for method in METHODS:
        if method not in scores:
            lines.append(f"| {method} | not run | | | | | | 0 |")
            continue
        row = scores[method]
        label = method + (" (oracle: knows the signer)" if method == "signer_mean" else "")
        lines.append(f"| {label} | {row['primary']:.4f} | {row['dtw_mje']:.4f} | {row['motion_ratio']:.3f} | {_number(row['top1'], 3)} | "
                     f"{row['detection_rate']:.3f} | {row['nearest_training_dtw_mje']:.4f} | {row['n']} |")
    if scores["model_vs"]:
        lines += ["", "Model minus reference on the primary metric, paired over the recordings the model was scored on "
                  "(negative: the model is better); 95% paired bootstrap interval; wins = recordings where the model is lower.", "",
                  "| reference | reference on these | model - reference | 95% interval | model wins |", "|---|---|---|---|---|"]
        for reference in REFERENCES:
            versus = scores["model_vs"][reference]
            lines.append(f"| {reference} | {versus['reference_primary_on_these']:.4f} | {_signed(versus['difference'])} | "
                         f"[{_signed(versus['ci95'][0])}, {_signed(versus['ci95'][1])}] | {versus['wins']} of {versus['n']} |")
    return lines


METHOD_NOTES = (
    "**model** = the trained model's video, hands read back by the extractor; **mean** = the mean training trajectory; "
    "**random** = a random training recording (seeded); **retrieval** = the training recording whose gloss sentence is closest "
    "(the same sentence where trained, else the longest common gloss subsequence); **stitching** = the SLRTP 2025 winner's recipe: "
    "replay when the sentence was trained, else one recorded segment per gloss (words.csv ranges, training recordings only) "
    "concatenated with 4-frame blends, the variant (medoid / context-aware / retrieve-and-edit) chosen per fold on its validation "
    "split; **signer_mean** = the mean training trajectory of the test recording's own signer, an ORACLE (no caption names the "
    "signer); **ground_truth** = the test recording rendered and read back, the extraction floor; **reversed_ground_truth** = "
    "that floor played backwards: the right positions in the wrong order, a check that the metric scores order.")


def _budget_lines(results: dict) -> list[str]:
    setup, runs = results["setup"], results["model_folds"]["runs"]
    if not runs:
        return ["- model: no fold trained yet; the model rows are empty"]
    minutes = sorted({run["budget_minutes"] for run in runs.values()})
    sampling = sorted({run["sampling_steps"] for run in runs.values()})
    steps = [run["steps"] for run in runs.values()]
    trained = [run["training_minutes"] for run in runs.values()]
    protocol_minutes, protocol_sampling = setup.get("protocol_fold_minutes"), setup.get("protocol_sampling_steps")
    reduced = (protocol_minutes is not None and max(minutes) < protocol_minutes) or (protocol_sampling is not None and max(sampling) < protocol_sampling)
    run = next(iter(runs.values()))
    lines = [f"- model: the `{setup.get('preset', 'boston_cpu')}` preset (text encoder `{run['text_encoder']}`), per fold {minutes} min of "
             f"training budget, batch {run.get('batch_size', SETTINGS_BEFORE_RECORDED['batch_size'])}, peak learning rate "
             f"{run.get('learning_rate', SETTINGS_BEFORE_RECORDED['learning_rate']):g} cosine to 0 at step {run['max_steps']}; {min(steps)}-{max(steps)} steps in {min(trained)}-{max(trained)} min; "
             f"DPM-Solver++ {sampling} steps, guidance {run['guidance']}, " + candidates_text(run) + f"; {run['generation_seconds_per_clip']} s per clip"]
    continued = sorted(run["continued_from"] for run in runs.values() if run.get("continued_from"))
    if continued:  # --continue_from (possibly of a run that was itself continued): the cosine above is the last piece's
        lines.append(f"- **continued from a shorter run**: {len(continued)} of {len(runs)} folds resumed a shorter run's last checkpoint "
                     f"({', '.join(f'`{path}`' for path in continued)}) and trained on with the cosine re-stretched to the new last step: "
                     "the learning rate jumps from 0 back up to that longer curve's value at the resumed step and decays to 0 again; "
                     "the training minutes include the shorter run's")
    started = sorted({run.get("init_strength", 1.0) for run in runs.values()})
    if started != [1.0]:  # --init_strength: the model edits a replayed training recording instead of drawing from noise
        lines.append(f"- **started from retrieval**: each caption's sampling began at the nearest-caption retrieval's training recording "
                     f"noised to strength {', '.join(f'{value:g}' for value in started)} of the {sampling} solver steps "
                     "(SDEdit; 1 = pure noise), so the model edits the recording the `retrieval` row replays, with the new sentence")
    if any(run.get("init_caption", "sentence") != "sentence" for run in runs.values()):
        lines.append("- **a CONTROL run**: the model was given the caption of the recording it started from, not the held-out sentence: "
                     "it redraws the replay, and its rows say what the edit does without the new sentence's text")
    if reduced:
        lines.append(f"- **budget REDUCED**: the protocol's default is {protocol_minutes} min of training per fold and {protocol_sampling} "
                     "sampling steps (5 folds in about 2.5 h on the 2-core CPU); this run had less, so its model rows say what the recipe "
                     "does at this budget, not at the protocol's")
    return lines


def _metric_check_lines(results: dict) -> list[str]:
    lines = []
    for split in TEST_SPLITS:
        scores = results.get(split)
        if not scores:
            continue
        reversed_, retrieval, mean = (scores[method] for method in ("reversed_ground_truth", "retrieval", "mean"))
        order = "worse" if reversed_["primary"] > retrieval["primary"] else "NOT worse"
        against_mean = "worse than" if reversed_["primary"] > mean["primary"] else "better than"
        lines.append(f"- {split}: reversed ground truth {reversed_['primary']:.4f} on the primary metric, {order} than retrieval "
                     f"({retrieval['primary']:.4f}) and {against_mean} the mean trajectory ({mean['primary']:.4f}); unbanded DTW-MJE: "
                     f"reversed {reversed_['dtw_mje']:.4f}, retrieval {retrieval['dtw_mje']:.4f}, mean {mean['dtw_mje']:.4f}")
    return lines


def _standing_lines(results: dict) -> list[str]:
    lines = []
    for split in TEST_SPLITS:
        scores = results.get(split)
        if not scores or "model" not in scores:
            continue
        model, versus = scores["model"], scores["model_vs"]
        best = min(("retrieval", "stitching", "mean"), key=lambda method: versus[method]["reference_primary_on_these"])
        comparison = versus[best]
        verdict = "lower (better)" if comparison["ci95"][1] < 0 else "higher (worse)" if comparison["ci95"][0] > 0 else "not distinguishable"
        lines.append(f"- {split}: on its {model['n']} recordings the model scores {model['primary']:.4f}; the best simple reference there, "
                     f"{best}, scores {comparison['reference_primary_on_these']:.4f}: the model is {verdict} "
                     f"(difference {_signed(comparison['difference'])}, 95% interval [{_signed(comparison['ci95'][0])}, {_signed(comparison['ci95'][1])}], "
                     f"lower on {comparison['wins']} of {comparison['n']}); motion ratio {model['motion_ratio']:.3f}, detection {model['detection_rate']:.3f}")
        if model["detection_rate"] < 0.5:
            lines.append(f"  - the extractor found the model's joints in {model['detection_rate']:.1%} of (frame, joint) cells: the generated "
                         "figure lacks the coloured hands, so it scores as hands on the head (no motion)")
    return lines


PER_FOLD_REFERENCES = ("mean", "retrieval", "stitching")


def per_fold_lines(results: dict, split: str = "new_sentence") -> list[str]:
    """The model against the references fold by fold on `split`: where a pooled gap comes from (one bad fold, or all)."""
    scores = results.get(split, {})
    if "model" not in scores:
        return []
    model = scores["model"]["per_recording"]
    lines = [f"## Per fold ({split}, primary metric; model minus reference, negative: the model is better)", "",
             "| fold | n | model | " + " | ".join(PER_FOLD_REFERENCES) + " | " + " | ".join(f"model - {name}" for name in PER_FOLD_REFERENCES) + " |",
             "|---" * (3 + 2 * len(PER_FOLD_REFERENCES)) + "|"]
    for fold, names in results["folds"].items():
        names = [name for name in names if name in model]
        if not names:
            continue
        model_mean = float(np.mean([model[name] for name in names]))
        references = [float(np.mean([scores[reference]["per_recording"][name] for name in names])) for reference in PER_FOLD_REFERENCES]
        lines.append(f"| {fold} | {len(names)} | {_number(model_mean)} | " + " | ".join(_number(value) for value in references) + " | "
                     + " | ".join(_signed(model_mean - value) for value in references) + " |")
    return lines


def ablation_lines(rows: list[dict]) -> list[str]:
    """The levers' table (new_sentence, primary metric) and each lever against the all-off row on the same recordings."""
    effects = ablation_effects(rows)
    lines = ["## Levers (ablations)", "",
             f"Each row is its own run (`--ablation NAME`), on the folds and budget it lists; a lever's effect is its row minus the "
             f"row with that lever off (`{ABLATION_REFERENCE}`, all levers off, unless the row names another with `--compared_with`) on "
             "their common new-sentence recordings, a paired bootstrap 95% interval. "
             "Rows on fewer folds or a shorter budget than the main table are not comparable with it.", "",
             "| row | settings | folds | steps | new_sentence primary | motion ratio | detection | vs mean | vs retrieval | vs stitching | lever off | lever's effect |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    by_name = {row["name"]: row for row in rows}
    for row in rows:
        split = row.get("new_sentence")
        if split is None:
            continue
        # the lever-off row lists every setting; a lever's row only what it changes (the rest is as in its lever-off row)
        off_row = by_name.get(row.get("compared_with") or ABLATION_REFERENCE) if row["name"] != ABLATION_REFERENCE else None
        changed = {key: value for key, value in row["settings"].items() if off_row is None or off_row["settings"].get(key, SETTINGS_BEFORE_RECORDED.get(key)) != value}
        settings = ", ".join(f"{key} {value}" for key, value in changed.items()) if off_row is None else (
            "as " + off_row["name"] + (", " + ", ".join(f"{key} {value}" for key, value in changed.items()) if changed else ""))
        versus = [f"{_signed(split['model_vs'][name]['difference'])} [{_signed(split['model_vs'][name]['ci95'][0])}, "
                  f"{_signed(split['model_vs'][name]['ci95'][1])}]" if name in split["model_vs"] else "n/a" for name in ("mean", "retrieval", "stitching")]
        effect = effects.get(row["name"])
        against = (f"{_signed(effect['difference'])} [{_signed(effect['ci95'][0])}, {_signed(effect['ci95'][1])}]: {effect['verdict']}"
                   if effect else "reference" if row["name"] == ABLATION_REFERENCE else "n/a")
        off_name = row.get("compared_with") or ABLATION_REFERENCE
        budget = budget_differences(row, off_row) if off_row is not None else {}
        off = (effect["compared_with"] if effect else "" if row["name"] == ABLATION_REFERENCE
               else f"{off_name} (another budget: " + ", ".join(f"{key} {mine} vs {theirs}" for key, (mine, theirs) in budget.items()) + ")"
               if budget else f"{off_name} (not run)")
        detection = _number(split["detection"], 2) if split.get("detection") is not None else "n/a"
        lines.append(f"| {row['name']} | {settings} | {', '.join(map(str, row['folds']))} | {', '.join(map(str, row['steps'].values()))} | "
                     f"{_number(split['primary'])} (n={split['n']}) | {_number(split['motion_ratio'], 2)} | {detection} | {' | '.join(versus)} | {off} | {against} |")
    return lines


def generalisation_markdown(results: dict, history: bool = False) -> str:
    setup, metric = results["setup"], results["primary_metric"]
    model_folds = results["model_folds"]
    check = results["signer_distances"]
    folds = results["folds"]
    lines = ["# Generalisation on real signing motion (RWTH-BOSTON-104 tracks)", "",
             "Written by `experiments/boston_generalisation.py` from `generalisation.json`; every number below is read from it. "
             "Credit: RWTH-BOSTON-104 (Dreuw et al. 2007; hand tracks by Rybach, Forster and Dreuw 2009) via udacity/AIND-Recognizer.", "",
             "## Setup", "", f"- command: `{setup.get('command', 'n/a')}`",
             *(["- **a VALIDATION run** (`--validation`): each fold trained on its training recordings less its validation ones, "
                "which are the held-out \"new sentences\" scored below; settings are chosen here, and no test recording is touched"]
               if setup.get("validation_run") else []),
             f"- protocol: {setup['num_folds']} folds over sentences ({', '.join(str(len(names)) for names in folds.values())} held-out "
             f"recordings); every single-recording sentence whose glosses stay covered by the fold's training recordings is held out "
             f"exactly once ({len(results['ineligible_single_sentences'])} are not eligible and always train), and one recording of "
             "every repeated sentence is held out once (seen_sentence); every method is scored on the same recordings",
             *([] if setup.get("validation_run") else [  # a validation run's held-out recordings are the validation ones: none carved again
                 f"- validation: {len(next(iter(results['validation'].values())))} recordings carved from each fold's training recordings "
                 "(new-sentence-like: their sentence occurs once there); **settings are chosen on them only**: the stitching variant per fold. "
                 "The model's settings are the boston_cpu preset with the command's flags, none chosen on held-out recordings "
                 "(flags chosen on validation, by `--validation` runs, are named in generalisation_history.md)"]),
             f"- {metric['num_frames']} frames per recording (the whole recording resampled; see the coverage table); "
             f"{metric['normalisation']} normalisation (each signer's scale and resting hand offsets from the fold's training recordings, "
             "mapped onto one canonical body)",
             f"- primary metric: `{metric['name']}`, {metric['description']}; band fraction {metric['band_fraction']} "
             f"({metric['window_frames']} frames at {metric['num_frames']}): a gloss lasts a median 10 of a mean 79 frames (12.7%), so "
             "a sign may come about one gloss early or late and no more; plain DTW-MJE (as SLRTP 2025) beside it",
             f"- model folds complete: {model_folds['complete'] or 'none'}; not run: {model_folds['not_run'] or 'none'}",
             *_budget_lines(results), "", "Methods: " + METHOD_NOTES, ""]
    runs = model_folds["runs"].values()
    seconds_per_step = [60 * run["training_minutes"] / run["steps"] for run in runs if run["steps"]]
    measured = (f" This run's model trained at {min(seconds_per_step):.1f}-{max(seconds_per_step):.1f} s per step at {metric['num_frames']} frames "
                "(other counts not timed in it)." if seconds_per_step else "")
    lines += ["## Frames: gloss coverage", "",
              "Glosses of all recordings with 0, 1 and 2+ samples when a recording is resampled uniformly to each count. The rule: the "
              "smallest count giving 85% of glosses 2 or more samples. The UNet's convolutions and attention run over every frame, so a "
              "step costs roughly in proportion to the frame count: in one budget, 24 frames buy about half the steps of 12. The trade "
              "was taken because at 12 frames 60% of glosses are at most one pose, and a benchmark of single poses cannot score signing." + measured, ""]
    lines += coverage_lines(results) + [""]
    gap_raw = check["raw"]["different_signer"]["primary"] - check["raw"]["same_signer"]["primary"] if check["raw"]["same_signer"] and check["raw"]["different_signer"] else None
    gap_signer = check["signer"]["different_signer"]["primary"] - check["signer"]["same_signer"]["primary"] if gap_raw is not None else None
    lines += ["## Signer normalisation", "",
              f"Two recordings of one sentence, by the same signer and by different signers, against random pairs of different sentences "
              f"(bodies from {check['bodies_from']}):", ""] + signer_lines(results)
    if gap_raw is not None:
        lines += ["", f"The different-signer excess over same-signer pairs on the primary metric: {gap_raw:.4f} raw, {gap_signer:.4f} "
                  f"signer-normalised ({1 - gap_signer / gap_raw:.0%} of the gap closed)."]
    lines += ["", "## Does the metric score order?", ""] + _metric_check_lines(results) + [""]
    for split in TEST_SPLITS:
        if split in results:
            lines += split_lines(results, split) + [""]
    lines += ["## The model's standing", ""] + (_standing_lines(results) or ["- no model fold is complete"]) + [""]
    if per_fold_lines(results):
        lines += per_fold_lines(results) + [""]
    if results.get("ablations"):
        lines += ablation_lines(results["ablations"]) + [""]
    lines += ["## Picture", "", "![real vs generated](generalisation.png)", "",
              f"For the first {PICTURE_ITEMS} recordings (by name) of each split among the model's folds: the hands relative to the head "
              "over the frames (x, then y; left hand red, right blue; thick = real, thin with dots = generated), then the real render "
              "and the generated video.", "",
              "## What this does and does not show", "",
              "- It scores motion, not pixels: where the hands go relative to the head, in one canonical body, within a time band. "
              "It does not score handshape, orientation or face: a right path with a wrong handshape is still a wrong sign.",
              "- Folds hold out sentences, not signers: every test signer has training recordings. Retrieval and stitching replay "
              "recorded motion, so on seen_sentence they are strong references.",
              "- One seed per model fold; intervals are paired bootstraps over recordings, not over seeds or folds.", ""]
    if history:
        lines += ["## Earlier runs", "", f"Superseded figures and why: [{HISTORY_PAGE}]({HISTORY_PAGE}) (hand-written; this page never edits it).", ""]
    return "\n".join(lines)


def _chart(series, limits, label: str, font, downward: bool) -> Image.Image:
    """One line chart over frames: (values (f,), colour, is_real) per line; real thick, generated thin with dots."""
    width, height = CHART_SIZE
    image = Image.new("RGB", CHART_SIZE, "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 0, width - 1, height - 1], outline=(180, 180, 180))
    low, high = limits
    for values, colour, is_real in series:
        xs = np.linspace(8, width - 8, len(values))
        heights = (values - low) / (high - low) * (height - 16)
        ys = 8 + heights if downward else height - 8 - heights
        points = list(zip(xs.tolist(), ys.tolist()))
        draw.line(points, fill=colour, width=4 if is_real else 1)
        if not is_real:
            for x, y in points:
                draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
    draw.text((4, 2), label, fill=(0, 0, 0), font=font)
    return image


def _strip(video: np.ndarray) -> np.ndarray:
    scale = max(1, PICTURE_FRAME_SIZE // video.shape[1])
    return frames_grid(video.repeat(scale, axis=1).repeat(scale, axis=2), columns=len(video))  # (h, f * w, 3)


def write_generalisation_picture(scored, path: Path) -> None:
    """For the first PICTURE_ITEMS recordings (by name) of each split among the model's folds: hands relative to
    the head over the frames (real thick, generated thin), then the real render and the generated video."""
    font = ImageFont.load_default(size=12)
    blocks = []
    with_model = [fold_scores for fold_scores in scored if fold_scores.model is not None]
    for split in TEST_SPLITS:
        names = sorted((name, fold_scores) for fold_scores in with_model for name, kind in fold_scores.split_of.items() if kind == split)
        for name, fold_scores in names[:PICTURE_ITEMS]:
            real_hands = hands_relative_to_head(fold_scores.real[name])  # (f, 2, 2)
            generated_hands = hands_relative_to_head(fold_scores.model_predictions[name])  # (f, 2, 2)
            charts = []
            for axis, axis_name in enumerate(("x", "y")):
                values = np.concatenate([real_hands[..., axis].ravel(), generated_hands[..., axis].ravel()])
                limits = (float(values.min()) - 0.02, float(values.max()) + 0.02)
                series = [(hands[:, hand, axis], HAND_COLOURS[hand], is_real) for hand in range(2)
                          for hands, is_real in ((real_hands, True), (generated_hands, False))]
                charts.append(np.asarray(_chart(series, limits, f"{axis_name} hand - head", font, downward=axis_name == "y")))
            strips = [_strip(fold_scores.real_videos[name]), _strip(fold_scores.model.videos[name])]
            width = max(strip.shape[1] for strip in strips + [np.hstack(charts)])
            title = Image.new("RGB", (width, 18), "white")
            error = fold_scores.errors["model"][name]["primary"]
            ImageDraw.Draw(title).text((4, 2), f"{split} | fold {fold_scores.fold} | {name} | model primary {error:.3f} | strips: real, generated",
                                       fill=(0, 0, 0), font=font)
            parts = [np.asarray(title), np.hstack(charts), *strips, np.full((8, width, 3), 255, dtype=np.uint8)]
            blocks.append(np.vstack([np.pad(part, ((0, 0), (0, width - part.shape[1]), (0, 0)), constant_values=255) for part in parts]))
    if not blocks:  # no model fold yet: a blank note-sized picture keeps the page's link valid
        blocks = [np.full((18, 240, 3), 255, dtype=np.uint8)]
    width = max(block.shape[1] for block in blocks)
    Image.fromarray(np.vstack([np.pad(block, ((0, 0), (0, width - block.shape[1]), (0, 0)), constant_values=255) for block in blocks])).save(path)
