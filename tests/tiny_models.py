"""Tiny configurations shared by the model, pipeline and training tests: seconds on a CPU."""

from __future__ import annotations

import torch

from text2sign.models.pipeline import PipelineConfig, TextToSignPipeline, build_pipeline
from text2sign.models.scheduler import SchedulerConfig
from text2sign.models.text_encoder import TextEncoderConfig, build_text_encoder
from text2sign.models.unet3d import UNet3DConfig

CAPTIONS = ["hello there", "thank you very much", "how are you?", "good morning"]


TINY_TEXT_ENCODER = TextEncoderConfig(kind="lstm", embed_dim=16, hidden_dim=8, num_layers=1)


def tiny_unet_config(text_dim: int | None = 16, **overrides) -> UNet3DConfig:
    values = dict(model_channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_levels=(1,), attention_head_dim=8, norm_groups=4, text_dim=text_dim)
    values.update(overrides)
    return UNet3DConfig(**values)


def tiny_text_encoder(captions=CAPTIONS):
    return build_text_encoder(TINY_TEXT_ENCODER, captions=list(captions))


def tiny_pipeline(seed: int = 0, prediction_type: str = "v_prediction", captions=CAPTIONS, **pipeline_overrides) -> TextToSignPipeline:
    torch.manual_seed(seed)
    return build_pipeline(list(captions), tiny_unet_config(text_dim=None), TINY_TEXT_ENCODER, SchedulerConfig(prediction_type=prediction_type),
                          PipelineConfig(num_frames=4, image_size=8, **pipeline_overrides))


def tiny_signer_pipeline(signers=("woman-1", "man-1")) -> TextToSignPipeline:
    """tiny_pipeline with a signer embedding and random weights everywhere (untrained, every output projection is zero,
    so nothing would respond to the signer)."""
    from text2sign.models.sign_conditioning import build_sign_conditioner

    pipeline = tiny_pipeline()
    pipeline.sign_conditioner = build_sign_conditioner(pipeline.unet.config.embedding_dim, CAPTIONS, list(signers), None, True, False)
    with torch.no_grad():
        for parameter in pipeline.parameters():
            parameter.normal_(std=0.1)
    return pipeline
