import pytest
import torch

from text2sign.evaluation.conditioning import conditional_loss_gap
from text2sign.models.ema import ExponentialMovingAverage, evaluation_weights
from text2sign.training.validation import fixed_noise_validation_loss
from tiny_models import CAPTIONS, tiny_pipeline


def test_decay_warms_up_so_short_runs_are_tracked():
    model = torch.nn.Linear(2, 2)
    ema = ExponentialMovingAverage(model, max_decay=0.9999)
    assert ema.decay() == pytest.approx(0.1)
    with torch.no_grad():
        model.weight.fill_(1.0)
        model.bias.fill_(1.0)
    for _ in range(500):
        ema.update(model)
    # A fixed 0.9999 decay would still hold ~95% of the initial weights after 500 updates.
    assert torch.allclose(ema.shadow["weight"], torch.ones(2, 2), atol=0.05)
    assert ema.decay() < 0.99


def test_decay_reaches_its_ceiling():
    ema = ExponentialMovingAverage(torch.nn.Linear(1, 1), max_decay=0.99)
    ema.num_updates = 10_000
    assert ema.decay() == 0.99


def test_applied_to_swaps_and_restores():
    model = torch.nn.Linear(2, 2)
    ema = ExponentialMovingAverage(model)
    original = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    live = model.weight.detach().clone()
    with ema.applied_to(model):
        torch.testing.assert_close(model.weight, original)
    torch.testing.assert_close(model.weight, live)


def test_state_dict_round_trip_and_mismatch():
    model = torch.nn.Linear(2, 2)
    ema = ExponentialMovingAverage(model)
    ema.update(model)
    other = ExponentialMovingAverage(torch.nn.Linear(2, 2))
    other.load_state_dict(ema.state_dict())
    assert other.num_updates == 1
    torch.testing.assert_close(other.shadow["weight"], ema.shadow["weight"])
    with pytest.raises(ValueError, match="missing"):
        ExponentialMovingAverage(torch.nn.Linear(2, 3, bias=True)).load_state_dict({"weight": torch.zeros(3, 2)})


# ---------------------------------------------------------------------------------------------------------------
# evaluation_weights: the one context for sampling, validation and evaluation
# ---------------------------------------------------------------------------------------------------------------


def pipeline_with_distinct_ema():
    """A tiny pipeline in train mode whose raw weights differ from its EMA weights; returns it and both weight sets."""
    pipeline = tiny_pipeline()
    pipeline.ema = ExponentialMovingAverage(pipeline)
    ema_weights = {name: shadow.clone() for name, shadow in pipeline.ema.shadow.items()}
    with torch.no_grad():
        for parameter in pipeline.parameters():
            parameter.add_(0.1)
    pipeline.train()
    return pipeline, snapshot(pipeline), ema_weights


def snapshot(pipeline):
    return {name: parameter.detach().clone() for name, parameter in pipeline.named_parameters()}


def assert_weights(pipeline, expected):
    for name, parameter in pipeline.named_parameters():
        if name in expected:
            assert torch.equal(parameter.detach(), expected[name]), name


def test_evaluation_weights_swaps_in_the_ema_in_eval_mode_without_gradients():
    pipeline, raw, ema_weights = pipeline_with_distinct_ema()
    with evaluation_weights(pipeline):
        assert not pipeline.training and not pipeline.text_encoder.training and not torch.is_grad_enabled()
        assert_weights(pipeline, ema_weights)
    assert pipeline.training and torch.is_grad_enabled()
    assert_weights(pipeline, raw)
    with evaluation_weights(pipeline, use_ema=False):
        assert not pipeline.training
        assert_weights(pipeline, raw)


def test_an_error_inside_evaluation_weights_restores_training_mode_and_the_raw_weights():
    pipeline, raw, _ = pipeline_with_distinct_ema()
    with pytest.raises(RuntimeError, match="out of memory"):
        with evaluation_weights(pipeline):
            raise RuntimeError("CUDA out of memory")
    assert pipeline.training and pipeline.unet.training
    assert_weights(pipeline, raw)


def sample(pipeline):
    pipeline(CAPTIONS[:2], num_inference_steps=2, progress=False)


def validate(pipeline):
    fixed_noise_validation_loss(pipeline, [{"video": torch.zeros(3, 4, 8, 8), "caption": CAPTIONS[0]}], torch.device("cpu"))


def loss_gap(pipeline):
    conditional_loss_gap(pipeline, torch.zeros(2, 3, 4, 8, 8), CAPTIONS[:2], timesteps=(0.5,))


@pytest.mark.parametrize("use", [sample, validate, loss_gap], ids=["pipeline_call", "validation_loss", "conditioning_loss_gap"])
def test_sampling_validation_and_evaluation_run_on_ema_weights_and_restore_after_an_error(use):
    """Each of the three users: the UNet sees the EMA weights in eval mode, and a failing forward leaves the raw
    weights and train mode behind (two of the three once skipped the restore on an error)."""
    pipeline, raw, ema_weights = pipeline_with_distinct_ema()
    seen = []

    def fail(module, inputs):
        seen.append((pipeline.training, all(torch.equal(parameter.detach(), ema_weights[name]) for name, parameter in pipeline.named_parameters()
                                           if name in ema_weights)))
        raise RuntimeError("forward failed")

    pipeline.unet.register_forward_pre_hook(fail)
    with pytest.raises(RuntimeError, match="forward failed"):
        use(pipeline)
    assert seen == [(False, True)]
    assert pipeline.training
    assert_weights(pipeline, raw)


def test_update_is_one_foreach_call_equal_to_the_per_tensor_loop(monkeypatch):
    """~670 lerp_ launches per step were a Python loop; one _foreach_lerp_ must give exactly what the loop gave."""
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 2))
    ema = ExponentialMovingAverage(module, max_decay=0.999)
    expected = {name: shadow.clone() for name, shadow in ema.shadow.items()}
    calls = []
    real_foreach_lerp = torch._foreach_lerp_
    monkeypatch.setattr(torch, "_foreach_lerp_", lambda *args: calls.append(len(args[0])) or real_foreach_lerp(*args))
    for _ in range(3):
        with torch.no_grad():
            for parameter in module.parameters():
                parameter.add_(torch.randn_like(parameter))
        decay = ema.decay()
        for name, parameter in module.named_parameters():
            expected[name].lerp_(parameter.detach().float(), 1.0 - decay)
        ema.update(module)
    assert calls == [len(ema.shadow)] * 3
    for name, shadow in ema.shadow.items():
        torch.testing.assert_close(shadow, expected[name], rtol=0, atol=0, msg=name)
