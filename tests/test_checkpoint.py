"""Training checkpoints: RNG states per rank and device, the typed training state."""

import pytest
import torch

from text2sign.training.checkpoint import restore_rng_states, rng_states


@pytest.fixture
def one_visible_gpu(monkeypatch):
    """torch.cuda as a machine with one GPU shows it: a state set on device 1 or above is an invalid ordinal."""
    restored = {}

    def set_rng_state(state, device="cuda"):
        index = device if isinstance(device, int) else (torch.device(device).index or 0)
        if index >= 1:
            raise RuntimeError(f"CUDA error: invalid device ordinal {index}")
        restored[index] = state.clone()

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_rng_state", set_rng_state)
    monkeypatch.setattr(torch.cuda.random, "set_rng_state", set_rng_state)  # what set_rng_state_all calls
    return restored


def eight_gpu_states() -> list[torch.Tensor]:
    return [torch.full((16,), index, dtype=torch.uint8) for index in range(8)]


def test_resume_on_fewer_gpus_restores_only_this_devices_state(one_visible_gpu, monkeypatch):
    # Written by rank 0 of an 8-GPU run: with every device's state, restoring all of them ran past the one GPU here.
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", eight_gpu_states)
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device="cuda": eight_gpu_states()[torch.device(device).index or 0])
    saved = rng_states(torch.device("cuda:0"))
    restore_rng_states(saved, torch.device("cuda:0"))
    assert list(one_visible_gpu) == [0] and torch.equal(one_visible_gpu[0], eight_gpu_states()[0])


def test_each_rank_saves_its_own_devices_cuda_state(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", eight_gpu_states)
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device="cuda": eight_gpu_states()[torch.device(device).index or 0])
    saved = rng_states(torch.device("cuda:3"))
    assert torch.equal(saved["cuda"], eight_gpu_states()[3])


def test_a_checkpoint_holding_every_gpus_state_restores_this_devices_entry(one_visible_gpu):
    # The format before states were kept per device: a list of every visible GPU's state.
    saved = {**rng_states(), "cuda": eight_gpu_states()}
    restore_rng_states(saved, torch.device("cuda:0"))
    assert list(one_visible_gpu) == [0] and torch.equal(one_visible_gpu[0], eight_gpu_states()[0])


def test_cpu_rng_states_round_trip():
    saved = rng_states()
    expected = torch.rand(3)
    torch.rand(5)
    restore_rng_states(saved)
    assert torch.equal(torch.rand(3), expected)


def test_training_state_saves_and_loads_itself_with_weights_only(tmp_path):
    from text2sign.training.checkpoint import TrainingState

    parameter = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.AdamW([parameter])
    parameter.grad = torch.ones(3)
    optimizer.step()
    state = TrainingState(optimizer.state_dict(), {"last_epoch": 4}, {}, step=4, epoch=1, batches_done_in_epoch=2, rng=[rng_states(), rng_states()],
                          noise_generators=[torch.Generator().manual_seed(rank).get_state() for rank in range(2)])
    state.save(tmp_path / "training_state.pt")
    loaded = TrainingState.load(tmp_path / "training_state.pt")
    assert (loaded.step, loaded.epoch, loaded.batches_done_in_epoch, loaded.lr_schedule) == (4, 1, 2, {"last_epoch": 4})
    assert torch.equal(loaded.optimizer["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])
    assert torch.equal(loaded.noise_generator_of_rank(1), state.noise_generators[1])
    assert torch.equal(loaded.noise_generator_of_rank(5), state.noise_generators[0])  # more ranks than saved: rank 0's
    torch.save({"step": 4}, tmp_path / "partial.pt")
    with pytest.raises(KeyError, match="optimizer"):
        TrainingState.load(tmp_path / "partial.pt")
