"""Pure-tensor video metrics, chosen to show whether generated videos depend on their text.

The prior public attempt at this system reported an "FVD" from 4 clips and could not show that its videos
changed with the prompt. The metrics here answer that question directly:

- `retrieval_accuracy`: is generated video i closer to prompt i's real clip than to the other prompts' clips?
- `prompt_sensitivity`: do videos of different prompts differ more than videos of one prompt under new seeds?
- `caption_identification_accuracy`: given model losses for a clip under k candidate captions, is the true
  caption's loss the lowest? (The losses come from the model; this file only scores them.)
- `psnr`, `ssim`: per-video fidelity against a reference, frames treated as images.
- `temporal_change`, `temporal_statistics`: how much the videos move, generated against real.

Every function takes videos in either of the project's two layouts (see `normalise_videos`) and counts ties
against the model: a model whose outputs are all alike must not score well because of tie-breaking.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange

from text2sign.evaluation.results import IdentificationScores, PromptSensitivityScores, RetrievalScores, TemporalScores

# A callable feature extractor maps normalised videos (n, c, f, h, w) in [-1, 1] to features (n, d).
FeatureSpace = Union[str, Callable[[torch.Tensor], torch.Tensor]]

# Float videos may overshoot [-1, 1] by this much (sampler rounding) before we call them out of range.
RANGE_TOLERANCE = 1e-3

# Data range of a normalised video: values live in [-1, 1], so the peak-to-peak signal is 2. This makes
# PSNR identical to the usual uint8 PSNR with peak 255 (a uint8 step of 1 is 2 / 255 here).
NORMALISED_DATA_RANGE = 2.0

# SSIM constants of Wang et al. 2004, sec. III-C: an 11x11 circular-symmetric Gaussian window with standard
# deviation 1.5 pixels, K1 = 0.01, K2 = 0.03.
SSIM_WINDOW_SIZE = 11
SSIM_WINDOW_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


# --------------------------------------------------------------------------------------------------------------
# Input layouts
# --------------------------------------------------------------------------------------------------------------


def normalise_videos(videos: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Bring a batch of videos to the one layout every metric uses: float32 (n, c, f, h, w) in [-1, 1].

    Accepted inputs (numpy arrays or tensors):
    - floating point (n, c, f, h, w) in [-1, 1], what the pipeline and dataset produce; returned as float32.
    - uint8 (n, f, h, w, c) with c in {1, 3}, what GIF/PNG decoders produce; mapped by x / 127.5 - 1, so
      0 -> -1 and 255 -> 1, and moved to channels-first.

    Float videos in [0, 1] cannot be told apart from [-1, 1] videos that happen to be non-negative, so they
    are not detected: map them with `2 * videos - 1` first.
    """
    if isinstance(videos, np.ndarray):
        videos = torch.from_numpy(videos)
    if not isinstance(videos, torch.Tensor):
        raise ValueError(f"videos must be a torch.Tensor or numpy array, got {type(videos).__name__}.")
    if videos.ndim != 5:
        raise ValueError(
            f"videos must be 5-D: float (n, c, f, h, w) in [-1, 1] or uint8 (n, f, h, w, c); got shape "
            f"{tuple(videos.shape)}. Add a batch axis with videos[None] for a single video."
        )
    if videos.dtype == torch.uint8:
        if videos.shape[-1] not in (1, 3):
            raise ValueError(
                f"uint8 videos must be channels-last (n, f, h, w, c) with c in (1, 3); got shape "
                f"{tuple(videos.shape)}. Float videos are channels-first (n, c, f, h, w)."
            )
        videos = rearrange(videos, "n f h w c -> n c f h w")
        return videos.float() / 127.5 - 1.0  # (n, c, f, h, w)
    if not videos.is_floating_point():
        raise ValueError(f"videos must be uint8 or floating point, got dtype {videos.dtype}.")
    videos = videos.float()
    if not torch.isfinite(videos).all():
        raise ValueError("videos contain NaN or infinite values; check the sampler output before scoring.")
    if videos.numel() and (videos.min() < -1 - RANGE_TOLERANCE or videos.max() > 1 + RANGE_TOLERANCE):
        raise ValueError(
            f"float videos must lie in [-1, 1], got [{videos.min().item():.3f}, {videos.max().item():.3f}]. "
            "Clamp sampler output with videos.clamp(-1, 1); pass 0..255 data as uint8 (n, f, h, w, c)."
        )
    return videos  # (n, c, f, h, w)


