"""Typed evaluation results (as diffusers' BaseOutput): what metrics.py, fvd.py and conditioning.py return, and
what report.py, evaluate.py and the experiments read, field by field rather than by string keys.

Every result writes itself with `to_json()`: fields in declaration order, nested results converted, tensors
(the videos behind comparison.png) left out, and optional fields left out while unset, so evaluation.json keeps
the keys it has always had.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch


def in_json_when_set(default=None):
    """A field that evaluation.json has only when it is set (not None)."""
    return field(default=default, metadata={"omit_if_none": True})


def not_in_json():
    """A field kept for the caller (tensors for the picture) but never written to JSON."""
    return field(default=None, metadata={"json": False}, repr=False, compare=False)


@dataclass(frozen=True)
class EvaluationResult:
    """Base of every result: read its fields; `to_json()` gives the object written to evaluation.json."""

    def to_json(self) -> dict[str, Any]:
        payload = {}
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if not item.metadata.get("json", True) or (value is None and item.metadata.get("omit_if_none", False)):
                continue
            payload[item.name] = _to_json(value)
        return payload


def _to_json(value):
    if isinstance(value, EvaluationResult):
        return value.to_json()
    if isinstance(value, dict):
        return {key: _to_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(item) for item in value]
    return value


# --------------------------------------------------------------------------------------------------------------
# metrics.py and fvd.py
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetrievalScores(EvaluationResult):
    """`retrieval_accuracy`: top[k] is the share of generated videos whose own real clip is among the k nearest."""

    top: dict[int, float]  # k -> top-k accuracy
    chance_top: dict[int, float]  # k -> k / n, what a text-blind model scores
    ranks: list[int]  # 1-based rank of each prompt's own clip, ties counted against it
    mean_rank: float
    chance_mean_rank: float  # (n + 1) / 2
    num_clips: int
    space: str  # "pixel", "motion" or the feature extractor's name
    distances: torch.Tensor | None = not_in_json()  # (n_generated, n_real) float64, with return_distances=True

    def to_json(self) -> dict[str, Any]:
        """evaluation.json's layout: top1, chance_top1, top5, chance_top5, ..., then the other fields."""
        payload: dict[str, Any] = {}
        for k in self.top:
            payload[f"top{k}"] = self.top[k]
            payload[f"chance_top{k}"] = self.chance_top[k]
        rest = super().to_json()
        return {**payload, **{key: value for key, value in rest.items() if key not in ("top", "chance_top")}}


@dataclass(frozen=True)
class PromptSensitivityScores(EvaluationResult):
    """`prompt_sensitivity`: distances between prompts over distances between seeds (see its docstring)."""

    ratio: float  # about 1 when the prompt changes nothing
    ratio_same_seed: float  # 0 when the prompt changes nothing and a seed means the same noise for every prompt
    between_prompts_distance: float
    between_prompts_same_seed_distance: float
    within_prompt_distance: float
    num_prompts: int
    num_seeds: int


@dataclass(frozen=True)
class IdentificationScores(EvaluationResult):
    """`caption_identification_accuracy`: does the true caption get the strictly lowest loss among k candidates?"""

    accuracy: float
    chance: float  # 1 / k
    ranks: list[int]  # 1-based, ties counted against the true caption
    mean_rank: float
    chance_mean_rank: float  # (k + 1) / 2
    num_clips: int
    num_candidates: int


@dataclass(frozen=True)
class TemporalScores(EvaluationResult):
    """`temporal_statistics`: mean frame-to-frame change of generated and real videos; ratio = generated / real."""

    generated_mean: float
    generated_std: float
    real_mean: float
    real_std: float
    ratio: float  # below 1 too static, above 1 too jittery


@dataclass(frozen=True)
class FVDScores(EvaluationResult):
    """`FrechetVideoDistance.compute`: the distance and what it can be compared with."""

    fvd: float
    num_real_clips: int
    num_fake_clips: int
    feature_dim: int
    min_clips: int
    allow_small_sample: bool
    comparable_to_published: bool  # both sides have at least the standard 2048 clips
    covariance_rank_deficient: bool  # a side has no more clips than feature dimensions


# --------------------------------------------------------------------------------------------------------------
# conditioning.py
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LossGapAtTimestep(EvaluationResult):
    timestep: int
    right: float
    deranged: float
    null: float
    gap: float  # deranged - right


