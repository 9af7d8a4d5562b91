#!/usr/bin/env python
"""Does a trained stick-figure model keep the hands? Per noise level, the denoiser's x_0 estimate of noised training
clips read back by the extractor; then videos sampled for the same captions. Training clips only: a check of what
the model learned, never a score on held-out recordings.

    python experiments/hands_by_noise_level.py --checkpoint RUN_DIR --clips_dir RUN_DIR/../train_clips

It is how the benchmark's prediction type was chosen (docs/generalisation_history.md): at 16 px and 500 steps the x_0
model's estimate had no hands even at t=20, the v-prediction model's kept 93% of them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from text2sign.evaluation.conditioning import generate_for_prompts
from text2sign.evaluation.extraction import extract_trajectory
from text2sign.models.pipeline import TextToSignPipeline, videos_to_uint8
from text2sign.models.scheduler import to_x0_and_epsilon
from text2sign.training.checkpoint import pipeline_directory, resolve_checkpoint
from text2sign.video_io import read_gif

NOISE_LEVELS = (20, 200, 500, 800)  # of the 1000 training timesteps
HANDS = slice(0, 2)  # joints 0 and 1 of the extractor's (left hand, right hand, head)


def hands_found(videos: np.ndarray, references: list[np.ndarray]) -> tuple[float, float | None]:
    """uint8 (b, f, h, w, 3) -> (share of hand cells found, mean distance in frame widths to the reference's hands where found)."""
    extracted = [extract_trajectory(video) for video in videos]
    found = float(np.mean([flags[:, HANDS].mean() for _, flags in extracted]))
    distances = np.concatenate([np.linalg.norm(positions[:, HANDS] - reference[:, HANDS], axis=-1).ravel()
                                for (positions, _), reference in zip(extracted, references)])  # NaN where not found
    return found, (float(np.nanmean(distances)) if np.isfinite(distances).any() else None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True, help="a run directory or checkpoint")
    parser.add_argument("--clips_dir", type=Path, required=True, help="the run's training clips (NAME.gif + NAME.txt)")
    parser.add_argument("--num_clips", type=int, default=6)
    parser.add_argument("--sampling_steps", type=int, default=20)
    parser.add_argument("--guidance", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    pipeline = TextToSignPipeline.from_pretrained(pipeline_directory(resolve_checkpoint(args.checkpoint)))
    clips = sorted(args.clips_dir.glob("*.gif"))[: args.num_clips]
    if not clips:
        raise SystemExit(f"no .gif clips in {args.clips_dir}")
    videos = np.stack([read_gif(path) for path in clips])  # (b, f, h, w, 3) uint8
    captions = [path.with_suffix(".txt").read_text().strip() for path in clips]
    references = [extract_trajectory(video)[0] for video in videos]  # (f, 3, 2) each
    clean = torch.from_numpy(videos).permute(0, 4, 1, 2, 3).float() / 127.5 - 1  # (b, c, f, h, w) in [-1, 1]
    text = pipeline.encode_text(captions)
    report = {"checkpoint": str(args.checkpoint), "prediction_type": pipeline.scheduler.config.prediction_type, "clips": len(clips), "x0_estimate": {}}
    generator = torch.Generator().manual_seed(args.seed)
    for timestep in NOISE_LEVELS:
        timesteps = torch.full((len(clips),), timestep)  # (b,)
        noise = torch.randn(clean.shape, generator=generator)  # (b, c, f, h, w)
        noisy = pipeline.scheduler.add_noise(clean, noise, timesteps)  # (b, c, f, h, w)
        with torch.no_grad():
            output = pipeline.unet(noisy, timesteps, text.states, text.mask)  # (b, c, f, h, w)
        alpha_bar = pipeline.scheduler._alpha_bar(timestep)
        estimate, _ = to_x0_and_epsilon(pipeline.scheduler.config.prediction_type, output, noisy, alpha_bar**0.5, (1 - alpha_bar) ** 0.5)
        found, distance = hands_found(videos_to_uint8(estimate).numpy(), references)
        report["x0_estimate"][timestep] = {"hands_found": found, "distance": distance}
    sampled = generate_for_prompts(pipeline, captions, seeds=(args.seed,), num_inference_steps=args.sampling_steps,
                                   guidance_scale=args.guidance, scheduler="dpm")  # (b, 1, c, f, h, w)
    found, distance = hands_found(videos_to_uint8(sampled[:, 0]).numpy(), references)
    report["samples"] = {"hands_found": found, "distance_to_own_recording": distance}
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
