"""Evaluation: conditioning metrics (does the video follow the text?), fidelity metrics, and FVD."""

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

__all__ = [
    "DEFAULT_MIN_CLIPS",
    "STANDARD_NUM_CLIPS",
    "FrechetVideoDistance",
    "caption_identification_accuracy",
    "feature_statistics",
    "frechet_distance",
    "gaussian_window",
    "normalise_videos",
    "prompt_sensitivity",
    "psnr",
    "retrieval_accuracy",
    "ssim",
    "temporal_change",
    "temporal_statistics",
    "video_features",
]
