"""Does the model use its text? Model-based measures of conditioning, with fixed seeds and the EMA weights.

The prior public attempt's videos did not depend on the text: the right caption lowered its denoising loss
by 0.00005 against a shuffled one, and caption identification among 4 was 31% (chance 25%). Three measures:

- `conditional_loss_gap`: denoising loss of each clip under its own caption, a wrong caption (a derangement)
  and the null embedding, all with the same noise and timesteps, so the only change is the text.
- `caption_identification`: is the clip's own caption the one with the lowest loss among K candidates?
- `evaluate_conditioning`: both, plus sampling: retrieval of the prompt's real clip from the generated
  video, prompt sensitivity (same noise, different prompt), PSNR/SSIM and motion statistics per guidance scale.

Every random draw comes from a generator seeded by the caller's seed, so two runs (or two checkpoints)
score the same clips under the same noise.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Sequence

import numpy as np
import torch

from text2sign.evaluation.metrics import (
    SSIM_WINDOW_SIZE,
    _safe_ratio,
    caption_identification_accuracy,
    normalise_videos,
    prompt_sensitivity,
    psnr,
    retrieval_accuracy,
    ssim,
    temporal_statistics,
)
from text2sign.evaluation.results import (
    CaptionIdentification,
    ConditionLosses,
    ConditioningEvaluation,
    EvaluationVideos,
    GuidanceScores,
    LossGap,
    LossGapAtTimestep,
)
from text2sign.models.ema import evaluation_weights
from text2sign.models.objective import DenoisingObjective
from text2sign.models.scheduler import make_scheduler
from text2sign.models.text_encoder import TextEncoding
from text2sign.training.validation import FIXED_TIMESTEP_FRACTIONS, fixed_timesteps

# Identification scores n_clips x n_candidates pairs (69 x 69 on the real data), so it keeps to mid noise,
# where the text matters most: at low noise the model mostly copies the visible pixels, and at high noise
# the prediction is mostly the data prior. Three values cost 3 x 69 x 69 = 14,283 forward passes.
IDENTIFICATION_TIMESTEP_FRACTIONS = (0.3, 0.5, 0.7)
DEFAULT_GUIDANCE_SCALES = (1.0, 2.0, 4.0, 7.5)
DEFAULT_SEEDS = (0, 1)
RETRIEVAL_TOP_K = (1, 5)  # a k that is not below the number of clips is dropped (top-n accuracy is 1)
FEATURE_SPACES = ("pixel", "motion")
# A row's output depends on its position in the batch at float32 rounding level (measured on CPU: identical
# inputs at rows 0 and 6 of a batch of 7 gave losses 2.4e-7 apart on a loss of 1), so a model that ignores
# the text shows rounding-sized loss differences between captions. Relative differences below this count
# as ties, and ties count against the model; a real preference this small would be invisible anyway.
LOSS_TIE_TOLERANCE = 1e-5


# --------------------------------------------------------------------------------------------------------------
# Shared pieces: noise, wrong captions, encoded captions (weights: models/ema.py, timesteps: training/validation.py)
# --------------------------------------------------------------------------------------------------------------


def clip_noise(shape: Sequence[int], seed: int, clip_index: int, num_timesteps: int) -> torch.Tensor:
    """Fixed noise (k, c, f, h, w) for one clip, one per timestep, from a generator seeded by (seed, clip_index).

    Seeding per clip makes a clip's noise independent of batching, of clip order and of how many clips are
    scored; drawing on the CPU makes it the same on every device.
    """
    clip_seed = int(np.random.SeedSequence([seed, clip_index]).generate_state(1)[0])
    generator = torch.Generator().manual_seed(clip_seed)
    return torch.randn((num_timesteps, *shape), generator=generator)  # (k, c, f, h, w)


def caption_derangement(captions: Sequence[str], seed: int = 0) -> list[int]:
    """A seeded permutation `order` with captions[order[i]] != captions[i] for every i: each clip gets a wrong caption.

    Clips are shuffled, grouped by caption (groups in shuffled order), and each takes the caption of the clip
    m places further on, m being the largest group: two clips m apart never share a caption while no
    caption covers more than half the clips. With distinct captions this is a random n-cycle.
    """
    captions = list(captions)
    counts: dict[str, int] = {}
    for caption in captions:
        counts[caption] = counts.get(caption, 0) + 1
    if len(counts) < 2:
        raise ValueError(f"a wrong caption needs at least 2 distinct captions, got {len(counts)}; evaluate clips of different sentences")
    largest = max(counts.values())
    if 2 * largest > len(captions):
        raise ValueError(
            f"one caption covers {largest} of {len(captions)} clips; every clip can get a wrong caption only when no "
            "caption covers more than half of them. Keep one clip per caption (evaluate_conditioning does)."
        )
    generator = torch.Generator().manual_seed(seed)
    shuffled = torch.randperm(len(captions), generator=generator).tolist()
    group_rank: dict[str, int] = {}  # caption -> position of its group, in order of first appearance when shuffled
    for index in shuffled:
        group_rank.setdefault(captions[index], len(group_rank))
    grouped = sorted(shuffled, key=lambda index: group_rank[captions[index]])  # stable: shuffled within groups
    order = [0] * len(captions)
    for position, clip in enumerate(grouped):
        order[clip] = grouped[(position + largest) % len(grouped)]
    assert all(captions[order[clip]] != captions[clip] for clip in range(len(captions)))
    return order


def caption_table(pipeline, distinct_captions: Sequence[str]) -> TextEncoding:
    """Every distinct caption encoded once, then the null embedding as the last row: states (m + 1, n, d).

    One encoding for all conditions means a caption has bit-identical states whichever clip it is scored with.
    """
    rows = list(distinct_captions) + [distinct_captions[0]]
    drop = torch.arange(len(rows)) == len(distinct_captions)  # (m + 1,) only the last row is the null embedding
    return pipeline.encode_text(rows, drop=drop)  # (m + 1, n, d), (m + 1, n)


def sign_table(pipeline, distinct_captions: Sequence[str], num_frames: int) -> torch.Tensor | None:
    """caption_table's rows as the sign conditioner sees them (a model with one; else None): each caption's signs laid
    out as sampling lays them out (no signer), the last row the null branch. (m + 1, [f,] 4c)."""
    if pipeline.sign_conditioner is None:
        return None
    rows = list(distinct_captions) + [distinct_captions[0]]
    return pipeline.sign_conditioner(rows, drop_text=torch.arange(len(rows)) == len(distinct_captions), num_frames=num_frames)


def clearly_lower(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """first < second by more than LOSS_TIE_TOLERANCE relative to the larger magnitude (elementwise, broadcast)."""
    return second - first > LOSS_TIE_TOLERANCE * torch.maximum(first.abs(), second.abs())


def _check_clips(videos, captions: Sequence[str]) -> tuple[torch.Tensor, list[str]]:
    videos = normalise_videos(videos)  # (n, c, f, h, w)
    captions = list(captions)
    if len(captions) != videos.shape[0]:
        raise ValueError(f"got {videos.shape[0]} videos but {len(captions)} captions; pass one caption per clip")
    return videos, captions


def pair_losses(pipeline, videos: torch.Tensor, table: TextEncoding, clip_indices: Sequence[int], text_rows: Sequence[int],
                timesteps: torch.Tensor, seed: int, batch_size: int, signs: torch.Tensor | None = None) -> torch.Tensor:
    """Unweighted denoising loss (num_pairs, k) of clip clip_indices[p] under table row text_rows[p] at each timestep
    (`signs`: sign_table's rows, for a model with a sign conditioner).

    Clip i at timestep j always gets clip_noise(seed, i)[j], whatever its text and batch. Pairs should be
    ordered by clip so a clip's noise is drawn once. Call inside `evaluation_weights`.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    device = pipeline.device
    objective = DenoisingObjective.for_pipeline(pipeline)  # the training loss's own per-clip error
    num_timesteps = len(timesteps)
    items = [(pair, step) for pair in range(len(clip_indices)) for step in range(num_timesteps)]
    losses = torch.empty(len(clip_indices), num_timesteps, dtype=torch.float64)
    noise_by_clip: dict[int, torch.Tensor] = {}
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        clips = [clip_indices[pair] for pair, _ in chunk]
        noise_by_clip = {clip: noise_by_clip[clip] if clip in noise_by_clip else clip_noise(videos.shape[1:], seed, clip, num_timesteps) for clip in set(clips)}
        batch_videos = videos[clips].to(device)  # (b, c, f, h, w)
        noise = torch.stack([noise_by_clip[clip][step] for clip, (_, step) in zip(clips, chunk)]).to(device)  # (b, c, f, h, w)
        batch_timesteps = timesteps[[step for _, step in chunk]].to(device)  # (b,)
        rows = torch.tensor([text_rows[pair] for pair, _ in chunk], device=table.states.device)  # (b,)
        text = TextEncoding(states=table.states[rows], mask=table.mask[rows])  # (b, n, d), (b, n)
        extra = None if signs is None else signs[rows.to(signs.device)]  # (b, [f,] 4c)
        batch_losses = objective.per_sample_loss(batch_videos, text, batch_timesteps, noise, extra)  # (b,)
        losses[[pair for pair, _ in chunk], [step for _, step in chunk]] = batch_losses.double().cpu()
    return losses  # (num_pairs, k)


# --------------------------------------------------------------------------------------------------------------
# Loss-based measures
# --------------------------------------------------------------------------------------------------------------


def conditional_loss_gap(pipeline, videos, captions: Sequence[str], timesteps: Sequence[float] = FIXED_TIMESTEP_FRACTIONS,
                         seed: int = 0, batch_size: int = 8) -> LossGap:
    """Mean per-clip denoising loss with the right captions, a derangement of them, and the null embedding.

    videos: (n, c, f, h, w) in [-1, 1] (or uint8 (n, f, h, w, c)); captions: one per clip. timesteps are
    fractions of the schedule. gap = deranged - right is 0 for a model that ignores the text; its standard
    error over clips says whether a small gap is more than noise (the prior attempt's 0.00005 was not).
    """
    videos, captions = _check_clips(videos, captions)
    timestep_tensor = fixed_timesteps(pipeline.scheduler.config.num_train_timesteps, timesteps)  # (k,)
    wrong = caption_derangement(captions, seed)
    distinct = list(dict.fromkeys(captions))
    row_of = {caption: row for row, caption in enumerate(distinct)}
    null_row = len(distinct)
    clip_indices, text_rows = [], []
    for clip, caption in enumerate(captions):
        clip_indices += [clip, clip, clip]
        text_rows += [row_of[caption], row_of[captions[wrong[clip]]], null_row]
    with evaluation_weights(pipeline):
        table = caption_table(pipeline, distinct)
        signs = sign_table(pipeline, distinct, videos.shape[2])
        losses = pair_losses(pipeline, videos, table, clip_indices, text_rows, timestep_tensor, seed, batch_size, signs)  # (3n, k)
    losses = losses.view(len(captions), 3, len(timestep_tensor))  # (n, condition, k): right, deranged, null
    per_clip = losses.mean(dim=2)  # (n, 3)
    right, deranged, null = per_clip.unbind(dim=1)  # (n,) each
    clip_gaps = deranged - right  # (n,)
    gap_standard_error = clip_gaps.std().item() / math.sqrt(len(captions)) if len(captions) > 1 else math.nan
    return LossGap(
        right=right.mean().item(),
        deranged=deranged.mean().item(),
        null=null.mean().item(),
        gap=clip_gaps.mean().item(),
        gap_standard_error=gap_standard_error,
        relative_gap=_safe_ratio(clip_gaps.mean().item(), right.mean().item()),
        null_gap=(null - right).mean().item(),
        fraction_right_below_deranged=clearly_lower(right, deranged).double().mean().item(),
        per_timestep=[
            LossGapAtTimestep(timestep=int(timestep), right=condition[0].item(), deranged=condition[1].item(), null=condition[2].item(),
                              gap=(condition[1] - condition[0]).item())
            for timestep, condition in zip(timestep_tensor, losses.mean(dim=0).T)  # condition: (3,) at one timestep
        ],
        per_clip=ConditionLosses(right=right.tolist(), deranged=deranged.tolist(), null=null.tolist()),
        derangement=wrong,
        num_clips=len(captions),
        timesteps=timestep_tensor.tolist(),
        seed=seed,
    )


def caption_identification(pipeline, videos, captions: Sequence[str], num_candidates: int | None = None,
                           timesteps: Sequence[float] = IDENTIFICATION_TIMESTEP_FRACTIONS, seed: int = 0, batch_size: int = 32) -> CaptionIdentification:
    """Accuracy of picking each clip's caption as the lowest-loss one among K candidates (ties count as misses).

    Candidates are the true caption plus K - 1 other distinct captions drawn with the seed (all of them when
    num_candidates is None: the n-way test). Every candidate sees the same noise and timesteps. Each distinct
    caption is encoded once; forward passes run batch_size (clip, caption, timestep) triples at a time.
    """
    videos, captions = _check_clips(videos, captions)
    distinct = list(dict.fromkeys(captions))
    num_candidates = len(distinct) if num_candidates is None else int(num_candidates)
    if not 2 <= num_candidates <= len(distinct):
        raise ValueError(f"num_candidates must be in [2, {len(distinct)}] (the number of distinct captions), got {num_candidates}")
    timestep_tensor = fixed_timesteps(pipeline.scheduler.config.num_train_timesteps, timesteps)  # (k,)
    row_of = {caption: row for row, caption in enumerate(distinct)}
    generator = torch.Generator().manual_seed(seed)
    candidates = []  # per clip: table rows, the true caption first
    for caption in captions:
        others = [row for row in range(len(distinct)) if row != row_of[caption]]
        chosen = torch.randperm(len(others), generator=generator)[:num_candidates - 1].tolist()
        candidates.append([row_of[caption]] + [others[index] for index in chosen])
    clip_indices = [clip for clip in range(len(captions)) for _ in range(num_candidates)]
    text_rows = [row for rows in candidates for row in rows]
    with evaluation_weights(pipeline):
        table = caption_table(pipeline, distinct)
        signs = sign_table(pipeline, distinct, videos.shape[2])
        losses = pair_losses(pipeline, videos, table, clip_indices, text_rows, timestep_tensor, seed, batch_size, signs)  # (n * K, k)
    loss_matrix = losses.mean(dim=1).view(len(captions), num_candidates)  # (n, K), column 0 = true caption
    true_losses = loss_matrix[:, :1]  # (n, 1)
    tied = ~clearly_lower(true_losses, loss_matrix) & ~clearly_lower(loss_matrix, true_losses)  # (n, K)
    scores = caption_identification_accuracy(torch.where(tied, true_losses, loss_matrix))  # rounding-level ties made exact
    return CaptionIdentification(**dataclasses.asdict(scores), timesteps=timestep_tensor.tolist(), seed=seed, loss_matrix=loss_matrix.tolist(),
                                 candidates=[[distinct[row] for row in rows] for rows in candidates])


# --------------------------------------------------------------------------------------------------------------
# Sampling-based measures
# --------------------------------------------------------------------------------------------------------------


GENERATION_BATCH = 24  # prompts sampled together by the deterministic samplers


def generate_for_prompts(pipeline, prompts: Sequence[str], seeds: Sequence[int] = DEFAULT_SEEDS, num_inference_steps: int = 50,
                         guidance_scale: float = 4.0, scheduler: str | None = None, num_frames: int | None = None,
                         height: int | None = None, width: int | None = None, signers: Sequence[str | None] | None = None,
                         init_videos: torch.Tensor | None = None, strength: float = 1.0) -> torch.Tensor:
    """Float videos (num_prompts, num_seeds, c, f, h, w) in [-1, 1], sampled with the EMA weights. `signers`: one per
    prompt (a model with signer conditioning; None: any signer). `init_videos` (num_prompts, c, f, h, w) with
    `strength` < 1: each prompt starts from its init video noised part-way (the pipeline's SDEdit start).

    Seed s means the same initial noise x_T (and, for the stochastic samplers, the same step noise) for every
    prompt, so videos[p, s] and videos[q, s] differ only by the text, and a prompt's video is the same whether
    it is sampled alone or among others.
    """
    prompts, seeds = list(prompts), [int(seed) for seed in seeds]
    if not prompts or not seeds:
        raise ValueError(f"give at least one prompt and one seed, got {len(prompts)} prompts and seeds {seeds}")
    # A deterministic sampler (DDIM with eta 0, DPM-Solver++) draws no noise after x_T: prompts can then share one
    # batch, each row starting from seed s's x_T. A stochastic one (DDPM, DDIM with eta > 0) draws step noise per
    # batch, so it gets one call per (prompt, seed) to keep a prompt's video independent of its batch-mates.
    deterministic = not make_scheduler(scheduler or pipeline.config.sampler, pipeline.scheduler.config).is_stochastic
    num_frames = num_frames or pipeline.config.num_frames
    height, width = height or pipeline.config.image_size, width or pipeline.config.image_size
    shape = (1, pipeline.unet.config.in_channels, num_frames, height, width)
    if signers is not None and len(signers) != len(prompts):
        raise ValueError(f"give one signer per prompt: {len(signers)} signers for {len(prompts)} prompts")
    if init_videos is not None and len(init_videos) != len(prompts):
        raise ValueError(f"give one init video per prompt: {len(init_videos)} videos for {len(prompts)} prompts")
    rows = list(range(len(prompts)))
    chunks = [rows[start:start + GENERATION_BATCH] for start in range(0, len(rows), GENERATION_BATCH)] if deterministic else [[row] for row in rows]
    by_seed = []
    for seed in seeds:
        videos = []
        for chunk in chunks:
            # One generator per (seed, call): x_T is its first draw and the sampler's step noise continues from
            # the same object. A second Generator(seed) handed to the sampler would replay x_T as the first
            # step's noise, and x_{t-1} would then carry x_T twice (variance 1.9 instead of 1 after one DDPM step).
            generator = torch.Generator().manual_seed(seed)
            initial_noise = torch.randn(shape, generator=generator)  # (1, c, f, h, w): seed s's x_T, shared by every prompt
            latents = initial_noise.expand(len(chunk), *shape[1:]).clone()  # (b, c, f, h, w)
            generated = pipeline([prompts[row] for row in chunk], num_frames=num_frames, height=height, width=width, num_inference_steps=num_inference_steps,
                                 guidance_scale=guidance_scale, scheduler=scheduler, generator=generator, use_ema=True, progress=False,
                                 output_type="tensor", latents=latents,
                                 signer=None if signers is None else [signers[row] for row in chunk],
                                 init_videos=None if init_videos is None else init_videos[chunk], strength=strength)  # (b, c, f, h, w)
            # The uint8 output clamps too; clamping here scores what a viewer of the GIF would see.
            videos.append(generated.clamp(-1, 1).float().cpu())
        by_seed.append(torch.cat(videos))  # (p, c, f, h, w)
    return torch.stack(by_seed, dim=1)  # (p, s, c, f, h, w)



def select_clips(dataset, prompts: Sequence[str] | None = None, max_clips: int | None = None) -> list[int]:
    """Dataset indices of one clip per caption: the first clip of each prompt (default: of each distinct caption).

    `dataset` is any sequence of {"video", "caption"} dicts; a `captions` attribute (SignVideoDataset has one)
    lists the captions without decoding every clip.
    """
    captions = list(dataset.captions) if hasattr(dataset, "captions") else [dataset[index]["caption"] for index in range(len(dataset))]
    first_index: dict[str, int] = {}
    for index, caption in enumerate(captions):
        first_index.setdefault(caption, index)
    if prompts is None:
        prompts = list(first_index)
    prompts = list(prompts)
    if len(set(prompts)) != len(prompts):
        raise ValueError("prompts contain duplicates; retrieval needs one real clip per distinct prompt")
    missing = [prompt for prompt in prompts if prompt not in first_index]
    if missing:
        raise ValueError(f"{len(missing)} prompts have no clip with that exact caption, e.g. {missing[:3]}; pass captions from the dataset")
    if max_clips is not None:
        if max_clips < 2:
            raise ValueError(f"max_clips must be at least 2 (a wrong caption and retrieval need two clips), got {max_clips}")
        prompts = prompts[:max_clips]
    if len(prompts) < 2:
        raise ValueError(f"conditioning needs at least 2 clips with distinct captions, got {len(prompts)}")
    return [first_index[prompt] for prompt in prompts]


def evaluate_conditioning(pipeline, dataset, prompts: Sequence[str] | None = None, seeds: Sequence[int] = DEFAULT_SEEDS,
                          num_inference_steps: int = 50, guidance_scales: Sequence[float] = DEFAULT_GUIDANCE_SCALES,
                          scheduler: str | None = None, num_candidates: int | None = None, max_clips: int | None = None,
                          loss_timesteps: Sequence[float] = FIXED_TIMESTEP_FRACTIONS,
                          identification_timesteps: Sequence[float] = IDENTIFICATION_TIMESTEP_FRACTIONS,
                          batch_size: int = 8, seed: int = 0, fvd_metric=None) -> ConditioningEvaluation:
    """Every conditioning measure on one clip per prompt; prompt i's real clip is real video i.

    Loss gap and K-way caption identification (K = number of clips unless num_candidates is given) come
    first; then for each guidance scale the prompts are sampled with every seed at the real clips' shape
    and scored: retrieval (seed 0 video i against all real clips, pixel and motion space), prompt
    sensitivity, PSNR/SSIM against the prompt's real clip (and, as the reference level, against another
    prompt's clip), motion statistics, and FVD when `fvd_metric` (a FrechetVideoDistance) is given.

    Returns a ConditioningEvaluation; its `videos` (real (n, c, f, h, w) and, per scale label, the seed-0
    videos) are for `write_report` and stay out of `to_json()`.
    """
    seeds, guidance_scales = [int(value) for value in seeds], [float(value) for value in guidance_scales]
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise ValueError(f"prompt sensitivity compares seeds: pass at least 2 distinct seeds, got {seeds}")
    if not guidance_scales or min(guidance_scales) < 1.0:
        raise ValueError(f"guidance_scales must be >= 1 (1 = no guidance), got {guidance_scales}")
    indices = select_clips(dataset, prompts, max_clips)
    if num_candidates is not None and not 2 <= num_candidates <= len(indices):
        raise ValueError(f"num_candidates must be in [2, {len(indices)}] (one candidate per evaluated caption), got {num_candidates}")
    if fvd_metric is not None and len(indices) < fvd_metric.min_clips:
        raise ValueError(
            f"FVD needs at least {fvd_metric.min_clips} real clips and only {len(indices)} prompts have one; "
            "leave FVD out or evaluate a larger set"
        )
    items = [dataset[index] for index in indices]
    prompts = [item["caption"] for item in items]
    real = normalise_videos(torch.stack([torch.as_tensor(item["video"]) for item in items]))  # (n, c, f, h, w)
    num_clips, _, num_frames, height, width = real.shape
    timing: dict[str, float] = {}

    started = time.perf_counter()
    loss_gap = conditional_loss_gap(pipeline, real, prompts, loss_timesteps, seed, batch_size)
    timing["loss_gap"] = time.perf_counter() - started
    started = time.perf_counter()
    identification = caption_identification(pipeline, real, prompts, num_candidates, identification_timesteps, seed, batch_size)
    timing["caption_identification"] = time.perf_counter() - started
    if fvd_metric is not None:
        fvd_metric.update_real(real)

    top_k = tuple(k for k in RETRIEVAL_TOP_K if k < num_clips)
    other_clip = real.roll(1, dims=0)  # clip i + 1's real video: the fidelity a prompt-blind model would also get
    guidance: dict[str, GuidanceScores] = {}
    generated_first_seed: dict[str, torch.Tensor] = {}
    for guidance_scale in guidance_scales:
        label = f"{guidance_scale:g}"
        started = time.perf_counter()
        generated = generate_for_prompts(pipeline, prompts, seeds, num_inference_steps, guidance_scale, scheduler, num_frames, height, width)  # (n, s, c, f, h, w)
        timing[f"generation_guidance_{label}"] = time.perf_counter() - started
        started = time.perf_counter()
        first_seed = generated[:, 0]  # (n, c, f, h, w)
        ssim_fits = min(height, width) >= SSIM_WINDOW_SIZE
        fvd = None
        if fvd_metric is not None:
            fvd_metric.reset_fake()
            fvd_metric.update_fake(generated.flatten(0, 1))
            fvd = fvd_metric.compute()
        guidance[label] = GuidanceScores(
            retrieval={space: retrieval_accuracy(first_seed, real, top_k, space) for space in FEATURE_SPACES},
            prompt_sensitivity={space: prompt_sensitivity(generated, space) for space in FEATURE_SPACES},
            psnr=psnr(first_seed, real).mean().item(),
            psnr_other_clip=psnr(first_seed, other_clip).mean().item(),
            temporal=temporal_statistics(generated.flatten(0, 1), real),
            ssim=ssim(first_seed, real).mean().item() if ssim_fits else None,
            ssim_other_clip=ssim(first_seed, other_clip).mean().item() if ssim_fits else None,
            ssim_skipped=None if ssim_fits else f"frames of {height}x{width} are smaller than the {SSIM_WINDOW_SIZE}x{SSIM_WINDOW_SIZE} SSIM window",
            fvd=fvd,
        )
        timing[f"metrics_guidance_{label}"] = time.perf_counter() - started
        generated_first_seed[label] = first_seed
    return ConditioningEvaluation(
        prompts=prompts, clip_names=[item.get("name", str(index)) for item, index in zip(items, indices)], num_clips=num_clips,
        seeds=seeds, num_inference_steps=num_inference_steps, scheduler=scheduler or pipeline.config.sampler,
        used_ema=pipeline.ema is not None, loss_gap=loss_gap, caption_identification=identification, guidance=guidance,
        timing_seconds=timing, videos=EvaluationVideos(real=real, generated=generated_first_seed),
    )
