"""Video metrics on constructed cases whose answers are known by hand."""

import math

import numpy as np
import pytest
import torch

from text2sign.evaluation import (
    caption_identification_accuracy,
    normalise_videos,
    prompt_sensitivity,
    psnr,
    retrieval_accuracy,
    ssim,
    temporal_change,
    temporal_statistics,
)


def random_videos(num_videos, channels=3, frames=4, height=8, width=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(num_videos, channels, frames, height, width, generator=generator) * 2 - 1  # (n, c, f, h, w)


def uint8_to_float_by_hand(videos_uint8):
    """The documented mapping, written out independently: channels-last uint8 -> channels-first [-1, 1]."""
    return torch.from_numpy(videos_uint8).permute(0, 4, 1, 2, 3).double().div(127.5).sub(1).float()


# ---------------------------------------------------------------------------------------------------------------
# Input layouts
# ---------------------------------------------------------------------------------------------------------------


def test_normalise_videos_maps_uint8_channels_last_to_minus_one_one_channels_first():
    videos = np.zeros((1, 2, 3, 4, 3), dtype=np.uint8)  # (n, f, h, w, c)
    videos[0, 1, :, :, 2] = 255
    normalised = normalise_videos(videos)
    assert normalised.shape == (1, 3, 2, 3, 4)
    assert normalised.dtype == torch.float32
    assert normalised[0, 2, 1].eq(1).all() and normalised[0, 2, 0].eq(-1).all() and normalised[0, :2].eq(-1).all()


@pytest.mark.parametrize(
    "videos",
    [
        torch.zeros(3, 4, 8, 8),  # 4-D
        torch.full((1, 3, 2, 4, 4), 1.5),  # out of [-1, 1]
        torch.full((1, 3, 2, 4, 4), float("nan")),
        torch.zeros(1, 2, 4, 4, 5, dtype=torch.uint8),  # uint8 must be channels-last with c in (1, 3)
        torch.zeros(1, 3, 2, 4, 4, dtype=torch.int64),
    ],
)
def test_normalise_videos_rejects_bad_layouts(videos):
    with pytest.raises(ValueError):
        normalise_videos(videos)


def test_uint8_and_float_inputs_give_the_same_metrics():
    rng = np.random.default_rng(0)
    generated_uint8 = rng.integers(0, 256, size=(6, 5, 12, 12, 3), dtype=np.uint8)  # (n, f, h, w, c)
    real_uint8 = rng.integers(0, 256, size=(6, 5, 12, 12, 3), dtype=np.uint8)
    generated_float, real_float = uint8_to_float_by_hand(generated_uint8), uint8_to_float_by_hand(real_uint8)

    torch.testing.assert_close(psnr(generated_uint8, real_uint8), psnr(generated_float, real_float))
    torch.testing.assert_close(ssim(generated_uint8, real_uint8), ssim(generated_float, real_float))
    torch.testing.assert_close(temporal_change(generated_uint8), temporal_change(generated_float))
    from_uint8 = retrieval_accuracy(generated_uint8, real_uint8, top_k=(1,), return_distances=True)
    from_float = retrieval_accuracy(generated_float, real_float, top_k=(1,), return_distances=True)
    assert from_uint8.ranks == from_float.ranks
    torch.testing.assert_close(from_uint8.distances, from_float.distances)


# ---------------------------------------------------------------------------------------------------------------
# Retrieval
# ---------------------------------------------------------------------------------------------------------------


def test_retrieval_of_identical_sets_is_perfect():
    real = random_videos(8)
    result = retrieval_accuracy(real.clone(), real, top_k=(1, 5))
    assert result.top[1] == 1.0 and result.top[5] == 1.0
    assert result.ranks == [1] * 8
    assert result.chance_top[1] == 1 / 8 and result.chance_top[5] == 5 / 8
    assert result.chance_mean_rank == 4.5


def test_retrieval_of_a_derangement_scores_exactly_zero():
    real = random_videos(8)
    derangement = torch.tensor([1, 2, 3, 4, 5, 6, 7, 0])  # no clip stays in place
    generated = real[derangement]  # generated[i] == real[derangement[i]]
    result = retrieval_accuracy(generated, real, top_k=(1,))
    assert result.top[1] == 0.0
    assert min(result.ranks) >= 2


def test_retrieval_of_independent_sets_is_near_chance():
    num_clips, trials = 10, 30
    top1 = [
        retrieval_accuracy(random_videos(num_clips, seed=2 * trial), random_videos(num_clips, seed=2 * trial + 1), top_k=(1, 5))
        for trial in range(trials)
    ]
    mean_top1 = np.mean([result.top[1] for result in top1])
    mean_top5 = np.mean([result.top[5] for result in top1])
    # 300 independent draws: top1 ~ 0.10 +- 0.017, top5 ~ 0.50 +- 0.029; bounds sit beyond 3.5 standard errors.
    assert 0.04 <= mean_top1 <= 0.16
    assert 0.40 <= mean_top5 <= 0.60


def test_motion_space_ignores_a_constant_background_that_pixel_space_follows():
    num_clips = 6
    generator = torch.Generator().manual_seed(0)
    backgrounds = torch.linspace(-0.6, 0.6, num_clips).view(num_clips, 1, 1, 1, 1)  # constant over time per clip
    motions = 0.05 * torch.randn(num_clips, 3, 5, 8, 8, generator=generator)  # what the signer does
    derangement = torch.tensor([1, 2, 3, 4, 5, 0])
    real = backgrounds + motions
    generated = backgrounds[derangement] + motions  # right motion, another prompt's background

    pixel = retrieval_accuracy(generated, real, top_k=(1,), space="pixel")
    motion = retrieval_accuracy(generated, real, top_k=(1,), space="motion")
    assert pixel.top[1] == 0.0  # background gaps (0.24) dwarf motion gaps (~0.07 per value)
    assert motion.top[1] == 1.0


def test_retrieval_counts_ties_against_the_model():
    real = random_videos(1).repeat(4, 1, 1, 1, 1)  # four identical real clips: every distance ties
    result = retrieval_accuracy(real.clone(), real, top_k=(1,))
    assert result.ranks == [4, 4, 4, 4]
    assert result.top[1] == 0.0


def test_retrieval_distances_are_euclidean_in_pixel_space():
    generated, real = random_videos(3, seed=1), random_videos(3, seed=2)
    distances = retrieval_accuracy(generated, real, top_k=(1,), return_distances=True).distances
    by_hand = torch.tensor([[(generated[i].double() - real[j].double()).norm().item() for j in range(3)] for i in range(3)])
    torch.testing.assert_close(distances, by_hand.double())


def test_retrieval_accepts_a_callable_feature_space():
    # Clips differ only in their per-channel means, which the extractor reads; pixel noise would hide them.
    generator = torch.Generator().manual_seed(0)
    means = torch.tensor([[-0.3, 0.0, 0.3], [0.3, 0.0, -0.3], [0.0, 0.3, 0.3], [0.0, -0.3, -0.3]]).view(4, 3, 1, 1, 1)
    real = (means + 0.3 * torch.randn(4, 3, 4, 16, 16, generator=generator)).clamp(-1, 1)
    generated = (means + 0.3 * torch.randn(4, 3, 4, 16, 16, generator=generator)).clamp(-1, 1)

    def channel_means(videos):
        return videos.mean(dim=(2, 3, 4))  # (n, c)

    result = retrieval_accuracy(generated, real, top_k=(1,), space=channel_means)
    assert result.top[1] == 1.0 and result.space == "channel_means"


@pytest.mark.parametrize("num_clips, top_k", [(4, (1, 5)), (5, (1, 5)), (1, (1,))])
def test_retrieval_refuses_k_not_below_the_number_of_clips(num_clips, top_k):
    with pytest.raises(ValueError):
        retrieval_accuracy(random_videos(num_clips), random_videos(num_clips, seed=1), top_k=top_k)


def test_retrieval_rejects_mismatched_shapes_and_unknown_spaces():
    with pytest.raises(ValueError):
        retrieval_accuracy(random_videos(4), random_videos(5), top_k=(1,))
    with pytest.raises(ValueError):
        retrieval_accuracy(random_videos(4), random_videos(4), top_k=(1,), space="optical_flow")


# ---------------------------------------------------------------------------------------------------------------
# Prompt sensitivity
# ---------------------------------------------------------------------------------------------------------------


def test_prompt_sensitivity_matches_a_hand_computed_case():
    values = torch.tensor([[0.0, 0.2], [0.6, 0.8]])  # videos[p, s] is one value
    videos = values.view(2, 2, 1, 1, 1, 1)  # (prompts, seeds, c, f, h, w)
    result = prompt_sensitivity(videos)
    # within: |0 - 0.2|, |0.6 - 0.8| -> 0.2; between: |0 - .6|, |0 - .8|, |.2 - .6|, |.2 - .8| -> 0.6;
    # same seed: |0 - 0.6|, |0.2 - 0.8| -> 0.6.
    assert result.within_prompt_distance == pytest.approx(0.2)
    assert result.between_prompts_distance == pytest.approx(0.6)
    assert result.between_prompts_same_seed_distance == pytest.approx(0.6)
    assert result.ratio == pytest.approx(3.0)
    assert result.ratio_same_seed == pytest.approx(3.0)


def test_prompt_sensitivity_is_above_one_when_prompts_differ_more_than_seeds():
    generator = torch.Generator().manual_seed(0)
    prompt_content = 0.5 * torch.randn(5, 1, 3, 4, 8, 8, generator=generator)
    seed_noise = 0.1 * torch.randn(5, 4, 3, 4, 8, 8, generator=generator)
    result = prompt_sensitivity((prompt_content + seed_noise).clamp(-1, 1))
    assert result.ratio > 3 and result.ratio_same_seed > 3


def test_prompt_sensitivity_is_about_one_for_iid_videos():
    videos = random_videos(6 * 6, seed=3).view(6, 6, 3, 4, 8, 8)  # (prompts, seeds, c, f, h, w), all i.i.d.
    result = prompt_sensitivity(videos)
    assert 0.95 < result.ratio < 1.05
    assert 0.95 < result.ratio_same_seed < 1.05


def test_prompt_sensitivity_same_seed_ratio_is_zero_when_the_text_is_ignored():
    per_seed = random_videos(4, seed=4)  # one video per seed, whatever the prompt
    videos = per_seed[None].repeat(3, 1, 1, 1, 1, 1)  # (3 prompts, 4 seeds, c, f, h, w)
    result = prompt_sensitivity(videos)
    assert result.ratio_same_seed == 0.0
    assert result.ratio < 1  # (S - 1) / S of the cross pairs are different seeds, the rest coincide


def test_prompt_sensitivity_accepts_uint8_channels_last():
    rng = np.random.default_rng(0)
    videos_uint8 = rng.integers(0, 256, size=(3, 2, 4, 6, 6, 3), dtype=np.uint8)  # (p, s, f, h, w, c)
    videos_float = uint8_to_float_by_hand(videos_uint8.reshape(6, 4, 6, 6, 3)).view(3, 2, 3, 4, 6, 6)
    assert prompt_sensitivity(videos_uint8).ratio == pytest.approx(prompt_sensitivity(videos_float).ratio)


@pytest.mark.parametrize("num_prompts, num_seeds", [(1, 3), (3, 1)])
def test_prompt_sensitivity_needs_two_prompts_and_two_seeds(num_prompts, num_seeds):
    with pytest.raises(ValueError):
        prompt_sensitivity(torch.zeros(num_prompts, num_seeds, 3, 2, 4, 4))


# ---------------------------------------------------------------------------------------------------------------
# Caption identification
# ---------------------------------------------------------------------------------------------------------------


def test_caption_identification_counts_rows_where_the_true_caption_is_lowest():
    losses = torch.tensor(
        [
            [0.1, 0.5, 0.7],  # hit
            [0.4, 0.3, 0.9],  # miss (rank 2)
            [0.2, 0.2, 0.9],  # tie with a wrong caption: miss (rank 2)
            [0.1, 0.6, 0.8],  # hit
        ]
    )
    result = caption_identification_accuracy(losses)
    assert result.accuracy == 0.5
    assert result.ranks == [1, 2, 2, 1]
    assert result.chance == pytest.approx(1 / 3) and result.chance_mean_rank == 2.0


def test_caption_identification_reads_the_true_column_from_an_index_vector():
    losses = torch.tensor([[0.5, 0.1, 0.7], [0.9, 0.3, 0.2]])
    assert caption_identification_accuracy(losses, true_index=torch.tensor([1, 2])).accuracy == 1.0
    assert caption_identification_accuracy(losses, true_index=torch.tensor([0, 1])).accuracy == 0.0


@pytest.mark.parametrize(
    "losses, true_index",
    [(torch.zeros(4, 1), None), (torch.tensor([[0.1, float("nan")]]), None), (torch.zeros(2, 3), torch.tensor([0, 3]))],
)
def test_caption_identification_rejects_bad_inputs(losses, true_index):
    with pytest.raises(ValueError):
        caption_identification_accuracy(losses, true_index)


# ---------------------------------------------------------------------------------------------------------------
# PSNR and SSIM
# ---------------------------------------------------------------------------------------------------------------


def test_psnr_of_identical_videos_is_infinite():
    videos = random_videos(2)
    assert torch.isinf(psnr(videos, videos.clone())).all()


def test_psnr_of_a_constant_offset_matches_the_hand_value():
    reference = random_videos(2).clamp(-0.8, 0.8)
    # MSE = 0.1^2 = 0.01, peak 2: 10 log10(4 / 0.01) = 10 log10(400) = 26.0206 dB.
    expected = torch.full((2,), 10 * math.log10(400), dtype=torch.float64)
    torch.testing.assert_close(psnr(reference + 0.1, reference), expected, atol=1e-4, rtol=0)
    # A uint8 offset of 10 levels is 20 log10(255 / 10) = 28.1308 dB, the textbook uint8 PSNR.
    reference_uint8 = np.full((1, 3, 8, 8, 3), 100, dtype=np.uint8)
    assert psnr(reference_uint8 + 10, reference_uint8).item() == pytest.approx(20 * math.log10(25.5), abs=1e-6)


def test_ssim_of_identical_videos_is_one_and_lower_with_noise():
    generator = torch.Generator().manual_seed(0)
    videos = (0.5 * torch.randn(2, 3, 3, 16, 16, generator=generator)).clamp(-1, 1)
    torch.testing.assert_close(ssim(videos, videos.clone()), torch.ones(2, dtype=torch.float64))
    noisy = (videos + 0.3 * torch.randn(videos.shape, generator=generator)).clamp(-1, 1)
    assert (ssim(noisy, videos) < 0.9).all()


def test_ssim_of_constant_frames_is_the_luminance_term():
    # With flat frames the variances vanish and eq. 13 reduces to (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1),
    # on [0, 1]: -0.0 -> 0.5 and -0.5 -> 0.25, C1 = 0.01^2.
    first, second = torch.zeros(1, 3, 2, 12, 12), torch.full((1, 3, 2, 12, 12), -0.5)
    expected = (2 * 0.5 * 0.25 + 1e-4) / (0.5**2 + 0.25**2 + 1e-4)
    assert ssim(first, second).item() == pytest.approx(expected, rel=1e-9)


def test_ssim_on_one_window_matches_an_explicit_2d_gaussian():
    rng = np.random.default_rng(1)
    # float32-representable values, so the float32 videos and the float64 reference see the same numbers.
    x = rng.uniform(-1, 1, size=(11, 11)).astype(np.float32).astype(np.float64)
    y = np.clip(x + rng.normal(0, 0.2, size=(11, 11)), -1, 1).astype(np.float32).astype(np.float64)
    # Independent reference: 2-D weights exp(-(i^2 + j^2) / (2 * 1.5^2)); one 11x11 window covers the frame.
    offsets = np.arange(11) - 5
    weights = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * 1.5**2))
    weights /= weights.sum()
    x01, y01 = (x + 1) / 2, (y + 1) / 2
    mean_x, mean_y = (weights * x01).sum(), (weights * y01).sum()
    var_x = (weights * (x01 - mean_x) ** 2).sum()
    var_y = (weights * (y01 - mean_y) ** 2).sum()
    cov = (weights * (x01 - mean_x) * (y01 - mean_y)).sum()
    c1, c2 = 0.01**2, 0.03**2
    expected = (2 * mean_x * mean_y + c1) * (2 * cov + c2) / ((mean_x**2 + mean_y**2 + c1) * (var_x + var_y + c2))

    def to_video(frame):
        return torch.from_numpy(frame).float().view(1, 1, 1, 11, 11)  # (n, c, f, h, w)

    assert ssim(to_video(x), to_video(y)).item() == pytest.approx(expected, abs=1e-9)