@dataclass(frozen=True)
class ConditionLosses(EvaluationResult):
    """One loss per clip under each condition, clips in input order."""

    right: list[float]
    deranged: list[float]
    null: list[float]


@dataclass(frozen=True)
class LossGap(EvaluationResult):
    """`conditional_loss_gap`: mean denoising loss with the right caption, a deranged one and the null embedding."""

    right: float
    deranged: float
    null: float
    gap: float  # deranged - right: 0 for a model that ignores the text
    gap_standard_error: float  # over clips; nan with one clip
    relative_gap: float  # gap / right
    null_gap: float  # null - right
    fraction_right_below_deranged: float  # clips whose right-caption loss is clearly lower; ties count against
    per_timestep: list[LossGapAtTimestep]
    per_clip: ConditionLosses
    derangement: list[int]  # clip i was scored with the caption of clip derangement[i]
    num_clips: int
    timesteps: list[int]
    seed: int


@dataclass(frozen=True)
class CaptionIdentification(IdentificationScores):
    """`caption_identification`: the scores, plus what was compared."""

    timesteps: list[int]
    seed: int
    loss_matrix: list[list[float]]  # (n, K) mean loss of clip i under candidate j, column 0 the true caption
    candidates: list[list[str]]  # per clip, the true caption first


@dataclass(frozen=True)
class GuidanceScores(EvaluationResult):
    """Every sampling-based score at one guidance scale; retrieval and prompt sensitivity per feature space."""

    retrieval: dict[str, RetrievalScores]
    prompt_sensitivity: dict[str, PromptSensitivityScores]
    psnr: float  # dB against the prompt's own real clip
    psnr_other_clip: float  # against another prompt's clip: the level a text-blind model also reaches
    temporal: TemporalScores
    ssim: float | None  # None when the frames are smaller than the SSIM window
    ssim_other_clip: float | None
    ssim_skipped: str | None = in_json_when_set()  # why SSIM is None
    fvd: FVDScores | None = in_json_when_set()  # only with an FVD detector


@dataclass(frozen=True)
class EvaluationVideos:
    """The videos behind comparison.png: never written to JSON."""

    real: torch.Tensor  # (n, c, f, h, w) in [-1, 1]
    generated: dict[str, torch.Tensor]  # guidance label -> first-seed videos (n, c, f, h, w)


@dataclass(frozen=True)
class ScoredSplit(EvaluationResult):
    """Which side of the run's train/val split evaluate.py scored (the report and JSON say it)."""

    scored: str  # "val", "train" or "all"
    description: str
    record: str | None  # path of the run's split.json; None when there is none
    # From split.json: in the JSON only when there is a record.
    val_fraction: float | None = None
    group_pattern: str | None = None
    train_clips: int | None = None
    val_clips: int | None = None
    missing_from_data_dir: list[str] | None = in_json_when_set()  # clips of the scored side not in --data_dir
    training_clips_in_data_dir: int | None = in_json_when_set()  # with --split all and a record
    note: str | None = in_json_when_set()  # e.g. that training clips measure memorisation

    def to_json(self) -> dict[str, Any]:
        payload = super().to_json()
        if self.record is None:
            for key in ("val_fraction", "group_pattern", "train_clips", "val_clips"):
                payload.pop(key)
        return payload


@dataclass(frozen=True)
class ConditioningEvaluation(EvaluationResult):
    """`evaluate_conditioning`: every measure on one clip per prompt; prompt i's real clip is real video i."""

    prompts: list[str]
    clip_names: list[str]
    num_clips: int
    seeds: list[int]
    num_inference_steps: int
    scheduler: str
    used_ema: bool
    loss_gap: LossGap
    caption_identification: CaptionIdentification
    guidance: dict[str, GuidanceScores]  # guidance label, e.g. "7.5" -> scores
    timing_seconds: dict[str, float]
    videos: EvaluationVideos | None = not_in_json()
    # Set by the caller that knows them (evaluate.py, experiments/): in the JSON only when set.
    checkpoint: str | None = in_json_when_set()
    split: ScoredSplit | None = in_json_when_set()
    data_dir: str | None = in_json_when_set()
    experiment: dict[str, Any] | None = in_json_when_set()  # the experiment's own record of the run
