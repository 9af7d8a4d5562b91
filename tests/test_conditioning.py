"""Conditioning measures on models whose answer is known: one that cannot read the text, and one that can
only denoise with the right caption."""

from __future__ import annotations

import dataclasses
import json
import math
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from text2sign.evaluation import (
    FrechetVideoDistance,
    caption_derangement,
    caption_identification,
    conditional_loss_gap,
    evaluate_conditioning,
    generate_for_prompts,
    write_report,
)
from text2sign.evaluation.report import MIN_PICTURE_FRAME_SIZE, SEPARATOR_PIXELS
from text2sign.models.scheduler import SCHEDULERS, DDIMScheduler, DDPMScheduler
from evaluation_json_keys import REFERENCE_KEYS, key_paths
from tiny_models import CAPTIONS, tiny_pipeline

# Two timesteps keep the loss measures to a few dozen tiny forward passes.
FEW_TIMESTEPS = (0.3, 0.7)


def perturbed_pipeline(read_text: bool, seed: int = 1, **overrides):
    """tiny_pipeline with every UNet weight nudged (at init its output is exactly zero, whatever the input);
    with read_text=False the two routes from text to video, the pooled-text projection and every cross-attention
    output, are zeroed, so the output cannot depend on the caption."""
    pipeline = tiny_pipeline(**overrides)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in pipeline.unet.parameters():
            parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator))
        if not read_text:
            text_layers = [pipeline.unet.text_pool_projection] + [
                module.cross_attention.attention.to_out for module in pipeline.unet.modules() if hasattr(module, "cross_attention")
            ]
            assert len(text_layers) > 1
            for layer in text_layers:
                layer.weight.zero_()
                layer.bias.zero_()
    return pipeline


def random_videos(num_clips: int, seed: int = 0, size: int = 8) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(num_clips, 3, 4, size, size, generator=generator) * 2 - 1  # (n, c, f, h, w)


class CaptionLookupUNet(nn.Module):
    """Predicts 0.9 x the clip whose caption it is given (prediction_type="sample": the target is the clean clip).

    The caption is recognised by its masked-mean text state; an unknown text (the null embedding) predicts
    zeros. So the right caption gives loss 0.01 E[x^2], a wrong one |x_i - 0.9 x_j|^2, by construction.
    """

    def __init__(self, pipeline, captions, videos):
        super().__init__()
        self.device_anchor = nn.Parameter(torch.zeros(1))  # pipeline.device reads the UNet's parameters
        self.register_buffer("keys", self.pool(pipeline.encode_text(list(captions))).detach())  # (m, d)
        self.register_buffer("videos", videos.clone())  # (m, c, f, h, w)

    @staticmethod
    def pool(text):
        weights = text.mask.float().unsqueeze(-1)  # (b, n, 1)
        return (text.states * weights).sum(1) / weights.sum(1)  # (b, d)

    def forward(self, sample, timesteps, text_states, text_mask):
        pooled = self.pool(type("Text", (), {"states": text_states, "mask": text_mask}))  # (b, d)
        distances = torch.cdist(pooled, self.keys)  # (b, m)
        nearest = distances.argmin(dim=1)  # (b,)
        known = distances.min(dim=1).values < 1e-4  # (b,)
        return 0.9 * self.videos[nearest] * known[:, None, None, None, None]  # (b, c, f, h, w)


def text_sensitive_pipeline(videos):
    pipeline = tiny_pipeline(prediction_type="sample")
    pipeline.unet = CaptionLookupUNet(pipeline, CAPTIONS, videos)
    return pipeline


# ---------------------------------------------------------------------------------------------------------------
# Wrong captions
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_clips", [2, 3, 5, 9])
def test_derangement_gives_every_clip_another_caption_and_is_seeded(num_clips):
    captions = [f"caption {index}" for index in range(num_clips)]
    for seed in range(5):
        order = caption_derangement(captions, seed)
        assert sorted(order) == list(range(num_clips))
        assert all(order[clip] != clip for clip in range(num_clips))
        assert caption_derangement(captions, seed) == order
    if num_clips >= 5:
        assert len({tuple(caption_derangement(captions, seed)) for seed in range(5)}) > 1


def test_derangement_never_pairs_clips_that_share_a_caption():
    captions = ["a", "a", "b", "b", "b", "c", "d", "a"]
    for seed in range(10):
        order = caption_derangement(captions, seed)
        assert sorted(order) == list(range(len(captions)))
        assert all(captions[order[clip]] != captions[clip] for clip in range(len(captions)))