def test_ssim_refuses_frames_smaller_than_its_window():
    with pytest.raises(ValueError):
        ssim(torch.zeros(1, 3, 2, 8, 8), torch.zeros(1, 3, 2, 8, 8))


# ---------------------------------------------------------------------------------------------------------------
# Temporal change
# ---------------------------------------------------------------------------------------------------------------


def test_temporal_change_is_zero_for_static_and_known_for_alternating_videos():
    static = random_videos(1, frames=1, height=4, width=4).repeat(1, 1, 5, 1, 1)
    alternating = torch.zeros(1, 3, 5, 4, 4)
    alternating[:, :, 1::2] = 0.5  # 0, .5, 0, .5, 0: every difference is 0.5
    torch.testing.assert_close(temporal_change(torch.cat([static, alternating])), torch.tensor([0.0, 0.5], dtype=torch.float64))


def test_temporal_statistics_flags_a_frozen_model():
    real = torch.zeros(3, 3, 5, 4, 4)
    real[:, :, 1::2] = torch.tensor([0.2, 0.4, 0.6]).view(3, 1, 1, 1, 1)  # changes 0.2, 0.4, 0.6
    frozen = torch.zeros(2, 3, 5, 4, 4)
    result = temporal_statistics(frozen, real)
    assert result.real_mean == pytest.approx(0.4)
    assert result.real_std == pytest.approx(math.sqrt(0.08 / 3))
    assert result.generated_mean == 0.0 and result.ratio == 0.0
    assert temporal_statistics(real, real).ratio == pytest.approx(1.0)


def test_temporal_change_needs_two_frames():
    with pytest.raises(ValueError):
        temporal_change(torch.zeros(1, 3, 1, 4, 4))
