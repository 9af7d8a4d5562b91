"""The training objective: a video, its caption and a random timestep -> the weighted denoising loss.

Its own module, as DiT's `diffusion.training_losses(model, x, t)`: the pipeline samples, this computes the loss,
and DDP wraps it directly (its `forward` is the loss). It holds the pipeline's own UNet and text encoder, not
copies, so a step on its parameters trains the pipeline.

Symbols (DDPM/DDIM papers): x_0 = clean video, epsilon = noise, t = timestep, alpha_bar_t = alphas_cumprod[t],
x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) epsilon, v = sqrt(alpha_bar_t) epsilon - sqrt(1 - alpha_bar_t) x_0.
"""

from __future__ import annotations

import torch
from torch import nn

from text2sign.models.pipeline import PipelineConfig, TextToSignPipeline
from text2sign.models.scheduler import Scheduler
from text2sign.models.sign_conditioning import SignConditioner
from text2sign.models.text_cache import TextEmbeddingCache
from text2sign.models.text_encoder import TextEncoder, TextEncoding
from text2sign.models.unet3d import UNet3D


class DenoisingObjective(nn.Module):
    """forward(videos, captions, generator) -> scalar loss: caption dropout, random t and noise, weighted MSE.

    Caption dropout (to the text encoder's null embedding, which guidance samples with) happens only in train
    mode: `objective.train()` turns it on, as with label dropout in DiT.
    """

    def __init__(self, unet: UNet3D, text_encoder: TextEncoder, scheduler: Scheduler, config: PipelineConfig,
                 text_cache: TextEmbeddingCache | None = None, sign_conditioner: SignConditioner | None = None):
        super().__init__()
        self.unet = unet  # registered first, as in the pipeline: the same parameter order
        self.text_encoder = text_encoder
        self.scheduler = scheduler
        self.config = config
        self.sign_conditioner = sign_conditioner  # the pipeline's signer / sign-track embedding, when it has one
        # A frozen encoder's states, looked up instead of computed (models/text_cache.py); a plain attribute, not a
        # module: it holds no parameters, and the null embedding stays the encoder's own.
        self.text_cache = text_cache

    @classmethod
    def for_pipeline(cls, pipeline: TextToSignPipeline, text_cache: TextEmbeddingCache | None = None) -> "DenoisingObjective":
        """The objective of `pipeline`, sharing its networks (no copies) and its training/eval mode."""
        objective = cls(pipeline.unet, pipeline.text_encoder, pipeline.scheduler, pipeline.config, text_cache, pipeline.sign_conditioner)
        objective.training = pipeline.training  # only the flag: the shared networks keep the modes they have
        return objective

    def target(self, videos: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        prediction_type = self.scheduler.config.prediction_type
        if prediction_type == "epsilon":
            return noise
        if prediction_type == "v_prediction":
            return self.scheduler.get_velocity(videos, noise, timesteps)  # Salimans & Ho 2022, sec. 4
        return videos  # "sample": predict x_0

    def loss_weights(self, timesteps: torch.Tensor) -> torch.Tensor:
        """Per-sample weights: 1 for "mse", min-SNR-gamma (Hang et al. 2023, eq. 9 and its v/x_0 variants) otherwise."""
        if self.config.loss_weighting == "mse":
            return torch.ones(timesteps.shape, device=timesteps.device)
        snr = self.scheduler.snr(timesteps).to(timesteps.device).float()  # (b,) alpha_bar / (1 - alpha_bar)
        clamped = torch.clamp(snr, max=self.config.min_snr_gamma)  # (b,)
        prediction_type = self.scheduler.config.prediction_type
        if prediction_type == "epsilon":
            return clamped / snr
        if prediction_type == "v_prediction":
            return clamped / (snr + 1)
        return clamped

    def per_sample_loss(self, videos: torch.Tensor, text: TextEncoding, timesteps: torch.Tensor, noise: torch.Tensor,
                        extra_embedding: torch.Tensor | None = None) -> torch.Tensor:
        """Unweighted denoising MSE per clip, (b,): the quantity validation and the evaluation's loss gap compare.
        extra_embedding: the sign conditioner's (b, [f,] 4c) (`sign_embedding`)."""
        noisy = self.scheduler.add_noise(videos, noise, timesteps)  # (b, c, f, h, w) x_t
        extra = {} if extra_embedding is None else {"extra_embedding": extra_embedding}  # only a conditioned model's UNet takes it
        prediction = self.unet(noisy, timesteps, text.states, text.mask, **extra)  # (b, c, f, h, w)
        target = self.target(videos, noise, timesteps)  # (b, c, f, h, w)
        return (prediction.float() - target.float()).pow(2).mean(dim=(1, 2, 3, 4))  # (b,)

    def sign_embedding(self, captions: list[str], num_frames: int, signers: list[str | None] | None = None, sign_positions: torch.Tensor | None = None,
                       sign_phases: torch.Tensor | None = None, drop_text: torch.Tensor | None = None,
                       drop_signer: torch.Tensor | None = None) -> torch.Tensor | None:
        """The sign conditioner's embedding (b, [f,] 4c) for these clips, or None without one. Clips without timing labels
        (sign_positions None) get the uniform prior the conditioner was built for."""
        if self.sign_conditioner is None:
            return None
        return self.sign_conditioner(list(captions), signers, sign_positions, sign_phases, drop_text=drop_text, drop_signer=drop_signer,
                                     num_frames=num_frames)

    def forward(self, videos: torch.Tensor, captions: list[str], generator: torch.Generator | None = None, signers: list[str | None] | None = None,
                sign_positions: torch.Tensor | None = None, sign_phases: torch.Tensor | None = None) -> torch.Tensor:
        """Caption dropout, random timesteps and noise, weighted denoising loss (scalar). signers, sign_positions and
        sign_phases (b, f): the batch's signer names and frame alignment, read by the sign conditioner when there is one.

        Draws come from `generator` on its own device (the videos' without one). The training loop's generator lives
        on the training device: noise drawn on the host and copied over would make every step wait for the GPU.
        """
        batch = videos.shape[0]
        num_train_timesteps = self.scheduler.config.num_train_timesteps
        draw_device = generator.device if generator is not None else videos.device
        timesteps = torch.randint(0, num_train_timesteps, (batch,), generator=generator, device=draw_device).to(videos.device)  # (b,)
        noise = torch.randn(videos.shape, generator=generator, device=draw_device, dtype=torch.float32).to(videos.device, videos.dtype)  # (b, c, f, h, w)
        drop = torch.rand(batch, generator=generator, device=draw_device).to(videos.device) < self.config.caption_dropout_prob  # (b,)
        if not self.training:
            drop = torch.zeros_like(drop)
        # The cache holds the training captions; a batch with a composed sentence (data/composition.py) is encoded, which
        # gives a frozen encoder's very states (it encodes each caption alone, as the cache was built).
        if self.text_cache is not None and self.text_cache.covers(list(captions)):
            text = self.text_encoder.with_null(self.text_cache.lookup(list(captions), videos.device), drop)  # (b, n, d), (b, n)
        else:
            text = self.text_encoder.encode(list(captions), drop)  # (b, n, d), (b, n)
        drop_signer = None
        if self.sign_conditioner is not None and self.sign_conditioner.has_signers:  # drawn only then: other runs keep their draws
            drop_signer = torch.rand(batch, generator=generator, device=draw_device).to(videos.device) < self.config.signer_dropout_prob  # (b,)
            if not self.training:
                drop_signer = torch.zeros_like(drop_signer)
        extra = self.sign_embedding(captions, videos.shape[2], signers, sign_positions, sign_phases, drop, drop_signer)  # (b, [f,] 4c) or None
        losses = self.per_sample_loss(videos, text, timesteps, noise, extra)  # (b,)
        return (losses * self.loss_weights(timesteps)).mean()
