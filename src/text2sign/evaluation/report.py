"""Write a conditioning evaluation to disk: evaluation.json, evaluation.md (every number next to its chance
level) and comparison.png (real clips above the generated ones, same prompts)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from PIL import Image

from text2sign.evaluation.generalisation_page import generalisation_markdown, write_generalisation_picture
from text2sign.evaluation.metrics import normalise_videos
from text2sign.evaluation.results import ConditioningEvaluation
from text2sign.json_io import read_json, write_json
from text2sign.models.pipeline import videos_to_uint8
from text2sign.video_io import frames_grid

MAX_PICTURE_ROWS = 8  # prompts shown in comparison.png; enough to see a pattern, small enough to open
MAX_PICTURE_FRAMES = 8  # frames per strip, evenly spaced over the clip
MIN_PICTURE_FRAME_SIZE = 64  # smaller frames are enlarged (nearest neighbour) so 8x8 test clips stay visible
SEPARATOR_PIXELS = 4  # white gap between prompts


@dataclass(frozen=True)
class ReportFiles:
    json: Path  # evaluation.json
    markdown: Path  # evaluation.md
    picture: Path  # comparison.png


def write_report(result: ConditioningEvaluation, directory: str | Path) -> ReportFiles:
    """Write evaluation.json, evaluation.md and comparison.png into `directory`; returns their paths.

    result: evaluate_conditioning's. Its videos stay out of the JSON and make the picture: result.videos.real
    (n, c, f, h, w) and result.videos.generated {label, e.g. guidance scale: videos of the same shape}, video i
    generated from result.prompts[i], whose real clip is real[i].
    """
    real_videos, generated_videos, prompts = result.videos.real, result.videos.generated, result.prompts
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / "evaluation.json"
    # allow_nan=False: inf/nan become strings first, so any JSON reader (not only Python's) opens the file.
    write_json(json_path, _json_safe(result.to_json()), allow_nan=False)
    picture_path = write_comparison(directory / "comparison.png", real_videos, generated_videos, prompts)
    markdown_path = directory / "evaluation.md"
    markdown_path.write_text(markdown_report(result, list(generated_videos), min(len(prompts), MAX_PICTURE_ROWS)), encoding="utf-8")
    return ReportFiles(json=json_path, markdown=markdown_path, picture=picture_path)


def _json_safe(value):
    """Non-finite floats as the strings "inf", "-inf", "nan"; everything else unchanged."""
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


# --------------------------------------------------------------------------------------------------------------
# Picture
# --------------------------------------------------------------------------------------------------------------


def _strip(video: torch.Tensor) -> np.ndarray:
    """One row of up to MAX_PICTURE_FRAMES evenly spaced frames of a uint8 video (f, h, w, 3), enlarged if small."""
    num_frames, height = video.shape[0], video.shape[1]
    indices = np.linspace(0, num_frames - 1, min(num_frames, MAX_PICTURE_FRAMES)).round().astype(int)
    frames = video.numpy()[indices]  # (k, h, w, 3)
    scale = max(1, math.ceil(MIN_PICTURE_FRAME_SIZE / height))
    frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)  # (k, h * scale, w * scale, 3)
    return frames_grid(frames, columns=len(frames))  # (h * scale, k * w * scale, 3)


def write_comparison(path: str | Path, real_videos, generated_videos: Mapping[str, torch.Tensor], prompts: Sequence[str]) -> Path:
    """comparison.png: for each of the first MAX_PICTURE_ROWS prompts, the real clip's frames, then one strip
    per generated set (in `generated_videos` order), then a white gap. No text is drawn."""
    real = videos_to_uint8(normalise_videos(real_videos))  # (n, f, h, w, 3)
    generated = {label: videos_to_uint8(normalise_videos(videos)) for label, videos in generated_videos.items()}
    if not generated:
        raise ValueError("generated_videos is empty; pass {label: videos} with at least one set")
    for label, videos in generated.items():
        if videos.shape[0] != real.shape[0]:
            raise ValueError(f"generated set {label!r} has {videos.shape[0]} videos but there are {real.shape[0]} real clips; pass one per prompt")
    if len(prompts) != real.shape[0]:
        raise ValueError(f"got {len(prompts)} prompts for {real.shape[0]} real clips; pass one prompt per clip")
    blocks = []
    for row in range(min(len(prompts), MAX_PICTURE_ROWS)):
        strips = [_strip(real[row])] + [_strip(videos[row]) for videos in generated.values()]
        width = max(strip.shape[1] for strip in strips)
        strips = [np.pad(strip, ((0, 0), (0, width - strip.shape[1]), (0, 0)), constant_values=255) for strip in strips]
        blocks.append(np.concatenate(strips + [np.full((SEPARATOR_PIXELS, width, 3), 255, dtype=np.uint8)]))
    width = max(block.shape[1] for block in blocks)
    blocks = [np.pad(block, ((0, 0), (0, width - block.shape[1]), (0, 0)), constant_values=255) for block in blocks]
    Image.fromarray(np.concatenate(blocks)).save(path)
    return Path(path)


# --------------------------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------------------------


def _number(value, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_number(cell) if not isinstance(cell, str) else cell for cell in row) + " |" for row in rows]


def markdown_report(result: ConditioningEvaluation, picture_labels: Sequence[str], picture_rows: int) -> str:
    """evaluation.md from evaluate_conditioning's numbers: one table per measure, chance levels beside them."""
    lines = ["# Conditioning evaluation", ""]
    lines += [f"{result.num_clips} clips, one per caption; seeds {result.seeds}; {result.num_inference_steps} "
              f"{result.scheduler} steps; {'EMA' if result.used_ema else 'raw (no EMA saved)'} weights. "
              "\"Chance\" is what a model that ignores the text scores.", ""]
    split = result.split  # evaluate.py sets it: which side of the run's train/val split was scored
    if split is not None:
        lines += [f"Split scored: **{split.scored}**, {split.description}" + (f" (from {split.record})" if split.record else "") + "."]
        if split.note:
            lines += ["", f"**Note: {split.note}.**"]
        lines += ["", "Clips scored: " + ", ".join(result.clip_names) + ".", ""]

    gap = result.loss_gap
    lines += ["## Denoising loss: right caption, wrong caption (derangement), null embedding", "",
              f"Same clips, noise and timesteps {gap.timesteps} in every condition; unweighted MSE, lower is better.", ""]
    lines += _table(["measure", "value", "chance"], [
        ["loss, right caption", _number(gap.right, 6), "= deranged"],
        ["loss, deranged caption", _number(gap.deranged, 6), ""],
        ["loss, null embedding", _number(gap.null, 6), ""],
        ["gap = deranged - right", f"{_number(gap.gap, 4)} ± {_number(gap.gap_standard_error, 2)} (s.e.)", "0"],
        ["relative gap = gap / right", _number(gap.relative_gap), "0"],
        ["null - right", _number(gap.null_gap, 4), "0"],
        ["clips with right < deranged", _number(gap.fraction_right_below_deranged), "0 (exact ties), 0.5 (noise)"],
    ])
    lines += [""] + _table(["timestep", "right", "deranged", "null", "gap"],
                           [[row.timestep, _number(row.right, 6), _number(row.deranged, 6), _number(row.null, 6), _number(row.gap, 4)]
                            for row in gap.per_timestep])

    identification = result.caption_identification
    lines += ["", f"## Caption identification ({identification.num_candidates}-way)", "",
              f"A clip counts when its own caption has the strictly lowest loss (timesteps {identification.timesteps}).", ""]
    lines += _table(["measure", "value", "chance"], [
        ["accuracy", identification.accuracy, identification.chance],
        ["mean rank of the true caption", identification.mean_rank, identification.chance_mean_rank],
    ])

    guidance = result.guidance
    scales = list(guidance)
    lines += ["", "## Sampling, per guidance scale", "",
              "Retrieval: generated video i (first seed) against all real clips, nearest first. Prompt sensitivity: "
              "distance between prompts at the same seed over distance between seeds of one prompt. PSNR/SSIM: "
              "against the prompt's own real clip; the \"other clip\" rows are the reference a prompt-blind model also gets.", ""]
    rows = []
    first = guidance[scales[0]]
    for space in ("pixel", "motion"):
        retrieval = first.retrieval[space]
        for k in sorted(retrieval.top):
            rows.append([f"retrieval top{k} ({space})", retrieval.chance_top[k]] + [guidance[s].retrieval[space].top[k] for s in scales])
        rows.append([f"retrieval mean rank ({space})", retrieval.chance_mean_rank] + [guidance[s].retrieval[space].mean_rank for s in scales])
        rows.append([f"prompt sensitivity, same seed ({space})", 0.0] + [guidance[s].prompt_sensitivity[space].ratio_same_seed for s in scales])
        rows.append([f"prompt sensitivity, all pairs ({space})", "about 1"] + [guidance[s].prompt_sensitivity[space].ratio for s in scales])
    rows.append(["PSNR dB vs own clip", "= other clip"] + [guidance[s].psnr for s in scales])
    rows.append(["PSNR dB vs other clip (reference)", ""] + [guidance[s].psnr_other_clip for s in scales])
    rows.append(["SSIM vs own clip", "= other clip"] + [guidance[s].ssim for s in scales])
    rows.append(["SSIM vs other clip (reference)", ""] + [guidance[s].ssim_other_clip for s in scales])
    rows.append(["motion: generated mean frame change", f"real: {_number(first.temporal.real_mean)}"] + [guidance[s].temporal.generated_mean for s in scales])
    rows.append(["motion: generated / real", "1 (ideal)"] + [guidance[s].temporal.ratio for s in scales])
    if first.fvd is not None:
        rows.append(["FVD", "0 (ideal)"] + [guidance[s].fvd.fvd for s in scales])
    lines += _table(["measure", "chance"] + [f"guidance {scale}" for scale in scales], rows)
    if first.ssim_skipped:
        lines += ["", f"SSIM not computed: {first.ssim_skipped}."]

    lines += ["", "## Picture", "",
              f"comparison.png: the first {picture_rows} prompts, top to bottom. Each prompt is a block of strips, frames "
              f"left to right (up to {MAX_PICTURE_FRAMES}, evenly spaced): first the real clip, then the first-seed sample at "
              + ", ".join(f"guidance {label}" for label in picture_labels) + ", in that order; white gaps separate prompts.", "",
              "![real above generated](comparison.png)", "", "Prompts in the picture:", ""]
    lines += [f"{row + 1}. {prompt}" for row, prompt in enumerate(result.prompts[:picture_rows])]

    lines += ["", "## Time", ""] + _table(["part", "seconds"], [[part, seconds] for part, seconds in result.timing_seconds.items()])
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------------------
# The generalisation benchmark (experiments/boston_generalisation.py)
# --------------------------------------------------------------------------------------------------------------


