"""The training objective: caption dropout, prediction targets, min-SNR weights, and that it trains the pipeline."""

import pytest
import torch

from text2sign.models.objective import DenoisingObjective
from tiny_models import CAPTIONS, tiny_pipeline


def perturbed_objective(**pipeline_overrides):
    """The objective of a tiny pipeline whose zero-initialised branches carry signal (as after some training)."""
    pipeline = tiny_pipeline(**pipeline_overrides)
    torch.manual_seed(1)
    for parameter in pipeline.unet.parameters():
        parameter.data.add_(0.05 * torch.randn_like(parameter))
    return DenoisingObjective.for_pipeline(pipeline)


def test_objective_trains_the_pipelines_own_networks():
    pipeline = tiny_pipeline()
    objective = DenoisingObjective.for_pipeline(pipeline)
    assert dict(objective.named_parameters()).keys() == dict(pipeline.named_parameters()).keys()  # the EMA's names
    assert all(ours is theirs for ours, theirs in zip(objective.parameters(), pipeline.parameters()))
    before = pipeline.unet.conv_out.weight.detach().clone()
    optimizer = torch.optim.SGD(objective.parameters(), lr=1.0)
    objective(torch.randn(2, 3, 4, 8, 8), CAPTIONS[:2], generator=torch.Generator().manual_seed(0)).backward()
    optimizer.step()
    assert not torch.equal(pipeline.unet.conv_out.weight, before)


def test_training_dropout_trains_the_null_embedding_only_when_dropping():
    videos = torch.randn(4, 3, 4, 8, 8)
    for probability, expect_gradient in ((0.0, False), (0.9, True)):
        objective = perturbed_objective(caption_dropout_prob=probability)
        objective.train()
        objective(videos, CAPTIONS, generator=torch.Generator().manual_seed(0)).backward()
        gradient = objective.text_encoder.null_embedding.grad
        assert (gradient is not None and gradient.abs().sum() > 0) == expect_gradient


def test_no_caption_dropout_in_eval_mode():
    objective = perturbed_objective(caption_dropout_prob=0.9)
    objective.eval()
    objective(torch.randn(4, 3, 4, 8, 8), CAPTIONS, generator=torch.Generator().manual_seed(0)).backward()
    gradient = objective.text_encoder.null_embedding.grad
    assert gradient is None or gradient.abs().sum() == 0


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_training_target_per_prediction_type(prediction_type):
    objective = DenoisingObjective.for_pipeline(tiny_pipeline(prediction_type=prediction_type))
    videos, noise = torch.randn(2, 3, 4, 8, 8), torch.randn(2, 3, 4, 8, 8)
    timesteps = torch.tensor([10, 900])
    alpha_bar = objective.scheduler.alphas_cumprod[timesteps].view(2, 1, 1, 1, 1)
    expected = {"epsilon": noise, "sample": videos, "v_prediction": alpha_bar.sqrt() * noise - (1 - alpha_bar).sqrt() * videos}[prediction_type]
    torch.testing.assert_close(objective.target(videos, noise, timesteps), expected)


@pytest.mark.parametrize("prediction_type,formula", [
    ("epsilon", lambda snr, gamma: torch.clamp(snr, max=gamma) / snr),
    ("v_prediction", lambda snr, gamma: torch.clamp(snr, max=gamma) / (snr + 1)),
    ("sample", lambda snr, gamma: torch.clamp(snr, max=gamma)),
])
def test_min_snr_weights(prediction_type, formula):
    objective = DenoisingObjective.for_pipeline(tiny_pipeline(prediction_type=prediction_type, loss_weighting="min_snr", min_snr_gamma=5.0))
    timesteps = torch.tensor([0, 100, 500, 999])
    alpha_bar = objective.scheduler.alphas_cumprod[timesteps]
    snr = alpha_bar / (1 - alpha_bar)
    torch.testing.assert_close(objective.loss_weights(timesteps), formula(snr, 5.0).float())
    assert DenoisingObjective.for_pipeline(tiny_pipeline(loss_weighting="mse")).loss_weights(timesteps).eq(1).all()
