"""Convolutional pieces of the video UNet: timestep embedding, factorised (2+1)D residual block, resampling.

Space and time are factorised (Tran et al. 2018, R(2+1)D): a 1x3x3 spatial convolution followed by a
3x1x1 temporal one costs 9c^2 + 3c^2 weights per layer instead of the 27c^2 of a full 3x3x3 kernel and
adds a non-linearity-free but separately learned motion filter. Frames are never downsampled, so any
frame count works; height and width halve at each level.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps (Vaswani et al. 2017, sec. 3.5): (b,) -> (b, dim)."""
    half = dim // 2
    frequencies = torch.exp(-math.log(max_period) * torch.arange(half, device=timesteps.device, dtype=torch.float32) / half)  # (dim/2,)
    angles = timesteps.float()[:, None] * frequencies[None]  # (b, dim/2)
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)  # (b, dim)


class FactorisedConv3d(nn.Module):
    """1x3x3 spatial convolution, then 3x1x1 temporal convolution (zero-padded in time)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.spatial = nn.Conv3d(in_channels, out_channels, kernel_size=(1, 3, 3), padding=(0, 1, 1))
        self.temporal = nn.Conv3d(out_channels, out_channels, kernel_size=(3, 1, 1), padding=(1, 0, 0))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.temporal(self.spatial(video))  # (b, c_out, f, h, w)


class ResBlock3D(nn.Module):
    """GroupNorm-SiLU-conv twice, the timestep (+ pooled text) embedding entering as scale and shift.

    The embedding is (b, E) for the whole clip, or (b, f, E) when it carries a per-frame condition.

    Scale-and-shift (FiLM; Dhariwal & Nichol 2021, "AdaGN") lets the noise level rescale features
    rather than only offset them. The last convolution starts at zero, so the block starts as identity.
    """

    def __init__(self, in_channels: int, out_channels: int, embedding_dim: int, norm_groups: int, dropout: float):
        super().__init__()
        self.norm_in = nn.GroupNorm(norm_groups, in_channels)
        self.conv_in = FactorisedConv3d(in_channels, out_channels)
        self.embedding_projection = nn.Linear(embedding_dim, 2 * out_channels)
        self.norm_out = nn.GroupNorm(norm_groups, out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv_out = FactorisedConv3d(out_channels, out_channels)
        nn.init.zeros_(self.conv_out.temporal.weight)
        nn.init.zeros_(self.conv_out.temporal.bias)
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv3d(in_channels, out_channels, kernel_size=1)

    def forward(self, video: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        hidden = self.conv_in(F.silu(self.norm_in(video)))  # (b, c_out, f, h, w)
        projected = self.embedding_projection(F.silu(embedding))  # (b, 2c_out), or (b, f, 2c_out) with a per-frame embedding
        if projected.ndim == 3:  # a per-frame condition (models/sign_conditioning.py): each frame its own scale and shift
            scale, shift = rearrange(projected, "b f (two c) -> two b c f 1 1", two=2)  # (b, c_out, f, 1, 1) each
        else:
            scale, shift = rearrange(projected, "b (two c) -> two b c 1 1 1", two=2)  # (b, c_out, 1, 1, 1) each
        hidden = self.norm_out(hidden) * (1 + scale) + shift  # (b, c_out, f, h, w)
        hidden = self.conv_out(self.dropout(F.silu(hidden)))  # (b, c_out, f, h, w)
        return self.skip(video) + hidden  # (b, c_out, f, h, w)


class Downsample(nn.Module):
    """Halve height and width with a strided 1x3x3 convolution; frames are kept."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv3d(channels, channels, kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.conv(video)  # (b, c, f, h/2, w/2)


class Upsample(nn.Module):
    """Double height and width (nearest neighbour, then a 1x3x3 convolution against checkerboard artefacts)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv3d(channels, channels, kernel_size=(1, 3, 3), padding=(0, 1, 1))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        video = F.interpolate(video, scale_factor=(1.0, 2.0, 2.0), mode="nearest")  # (b, c, f, 2h, 2w)
        return self.conv(video)  # (b, c, f, 2h, 2w)
