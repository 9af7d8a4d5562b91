"""3D UNet denoiser: factorised (2+1)D residual blocks, spatial/cross/temporal attention, text conditioning.

The text reaches the video by two routes, on purpose:
  1. cross-attention at the `attention_levels` resolutions, masked to the real text tokens, so each
     position can look up the words that matter to it;
  2. the masked mean of the text tokens, projected and added to the timestep embedding that scales and
     shifts every residual block (`pooled_text_conditioning`), a global route that cannot be ignored by
     attention collapsing onto one token. The prior attempt's model never used its text; both routes are
     checked by tests that swap captions after a few steps of training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from text2sign.models.attention import VideoTransformerBlock
from text2sign.models.resnet import Downsample, ResBlock3D, Upsample, timestep_embedding
from text2sign.json_io import read_json
from text2sign.models.serialization import CONFIG_NAME, WEIGHTS_NAME, config_from_dict, load_state_dict_strict, save_module


@dataclass
class UNet3DConfig:
    in_channels: int = 3  # RGB video in
    out_channels: int = 3  # the prediction (noise, v or x_0) has the video's channels
    model_channels: int = 128  # channels at full resolution; level i has model_channels * channel_mult[i]
    channel_mult: tuple[int, ...] = (1, 2, 2, 2)  # one entry per resolution level; height/width halve between levels
    num_res_blocks: int = 2  # residual blocks per level on the way down (one more on the way up, as in DDPM)
    attention_levels: tuple[int, ...] = (2, 3)  # levels with spatial, cross and temporal attention
    attention_head_dim: int = 32  # channels per attention head; must divide every attention level's channels
    text_dim: int | None = None  # width of the text encoder's token states; None: build_pipeline takes the encoder's
    norm_groups: int = 32  # GroupNorm groups; must divide every level's channels
    dropout: float = 0.0  # in every residual block, between its two convolutions
    pooled_text_conditioning: bool = True  # add the masked-mean text embedding to the timestep embedding
    gradient_checkpointing: bool = False  # recompute block activations in backward: less memory, ~30% more time

    def __post_init__(self):
        self.channel_mult = tuple(self.channel_mult)
        self.attention_levels = tuple(self.attention_levels)
        if not self.channel_mult or min(self.channel_mult) < 1:
            raise ValueError(f"channel_mult must be a non-empty tuple of positive ints, got {self.channel_mult}")
        if self.model_channels < 1 or self.num_res_blocks < 1 or (self.text_dim is not None and self.text_dim < 1):
            raise ValueError("model_channels, num_res_blocks and text_dim must be positive")
        for level in self.attention_levels:
            if not 0 <= level < len(self.channel_mult):
                raise ValueError(f"attention level {level} does not exist: channel_mult has {len(self.channel_mult)} levels")
        for channels in self.level_channels:
            if channels % self.norm_groups:
                raise ValueError(f"norm_groups={self.norm_groups} must divide every level's channels {self.level_channels}")
        for level in self.attention_levels:
            if self.level_channels[level] % self.attention_head_dim:
                raise ValueError(f"attention_head_dim={self.attention_head_dim} must divide level {level}'s {self.level_channels[level]} channels")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def level_channels(self) -> list[int]:
        return [self.model_channels * multiplier for multiplier in self.channel_mult]

    @property
    def embedding_dim(self) -> int:
        """Width of the timestep embedding every residual block reads (and extra conditions add to)."""
        return 4 * self.model_channels

    @property
    def size_multiple(self) -> int:
        """Height and width must be divisible by this (one halving between consecutive levels)."""
        return 2 ** (len(self.channel_mult) - 1)


class UNetLayer(nn.Module):
    """One residual block, followed by a video transformer block at attention levels."""

    def __init__(self, in_channels: int, out_channels: int, config: UNet3DConfig, embedding_dim: int, with_attention: bool):
        super().__init__()
        self.res_block = ResBlock3D(in_channels, out_channels, embedding_dim, config.norm_groups, config.dropout)
        self.transformer = VideoTransformerBlock(out_channels, config.text_dim, config.attention_head_dim) if with_attention else None

    def forward(self, video, embedding, text_states, text_mask):
        video = self.res_block(video, embedding)  # (b, c_out, f, h, w)
        if self.transformer is not None:
            video = self.transformer(video, text_states, text_mask)  # (b, c_out, f, h, w)
        return video


class UNet3D(nn.Module):
    """Denoiser epsilon/v/x0_theta(x_t, t, text): (b, c, f, h, w) in, same shape out."""

    def __init__(self, config: UNet3DConfig):
        super().__init__()
        if config.text_dim is None:
            raise ValueError("UNet3DConfig.text_dim is None: set it to the text encoder's output_dim, or build the pipeline with build_pipeline(), which does")
        self.config = config
        channels = config.model_channels
        embedding_dim = config.embedding_dim
        self.time_embedding = nn.Sequential(nn.Linear(channels, embedding_dim), nn.SiLU(), nn.Linear(embedding_dim, embedding_dim))
        self.text_pool_projection = nn.Linear(config.text_dim, embedding_dim) if config.pooled_text_conditioning else None
        self.conv_in = nn.Conv3d(config.in_channels, channels, kernel_size=(1, 3, 3), padding=(0, 1, 1))

        self.down_layers = nn.ModuleList()
        skip_channels = [channels]
        for level, level_channels in enumerate(config.level_channels):
            for _ in range(config.num_res_blocks):
                self.down_layers.append(UNetLayer(channels, level_channels, config, embedding_dim, level in config.attention_levels))
                channels = level_channels
                skip_channels.append(channels)
            if level < len(config.channel_mult) - 1:
                self.down_layers.append(Downsample(channels))
                skip_channels.append(channels)

        self.mid_layers = nn.ModuleList([
            UNetLayer(channels, channels, config, embedding_dim, with_attention=True),
            UNetLayer(channels, channels, config, embedding_dim, with_attention=False),
        ])

        self.up_layers = nn.ModuleList()
        for level, level_channels in reversed(list(enumerate(config.level_channels))):
            for block_index in range(config.num_res_blocks + 1):
                self.up_layers.append(UNetLayer(channels + skip_channels.pop(), level_channels, config, embedding_dim, level in config.attention_levels))
                channels = level_channels
            if level > 0:
                self.up_layers.append(Upsample(channels))

        self.norm_out = nn.GroupNorm(config.norm_groups, channels)
        self.conv_out = nn.Conv3d(channels, config.out_channels, kernel_size=(1, 3, 3), padding=(0, 1, 1))
        # Zero output: the untrained model predicts 0 (the mean of epsilon and v), a stable start.
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)
        self._zero_init_residual_outputs()

    def _zero_init_residual_outputs(self) -> None:
        """All init in one place: every attention/feed-forward branch's output projection starts at zero."""
        for module in self.modules():
            if isinstance(module, VideoTransformerBlock):
                for branch in (module.spatial_attention, module.cross_attention, module.temporal_attention):
                    nn.init.zeros_(branch.attention.to_out.weight)
                    nn.init.zeros_(branch.attention.to_out.bias)
                nn.init.zeros_(module.feed_forward.project_out.weight)
                nn.init.zeros_(module.feed_forward.project_out.bias)

    def _check_inputs(self, sample, timesteps, text_states, text_mask) -> None:
        config = self.config
        if sample.ndim != 5 or sample.shape[1] != config.in_channels:
            raise ValueError(f"sample must be (b, {config.in_channels}, f, h, w), got {tuple(sample.shape)}")
        height, width = sample.shape[-2:]
        if height % config.size_multiple or width % config.size_multiple:
            raise ValueError(
                f"height and width must be divisible by {config.size_multiple} ({len(config.channel_mult)} levels), "
                f"got {height}x{width}; pick an image size that is a multiple of {config.size_multiple}"
            )
        batch = sample.shape[0]
        if timesteps.shape != (batch,):
            raise ValueError(f"timesteps must be (b,)=({batch},), got {tuple(timesteps.shape)}")
        if text_states.ndim != 3 or text_states.shape[0] != batch or text_states.shape[2] != config.text_dim:
            raise ValueError(f"text_states must be (b={batch}, n, text_dim={config.text_dim}), got {tuple(text_states.shape)}")
        if text_mask.shape != text_states.shape[:2] or text_mask.dtype != torch.bool:
            raise ValueError(f"text_mask must be a bool tensor of shape {tuple(text_states.shape[:2])}, got {text_mask.dtype} {tuple(text_mask.shape)}")

    def _run(self, layer: UNetLayer, video, embedding, text_states, text_mask):
        if self.config.gradient_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(layer, video, embedding, text_states, text_mask, use_reentrant=False)
        return layer(video, embedding, text_states, text_mask)

    def forward(self, sample: torch.Tensor, timesteps: torch.Tensor, text_states: torch.Tensor, text_mask: torch.Tensor,
                extra_embedding: torch.Tensor | None = None) -> torch.Tensor:
        """sample (b, c, f, h, w), timesteps (b,) or scalar, text_states (b, n, d), text_mask (b, n) bool; extra_embedding
        (b, 4c) or (b, f, 4c), added to the timestep embedding (the signer and sign track, models/sign_conditioning.py)."""
        if timesteps.ndim == 0:
            timesteps = timesteps.expand(sample.shape[0])  # (b,)
        self._check_inputs(sample, timesteps, text_states, text_mask)
        embedding = self.time_embedding(timestep_embedding(timesteps, self.config.model_channels))  # (b, 4c)
        if self.text_pool_projection is not None:
            weights = text_mask.to(text_states.dtype).unsqueeze(-1)  # (b, n, 1)
            pooled = (text_states * weights).sum(1) / weights.sum(1).clamp(min=1.0)  # (b, d)
            embedding = embedding + self.text_pool_projection(pooled)  # (b, 4c)
        if extra_embedding is not None:
            if extra_embedding.shape[0] != sample.shape[0] or extra_embedding.shape[-1] != embedding.shape[-1] or (
                    extra_embedding.ndim == 3 and extra_embedding.shape[1] != sample.shape[2]):
                raise ValueError(f"extra_embedding must be (b={sample.shape[0]}, {embedding.shape[-1]}) or (b, f={sample.shape[2]}, {embedding.shape[-1]}), "
                                 f"got {tuple(extra_embedding.shape)}")
            embedding = (embedding[:, None] if extra_embedding.ndim == 3 else embedding) + extra_embedding.to(embedding.dtype)  # (b, [f,] 4c)

        video = self.conv_in(sample)  # (b, c, f, h, w)
        skips = [video]
        for layer in self.down_layers:
            if isinstance(layer, UNetLayer):
                video = self._run(layer, video, embedding, text_states, text_mask)  # (b, c_level, f, h_level, w_level)
            else:
                video = layer(video)  # (b, c_level, f, h_level/2, w_level/2)
            skips.append(video)
        for layer in self.mid_layers:
            video = self._run(layer, video, embedding, text_states, text_mask)  # (b, c_last, f, h_min, w_min)
        for layer in self.up_layers:
            if isinstance(layer, UNetLayer):
                video = self._run(layer, torch.cat([video, skips.pop()], dim=1), embedding, text_states, text_mask)  # (b, c_level, f, h_level, w_level)
            else:
                video = layer(video)  # (b, c_level, f, 2h_level, 2w_level)
        return self.conv_out(F.silu(self.norm_out(video)))  # (b, c_out, f, h, w)

    def num_parameters(self) -> int:
        return sum(parameter.numel() for parameter in self.parameters())

    def save_pretrained(self, directory: str | Path) -> None:
        save_module(self, self.config, directory)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "UNet3D":
        """Rebuild from `config.json`, then load `model.safetensors` strictly (a wrong key names itself)."""
        directory = Path(directory)
        config = config_from_dict(UNet3DConfig, read_json(directory / CONFIG_NAME))
        model = cls(config)
        load_state_dict_strict(model, directory / WEIGHTS_NAME)
        return model