@pytest.mark.parametrize("captions", [["same", "same", "same"], ["a", "a", "a", "b"]])
def test_derangement_refuses_when_no_wrong_caption_exists_for_every_clip(captions):
    with pytest.raises(ValueError, match="caption"):
        caption_derangement(captions)


# ---------------------------------------------------------------------------------------------------------------
# Loss gap and caption identification
# ---------------------------------------------------------------------------------------------------------------


def test_model_that_ignores_text_has_zero_gap_and_identifies_no_caption():
    pipeline = perturbed_pipeline(read_text=False)
    videos = random_videos(len(CAPTIONS))
    gap = conditional_loss_gap(pipeline, videos, CAPTIONS, timesteps=FEW_TIMESTEPS, batch_size=4)
    assert gap.right > 0.01  # the perturbed UNet really predicts something
    assert abs(gap.gap) <= 1e-6 * gap.right and abs(gap.null_gap) <= 1e-6 * gap.right
    assert gap.fraction_right_below_deranged == 0.0
    # batch_size 5 puts one clip's captions at different batch positions, where rows differ by rounding (on CPU here).
    identification = caption_identification(pipeline, videos, CAPTIONS, timesteps=FEW_TIMESTEPS, batch_size=5)
    assert identification.num_candidates == len(CAPTIONS) and identification.chance == 0.25
    assert identification.accuracy == 0.0  # all ties, and ties count against the model
    assert identification.ranks == [len(CAPTIONS)] * len(CAPTIONS)


class FaintPreferenceUNet(nn.Module):
    """Predicts (0.5 + 1e-6 x a number of the caption) x the noisy input: every caption changes the loss, but
    by about 1e-6 of it, the size of float32 rounding between batch rows. That is no evidence of reading the text."""

    def __init__(self):
        super().__init__()
        self.device_anchor = nn.Parameter(torch.zeros(1))

    def forward(self, sample, timesteps, text_states, text_mask):
        caption_number = text_states[:, 0, 0].tanh()  # (b,) in (-1, 1), differs per caption
        return (0.5 + 1e-6 * caption_number)[:, None, None, None, None] * sample  # (b, c, f, h, w)


def test_loss_differences_at_rounding_level_count_as_ties_against_the_model():
    pipeline = tiny_pipeline(prediction_type="sample")
    pipeline.unet = FaintPreferenceUNet()
    videos = random_videos(len(CAPTIONS))
    identification = caption_identification(pipeline, videos, CAPTIONS, timesteps=(0.5,))
    losses = torch.tensor(identification.loss_matrix)  # (n, K), raw
    assert (losses != losses[:, :1]).any()  # the captions do change the loss, faintly
    assert identification.accuracy == 0.0 and identification.ranks == [len(CAPTIONS)] * len(CAPTIONS)
    gap = conditional_loss_gap(pipeline, videos, CAPTIONS, timesteps=(0.5,))
    assert gap.fraction_right_below_deranged == 0.0


def test_loss_gap_is_nonzero_once_the_model_reads_text():
    pipeline = perturbed_pipeline(read_text=True)
    gap = conditional_loss_gap(pipeline, random_videos(len(CAPTIONS)), CAPTIONS, timesteps=FEW_TIMESTEPS, batch_size=4)
    assert abs(gap.gap) > 1e-5 * gap.right
    assert gap.null != gap.right


def test_model_that_needs_its_caption_has_positive_gap_and_perfect_identification():
    videos = random_videos(len(CAPTIONS))
    pipeline = text_sensitive_pipeline(videos)
    gap = conditional_loss_gap(pipeline, videos, CAPTIONS, timesteps=FEW_TIMESTEPS, batch_size=5)
    expected_right = (0.1 * videos).pow(2).mean().item()
    assert gap.right == pytest.approx(expected_right, rel=1e-5)
    wrong = gap.derangement
    expected_deranged = np.mean([(videos[clip] - 0.9 * videos[wrong[clip]]).pow(2).mean().item() for clip in range(len(CAPTIONS))])
    assert gap.deranged == pytest.approx(expected_deranged, rel=1e-5)
    assert gap.null == pytest.approx(videos.pow(2).mean().item(), rel=1e-5)
    assert gap.gap > 0 and gap.relative_gap > 1 and gap.fraction_right_below_deranged == 1.0
    identification = caption_identification(pipeline, videos, CAPTIONS, timesteps=FEW_TIMESTEPS, batch_size=5)
    assert identification.accuracy == 1.0 and identification.mean_rank == 1.0