def _normalise_pair(first: torch.Tensor, second: torch.Tensor, names: tuple[str, str]) -> tuple[torch.Tensor, torch.Tensor]:
    first, second = normalise_videos(first), normalise_videos(second)
    if first.shape != second.shape:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same (n, c, f, h, w) shape after normalising, got "
            f"{tuple(first.shape)} and {tuple(second.shape)}. Resize or trim the clips to match first."
        )
    return first, second


def video_features(videos: torch.Tensor, space: FeatureSpace = "pixel") -> torch.Tensor:
    """Flat float64 features (n, d) of normalised videos (n, c, f, h, w) in the named space.

    - "pixel": every value of every frame.
    - "motion": frame differences x[:, :, 1:] - x[:, :, :-1]. A background that is constant over time
      cancels, so two signers in front of different walls compare by how they move, not by the wall.
    - a callable: `space(videos)` must return (n, d), e.g. a pretrained video encoder.
    """
    if callable(space):
        features = space(videos)
        if not isinstance(features, torch.Tensor) or features.ndim != 2 or features.shape[0] != videos.shape[0]:
            shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
            raise ValueError(f"the feature extractor must return a tensor of shape (n={videos.shape[0]}, d), got {shape}.")
        return features.double()  # (n, d)
    if space == "pixel":
        return rearrange(videos, "n c f h w -> n (c f h w)").double()
    if space == "motion":
        if videos.shape[2] < 2:
            raise ValueError(f"space='motion' needs at least 2 frames per video, got {videos.shape[2]}.")
        motion = videos[:, :, 1:] - videos[:, :, :-1]  # (n, c, f - 1, h, w)
        return rearrange(motion, "n c f h w -> n (c f h w)").double()
    raise ValueError(f"space must be 'pixel', 'motion' or a callable feature extractor, got {space!r}.")


def _ranks_of_targets(scores: torch.Tensor, target_columns: torch.Tensor) -> torch.Tensor:
    """1-based rank of each row's target column when the row is sorted ascending, ties counted against it.

    rank_i = #{j : scores[i, j] <= scores[i, target_i]}, which includes the target itself. Pessimistic ties
    mean a degenerate model whose scores are all equal gets the worst rank, not the best.
    """
    target_scores = scores.gather(1, target_columns[:, None])  # (n, 1)
    return (scores <= target_scores).sum(dim=1)  # (n,)


# --------------------------------------------------------------------------------------------------------------
# Conditioning: retrieval, prompt sensitivity, caption identification
# --------------------------------------------------------------------------------------------------------------


def retrieval_accuracy(
    generated: torch.Tensor,
    real: torch.Tensor,
    top_k: Sequence[int] = (1, 5),
    space: FeatureSpace = "pixel",
    return_distances: bool = False,
) -> RetrievalScores:
    """Top-k accuracy of finding prompt i's real clip among all real clips, starting from generated video i.

    generated[i] was sampled from prompt i and real[i] is prompt i's real clip, both (n, c, f, h, w) in
    [-1, 1] or uint8 (n, f, h, w, c). For each generated video the real clips are sorted by Euclidean
    distance in `space` (see `video_features`); its rank is the 1-based position of real[i], ties counted
    against it. A model that ignores the text scores chance: top-k = k / n, mean rank (n + 1) / 2.

    Every k must be smaller than n (top-n accuracy is 1 by construction). Real clips must be one per prompt:
    two identical real clips tie, and a tie costs the model a rank.

    Returns RetrievalScores: top[k] and chance_top[k] = k / n for each k, ranks, mean_rank, chance_mean_rank
    = (n + 1) / 2, num_clips, the space's name and, with return_distances=True, distances (n_generated, n_real).
    """
    generated, real = _normalise_pair(generated, real, ("generated", "real"))
    num_clips = generated.shape[0]
    if num_clips < 2:
        raise ValueError(f"retrieval needs at least 2 prompts (clips), got {num_clips}.")
    top_k = tuple(int(k) for k in top_k)
    for k in top_k:
        if not 1 <= k < num_clips:
            raise ValueError(
                f"top_k={k} with {num_clips} clips is meaningless: top-k accuracy is 1 for k >= n. "
                f"Use k in [1, {num_clips - 1}], e.g. top_k=(1,), or evaluate more prompts."
            )

    # float64 keeps |a|^2 + |b|^2 - 2ab (how cdist computes large batches) exact enough that a clip's
    # distance to its own copy stays far below its distance to any different clip.
    distances = torch.cdist(video_features(generated, space), video_features(real, space))  # (n, n)
    ranks = _ranks_of_targets(distances, torch.arange(num_clips))  # (n,)

    return RetrievalScores(
        top={k: (ranks <= k).double().mean().item() for k in top_k},
        chance_top={k: k / num_clips for k in top_k},
        ranks=ranks.tolist(),
        mean_rank=ranks.double().mean().item(),
        chance_mean_rank=(num_clips + 1) / 2,
        num_clips=num_clips,
        space=space if isinstance(space, str) else getattr(space, "__name__", type(space).__name__),
        distances=distances if return_distances else None,
    )


