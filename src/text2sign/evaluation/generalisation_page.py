"""docs/generalisation.md and generalisation.png, written from the benchmark's results JSON (every number on the
page is read from it) and, for the picture, the scored folds' trajectories. report.write_generalisation_report
calls these."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from text2sign.data.render_tracks import FigureStyle
from text2sign.evaluation.generalisation import METHODS, REFERENCES, TEST_SPLITS
from text2sign.evaluation.trajectory import hands_relative_to_head
from text2sign.video_io import frames_grid

HISTORY_PAGE = "generalisation_history.md"
PICTURE_ITEMS = 3  # test recordings pictured per split
PICTURE_FRAME_SIZE = 64
CHART_SIZE = (480, 120)
HAND_COLOURS = (FigureStyle().left_hand, FigureStyle().right_hand)


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


def generalisation_markdown(results: dict, history: bool = False) -> str:
    setup, metric = results["setup"], results["primary_metric"]
    model_folds = results["model_folds"]
    lines = ["# Generalisation on real signing motion (RWTH-BOSTON-104 tracks)", "",
             "Written by `experiments/boston_generalisation.py` from `generalisation.json`; every number below is read from it. "
             "Credit: RWTH-BOSTON-104 (Dreuw et al. 2007; hand tracks by Rybach, Forster and Dreuw 2009) via udacity/AIND-Recognizer.", "",
             "## Setup", "", f"- command: `{setup.get('command', 'n/a')}`",
             f"- protocol: {setup['num_folds']} folds over sentences; every method scored on the same held-out recordings; "
             f"{metric['num_frames']} frames per recording; {metric['normalisation']} normalisation",
             f"- primary metric: `{metric['name']}`, {metric['description']}; band fraction {metric['band_fraction']} "
             f"({metric['window_frames']} frames at {metric['num_frames']})",
             f"- model folds complete: {model_folds['complete'] or 'none'}; not run: {model_folds['not_run'] or 'none'}", ""]
    lines += ["## Frames: gloss coverage", ""] + coverage_lines(results) + [""]
    lines += ["## Signer normalisation", ""] + signer_lines(results) + [""]
    for split in TEST_SPLITS:
        if split in results:
            lines += split_lines(results, split) + [""]
    lines += ["## Picture", "", "![real vs generated](generalisation.png)", ""]
    if history:
        lines += ["## Earlier runs", "", f"Superseded figures and what they taught: [{HISTORY_PAGE}]({HISTORY_PAGE}) (hand-written).", ""]
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
