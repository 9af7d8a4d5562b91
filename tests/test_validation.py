"""The fixed validation timesteps: one definition, rounded, shared by training validation and the evaluation's loss gap."""

from __future__ import annotations

import pytest
import torch

from text2sign.evaluation.conditioning import conditional_loss_gap
from text2sign.training.validation import FIXED_TIMESTEP_FRACTIONS, fixed_noise_validation_loss, fixed_timesteps
from tiny_models import CAPTIONS, tiny_pipeline


def test_fixed_timesteps_round_to_the_nearest_step():
    # docs/conditioning.md reports t = 500; truncating 0.1 * 999 etc. gives 99, 299, 499 instead.
    assert fixed_timesteps(1000).tolist() == [100, 300, 500, 699, 899]
    assert fixed_timesteps(1000, (0.4, 0.6)).tolist() == [400, 599]
    assert fixed_timesteps(1000).dtype == torch.long


@pytest.mark.parametrize("fractions", [(), (1.5,), (-0.1, 0.5)])
def test_fixed_timesteps_refuse_what_is_not_a_fraction_of_the_schedule(fractions):
    with pytest.raises(ValueError, match="fractions of the schedule"):
        fixed_timesteps(1000, fractions)


def unet_timesteps(pipeline, run) -> set[int]:
    """The timesteps the UNet is called with while `run()` scores clips."""
    seen: set[int] = set()
    handle = pipeline.unet.register_forward_pre_hook(lambda module, inputs: seen.update(inputs[1].tolist()))
    run()
    handle.remove()
    return seen


def test_validation_and_the_loss_gap_score_at_the_same_timesteps():
    pipeline = tiny_pipeline()
    expected = set(fixed_timesteps(pipeline.scheduler.config.num_train_timesteps, FIXED_TIMESTEP_FRACTIONS).tolist())
    dataset = [{"video": torch.zeros(3, 4, 8, 8), "caption": caption} for caption in CAPTIONS[:2]]
    validation = unet_timesteps(pipeline, lambda: fixed_noise_validation_loss(pipeline, dataset, torch.device("cpu")))
    loss_gap = unet_timesteps(pipeline, lambda: conditional_loss_gap(pipeline, torch.zeros(2, 3, 4, 8, 8), CAPTIONS[:2]))
    assert validation == loss_gap == expected == {100, 300, 500, 699, 899}
