import pytest
import torch

from text2sign.models.objective import DenoisingObjective
from text2sign.models.pipeline import PipelineConfig, TextToSignPipeline
from tiny_models import CAPTIONS, tiny_pipeline


def _perturb(pipeline, scale=0.05):
    """Leave the zero init so every path carries signal (as after some training)."""
    torch.manual_seed(1)
    for parameter in pipeline.unet.parameters():
        parameter.data.add_(scale * torch.randn_like(parameter))


def test_caption_dropout_uses_null_embedding():
    pipeline = tiny_pipeline()
    drop = torch.tensor([True, False, True])
    text = pipeline.encode_text(CAPTIONS[:3], drop)
    plain = pipeline.encode_text(CAPTIONS[:3])
    null = pipeline.text_encoder.null(1).states[0, 0]
    for row in (0, 2):
        torch.testing.assert_close(text.states[row, 0], null)
        assert text.mask[row].tolist() == [True] + [False] * (text.mask.shape[1] - 1)
    torch.testing.assert_close(text.states[1], plain.states[1])
    assert torch.equal(text.mask[1], plain.mask[1])


def test_swapping_captions_changes_the_prediction_after_a_few_steps():
    """Zero-initialised branches must not leave the text disconnected: after training on two clips that differ
    only through their captions, the right caption gives a lower loss than the swapped one."""
    torch.manual_seed(0)
    pipeline = tiny_pipeline(caption_dropout_prob=0.0, loss_weighting="mse")
    objective = DenoisingObjective.for_pipeline(pipeline)
    videos = torch.stack([torch.full((3, 4, 8, 8), 0.8), torch.full((3, 4, 8, 8), -0.8)])  # (2, c, f, h, w)
    captions = ["hello there", "thank you very much"]
    optimizer = torch.optim.Adam([p for p in pipeline.parameters() if p.requires_grad], lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    objective.train()
    for _ in range(60):
        optimizer.zero_grad()
        objective(videos, captions, generator=generator).backward()
        optimizer.step()
    objective.eval()
    with torch.no_grad():
        timesteps = torch.tensor([800, 800])
        noise = torch.randn(videos.shape, generator=torch.Generator().manual_seed(1))
        right = objective.per_sample_loss(videos, pipeline.encode_text(captions), timesteps, noise).mean()
        swapped = objective.per_sample_loss(videos, pipeline.encode_text(captions[::-1]), timesteps, noise).mean()
    assert swapped > 2 * right, (float(right), float(swapped))


def test_sampling_returns_uint8_video_and_is_seeded():
    pipeline = tiny_pipeline()
    _perturb(pipeline)
    videos = pipeline(["hello there", "good morning"], num_inference_steps=3, generator=torch.Generator().manual_seed(0), progress=False)
    assert videos.shape == (2, 4, 8, 8, 3) and videos.dtype == torch.uint8
    again = pipeline(["hello there", "good morning"], num_inference_steps=3, generator=torch.Generator().manual_seed(0), progress=False)
    assert torch.equal(videos, again)
    other_shape = pipeline("hello there", num_frames=2, height=16, width=8, num_inference_steps=2, progress=False)
    assert other_shape.shape == (1, 2, 16, 8, 3)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpm"])
def test_guidance_uses_the_training_null_embedding(sampler):
    pipeline = tiny_pipeline()
    _perturb(pipeline)
    seen = []
    handle = pipeline.unet.register_forward_hook(lambda module, args, output: seen.append((args[2].clone(), args[3].clone())))
    pipeline(["hello there"], num_inference_steps=2, guidance_scale=3.0, scheduler=sampler, progress=False)
    handle.remove()
    states, mask = seen[0]
    assert states.shape[0] == 2  # conditional row, then null row
    torch.testing.assert_close(states[1, 0], pipeline.text_encoder.null_embedding[0, 0])
    assert mask[1].tolist() == [True] + [False] * (mask.shape[1] - 1)


def test_guidance_scale_one_is_plain_conditional_sampling():
    pipeline = tiny_pipeline()
    _perturb(pipeline)
    calls = []
    handle = pipeline.unet.register_forward_hook(lambda module, args, output: calls.append(args[0].shape[0]))
    pipeline(["hello there"], num_inference_steps=2, guidance_scale=1.0, progress=False)
    handle.remove()
    assert calls == [1, 1]
    with pytest.raises(ValueError, match="guidance_scale"):
        pipeline(["hello there"], guidance_scale=0.5, progress=False)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpm"])
def test_init_videos_start_part_way_from_the_noised_init(sampler):
    """SDEdit: strength s runs only the last round(s * steps) steps, the first from add_noise(init, eps, t_start)."""
    pipeline = tiny_pipeline()
    _perturb(pipeline)
    init = torch.rand(1, 3, 4, 8, 8) * 2 - 1  # (b, c, f, h, w) in [-1, 1]
    noise = torch.randn(1, 3, 4, 8, 8)
    seen = []
    handle = pipeline.unet.register_forward_hook(lambda module, args, output: seen.append((args[0].clone(), args[1].clone())))
    common = dict(num_inference_steps=10, scheduler=sampler, guidance_scale=1.0, progress=False, output_type="tensor",
                  latents=noise)
    seeded = lambda: torch.Generator().manual_seed(0)  # the stochastic samplers' step noise, the same in each call
    edited = pipeline(["hello there"], init_videos=init, strength=0.3, generator=seeded(), **common)
    handle.remove()
    reference = pipeline.scheduler.__class__(pipeline.scheduler.config)
    reference.set_timesteps(10)
    start = reference.timesteps[7]  # 10 - round(0.3 * 10): the last three steps
    assert [int(timesteps[0]) for _, timesteps in seen] == reference.timesteps[7:].tolist()
    torch.testing.assert_close(seen[0][0], pipeline.scheduler.add_noise(init, noise, torch.tensor([int(start)])))
    # strength 1 ignores the init: the same video as sampling from pure noise
    from_noise = pipeline(["hello there"], generator=seeded(), **common)
    assert torch.equal(pipeline(["hello there"], init_videos=init, strength=1.0, generator=seeded(), **common), from_noise)
    assert not torch.equal(edited, from_noise)


def test_init_videos_errors():
    pipeline = tiny_pipeline()
    with pytest.raises(ValueError, match="strength must be in"):
        pipeline(["hello there"], init_videos=torch.zeros(1, 3, 4, 8, 8), strength=0.0, num_inference_steps=2, progress=False)
    with pytest.raises(ValueError, match="init_videos must have shape"):
        pipeline(["hello there"], init_videos=torch.zeros(1, 3, 2, 8, 8), strength=0.5, num_inference_steps=2, progress=False)


def test_save_and_load_round_trip_with_ema(tmp_path):
    from text2sign.models.ema import ExponentialMovingAverage

    pipeline = tiny_pipeline()
    _perturb(pipeline)
    pipeline.ema = ExponentialMovingAverage(pipeline)
    for parameter in pipeline.unet.parameters():
        parameter.data.add_(0.1)  # live weights now differ from the EMA
    pipeline.save_pretrained(tmp_path)
    loaded = TextToSignPipeline.from_pretrained(tmp_path)
    assert loaded.config == pipeline.config and loaded.unet.config == pipeline.unet.config
    for use_ema in (True, False):
        expected = pipeline(["hello there"], num_inference_steps=2, generator=torch.Generator().manual_seed(0), use_ema=use_ema, progress=False)
        actual = loaded(["hello there"], num_inference_steps=2, generator=torch.Generator().manual_seed(0), use_ema=use_ema, progress=False)
        assert torch.equal(expected, actual)


def test_mismatched_text_dim_is_a_clear_error():
    from text2sign.models.unet3d import UNet3D
    from tiny_models import tiny_text_encoder, tiny_unet_config
    from text2sign.models.scheduler import make_scheduler, SchedulerConfig

    with pytest.raises(ValueError, match="text_dim"):
        TextToSignPipeline(UNet3D(tiny_unet_config(text_dim=7)), make_scheduler("ddim", SchedulerConfig()), tiny_text_encoder())


def test_build_pipeline_takes_the_unets_text_width_from_the_encoder():
    from text2sign.models.pipeline import build_pipeline
    from text2sign.models.unet3d import UNet3D
    from tiny_models import TINY_TEXT_ENCODER, tiny_unet_config

    unet_config = tiny_unet_config(text_dim=None)
    pipeline = build_pipeline(CAPTIONS, unet_config, TINY_TEXT_ENCODER, pipeline=PipelineConfig(num_frames=4, image_size=8))
    assert pipeline.unet.config.text_dim == pipeline.text_encoder.output_dim == 2 * TINY_TEXT_ENCODER.hidden_dim
    with pytest.raises(ValueError, match="text_dim is None"):
        UNet3D(unet_config)


def test_pipeline_config_validation():
    with pytest.raises(ValueError, match="caption_dropout_prob"):
        PipelineConfig(caption_dropout_prob=1.0)
    with pytest.raises(ValueError, match="sampler"):
        PipelineConfig(sampler="euler")