def prompt_sensitivity(videos: torch.Tensor, space: FeatureSpace = "pixel") -> PromptSensitivityScores:
    """How much more videos differ across prompts than across seeds of one prompt.

    videos: float (num_prompts, num_seeds, c, f, h, w) in [-1, 1] or uint8 (num_prompts, num_seeds, f, h, w, c);
    videos[p, s] is prompt p sampled with seed s. Distances are Euclidean in `space` (see `video_features`).
    Three means over unordered pairs, with x = videos:

        within_prompt_distance            = mean over p, s < t         of |x[p, s] - x[p, t]|
        between_prompts_distance          = mean over p < q, all s, t  of |x[p, s] - x[q, t]|
        between_prompts_same_seed_distance = mean over p < q, each s    of |x[p, s] - x[q, s]|

        ratio           = between_prompts_distance / within_prompt_distance
        ratio_same_seed = between_prompts_same_seed_distance / within_prompt_distance

    `ratio` compares distributions: about 1 when the prompt changes nothing and the videos are i.i.d.
    ((num_seeds - 1) / num_seeds if seed s gives every prompt the same video), above 1 when prompts
    separate the videos.
    `ratio_same_seed` is meaningful when seed s means the same initial noise for every prompt: it is 0 for a
    model that ignores the text, since then x[p, s] = x[q, s]. A model that ignores the seed has
    within_prompt_distance 0 and both ratios are inf (nan if every video is identical).

    Needs num_prompts >= 2 and num_seeds >= 2. Returns the two ratios, the three distances and the counts.
    """
    if not isinstance(videos, (torch.Tensor, np.ndarray)) or videos.ndim != 6:
        shape = tuple(videos.shape) if hasattr(videos, "shape") else type(videos).__name__
        raise ValueError(
            f"videos must be 6-D (num_prompts, num_seeds, c, f, h, w) float or (num_prompts, num_seeds, f, h, w, c) "
            f"uint8; got {shape}."
        )
    num_prompts, num_seeds = videos.shape[:2]
    if num_prompts < 2 or num_seeds < 2:
        raise ValueError(
            f"prompt_sensitivity needs at least 2 prompts and 2 seeds per prompt, got num_prompts={num_prompts}, "
            f"num_seeds={num_seeds}: with one seed there is no within-prompt spread to compare against."
        )
    flat_videos = videos.reshape(num_prompts * num_seeds, *videos.shape[2:])  # (p * s, ...) in the input layout
    features = video_features(normalise_videos(flat_videos), space)  # (p * s, d), row = p * num_seeds + s

    prompt_of_row = torch.arange(num_prompts).repeat_interleave(num_seeds)  # (p * s,)
    seed_of_row = torch.arange(num_seeds).repeat(num_prompts)  # (p * s,)
    same_prompt = prompt_of_row[:, None] == prompt_of_row[None, :]  # (p * s, p * s)
    same_seed = seed_of_row[:, None] == seed_of_row[None, :]  # (p * s, p * s)
    upper = torch.ones_like(same_prompt).triu(diagonal=1)  # each unordered pair once

    distances = torch.cdist(features, features)  # (p * s, p * s)
    within = distances[same_prompt & upper].mean().item()
    between = distances[~same_prompt & upper].mean().item()
    between_same_seed = distances[~same_prompt & same_seed & upper].mean().item()
    return PromptSensitivityScores(
        ratio=_safe_ratio(between, within),
        ratio_same_seed=_safe_ratio(between_same_seed, within),
        between_prompts_distance=between,
        between_prompts_same_seed_distance=between_same_seed,
        within_prompt_distance=within,
        num_prompts=num_prompts,
        num_seeds=num_seeds,
    )