def test_identification_with_fewer_candidates_keeps_the_true_caption_first():
    videos = random_videos(len(CAPTIONS))
    pipeline = text_sensitive_pipeline(videos)
    identification = caption_identification(pipeline, videos, CAPTIONS, num_candidates=2, timesteps=(0.5,), seed=3)
    assert identification.num_candidates == 2 and identification.chance == 0.5 and identification.accuracy == 1.0
    for caption, candidates in zip(CAPTIONS, identification.candidates):
        assert candidates[0] == caption and len(set(candidates)) == 2
    for bad in (1, len(CAPTIONS) + 1):
        with pytest.raises(ValueError, match="num_candidates"):
            caption_identification(pipeline, videos, CAPTIONS, num_candidates=bad)


def test_each_clip_gets_the_same_noise_whatever_the_batch():
    pipeline = perturbed_pipeline(read_text=True)
    videos = random_videos(len(CAPTIONS))
    one_at_a_time = conditional_loss_gap(pipeline, videos, CAPTIONS, timesteps=FEW_TIMESTEPS, batch_size=1)
    all_together = conditional_loss_gap(pipeline, videos, CAPTIONS, timesteps=FEW_TIMESTEPS, batch_size=24)
    assert one_at_a_time.per_clip.right == pytest.approx(all_together.per_clip.right, rel=1e-5)
    assert one_at_a_time.per_clip.deranged == pytest.approx(all_together.per_clip.deranged, rel=1e-5)
    assert one_at_a_time.per_clip.null == pytest.approx(all_together.per_clip.null, rel=1e-5)
    # The first three clips alone: a clip's noise does not depend on how many clips are scored.
    subset = conditional_loss_gap(pipeline, videos[:3], CAPTIONS[:3], timesteps=FEW_TIMESTEPS, batch_size=4)
    assert subset.per_clip.right == pytest.approx(all_together.per_clip.right[:3], rel=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------------------------------------------


def test_prompt_and_seed_give_the_same_video_alone_or_among_other_prompts():
    pipeline = perturbed_pipeline(read_text=True)
    # DDPM draws fresh noise at every step too, the hard case for batch independence.
    videos = generate_for_prompts(pipeline, CAPTIONS[:3], seeds=(0, 1), num_inference_steps=2, guidance_scale=2.0, scheduler="ddpm")
    assert videos.shape == (3, 2, 3, 4, 8, 8) and videos.dtype == torch.float32
    assert videos.min() >= -1 and videos.max() <= 1
    alone = generate_for_prompts(pipeline, [CAPTIONS[1]], seeds=(1,), num_inference_steps=2, guidance_scale=2.0, scheduler="ddpm")
    assert torch.equal(alone[0, 0], videos[1, 1])
    assert not torch.allclose(videos[0, 0], videos[1, 0])  # this model reads the text, so the check above means something
    assert not torch.allclose(videos[0, 0], videos[0, 1])


def test_seed_means_the_same_noise_for_every_prompt():
    pipeline = perturbed_pipeline(read_text=False)
    videos = generate_for_prompts(pipeline, CAPTIONS[:3], seeds=(0, 5), num_inference_steps=2, guidance_scale=1.0, scheduler="ddpm")
    for prompt in (1, 2):
        assert torch.equal(videos[prompt], videos[0])  # text-blind: prompt changes nothing at a fixed seed
    assert not torch.equal(videos[0, 0], videos[0, 1])


def test_prompts_share_a_batch_exactly_when_the_sampler_says_it_is_deterministic(monkeypatch):
    """generate_for_prompts asks the sampler (is_stochastic), not its name: a DDIM registered under a new name still
    batches the prompts, a DDPM under a new name still samples one prompt per call."""
    monkeypatch.setitem(SCHEDULERS, "renamed_ddim", DDIMScheduler)
    monkeypatch.setitem(SCHEDULERS, "renamed_ddpm", DDPMScheduler)
    pipeline = perturbed_pipeline(read_text=True)
    for sampler, batch_size in (("renamed_ddim", 3), ("dpm", 3), ("renamed_ddpm", 1), ("ddpm", 1)):
        batch_sizes = set()
        handle = pipeline.unet.register_forward_pre_hook(lambda module, inputs: batch_sizes.add(inputs[0].shape[0]))
        generate_for_prompts(pipeline, CAPTIONS[:3], seeds=(0, 1), num_inference_steps=2, guidance_scale=1.0, scheduler=sampler)
        handle.remove()
        assert batch_sizes == {batch_size}, sampler


class RecordingZeroUNet(nn.Module):
    """Predicts x_0 = 0 (prediction_type="sample") and records every sample it is given, so the DDPM posterior
    reduces to x_{t-1} = c_t x_t + sqrt(beta_tilde_t) z with known c_t, beta_tilde_t (DDPM eq. 7)."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.device_anchor = nn.Parameter(torch.zeros(1))  # pipeline.device reads the UNet's parameters
        self.inputs: list[torch.Tensor] = []

    def forward(self, sample, timesteps, text_states, text_mask):
        self.inputs.append(sample.detach().clone())
        return torch.zeros_like(sample)  # (b, c, f, h, w)


def test_ddpm_step_noise_is_fresh_not_the_initial_noise_again():
    """After the first of 50 DDPM steps, x has variance c^2 + beta_tilde (independent z), not (c + sqrt(beta_tilde))^2,
    which is what x_T reused as the first step's noise gives (about 1.9): one generator must serve x_T and the steps."""
    pipeline = tiny_pipeline(prediction_type="sample")
    pipeline.unet = RecordingZeroUNet(pipeline.unet.config)
    num_inference_steps = 50
    for seed in (0, 1):
        pipeline.unet.inputs.clear()
        generate_for_prompts(pipeline, CAPTIONS[:1], seeds=(seed,), num_inference_steps=num_inference_steps, guidance_scale=1.0,
                             scheduler="ddpm", height=32, width=32)
        initial, after_first_step = pipeline.unet.inputs[0], pipeline.unet.inputs[1]  # (1, c, f, h, w) each: x_T, x_{t1}
        sampler = pipeline.scheduler
        sampler.set_timesteps(num_inference_steps)
        first, second = sampler.timesteps[:2].tolist()
        alpha_bar_t, alpha_bar_prev = sampler.alphas_cumprod[first].item(), sampler.alphas_cumprod[second].item()
        alpha_t = alpha_bar_t / alpha_bar_prev
        coefficient_xt = alpha_t**0.5 * (1 - alpha_bar_prev) / (1 - alpha_bar_t)  # DDPM eq. 7, x_0 term is 0
        variance = (1 - alpha_bar_prev) / (1 - alpha_bar_t) * (1 - alpha_t)  # beta_tilde
        step_noise = (after_first_step - coefficient_xt * initial) / variance**0.5  # the z the sampler drew
        correlation = torch.corrcoef(torch.stack([step_noise.flatten(), initial.flatten()]))[0, 1].item()
        assert abs(correlation) < 0.1, f"seed {seed}: step noise has correlation {correlation:.3f} with x_T; it must be a fresh draw"
        expected = coefficient_xt**2 + variance  # about 1; the reused noise gives (c + sqrt(beta_tilde))^2
        assert after_first_step.var().item() == pytest.approx(expected, abs=0.1)
        assert (coefficient_xt + variance**0.5) ** 2 > expected + 0.5  # the two cases are far apart at this step


class FakeDetector(nn.Module):
    """The I3D TorchScript calling convention with cheap 6-d features (channel means and spreads)."""

    def forward(self, videos: torch.Tensor, rescale: bool = False, resize: bool = True, return_features: bool = True) -> torch.Tensor:
        return torch.cat([videos.mean(dim=(2, 3, 4)), videos.std(dim=(2, 3, 4))], dim=1)  # (n, 6)


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory):
    """evaluate_conditioning on 4 in-memory 12x12 clips (big enough for SSIM), 2 steps, 2 scales, FVD with min 2 clips."""
    pipeline = perturbed_pipeline(read_text=True)
    videos = random_videos(len(CAPTIONS), size=12)
    dataset = [{"video": video, "caption": caption, "name": f"clip_{index}"} for index, (video, caption) in enumerate(zip(videos, CAPTIONS))]
    dataset.append({"video": videos[0], "caption": CAPTIONS[0], "name": "duplicate"})  # a second clip of a caption is not scored
    detector_path = tmp_path_factory.mktemp("fvd") / "detector.pt"
    with warnings.catch_warnings():  # torch 2.13 deprecates torch.jit, which the I3D TorchScript file needs
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(FakeDetector()), str(detector_path))
        fvd_metric = FrechetVideoDistance(detector_path, min_clips=2, allow_small_sample=True)
    result = evaluate_conditioning(pipeline, dataset, seeds=(0, 1), num_inference_steps=2, guidance_scales=(1, 2), loss_timesteps=FEW_TIMESTEPS,
                                   identification_timesteps=(0.5,), batch_size=8, fvd_metric=fvd_metric)
    return result, videos


