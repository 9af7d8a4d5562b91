import pytest
import torch
from safetensors.torch import load_file, save_file

from text2sign.models.attention import TemporalSelfAttention
from text2sign.models.unet3d import UNet3D, UNet3DConfig, UNetLayer
from tiny_models import tiny_unet_config


def _inputs(batch, frames, height, width, text_dim=16, tokens=5):
    sample = torch.randn(batch, 3, frames, height, width)
    timesteps = torch.randint(0, 1000, (batch,))
    text_states = torch.randn(batch, tokens, text_dim)
    text_mask = torch.ones(batch, tokens, dtype=torch.bool)
    text_mask[0, 3:] = False
    return sample, timesteps, text_states, text_mask


@pytest.mark.parametrize("frames,height,width", [(1, 8, 8), (4, 8, 16), (7, 16, 8), (16, 4, 4)])
def test_output_shape_matches_input_for_any_frames_and_divisible_size(frames, height, width):
    model = UNet3D(tiny_unet_config())
    output = model(*_inputs(2, frames, height, width))
    assert output.shape == (2, 3, frames, height, width)


def test_size_not_divisible_by_levels_is_a_clear_error():
    model = UNet3D(tiny_unet_config(channel_mult=(1, 2, 2)))
    with pytest.raises(ValueError, match="divisible by 4"):
        model(*_inputs(1, 4, 12, 10))


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="attention level"):
        UNet3DConfig(channel_mult=(1, 2), attention_levels=(2,))
    with pytest.raises(ValueError, match="norm_groups"):
        UNet3DConfig(model_channels=20, norm_groups=8)


def test_zero_initialised_model_predicts_zero_and_branches_start_at_zero():
    model = UNet3D(tiny_unet_config())
    assert model(*_inputs(2, 4, 8, 8)).abs().max() == 0
    cross = [m for name, m in model.named_modules() if name.endswith("cross_attention.attention")]
    assert cross and all(m.to_out.weight.abs().sum() == 0 for m in cross)


def test_gradients_reach_every_parameter_after_a_step():
    torch.manual_seed(0)
    model = UNet3D(tiny_unet_config())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    inputs = _inputs(2, 4, 8, 8)
    target = torch.randn(2, 3, 4, 8, 8)
    for _ in range(3):  # each zero-initialised output (final conv, then branch outputs) opens after one step
        optimizer.zero_grad()
        (model(*inputs) - target).pow(2).mean().backward()
        optimizer.step()
    no_gradient = [name for name, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert no_gradient == []


def test_padding_tokens_do_not_change_the_output():
    torch.manual_seed(0)
    model = UNet3D(tiny_unet_config())
    for parameter in model.parameters():  # leave the zero init so the text paths carry signal
        parameter.data.add_(0.05 * torch.randn_like(parameter))
    sample, timesteps, text_states, text_mask = _inputs(2, 4, 8, 8)
    text_mask[:] = True
    text_mask[:, 3:] = False
    garbage = text_states.clone()
    garbage[:, 3:] = 100 * torch.randn_like(garbage[:, 3:])
    torch.testing.assert_close(model(sample, timesteps, text_states, text_mask), model(sample, timesteps, garbage, text_mask))
    assert not torch.allclose(model(sample, timesteps, text_states, text_mask), model(sample, timesteps, garbage, torch.ones_like(text_mask)))


def test_temporal_attention_knows_frame_order():
    """The temporal attention block alone: permuting the input frames must not just permute the output, since
    rotary positions enter the logits. In a whole UNet the temporal convolutions would break the symmetry
    anyway, so only the block can show that attention itself sees the order."""
    torch.manual_seed(0)
    block = TemporalSelfAttention(channels=16, head_dim=8)
    for parameter in block.parameters():  # to_out starts at zero, which would make the block the identity
        parameter.data.add_(0.5 * torch.randn_like(parameter))
    video = torch.randn(2, 16, 6, 3, 3)  # (b, c, f, h, w)
    order = torch.tensor([3, 0, 5, 1, 4, 2])
    permuted_then_attended = block(video[:, :, order])  # (b, c, f, h, w)
    attended_then_permuted = block(video)[:, :, order]  # (b, c, f, h, w)
    difference = (permuted_then_attended - attended_then_permuted).abs().max().item()
    assert difference > 1e-2, f"permuting frames only permuted the output (max difference {difference:.2e}): no frame positions"
    # Control: without rotary positions the same block is exactly permutation-equivariant, so the difference
    # above comes from the positions and nothing else in the block.
    block.attention.rotary = None
    torch.testing.assert_close(block(video[:, :, order]), block(video)[:, :, order])


def test_save_and_load_round_trip(tmp_path):
    model = UNet3D(tiny_unet_config())
    for parameter in model.parameters():
        parameter.data.normal_()
    model.save_pretrained(tmp_path)
    loaded = UNet3D.from_pretrained(tmp_path)
    assert loaded.config == model.config
    inputs = _inputs(1, 2, 8, 8)
    torch.testing.assert_close(loaded(*inputs), model(*inputs))


@pytest.mark.parametrize("tamper", ["drop", "extra", "reshape"])
def test_strict_loading_rejects_a_tampered_file_and_names_the_key(tmp_path, tamper):
    UNet3D(tiny_unet_config()).save_pretrained(tmp_path)
    weights = load_file(str(tmp_path / "model.safetensors"))
    key = "conv_in.weight"
    if tamper == "drop":
        weights.pop(key)
    elif tamper == "extra":
        weights["surprise.weight"] = torch.zeros(1)
        key = "surprise.weight"
    else:
        weights[key] = torch.zeros(1, 2, 3)
    save_file(weights, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        UNet3D.from_pretrained(tmp_path)


def test_config_that_disagrees_with_weights_is_rejected(tmp_path):
    UNet3D(tiny_unet_config()).save_pretrained(tmp_path)
    config = (tmp_path / "config.json").read_text().replace('"model_channels": 16', '"model_channels": 32')
    (tmp_path / "config.json").write_text(config)
    with pytest.raises(ValueError, match="do not match"):
        UNet3D.from_pretrained(tmp_path)


def count_layer_calls(model: UNet3D) -> list[int]:
    """A one-element counter of UNetLayer calls, forward or recomputed (pre-hooks: a checkpoint that stops
    its recomputation early never reaches the forward hooks)."""
    calls = [0]
    for module in model.modules():
        if isinstance(module, UNetLayer):
            module.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def test_gradient_checkpointing_recomputes_every_layer_and_gives_the_same_gradients():
    torch.manual_seed(0)
    plain = UNet3D(tiny_unet_config())
    for parameter in plain.parameters():
        parameter.data.add_(0.05 * torch.randn_like(parameter))
    checkpointed = UNet3D(tiny_unet_config(gradient_checkpointing=True))
    checkpointed.load_state_dict(plain.state_dict())
    num_layers = sum(isinstance(module, UNetLayer) for module in plain.modules())
    inputs = _inputs(2, 3, 8, 8)
    for model, recomputed_layers in ((plain, 0), (checkpointed, num_layers)):
        calls = count_layer_calls(model)
        output = model(*inputs)  # (b, c, f, h, w)
        assert calls[0] == num_layers
        output.pow(2).sum().backward()
        # Checkpointing is what runs each layer a second time, in backward; without it nothing is recomputed.
        assert calls[0] - num_layers == recomputed_layers, f"{calls[0] - num_layers} layers recomputed in backward, expected {recomputed_layers}"
    for (name, a), (_, b) in zip(plain.named_parameters(), checkpointed.named_parameters()):
        torch.testing.assert_close(a.grad, b.grad, msg=name)