def _safe_ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, with x / 0 = inf for x > 0 and 0 / 0 = nan (documented, not hidden)."""
    if denominator > 0:
        return numerator / denominator
    return math.inf if numerator > 0 else math.nan


def caption_identification_accuracy(loss_matrix: torch.Tensor, true_index: torch.Tensor | None = None) -> IdentificationScores:
    """Fraction of clips whose true caption gets the strictly lowest loss among k candidate captions.

    loss_matrix: (n_clips, k_candidates), e.g. the model's denoising loss of clip i under caption j (lower =
    better fit). true_index: (n_clips,) column of each clip's true caption; default column 0. A tie with a
    wrong caption counts as a miss. A model that ignores the text scores chance, 1 / k.

    Returns IdentificationScores: accuracy, chance = 1 / k, ranks (1-based, ties against), mean_rank,
    chance_mean_rank = (k + 1) / 2, num_clips, num_candidates.
    """
    losses = torch.as_tensor(loss_matrix, dtype=torch.float64)
    if losses.ndim != 2 or losses.shape[0] < 1 or losses.shape[1] < 2:
        raise ValueError(
            f"loss_matrix must be (n_clips >= 1, k_candidates >= 2), got shape {tuple(losses.shape)}; "
            "with one candidate there is nothing to identify."
        )
    if not torch.isfinite(losses).all():
        raise ValueError("loss_matrix contains NaN or infinite losses; recompute them before scoring.")
    num_clips, num_candidates = losses.shape
    if true_index is None:
        true_index = torch.zeros(num_clips, dtype=torch.long)
    true_index = torch.as_tensor(true_index, dtype=torch.long)
    if true_index.shape != (num_clips,) or (true_index < 0).any() or (true_index >= num_candidates).any():
        raise ValueError(
            f"true_index must be (n_clips={num_clips},) with values in [0, {num_candidates - 1}], got "
            f"shape {tuple(true_index.shape)} and values {true_index.tolist()[:8]}..."
        )
    ranks = _ranks_of_targets(losses, true_index)  # (n,)
    return IdentificationScores(
        accuracy=(ranks == 1).double().mean().item(),
        chance=1.0 / num_candidates,
        ranks=ranks.tolist(),
        mean_rank=ranks.double().mean().item(),
        chance_mean_rank=(num_candidates + 1) / 2,
        num_clips=num_clips,
        num_candidates=num_candidates,
    )


# --------------------------------------------------------------------------------------------------------------
# Fidelity against a reference: PSNR and SSIM, frames treated as images
# --------------------------------------------------------------------------------------------------------------


def psnr(videos: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per video (n,), the mean over frames of per-frame PSNR.

    PSNR = 10 log10(R^2 / MSE) with R = 2, the data range of [-1, 1] (equal to uint8 PSNR with R = 255).
    MSE is over one frame's channels and pixels. A frame identical to its reference has PSNR = inf, so a
    video with any identical frame has inf; no cap is applied.
    """
    videos, reference = _normalise_pair(videos, reference, ("videos", "reference"))
    squared_error = (videos.double() - reference.double()) ** 2  # (n, c, f, h, w)
    frame_mse = squared_error.mean(dim=(1, 3, 4))  # (n, f)
    frame_psnr = 10.0 * torch.log10(NORMALISED_DATA_RANGE**2 / frame_mse)  # (n, f), inf where mse = 0
    return frame_psnr.mean(dim=1)  # (n,)


def gaussian_window(size: int = SSIM_WINDOW_SIZE, sigma: float = SSIM_WINDOW_SIGMA) -> torch.Tensor:
    """Normalised 1-D Gaussian (size,) in float64; its outer product with itself is the 2-D SSIM window."""
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2  # (size,)
    weights = torch.exp(-(offsets**2) / (2 * sigma**2))
    return weights / weights.sum()


