"""Validation that compares across evaluations: fixed clips, fixed timesteps, fixed noise, EMA weights.

A random-timestep validation loss has a spread larger than the improvement between two checkpoints, so
"best checkpoint" would be noise. Here every evaluation scores the same (clip, timestep, noise) triples.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from text2sign.models.ema import evaluation_weights
from text2sign.models.objective import DenoisingObjective
from text2sign.video_io import slugify, write_gif

# Fractions of the schedule, low to high noise, at which validation and the conditioning evaluation's loss gap
# score every clip (evaluation/conditioning.py uses these too, so both report the loss at the same timesteps).
FIXED_TIMESTEP_FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9)
VALIDATION_SEED = 1234
MAX_VALIDATION_CLIPS = 32  # enough to rank checkpoints, cheap enough to run at every save


def fixed_timesteps(num_train_timesteps: int, fractions: Sequence[float] = FIXED_TIMESTEP_FRACTIONS) -> torch.Tensor:
    """Integer timesteps (k,) nearest to fractions of the schedule: round(fraction * (T - 1)), e.g. 100, 300, 500,
    699, 899 for T = 1000, the timesteps of docs/conditioning.md. (Validation once truncated instead, giving
    99, 299, 499, 699, 899: validation losses of runs from before this differ slightly.)
    """
    fractions = [float(fraction) for fraction in fractions]
    if not fractions or not all(0.0 <= fraction <= 1.0 for fraction in fractions):
        raise ValueError(f"timesteps are fractions of the schedule in [0, 1], e.g. (0.3, 0.5, 0.7); got {fractions}")
    last_timestep = num_train_timesteps - 1
    return torch.tensor([round(fraction * last_timestep) for fraction in fractions], dtype=torch.long)  # (k,)


def fixed_noise_validation_loss(pipeline, dataset, device: torch.device, max_clips: int = MAX_VALIDATION_CLIPS, batch_size: int = 4) -> float:
    """Mean unweighted denoising MSE of the EMA weights over fixed clips x fixed timesteps x fixed noise."""
    count = min(len(dataset), max_clips)
    if count == 0:
        raise ValueError("validation needs at least one clip")
    generator = torch.Generator().manual_seed(VALIDATION_SEED)
    timestep_values = fixed_timesteps(pipeline.scheduler.config.num_train_timesteps)  # (k,)
    total, samples = 0.0, 0
    objective = DenoisingObjective.for_pipeline(pipeline)
    with evaluation_weights(pipeline):
        for start in range(0, count, batch_size):
            items = [dataset[index] for index in range(start, min(start + batch_size, count))]
            videos = torch.stack([item["video"] for item in items]).to(device)  # (b, c, f, h, w)
            captions = [item["caption"] for item in items]
            text = pipeline.encode_text(captions)  # (b, n, d), (b, n)
            extra = None
            if pipeline.sign_conditioner is not None:  # a SignVideoDataset's items carry the signer and frame alignment
                extra = objective.sign_embedding(captions, videos.shape[2], [item["signer"] for item in items],
                                                 torch.from_numpy(np.stack([item["sign_positions"] for item in items])),
                                                 torch.from_numpy(np.stack([item["sign_phases"] for item in items])))  # (b, [f,] 4c)
            for timestep in timestep_values:
                noise = torch.randn(videos.shape, generator=generator).to(device)  # (b, c, f, h, w), same every evaluation
                timesteps = torch.full((videos.shape[0],), int(timestep), device=device, dtype=torch.long)  # (b,)
                losses = objective.per_sample_loss(videos, text, timesteps, noise, extra)  # (b,)
                total += float(losses.sum())
                samples += losses.numel()
    return total / samples


def write_validation_samples(pipeline, config, directory: Path) -> list[Path]:
    """One GIF per validation prompt from the EMA weights, same seed every time so samples compare over training."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    prompts = list(config.validation_prompts)
    generator = torch.Generator().manual_seed(VALIDATION_SEED)
    videos = pipeline(prompts, num_inference_steps=config.sample_steps, guidance_scale=config.guidance_scale, generator=generator, progress=False)  # (b, f, h, w, 3) uint8
    return [write_gif(directory / f"{index:02d}_{slugify(prompt)}.gif", video) for index, (prompt, video) in enumerate(zip(prompts, videos))]