def test_evaluate_conditioning_returns_every_measure(evaluation):
    result, videos = evaluation
    assert result.prompts == CAPTIONS and result.num_clips == 4 and result.clip_names[0] == "clip_0"
    assert result.caption_identification.num_candidates == 4
    gap = result.loss_gap
    for value in (gap.right, gap.deranged, gap.null, gap.gap, gap.relative_gap, gap.fraction_right_below_deranged):
        assert math.isfinite(value)
    assert set(result.guidance) == {"1", "2"}
    for scores in result.guidance.values():
        for space in ("pixel", "motion"):
            retrieval = scores.retrieval[space]
            assert list(retrieval.top) == list(retrieval.chance_top) == [1] and retrieval.mean_rank >= 1  # top5 needs more than 5 clips
            assert math.isfinite(scores.prompt_sensitivity[space].ratio) and math.isfinite(scores.prompt_sensitivity[space].ratio_same_seed)
        for value in (scores.psnr, scores.psnr_other_clip, scores.ssim, scores.ssim_other_clip):
            assert math.isfinite(value)
        assert scores.temporal.real_mean > 0 and scores.fvd.num_real_clips == 4 and scores.fvd.num_fake_clips == 8
    assert set(result.timing_seconds) == {"loss_gap", "caption_identification", "generation_guidance_1", "metrics_guidance_1",
                                          "generation_guidance_2", "metrics_guidance_2"}
    assert torch.equal(result.videos.real, videos) and result.videos.generated["2"].shape == videos.shape


