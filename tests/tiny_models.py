"""Tiny configurations shared by the model, pipeline and training tests: seconds on a CPU."""

from __future__ import annotations

import torch

from text2sign.models.pipeline import PipelineConfig, TextToSignPipeline
from text2sign.models.scheduler import SchedulerConfig, make_scheduler
from text2sign.models.text_encoder import TextEncoderConfig, build_text_encoder
from text2sign.models.unet3d import UNet3D, UNet3DConfig

CAPTIONS = ["hello there", "thank you very much", "how are you?", "good morning"]


def tiny_unet_config(text_dim: int = 16, **overrides) -> UNet3DConfig:
    values = dict(model_channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_levels=(1,), attention_head_dim=8, norm_groups=4, text_dim=text_dim)
    values.update(overrides)
    return UNet3DConfig(**values)


def tiny_text_encoder(captions=CAPTIONS):
    return build_text_encoder(TextEncoderConfig(kind="lstm", embed_dim=16, hidden_dim=8, num_layers=1), captions=list(captions))


def tiny_pipeline(seed: int = 0, prediction_type: str = "v_prediction", captions=CAPTIONS, **pipeline_overrides) -> TextToSignPipeline:
    torch.manual_seed(seed)
    text_encoder = tiny_text_encoder(captions)
    unet = UNet3D(tiny_unet_config(text_dim=text_encoder.output_dim))
    scheduler = make_scheduler("ddpm", SchedulerConfig(prediction_type=prediction_type))
    config = PipelineConfig(num_frames=4, image_size=8, **pipeline_overrides)
    return TextToSignPipeline(unet, scheduler, text_encoder, config)
