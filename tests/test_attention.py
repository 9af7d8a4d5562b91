"""The attention blocks: one norm/rearrange/operate/rearrange/residual pattern, with the saved weights' names and
the outputs of the four hand-written blocks it replaced.

tests/fixtures/unet3d_reference.json was written by the code before the blocks shared the pattern: the state_dict
keys of a tiny UNet with attention at both levels, and its output for seeded weights and inputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from text2sign.models.attention import CrossAttention, FeedForward, SpatialSelfAttention, TemporalSelfAttention, VideoTokenBlock
from text2sign.models.unet3d import UNet3D
from tiny_models import tiny_unet_config

REFERENCE = json.loads((Path(__file__).parent / "fixtures" / "unet3d_reference.json").read_text())


def reference_unet() -> UNet3D:
    """The fixture's model: tiny UNet, attention at levels 0 and 1, every float tensor redrawn from seed 1 in key order."""
    torch.manual_seed(0)
    model = UNet3D(tiny_unet_config(attention_levels=(0, 1)))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for _, tensor in sorted(model.state_dict().items()):
            if tensor.is_floating_point():
                tensor.copy_(0.1 * torch.randn(tensor.shape, generator=generator))
    return model.eval()


def test_unet_state_dict_keys_are_those_of_saved_checkpoints():
    """Renaming a submodule (norm, attention, project_in, ...) would break strict loading of every saved UNet."""
    keys = list(UNet3D(tiny_unet_config(attention_levels=(0, 1))).state_dict())
    assert keys == REFERENCE["state_dict_keys"]
    assert any(key.endswith("feed_forward.project_in.weight") for key in keys)


def test_unet_output_is_that_of_the_blocks_before_they_shared_one_pattern():
    generator = torch.Generator().manual_seed(2)
    sample = torch.randn(2, 3, 3, 8, 8, generator=generator)  # (b, c, f, h, w)
    text_states = torch.randn(2, 5, 16, generator=generator)  # (b, n, d)
    text_mask = torch.ones(2, 5, dtype=torch.bool)
    text_mask[0, 3:] = False
    with torch.no_grad():
        output = reference_unet()(sample, torch.tensor([10, 700]), text_states, text_mask)
    expected = torch.tensor(REFERENCE["output"]).view(REFERENCE["output_shape"])
    torch.testing.assert_close(output, expected, rtol=1e-6, atol=1e-6)


def perturbed(block: torch.nn.Module) -> torch.nn.Module:
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in block.parameters():  # output projections start at zero: the block would be the identity
            # Small enough that no softmax saturates, so every token of a sequence sees a change in any other.
            parameter.add_(0.3 * torch.randn_like(parameter))
    return block


CHANNELS, HEAD_DIM, TEXT_DIM = 16, 8, 6


def blocks():
    text_states, text_mask = torch.randn(2, 3, TEXT_DIM), torch.ones(2, 3, dtype=torch.bool)
    return {
        "spatial": (perturbed(SpatialSelfAttention(CHANNELS, HEAD_DIM)), ()),
        "cross": (perturbed(CrossAttention(CHANNELS, TEXT_DIM, HEAD_DIM)), (text_states, text_mask)),
        "temporal": (perturbed(TemporalSelfAttention(CHANNELS, HEAD_DIM)), ()),
        "feed_forward": (perturbed(FeedForward(CHANNELS)), ()),
    }


@pytest.mark.parametrize("name", ["spatial", "cross", "temporal", "feed_forward"])
def test_every_block_is_the_one_residual_pattern(name):
    block, context = blocks()[name]
    assert isinstance(block, VideoTokenBlock)
    video = torch.randn(2, CHANNELS, 3, 4, 5)  # (b, c, f, h, w): every axis a different size
    output = block(video, *context)
    assert output.shape == video.shape and not torch.allclose(output, video)
    block.operate = lambda tokens, *_: torch.zeros_like(tokens)  # no operation left: only the residual path
    assert torch.equal(block(video, *context), video)


@pytest.mark.parametrize("name, mixes", [("spatial", "positions"), ("cross", "nothing"), ("temporal", "frames"), ("feed_forward", "nothing")])
def test_each_block_mixes_only_along_the_axis_its_pattern_names(name, mixes):
    """Changing one (frame, position) of the input may only change outputs that share the block's token sequence."""
    block, context = blocks()[name]
    video = torch.randn(2, CHANNELS, 3, 4, 4)  # (b, c, f, h, w)
    changed = video.clone()
    changed[0, :, 1, 2, 3] = torch.randn(CHANNELS)  # a new token (adding a constant would vanish in the LayerNorm)
    with torch.no_grad():
        moved = (block(changed, *context) - block(video, *context)).abs().amax(dim=(0, 1)) > 0  # (f, h, w)
    expected = torch.zeros(3, 4, 4, dtype=torch.bool)
    if mixes == "positions":
        expected[1] = True  # every position of the same frame
    elif mixes == "frames":
        expected[:, 2, 3] = True  # the same position in every frame
    else:
        expected[1, 2, 3] = True  # position-wise: only the changed token
    assert torch.equal(moved, expected)


def test_cross_attention_refuses_text_of_another_batch_size():
    block = CrossAttention(CHANNELS, TEXT_DIM, HEAD_DIM)
    # 2 videos of 3 frames are 6 token sequences, which 3 texts of 2 "frames" would also fill without an error.
    with pytest.raises(ValueError, match="one text per video"):
        block(torch.randn(2, CHANNELS, 3, 4, 4), torch.randn(3, 5, TEXT_DIM), torch.ones(3, 5, dtype=torch.bool))


@pytest.mark.parametrize("name", ["spatial", "temporal", "cross"])
def test_attention_batches_above_the_kernel_limit_are_chunked_and_equal_one_call(name, monkeypatch):
    """The CUDA flash/memory-efficient kernels fail above 65,535 batch rows; with the limit lowered to 5, every
    SDPA call stays within it and the output is that of the unchunked call."""
    import torch.nn.functional as F

    import text2sign.models.attention as attention_module

    block, arguments = blocks()[name]
    text_mask = torch.tensor([[True, True, True], [True, False, False]])  # a padded caption: the mask is chunked too
    arguments = (arguments[0], text_mask) if name == "cross" else arguments
    video = torch.randn(2, CHANNELS, 3, 4, 4)  # (b, c, f, h, w): temporal batch (b h w) = 32, spatial and cross (b f) = 6
    with torch.no_grad():
        expected = block(video, *arguments)
    batches = []
    real_attention = F.scaled_dot_product_attention

    def recording_attention(q, k, v, attn_mask=None):
        batches.append(q.shape[0])
        return real_attention(q, k, v, attn_mask=attn_mask)

    monkeypatch.setattr(F, "scaled_dot_product_attention", recording_attention)
    monkeypatch.setattr(attention_module, "MAX_ATTENTION_BATCH", 5)
    with torch.no_grad():
        chunked = block(video, *arguments)
    assert len(batches) > 1 and max(batches) <= 5, batches
    torch.testing.assert_close(chunked, expected, rtol=0, atol=1e-6)
