#!/usr/bin/env python
"""Quick component check: `python test_models.py` prints each component's shapes and parameter counts.

Also collected by pytest (the functions below are tests), so the smoke check cannot silently rot.
"""

from __future__ import annotations

import sys

import torch

from text2sign.models.objective import DenoisingObjective
from text2sign.models.pipeline import PipelineConfig, TextToSignPipeline, build_pipeline
from text2sign.models.scheduler import SCHEDULERS, SchedulerConfig, make_scheduler
from text2sign.models.text_encoder import TextEncoderConfig
from text2sign.models.unet3d import UNet3DConfig

CAPTIONS = ["Hello", "How are you?", "Thank you"]


def build_small_pipeline() -> TextToSignPipeline:
    torch.manual_seed(0)
    return build_pipeline(CAPTIONS, unet=UNet3DConfig(model_channels=32, channel_mult=(1, 2), attention_levels=(1,), num_res_blocks=1),
                          text_encoder=TextEncoderConfig(kind="lstm", embed_dim=32, hidden_dim=32, num_layers=1),
                          pipeline=PipelineConfig(num_frames=4, image_size=16))


def test_text_encoder_shapes(report=print):
    pipeline = build_small_pipeline()
    encoding = pipeline.text_encoder.encode(CAPTIONS)
    assert encoding.states.shape[0] == 3 and encoding.states.shape[2] == pipeline.text_encoder.output_dim
    parameters = sum(p.numel() for p in pipeline.text_encoder.parameters())
    report(f"text encoder (lstm): states {tuple(encoding.states.shape)}, mask {tuple(encoding.mask.shape)}, {parameters:,} parameters")


def test_unet_forward_backward(report=print):
    pipeline = build_small_pipeline()
    videos = torch.rand(2, 3, 4, 16, 16) * 2 - 1  # (b, c, f, h, w)
    loss = DenoisingObjective.for_pipeline(pipeline)(videos, CAPTIONS[:2], generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss)
    report(f"unet: input {tuple(videos.shape)}, {pipeline.unet.num_parameters():,} parameters, training loss {loss.item():.4f}")


def test_schedulers(report=print):
    for name in SCHEDULERS:
        scheduler = make_scheduler(name, SchedulerConfig())
        scheduler.set_timesteps(10)
        assert len(scheduler.timesteps) == 10
        report(f"scheduler {name}: 10 steps from t={int(scheduler.timesteps[0])} to t={int(scheduler.timesteps[-1])}, alpha_bar_T={float(scheduler.alphas_cumprod[-1]):.1e}")


def test_sampling(report=print):
    pipeline = build_small_pipeline()
    videos = pipeline(CAPTIONS, num_inference_steps=3, guidance_scale=4.0, generator=torch.Generator().manual_seed(0), progress=False)
    assert videos.shape == (3, 4, 16, 16, 3) and videos.dtype == torch.uint8
    report(f"pipeline: sampled {tuple(videos.shape)} uint8 with guidance 4 in 3 DDIM steps")


if __name__ == "__main__":
    for check in (test_text_encoder_shapes, test_unet_forward_backward, test_schedulers, test_sampling):
        check()
    print("all components OK")
    sys.exit(0)
