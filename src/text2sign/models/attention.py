"""Attention blocks for video: one `Attention` module, made spatial, temporal or cross by einops patterns.

Video tensors are (b, c, f, h, w): f is frames (t is reserved for the diffusion timestep).
Every block is one `VideoTokenBlock`: norm, rearrange to tokens, operate, rearrange back, add. Every block is residual and its output projection starts at zero, so a freshly built network is the
identity plus its convolutions; the zero only holds at init (the gradient of a zero output projection
is not zero), so text and temporal context start flowing after the first optimiser step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

# The flash and memory-efficient SDPA kernels put the batch on a CUDA grid axis capped at 65,535 blocks: a larger
# batch fails with "invalid configuration argument" (pytorch#146704). Temporal attention's batch is (b h w) and
# spatial attention's (b f): the large preset at batch 64, or guided sampling's doubled batch, passes it.
MAX_ATTENTION_BATCH = 65_535


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (Su et al. 2021, RoFormer eq. 34) over frame index.

    Frame order enters the attention logits as a relative rotation of q and k, so temporal attention knows
    which frame is which without adding anything to pixels, and works for any number of frames.
    """

    def __init__(self, head_dim: int, base: float = 10000.0):
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary embedding needs an even head_dim, got {head_dim}")
        inverse_frequencies = 1.0 / base ** (torch.arange(0, head_dim, 2).float() / head_dim)  # (head_dim/2,)
        self.register_buffer("inverse_frequencies", inverse_frequencies, persistent=False)

    def forward(self, tensor: torch.Tensor) -> torch.Tensor:
        """Rotate (batch, heads, positions, head_dim) by position."""
        positions = torch.arange(tensor.shape[-2], device=tensor.device, dtype=torch.float32)  # (n,)
        angles = torch.outer(positions, self.inverse_frequencies)  # (n, head_dim/2)
        cos, sin = angles.cos().to(tensor.dtype), angles.sin().to(tensor.dtype)  # (n, head_dim/2)
        even, odd = tensor[..., 0::2], tensor[..., 1::2]  # (b, heads, n, head_dim/2)
        rotated = torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1)  # (b, heads, n, head_dim/2, 2)
        return rotated.flatten(-2)  # (b, heads, n, head_dim)


class Attention(nn.Module):
    """Multi-head attention through `F.scaled_dot_product_attention` (flash / memory-efficient kernels on CUDA)."""

    def __init__(self, query_dim: int, context_dim: int | None = None, head_dim: int = 32, rotary: bool = False):
        super().__init__()
        if query_dim % head_dim:
            raise ValueError(f"channels {query_dim} must be a multiple of attention_head_dim {head_dim}")
        self.num_heads = query_dim // head_dim
        context_dim = query_dim if context_dim is None else context_dim
        self.to_q = nn.Linear(query_dim, query_dim, bias=False)
        self.to_k = nn.Linear(context_dim, query_dim, bias=False)
        self.to_v = nn.Linear(context_dim, query_dim, bias=False)
        self.to_out = nn.Linear(query_dim, query_dim)
        self.rotary = RotaryEmbedding(head_dim) if rotary else None

    def forward(self, hidden: torch.Tensor, context: torch.Tensor | None = None, context_mask: torch.Tensor | None = None) -> torch.Tensor:
        context = hidden if context is None else context  # (B, m, dc)
        q = rearrange(self.to_q(hidden), "B n (heads d) -> B heads n d", heads=self.num_heads)  # (B, heads, n, d)
        k = rearrange(self.to_k(context), "B m (heads d) -> B heads m d", heads=self.num_heads)  # (B, heads, m, d)
        v = rearrange(self.to_v(context), "B m (heads d) -> B heads m d", heads=self.num_heads)  # (B, heads, m, d)
        if self.rotary is not None:
            q, k = self.rotary(q), self.rotary(k)  # (B, heads, n|m, d)
        attn_mask = None if context_mask is None else rearrange(context_mask, "B m -> B 1 1 m")  # (B, 1, 1, m) True = attend
        out = chunked_attention(q, k, v, attn_mask)  # (B, heads, n, d)
        return self.to_out(rearrange(out, "B heads n d -> B n (heads d)"))  # (B, n, c)


def chunked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
    """`F.scaled_dot_product_attention` over batch chunks of at most MAX_ATTENTION_BATCH rows (one call when it fits).
    Rows attend independently, so the chunks give what one call would."""
    batch = q.shape[0]
    if batch <= MAX_ATTENTION_BATCH:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, heads, n, d)
    chunks = []
    for start in range(0, batch, MAX_ATTENTION_BATCH):
        rows = slice(start, start + MAX_ATTENTION_BATCH)
        chunks.append(F.scaled_dot_product_attention(q[rows], k[rows], v[rows], attn_mask=None if attn_mask is None else attn_mask[rows]))
    return torch.cat(chunks)  # (B, heads, n, d)