def write_generalisation_report(results: dict, scored, directory: str | Path) -> None:
    """generalisation.json (results as given), generalisation.md (generated from it) and generalisation.png."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    previous = directory / "generalisation.json"
    if "ablations" not in results and previous.is_file():  # the levers' rows are written by their own runs: keep them
        ablations = read_json(previous).get("ablations")
        results = {**results, "ablations": ablations} if ablations else results
    write_json(directory / "generalisation.json", _json_safe(results), allow_nan=False)
    history = (directory / "generalisation_history.md").is_file()
    (directory / "generalisation.md").write_text(generalisation_markdown(results, history=history), encoding="utf-8")
    write_generalisation_picture(scored, directory / "generalisation.png")


def write_ablation(row: dict, directory: str | Path) -> None:
    """Put one lever's row (generalisation.ablation_row) into generalisation.json's "ablations", replacing the row of the
    same name, and rewrite generalisation.md from the JSON. The main table must exist: ablations sit beside it."""
    directory = Path(directory)
    path = directory / "generalisation.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run the protocol (or --baselines_only) first, then the ablations beside it")
    results = read_json(path)
    results["ablations"] = [existing for existing in results.get("ablations", []) if existing["name"] != row["name"]] + [row]
    write_json(path, _json_safe(results), allow_nan=False)
    history = (directory / "generalisation_history.md").is_file()
    (directory / "generalisation.md").write_text(generalisation_markdown(results, history=history), encoding="utf-8")