def ssim(videos: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Structural similarity per video (n,), the mean over frames of per-frame SSIM (Wang et al. 2004).

    Frames are mapped from [-1, 1] to [0, 1] and scored with data range L = 1, which equals the usual uint8
    SSIM with L = 255 (SSIM is unchanged when images and L scale together, but not under a shift, so it is
    not computed on [-1, 1] directly). Local statistics use the 11x11 Gaussian window with sigma 1.5,
    without padding ("valid", as the authors' reference code), so frames must be at least 11x11. The SSIM
    map is averaged over positions and channels.
    """
    videos, reference = _normalise_pair(videos, reference, ("videos", "reference"))
    num_videos, channels, num_frames, height, width = videos.shape
    if height < SSIM_WINDOW_SIZE or width < SSIM_WINDOW_SIZE:
        raise ValueError(
            f"ssim needs frames of at least {SSIM_WINDOW_SIZE}x{SSIM_WINDOW_SIZE} pixels for its Gaussian window, "
            f"got {height}x{width}."
        )
    # Wang et al. 2004, eq. 13 constants: C1 = (K1 L)^2, C2 = (K2 L)^2 with L = 1 on [0, 1].
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    window = gaussian_window()
    vertical = window.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)  # (c, 1, size, 1)
    horizontal = window.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)  # (c, 1, 1, size)

    def local_mean(frames: torch.Tensor) -> torch.Tensor:
        # The Gaussian is separable: two 1-D passes equal the 11x11 window; groups=c keeps channels apart.
        return F.conv2d(F.conv2d(frames, vertical, groups=channels), horizontal, groups=channels)

    per_video = []
    for video, target in zip(videos, reference):  # one video at a time bounds the float64 memory
        x = rearrange((video.double() + 1) / 2, "c f h w -> f c h w")
        y = rearrange((target.double() + 1) / 2, "c f h w -> f c h w")
        mean_x, mean_y = local_mean(x), local_mean(y)  # (f, c, h', w'), Wang et al. 2004 eq. 14 (Gaussian-weighted)
        variance_x = local_mean(x * x) - mean_x**2  # eq. 15
        variance_y = local_mean(y * y) - mean_y**2
        covariance = local_mean(x * y) - mean_x * mean_y  # eq. 16
        ssim_map = ((2 * mean_x * mean_y + c1) * (2 * covariance + c2)) / (
            (mean_x**2 + mean_y**2 + c1) * (variance_x + variance_y + c2)
        )  # eq. 13, (f, c, h', w')
        per_video.append(ssim_map.mean(dim=(1, 2, 3)).mean())  # frames averaged last, as in psnr
    return torch.stack(per_video)  # (n,)


# --------------------------------------------------------------------------------------------------------------
# Motion: is the generated video as dynamic as the real one?
# --------------------------------------------------------------------------------------------------------------


def temporal_change(videos: torch.Tensor) -> torch.Tensor:
    """Mean absolute frame-to-frame difference per video (n,), in [-1, 1] units (0 = static, at most 2)."""
    videos = normalise_videos(videos)
    if videos.shape[2] < 2:
        raise ValueError(f"temporal_change needs at least 2 frames per video, got {videos.shape[2]}.")
    frame_differences = (videos[:, :, 1:] - videos[:, :, :-1]).double().abs()  # (n, c, f - 1, h, w)
    return frame_differences.mean(dim=(1, 2, 3, 4))  # (n,)


def temporal_statistics(generated: torch.Tensor, real: torch.Tensor) -> TemporalScores:
    """Compare how much generated and real videos move; the sets need not be paired or equally large.

    Returns TemporalScores: generated_mean, generated_std, real_mean, real_std and ratio, where means and
    (population) standard deviations are over videos of `temporal_change`, and ratio = generated_mean /
    real_mean: below 1 the model is too static (a frozen first frame gives 0), above 1 too jittery.
    """
    generated_change, real_change = temporal_change(generated), temporal_change(real)  # (n_gen,), (n_real,)
    generated_mean, real_mean = generated_change.mean().item(), real_change.mean().item()
    return TemporalScores(
        generated_mean=generated_mean,
        generated_std=generated_change.std(unbiased=False).item(),
        real_mean=real_mean,
        real_std=real_change.std(unbiased=False).item(),
        ratio=_safe_ratio(generated_mean, real_mean),
    )
