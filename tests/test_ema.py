import pytest
import torch

from text2sign.models.ema import ExponentialMovingAverage


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
