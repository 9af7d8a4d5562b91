"""Evaluation: conditioning metrics (does the video follow the text?), fidelity metrics, and FVD."""

from text2sign.evaluation.conditioning import (
    DEFAULT_GUIDANCE_SCALES,
    IDENTIFICATION_TIMESTEP_FRACTIONS,
    LOSS_GAP_TIMESTEP_FRACTIONS,
    caption_derangement,
    caption_identification,
    conditional_loss_gap,
    evaluate_conditioning,
    generate_for_prompts,
)
from text2sign.evaluation.fvd import (
    DEFAULT_MIN_CLIPS,
    STANDARD_NUM_CLIPS,
    FrechetVideoDistance,
    feature_statistics,
    frechet_distance,
)
from text2sign.evaluation.metrics import (
    caption_identification_accuracy,
    gaussian_window,
    normalise_videos,
    prompt_sensitivity,
    psnr,
    retrieval_accuracy,
    ssim,
    temporal_change,
    temporal_statistics,
    video_features,
)
from text2sign.evaluation.report import write_report

__all__ = [
    "DEFAULT_GUIDANCE_SCALES",
    "DEFAULT_MIN_CLIPS",
    "IDENTIFICATION_TIMESTEP_FRACTIONS",
    "LOSS_GAP_TIMESTEP_FRACTIONS",
    "STANDARD_NUM_CLIPS",
    "FrechetVideoDistance",
    "caption_derangement",
    "caption_identification",
    "caption_identification_accuracy",
    "conditional_loss_gap",
    "evaluate_conditioning",
    "feature_statistics",
    "frechet_distance",
    "generate_for_prompts",
    "gaussian_window",
    "normalise_videos",
    "prompt_sensitivity",
    "psnr",
    "retrieval_accuracy",
    "ssim",
    "temporal_change",
    "temporal_statistics",
    "video_features",
    "write_report",
]