class VideoTokenBlock(nn.Module):
    """The one pattern every block below follows (lucidrains' Residual(PreNorm(EinopsToAndFrom(...)))):

        video (b, c, f, h, w) -> tokens by `tokens_pattern` -> LayerNorm -> `operate` -> back to video -> + video

    A block names its einops pattern, builds its operation and implements `operate(tokens, ...)`; the LayerNorm is
    built here, and extra forward arguments (the text) go to `operate`. The submodules keep the names `norm`, `attention`,
    `project_in`, `project_out`, which are the keys of saved weights.
    """

    tokens_pattern: str  # e.g. "b c f h w -> (b f) (h w) c"

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def operate(self, tokens: torch.Tensor, *context: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement operate(tokens, ...)")

    def forward(self, video: torch.Tensor, *context: torch.Tensor) -> torch.Tensor:
        b, c, f, h, w = video.shape
        video_pattern = " -> ".join(reversed(self.tokens_pattern.split(" -> ")))  # e.g. "(b f) (h w) c -> b c f h w"
        tokens = rearrange(video, self.tokens_pattern)  # (batch of sequences, sequence length, c)
        tokens = self.operate(self.norm(tokens), *context)  # same shape
        return video + rearrange(tokens, video_pattern, b=b, f=f, h=h, w=w)  # (b, c, f, h, w)


class SpatialSelfAttention(VideoTokenBlock):
    """Each frame attends over its own h*w positions."""

    tokens_pattern = "b c f h w -> (b f) (h w) c"

    def __init__(self, channels: int, head_dim: int):
        super().__init__(channels)
        self.attention = Attention(channels, head_dim=head_dim)

    def operate(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.attention(tokens)  # (b*f, h*w, c)


class CrossAttention(VideoTokenBlock):
    """Every position of every frame attends over the text tokens; padding tokens are masked out."""

    tokens_pattern = "b c f h w -> (b f) (h w) c"

    def __init__(self, channels: int, text_dim: int, head_dim: int):
        super().__init__(channels)
        self.attention = Attention(channels, context_dim=text_dim, head_dim=head_dim)

    def forward(self, video: torch.Tensor, text_states: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        if text_states.shape[0] != video.shape[0] or text_mask.shape != text_states.shape[:2]:
            raise ValueError(f"cross-attention needs one text per video: got {video.shape[0]} videos, text_states "
                             f"{tuple(text_states.shape)} and text_mask {tuple(text_mask.shape)}")
        return super().forward(video, text_states, text_mask)  # (b, c, f, h, w)

    def operate(self, tokens: torch.Tensor, text_states: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        num_frames = tokens.shape[0] // text_states.shape[0]  # tokens are (b*f, h*w, c)
        context = repeat(text_states, "b n d -> (b f) n d", f=num_frames)  # (b*f, n, d)
        context_mask = repeat(text_mask, "b n -> (b f) n", f=num_frames)  # (b*f, n)
        return self.attention(tokens, context, context_mask)  # (b*f, h*w, c)


class TemporalSelfAttention(VideoTokenBlock):
    """Each spatial position attends over the frames, with rotary frame positions."""

    tokens_pattern = "b c f h w -> (b h w) f c"

    def __init__(self, channels: int, head_dim: int):
        super().__init__(channels)
        self.attention = Attention(channels, head_dim=head_dim, rotary=True)

    def operate(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.attention(tokens)  # (b*h*w, f, c)


class FeedForward(VideoTokenBlock):
    """Position-wise GEGLU MLP (Shazeer 2020), as in latent-diffusion transformer blocks."""

    tokens_pattern = "b c f h w -> b (f h w) c"

    def __init__(self, channels: int, multiplier: int = 4):
        super().__init__(channels)
        self.project_in = nn.Linear(channels, channels * multiplier * 2)
        self.project_out = nn.Linear(channels * multiplier, channels)

    def operate(self, tokens: torch.Tensor) -> torch.Tensor:
        value, gate = self.project_in(tokens).chunk(2, dim=-1)  # (b, f*h*w, 4c) each
        return self.project_out(value * F.gelu(gate))  # (b, f*h*w, c)


class VideoTransformerBlock(nn.Module):
    """Spatial self-attention, text cross-attention, temporal self-attention, feed-forward: each residual."""

    def __init__(self, channels: int, text_dim: int, head_dim: int):
        super().__init__()
        self.spatial_attention = SpatialSelfAttention(channels, head_dim)
        self.cross_attention = CrossAttention(channels, text_dim, head_dim)
        self.temporal_attention = TemporalSelfAttention(channels, head_dim)
        self.feed_forward = FeedForward(channels)

    def forward(self, video: torch.Tensor, text_states: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        video = self.spatial_attention(video)  # (b, c, f, h, w)
        video = self.cross_attention(video, text_states, text_mask)  # (b, c, f, h, w)
        video = self.temporal_attention(video)  # (b, c, f, h, w)
        return self.feed_forward(video)  # (b, c, f, h, w)