def test_evaluate_conditioning_refuses_fvd_below_its_minimum_before_any_work():
    class TooSmall:
        min_clips = 512

    dataset = [{"video": video, "caption": caption} for video, caption in zip(random_videos(4), CAPTIONS)]
    with pytest.raises(ValueError, match="512"):
        evaluate_conditioning(perturbed_pipeline(read_text=True), dataset, fvd_metric=TooSmall())


@pytest.mark.parametrize("prompts, message", [(["not a caption", CAPTIONS[0]], "no clip"), ([CAPTIONS[0]], "at least 2"),
                                              ([CAPTIONS[0], CAPTIONS[0]], "duplicates")])
def test_evaluate_conditioning_rejects_prompts_without_one_clip_each(prompts, message):
    dataset = [{"video": video, "caption": caption} for video, caption in zip(random_videos(4), CAPTIONS)]
    with pytest.raises(ValueError, match=message):
        evaluate_conditioning(perturbed_pipeline(read_text=True), dataset, prompts=prompts)


# ---------------------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------------------


def test_report_writes_standard_json_markdown_with_chance_levels_and_the_comparison_picture(evaluation, tmp_path):
    result, videos = evaluation
    result = dataclasses.replace(result, loss_gap=dataclasses.replace(result.loss_gap, relative_gap=math.inf))  # must survive as a string, not Infinity
    files = write_report(result, tmp_path)

    def refuse(constant):
        raise AssertionError(f"non-standard JSON constant {constant}")

    saved = json.loads(files.json.read_text(), parse_constant=refuse)
    assert "videos" not in saved and saved["loss_gap"]["relative_gap"] == "inf"
    assert saved["guidance"]["2"]["psnr"] == pytest.approx(result.guidance["2"].psnr)

    markdown = files.markdown.read_text()
    accuracy = result.caption_identification.accuracy
    assert f"| accuracy | {accuracy:.4g} | 0.25 |" in markdown  # 4-way: chance 1/4 beside the value
    assert "retrieval top1 (pixel) | 0.25 |" in markdown and "comparison.png" in markdown and "guidance 2" in markdown

    picture = np.array(Image.open(files.picture))
    scale = math.ceil(MIN_PICTURE_FRAME_SIZE / 12)  # 12x12 frames are enlarged to 72x72
    block_height = 3 * 12 * scale + SEPARATOR_PIXELS  # real strip, then guidance 1 and 2
    assert picture.shape == (4 * block_height, 4 * 12 * scale, 3)
    real_first_frame = ((videos[1, :, 0].permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()  # (h, w, 3)
    assert np.array_equal(picture[block_height:block_height + 12 * scale:scale, :12 * scale:scale], real_first_frame)


def test_evaluation_json_keeps_the_keys_it_had_before_results_were_typed(evaluation, tmp_path):
    result, _ = evaluation
    files = write_report(result, tmp_path)
    assert key_paths(json.loads(files.json.read_text())) == REFERENCE_KEYS["evaluate_conditioning_12x12_fvd"]
