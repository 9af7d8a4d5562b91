"""The training loop end to end on tiny synthetic clips: resume, accumulation, atomic checkpoints, bad input."""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from text2sign.models.objective import DenoisingObjective
from text2sign.models.pipeline import TextToSignPipeline
from text2sign.models.scheduler import Scheduler, make_scheduler
from text2sign.training.checkpoint import TrainingState, list_checkpoints, load_newest_checkpoint, resolve_checkpoint, rng_states, save_checkpoint
from text2sign.training.config import TrainConfig, config_from_preset, override
from text2sign.training.flags import SHORT_FLAGS
from text2sign.training.loop import train
from text2sign.video_io import write_gif
from text_encoder_fixtures import build_tiny_t5
from tiny_models import tiny_pipeline
from top_level_scripts import load_script, two_process_train_arguments

REPO = Path(__file__).resolve().parents[1]
CAPTIONS = ["hello", "thank you", "how are you", "good morning", "see you later", "my name is"]


def make_clips(folder: Path, count: int = 6, frames: int = 6, size: int = 12) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        video = rng.integers(0, 255, (frames, size, size, 3), dtype=np.uint8)
        write_gif(folder / f"clip_{index:02d}.gif", video)
        (folder / f"clip_{index:02d}.txt").write_text(CAPTIONS[index % len(CAPTIONS)] + "\n")
    return folder


TINY_RUN = {
    "data.num_frames": 4, "data.image_size": 8, "data.val_fraction": 0.0, "unet.model_channels": 32, "unet.channel_mult": (1, 1),
    "unet.num_res_blocks": 1, "unet.attention_levels": (1,), "optim.batch_size": 2, "optim.warmup_steps": 2, "optim.learning_rate": 1e-3,
    "optim.max_steps": 4, "optim.seed": 0, "num_workers": 0, "log_every": 1, "save_every": 1000, "sample_every": 1000, "sample_steps": 2,
}


def tiny_config(data_dir, output_dir, **overrides) -> TrainConfig:
    """A 2-level, 32-channel UNet on 4x8x8 clips; overrides by dotted name or by a short flag's name (max_steps=20)."""
    settings = {**TINY_RUN, "data.data_dir": str(data_dir), "output_dir": str(output_dir)}
    settings.update({SHORT_FLAGS.get(name, name): value for name, value in overrides.items()})
    return override(TrainConfig(), settings)


def training_state(step: int) -> TrainingState:
    """A training state with no optimizer behind it, for tests of the checkpoint files alone."""
    return TrainingState(optimizer={}, lr_schedule={}, scaler={}, step=step, epoch=0, batches_done_in_epoch=0, rng=[rng_states()],
                         noise_generators=[torch.Generator().get_state()])


def unet_weights(checkpoint: Path) -> dict:
    return load_file(str(checkpoint / "pipeline" / "unet" / "model.safetensors"))


def metrics(output_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]


def test_ten_steps_then_resume_ten_matches_twenty_straight(tmp_path):
    data = make_clips(tmp_path / "data")  # 6 clips, batch 2: step 10 is mid-epoch, so the data position matters
    straight = tiny_config(data, tmp_path / "straight", max_steps=20, save_every=10, keep_last=5, caption_dropout_prob=0.5)
    train(straight)
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    (resumed_dir / "step_0000010").symlink_to(tmp_path / "straight" / "step_0000010", target_is_directory=True)
    train(tiny_config(data, resumed_dir, max_steps=20, save_every=10, keep_last=5, caption_dropout_prob=0.5, resume="latest"))
    expected, actual = unet_weights(tmp_path / "straight" / "step_0000020"), unet_weights(resumed_dir / "step_0000020")
    assert expected.keys() == actual.keys()
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], rtol=0, atol=0, msg=key)
    ema_expected = load_file(str(tmp_path / "straight" / "step_0000020" / "pipeline" / "ema.safetensors"))
    ema_actual = load_file(str(resumed_dir / "step_0000020" / "pipeline" / "ema.safetensors"))
    for key in ema_expected:
        torch.testing.assert_close(ema_actual[key], ema_expected[key], rtol=0, atol=0, msg=key)


def test_grad_accumulation_matches_full_batch(tmp_path, monkeypatch):
    """batch 4 x 1 and batch 2 x 2 see the same clips; with a loss that is a mean over clips, the pre-clip
    gradient norms must agree (a sum instead of a mean would double them; a no-op setting would halve the data)."""
    def deterministic_loss(self, videos, captions, generator=None):
        timesteps = torch.full((videos.shape[0],), 500, dtype=torch.long)
        noise = torch.sin(videos * 37.0)  # fixed per clip, independent of batch composition
        return self.per_sample_loss(videos, self.text_encoder.encode(captions), timesteps, noise).mean()

    monkeypatch.setattr(DenoisingObjective, "forward", deterministic_loss)
    data = make_clips(tmp_path / "data", count=4)
    full = tiny_config(data, tmp_path / "full", batch_size=4, gradient_accumulation_steps=1, max_steps=3)
    accumulated = tiny_config(data, tmp_path / "accumulated", batch_size=2, gradient_accumulation_steps=2, max_steps=3)
    train(full)
    train(accumulated)
    full_norms = [row["grad_norm"] for row in metrics(tmp_path / "full") if "grad_norm" in row]
    accumulated_norms = [row["grad_norm"] for row in metrics(tmp_path / "accumulated") if "grad_norm" in row]
    assert len(full_norms) == len(accumulated_norms) == 3
    np.testing.assert_allclose(accumulated_norms, full_norms, rtol=1e-4)


def test_partial_accumulation_is_flushed_at_epoch_end(tmp_path):
    data = make_clips(tmp_path / "data")  # 6 clips / batch 2 = 3 micro-batches: groups of 2 and 1
    train(tiny_config(data, tmp_path / "run", gradient_accumulation_steps=2, max_steps=None, num_epochs=2))
    rows = [row for row in metrics(tmp_path / "run") if "loss" in row]
    assert [row["step"] for row in rows] == [1, 2, 3, 4]
    assert [row["epoch"] for row in rows] == [0, 0, 1, 1]


def test_interrupted_checkpoint_is_never_picked_as_latest(tmp_path, monkeypatch):
    data = make_clips(tmp_path / "data")
    output = tmp_path / "run"
    train(tiny_config(data, output, max_steps=2, save_every=2))
    assert [path.name for path in list_checkpoints(output)] == ["step_0000002"]

    import text2sign.training.checkpoint as checkpoint_module

    def killed_mid_write(*args, **kwargs):
        raise KeyboardInterrupt("simulated kill while writing the training state")

    monkeypatch.setattr(checkpoint_module.torch, "save", killed_mid_write)
    pipeline = TextToSignPipeline.from_pretrained(output / "step_0000002" / "pipeline")
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(output, 4, pipeline, training_state(4), {})
    assert (output / ".tmp-step_0000004").is_dir()  # the half-written save exists ...
    (output / "step_0000006").mkdir()  # ... and so does a directory someone half-copied by hand
    assert [path.name for path in list_checkpoints(output)] == ["step_0000002"]  # neither is a checkpoint
    assert resolve_checkpoint(output, prefer="latest").name == "step_0000002"


def test_checkpoint_paths_resolve_like_the_old_best_model_pt(tmp_path):
    data = make_clips(tmp_path / "data")
    output = tmp_path / "run"
    train(tiny_config(data, output, max_steps=4, save_every=2, keep_last=1))
    best = json.loads((output / "best.json").read_text())["checkpoint"]
    assert resolve_checkpoint(output / "best_model.pt").name == best
    assert resolve_checkpoint(output / "latest_model.pt").name == "step_0000004"
    kept = {path.name for path in list_checkpoints(output)}
    assert kept == {"step_0000004", best}  # keep_last=1 plus the best


def test_training_state_loads_with_weights_only(tmp_path):
    data = make_clips(tmp_path / "data")
    train(tiny_config(data, tmp_path / "run", max_steps=2))
    state = torch.load(tmp_path / "run" / "step_0000002" / "training_state.pt", weights_only=True)
    assert state["step"] == 2 and "optimizer" in state and "rng" in state


def test_loss_goes_down_on_repeated_clips(tmp_path):
    data = make_clips(tmp_path / "data", count=2)
    train(tiny_config(data, tmp_path / "run", max_steps=30, caption_dropout_prob=0.0, learning_rate=3e-3, **{"pipeline.loss_weighting": "mse"}))
    losses = [row["loss"] for row in metrics(tmp_path / "run") if "loss" in row]
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])


def test_wandb_offline_writes_a_run(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    data = make_clips(tmp_path / "data")
    train(tiny_config(data, tmp_path / "run", max_steps=2, wandb=True, sample_every=2, validation_prompts=("hello",)))
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(runs[0].rglob("*.wandb"))
    assert list((tmp_path / "run" / "samples").rglob("*.gif"))


def _run_script(*args, env=None, timeout=180):
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("flags,message", [
    (["--data_dir", "/no/such/folder"], "not a directory"),
    (["--preset", "huge"], "unknown preset"),
    (["--image_size", "30"], "divisible"),
    (["--batch_size", "0"], "batch_size"),
])
def test_bad_flags_exit_nonzero_with_one_line(tmp_path, flags, message):
    data = make_clips(tmp_path / "data", count=2)
    result = _run_script("train.py", "--data_dir", str(data), "--output_dir", str(tmp_path / "out"), *flags)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_preset_values_and_overrides():
    small = config_from_preset("small", {"optim.batch_size": 8})
    assert (small.unet.model_channels, small.data.image_size, small.data.num_frames, small.optim.batch_size) == (64, 32, 8, 8)
    assert config_from_preset("large").data.image_size == 64
    with pytest.raises(ValueError, match="no settings"):
        config_from_preset("small", {"channels": 3})


def test_text_encoder_flags_reach_the_config(tmp_path):
    script = load_script("train.py")
    data = make_clips(tmp_path / "data", count=2)
    args = script.parse_args(["--data_dir", str(data), "--preset", "small", "--text_encoder", "hf",
                              "--text_encoder_path", str(tmp_path / "minilm"), "--text_train_last_n_layers", "2"])
    config = script.config_from_args(args)
    assert (config.text_encoder.kind, config.text_encoder.pretrained_path, config.text_encoder.train_last_n_layers) == ("hf", str(tmp_path / "minilm"), 2)
    assert script.config_from_args(script.parse_args(["--data_dir", str(data), "--preset", "small"])).text_encoder.train_last_n_layers == 0


@pytest.mark.slow
def test_torchrun_two_process_gloo_trains_and_saves_once(tmp_path):
    data = make_clips(tmp_path / "data", count=8)
    output = tmp_path / "ddp"
    command = two_process_train_arguments(data, output, 29517, 3)
    result = _run_script(*command, env={"OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert [path.name for path in list_checkpoints(output)] == ["step_0000003"]
    rows = [row for row in metrics(output) if "loss" in row]
    assert [row["step"] for row in rows] == [1, 2, 3]  # rank 0 alone logs: one row per step, not two


# Run under torchrun: trains into OUTPUT/RUN ("straight", or "resumed" with --resume latest), recording each
# rank's torch CPU RNG state at every training forward in OUTPUT/RUN_rankN.pt.
RANK_RNG_SCRIPT = """
import json, os, sys
from pathlib import Path
import torch
from text2sign.models.objective import DenoisingObjective
from text2sign.training.config import TrainConfig
from text2sign.training.loop import train

rank = int(os.environ["RANK"])
settings, output, run = json.loads(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
recorded = []
original_loss = DenoisingObjective.forward

def recording_loss(self, videos, captions, generator=None):
    recorded.append(torch.get_rng_state())
    torch.rand(1 + 7 * rank)  # the ranks' global RNG streams drift apart, as rank-dependent work makes them
    return original_loss(self, videos, captions, generator=generator)

DenoisingObjective.forward = recording_loss
train(TrainConfig(**settings, output_dir=str(output / run), resume="latest" if run == "resumed" else None))
torch.save(recorded, output / f"{run}_rank{rank}.pt")
"""


@pytest.mark.slow
def test_torchrun_resume_restores_each_ranks_own_rng_state(tmp_path):
    data = make_clips(tmp_path / "data", count=8)  # 2 ranks x batch 2: 2 steps per epoch
    settings = tiny_config(data, tmp_path, max_steps=4, save_every=2, keep_last=5).to_dict()
    del settings["output_dir"], settings["resume"]
    script = tmp_path / "rank_rng.py"
    script.write_text(RANK_RNG_SCRIPT)
    for run in ("straight", "resumed"):
        if run == "resumed":
            (tmp_path / "resumed").mkdir()
            (tmp_path / "resumed" / "step_0000002").symlink_to(tmp_path / "straight" / "step_0000002", target_is_directory=True)
        result = _run_script("-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29518", str(script),
                             json.dumps(settings), str(tmp_path), run, env={"OMP_NUM_THREADS": "1"})
        assert result.returncode == 0, result.stderr[-3000:]
    for rank in (0, 1):
        straight = torch.load(tmp_path / f"straight_rank{rank}.pt")
        resumed = torch.load(tmp_path / f"resumed_rank{rank}.pt")
        assert len(straight) == 4 and len(resumed) == 2
        assert not torch.equal(straight[2], torch.load(tmp_path / f"straight_rank{1 - rank}.pt")[2])  # the ranks do differ
        assert torch.equal(resumed[0], straight[2]), f"rank {rank} resumed with another RNG state than it had at step 2"


@pytest.mark.parametrize("distributed,checkpointing,optimize_ddp", [(True, True, False), (True, False, True), (False, True, True)])
def test_compile_turns_off_dynamos_ddp_optimizer_only_for_checkpointed_ddp(monkeypatch, distributed, checkpointing, optimize_ddp):
    """Dynamo's DDP optimizer raises "Found a higher order op" on a checkpointed UNet (pytorch#104674); elsewhere it
    stays on, as it overlaps the all-reduce with the backward. (The crash itself needs torchrun and a compiler.)"""
    from text2sign.models.unet3d import UNet3D
    from text2sign.training.loop import compile_unet
    from tiny_models import tiny_unet_config

    unet = UNet3D(tiny_unet_config(gradient_checkpointing=checkpointing))
    compiled = []
    monkeypatch.setattr(unet, "compile", lambda: compiled.append(True))
    # torch's own config patch, not monkeypatch: the config module serves its defaults through __getattr__, and
    # monkeypatch's undo deleted the attribute, failing the next case in a fresh environment.
    with torch._dynamo.config.patch(optimize_ddp=True):
        compile_unet(unet, distributed)
        assert compiled == [True] and torch._dynamo.config.optimize_ddp is optimize_ddp


def test_wall_clock_budget_stops_with_a_checkpoint_and_samples(tmp_path):
    data = make_clips(tmp_path / "data")
    result = train(tiny_config(data, tmp_path / "run", max_steps=1000, max_minutes=1e-4, validation_prompts=("hello",)))
    assert result.step == 1  # the budget is checked after every optimizer step
    assert [path.name for path in list_checkpoints(tmp_path / "run")] == ["step_0000001"]
    assert list((tmp_path / "run" / "samples" / "step_0000001").glob("*.gif"))  # a run always ends with samples


def test_validation_clips_are_held_out_from_training(tmp_path):
    data = make_clips(tmp_path / "data", count=40)
    output = tmp_path / "run"
    result = train(tiny_config(data, output, max_steps=1, val_fraction=0.2))
    assert result.validation_metric == "val_loss"
    assert result.validation_clips > 0 and result.train_clips + result.validation_clips == 40
    assert any("val_loss" in row for row in metrics(output))


def test_validation_captions_no_training_clip_has_are_named_in_a_warning(tmp_path, capsys):
    # One clip per caption (the ISL phrases): a held-out clip is a caption the model never trains on.
    data = make_clips(tmp_path / "data", count=40)
    for index, caption_file in enumerate(sorted(data.glob("*.txt"))):
        caption_file.write_text(f"phrase number {index}\n")
    train(tiny_config(data, tmp_path / "one_per_caption", max_steps=1, val_fraction=0.2))
    assert "validation captions are in no training clip" in capsys.readouterr().out
    # Captions shared by several clips (6 captions over 40 clips): every held-out caption is also trained on.
    train(tiny_config(make_clips(tmp_path / "shared_captions", count=40), tmp_path / "shared", max_steps=1, val_fraction=0.2))
    assert "in no training clip" not in capsys.readouterr().out


# ---------------------------------------------------------------- resume: the checkpoint fixes the architecture

def test_resume_with_a_contradicting_architecture_flag_exits_with_one_line_naming_it(tmp_path):
    data = make_clips(tmp_path / "data")
    output = tmp_path / "run"
    train(tiny_config(data, output, max_steps=1, save_every=1))
    result = _run_script("train.py", "--data_dir", str(data), "--output_dir", str(output), "--resume", "latest",
                         "--model_channels", "64", "--max_steps", "2", "--num_workers", "0")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--model_channels 64" in lines[0] and "unet.model_channels=32" in lines[0], result.stderr
    assert [path.name for path in list_checkpoints(output)] == ["step_0000001"]  # nothing trained


def test_resume_in_python_with_another_architecture_is_an_error(tmp_path):
    data = make_clips(tmp_path / "data")
    output = tmp_path / "run"
    train(tiny_config(data, output, max_steps=1, save_every=1))
    with pytest.raises(ValueError, match=r"unet.model_channels=64 contradicts the checkpoint's unet.model_channels=32"):
        train(tiny_config(data, output, max_steps=2, model_channels=64, resume="latest"))


def test_resume_takes_the_architecture_from_the_checkpoint_and_a_new_learning_rate_from_the_flags(tmp_path):
    data = make_clips(tmp_path / "data")
    output = tmp_path / "run"
    train(tiny_config(data, output, max_steps=2, save_every=2, lr_schedule="constant"))
    first = json.loads((output / "step_0000002" / "train_config.json").read_text())
    assert first["unet"]["text_dim"] == TextToSignPipeline.from_pretrained(output / "step_0000002" / "pipeline").text_encoder.output_dim
    # No architecture flag: the standard preset's 128 channels and 16x64x64 clips give way to the checkpoint's.
    exit_code = load_script("train.py").main([
        "--data_dir", str(data), "--output_dir", str(output), "--resume", "latest", "--learning_rate", "5e-4", "--max_steps", "4",
        "--save_every", "2", "--lr_schedule", "constant", "--warmup_steps", "2", "--batch_size", "2", "--num_workers", "0", "--val_fraction", "0", "--log_every", "1",
        "--sample_steps", "2", "--validation_prompts", "hello",
    ])
    assert exit_code == 0
    ran = json.loads((output / "step_0000004" / "train_config.json").read_text())
    assert ran["optim"]["learning_rate"] == 5e-4
    assert (ran["unet"]["model_channels"], ran["unet"]["channel_mult"], ran["data"]["num_frames"], ran["data"]["image_size"]) == (32, [1, 1], 4, 8)
    assert ran["unet"] == first["unet"] and ran["text_encoder"] == first["text_encoder"] and ran["scheduler"] == first["scheduler"]
    resumed_rates = [row["lr"] for row in metrics(output) if "lr" in row and row["step"] > 2]
    assert resumed_rates == [5e-4, 5e-4]  # the optimizer runs at the new rate, not the checkpoint's 1e-3


# ---------------------------------------------------------------- fine-tuned text layers: dropout on from step 1

def dropout_modes(pipeline) -> dict[str, bool]:
    return {name: module.training for name, module in pipeline.text_encoder.backbone.named_modules() if isinstance(module, torch.nn.Dropout)}


@pytest.fixture(scope="module")
def fine_tuned_t5_runs(tmp_path_factory):
    """A straight 4-step run and one resumed at step 2 (mid-epoch), fine-tuning the last of a tiny T5's 2 blocks
    (dropout 0.1), with the backbone's dropout modes recorded at every training forward."""
    root = tmp_path_factory.mktemp("fine_tuned_t5")
    data = make_clips(root / "data")
    t5 = build_tiny_t5(root / "t5")
    modes = {"straight": [], "resumed": []}
    original_loss = DenoisingObjective.forward

    def recording_loss(self, videos, captions, generator=None):
        modes[current_run].append(dropout_modes(self))
        return original_loss(self, videos, captions, generator=generator)

    settings = dict(max_steps=4, save_every=2, keep_last=5, text_encoder="t5", text_encoder_path=str(t5), text_train_last_n_layers=1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DenoisingObjective, "forward", recording_loss)
        current_run = "straight"
        train(tiny_config(data, root / "straight", **settings))
        resumed = root / "resumed"
        resumed.mkdir()
        (resumed / "step_0000002").symlink_to(root / "straight" / "step_0000002", target_is_directory=True)
        current_run = "resumed"
        train(tiny_config(data, resumed, resume="latest", **settings))
    return root, modes


def test_fine_tuned_text_layers_use_dropout_from_step_one_and_after_resume(fine_tuned_t5_runs):
    _, modes = fine_tuned_t5_runs
    first_fresh, first_resumed = modes["straight"][0], modes["resumed"][0]
    assert len(modes["resumed"]) == 2  # steps 3 and 4
    for recorded in (first_fresh, first_resumed):
        fine_tuned = {name: training for name, training in recorded.items() if name.startswith("encoder.block.1.")}
        frozen = {name: training for name, training in recorded.items() if not name.startswith("encoder.block.1.")}
        assert fine_tuned and frozen
        assert all(fine_tuned.values()), fine_tuned  # the fine-tuned block trains with dropout
        assert not any(frozen.values()), frozen  # frozen features stay deterministic


def test_resume_with_fine_tuned_text_layers_matches_straight(fine_tuned_t5_runs):
    root, _ = fine_tuned_t5_runs
    for part in ("unet/model.safetensors", "text_encoder/backbone/model.safetensors", "ema.safetensors"):
        expected = load_file(str(root / "straight" / "step_0000004" / "pipeline" / part))
        actual = load_file(str(root / "resumed" / "step_0000004" / "pipeline" / part))
        assert expected.keys() == actual.keys()
        for key in expected:
            torch.testing.assert_close(actual[key], expected[key], rtol=0, atol=0, msg=f"{part}: {key}")


# ---------------------------------------------------------------- checkpoints that survive a crash

def test_resume_latest_skips_a_truncated_newest_checkpoint(tmp_path):
    data = make_clips(tmp_path / "data")
    output = tmp_path / "run"
    train(tiny_config(data, output, max_steps=4, save_every=2, keep_last=5))
    weights = output / "step_0000004" / "pipeline" / "unet" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # what a crash before the data hit disk leaves

    with pytest.raises(SafetensorError):  # a checkpoint named explicitly gets no fallback
        train(tiny_config(data, tmp_path / "explicit", max_steps=6, save_every=2, resume=str(output / "step_0000004")))
    with pytest.warns(UserWarning, match="step_0000004") as caught:
        result = train(tiny_config(data, output, max_steps=6, save_every=2, keep_last=5, resume="latest"))
    assert "does not load" in str(caught[0].message)
    assert result.step == 6
    assert [row["step"] for row in metrics(output) if "loss" in row] == [1, 2, 3, 4, 3, 4, 5, 6]  # resumed after step 2


def test_resume_latest_with_no_loadable_checkpoint_is_an_error(tmp_path):
    data = make_clips(tmp_path / "data")
    output = tmp_path / "run"
    train(tiny_config(data, output, max_steps=2, save_every=2))
    state = output / "step_0000002" / "training_state.pt"
    state.write_bytes(state.read_bytes()[:100])
    with pytest.warns(UserWarning, match="step_0000002"), pytest.raises(RuntimeError, match="no checkpoint in .* loads"):
        load_newest_checkpoint(output, warn=lambda message: warnings.warn(message))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names an fsynced descriptor through /proc (Linux)")
def test_checkpoint_files_and_directories_are_fsynced(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def recording_fsync(descriptor):
        synced.append(Path(os.readlink(f"/proc/self/fd/{descriptor}")))
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    output = (tmp_path / "run").resolve()
    final = save_checkpoint(output, 3, tiny_pipeline(), training_state(3), {"seed": 0})
    temp = output / ".tmp-step_0000003"
    written = [path for path in final.rglob("*")]
    # Every file and directory, under the temp name it had when synced, then the output directory (the rename).
    expected = {temp / path.relative_to(final) for path in written} | {temp}
    assert expected <= set(synced), sorted(expected - set(synced))
    assert synced[-1] == output
    assert synced.index(temp) < synced.index(output)


# ---------------------------------------------------------------- zero terminal SNR

def test_zero_terminal_snr_flag_reaches_the_saved_scheduler(tmp_path):
    script = load_script("train.py")
    data = make_clips(tmp_path / "data")
    args = script.parse_args(["--data_dir", str(data), "--preset", "small", "--rescale_betas_zero_snr"])
    assert script.config_from_args(args).scheduler.rescale_betas_zero_snr
    assert not script.config_from_args(script.parse_args(["--data_dir", str(data), "--preset", "small"])).scheduler.rescale_betas_zero_snr
    output = tmp_path / "run"
    train(tiny_config(data, output, max_steps=1, rescale_betas_zero_snr=True))
    pipeline_dir = output / "step_0000001" / "pipeline"
    scheduler = Scheduler.from_pretrained(pipeline_dir / "scheduler")
    assert scheduler.config.rescale_betas_zero_snr
    assert scheduler.alphas_cumprod[-1] == 0
    # Inference samples with the saved schedule, starting at the pure-noise step (trailing spacing): a
    # zero-SNR model started at a "leading" t < T-1 would expect signal that pure noise does not have.
    pipeline = TextToSignPipeline.from_pretrained(pipeline_dir)
    sampler = make_scheduler(pipeline.config.sampler, pipeline.scheduler.config)
    sampler.set_timesteps(4)
    assert sampler.alphas_cumprod[int(sampler.timesteps[0])] == 0
    video = pipeline(["hello"], num_inference_steps=4, generator=torch.Generator().manual_seed(0), progress=False, output_type="tensor")
    assert torch.isfinite(video).all()


def test_training_takes_frames_as_validation_and_evaluation_do_by_default():
    from text2sign.data.config import DataConfig
    from text2sign.training.config import PRESETS, TrainConfig

    evaluation_sampling = DataConfig(data_dir="unused").frame_sampling  # what evaluate.py and validation use
    assert TrainConfig().data.frame_sampling == evaluation_sampling
    for name in PRESETS:
        assert config_from_preset(name).data.frame_sampling == evaluation_sampling, name


def test_every_preset_asks_no_more_frames_or_pixels_than_the_bundled_clips_have():
    from pathlib import Path

    from text2sign.data.clip import load_clip
    from text2sign.data.config import DataConfig
    from text2sign.training.config import PRESETS

    bundled = sorted((Path(__file__).resolve().parents[1] / "training_data").glob("*.gif"))
    assert bundled, "training_data/ should hold the bundled How2Sign clips"
    _, info = load_clip(bundled[0], DataConfig(data_dir="unused", num_frames=1, image_size=8))
    for name in PRESETS:
        data = config_from_preset(name).data
        assert data.num_frames <= info.timeline_length, f"{name}: {data.num_frames} frames of {info.timeline_length}-frame clips"
        assert data.image_size <= min(info.width, info.height), f"{name}: {data.image_size} px of {info.width}x{info.height} clips"


# ---------------------------------------------------------------- the CUDA path: no waits, one loader, plain logs

HOST_READS = ("item", "__bool__", "__float__", "__int__", "tolist", "cpu", "numpy")  # each waits for a GPU tensor


def record_host_reads(monkeypatch) -> list:
    """Every host read of a tensor made by text2sign's own code outside data/ (the data pipeline's tensors are
    host tensors before they move): on CUDA each is a wait for the GPU."""
    import text2sign

    package, data_package = str(Path(text2sign.__file__).parent), str(Path(text2sign.__file__).parent / "data")
    reads = []
    for name in HOST_READS:
        def counting(self, *args, _original=getattr(torch.Tensor, name), _name=name, **kwargs):
            caller = sys._getframe(1).f_code
            if caller.co_filename.startswith(package) and not caller.co_filename.startswith(data_package):
                reads.append((_name, caller.co_filename, caller.co_name))
            return _original(self, *args, **kwargs)
        monkeypatch.setattr(torch.Tensor, name, counting)
    return reads


def test_a_step_between_logging_steps_reads_nothing_back_from_the_device(tmp_path, monkeypatch):
    """Three more non-logging steps must add no host read of a tensor: the loss, the finite checks and the gradient
    norm stay on the device until a logging step (the old loop read the loss and two finite flags every step)."""
    data = make_clips(tmp_path / "data")
    reads = record_host_reads(monkeypatch)
    train(tiny_config(data, tmp_path / "short", max_steps=2, log_every=1000, caption_dropout_prob=0.5))
    short = list(reads)
    reads.clear()
    train(tiny_config(data, tmp_path / "long", max_steps=5, log_every=1000, caption_dropout_prob=0.5))
    assert len(short) > 0  # the final logging step, validation and sampling do read: the recording works
    assert len(reads) == len(short), sorted(set(reads) - set(short)) or reads


class RecordingDataLoader(torch.utils.data.DataLoader):
    built: list = []

    def __init__(self, *args, **kwargs):
        RecordingDataLoader.built.append(kwargs)
        super().__init__(*args, **kwargs)


def test_one_persistent_loader_serves_every_epoch_with_each_epochs_random_windows(tmp_path, monkeypatch):
    """Rebuilding the DataLoader every epoch restarts its workers (2.7x slower on small folders). One loader with
    persistent workers must still give each epoch its own random windows: its workers' dataset copies never see
    set_epoch, so the epoch travels in the keys. The losses with 2 workers equal those in-process."""
    import text2sign.training.loop as loop_module

    data = make_clips(tmp_path / "data")  # 6-frame clips, 4-frame random windows: epochs differ
    monkeypatch.setattr(loop_module, "DataLoader", RecordingDataLoader)
    settings = dict(max_steps=None, num_epochs=3, train_frame_sampling="random")
    RecordingDataLoader.built = []
    train(tiny_config(data, tmp_path / "workers", num_workers=2, **settings))
    assert len(RecordingDataLoader.built) == 1 and RecordingDataLoader.built[0]["persistent_workers"]
    train(tiny_config(data, tmp_path / "in_process", num_workers=0, **settings))
    with_workers = [row["loss"] for row in metrics(tmp_path / "workers") if "loss" in row]
    in_process = [row["loss"] for row in metrics(tmp_path / "in_process") if "loss" in row]
    assert len(with_workers) == 9 and with_workers == in_process


def test_logs_are_plain_lines_when_the_output_is_not_a_terminal(tmp_path, capsys):
    """A cluster job's log file got tqdm's redraws, up to ten a second for the whole run; off a terminal each
    logged row is one plain line instead."""
    data = make_clips(tmp_path / "data")
    train(tiny_config(data, tmp_path / "run", max_steps=4, log_every=2))
    captured = capsys.readouterr()
    assert "\r" not in captured.err and "\r" not in captured.out
    lines = [line for line in captured.out.splitlines() if line.startswith("step ")]
    assert [line.split(":")[0] for line in lines if "loss" in line and "train_fixed_loss" not in line] == ["step 2/4", "step 4/4"]
    assert "ms/step" in lines[0]


def test_a_non_finite_step_is_skipped_on_the_device_and_too_many_stop_the_run(tmp_path, monkeypatch):
    original_loss = DenoisingObjective.forward
    calls = []

    def loss_nan_at(bad_calls):
        def forward(self, videos, captions, generator=None):
            calls.append(1)
            loss = original_loss(self, videos, captions, generator=generator)
            return loss * float("nan") if len(calls) in bad_calls else loss
        return forward

    data = make_clips(tmp_path / "data")
    monkeypatch.setattr(DenoisingObjective, "forward", loss_nan_at({2}))
    result = train(tiny_config(data, tmp_path / "run", max_steps=3, save_every=1, keep_last=5))
    assert result.skipped_steps == 1 and [row["skipped_steps"] for row in metrics(tmp_path / "run") if "loss" in row] == [0, 1, 1]
    after_first, after_skipped = unet_weights(tmp_path / "run" / "step_0000001"), unet_weights(tmp_path / "run" / "step_0000002")
    for key in after_first:  # the skipped step left the weights as they were
        torch.testing.assert_close(after_skipped[key], after_first[key], rtol=0, atol=0, msg=key)
    assert all(torch.isfinite(value).all() for value in unet_weights(tmp_path / "run" / "step_0000003").values())

    calls.clear()
    monkeypatch.setattr(DenoisingObjective, "forward", loss_nan_at(set(range(1, 100))))
    with pytest.raises(RuntimeError, match="consecutive non-finite steps"):
        train(tiny_config(data, tmp_path / "diverged", max_steps=10, log_every=5, **{"optim.max_nonfinite_steps": 3}))


def test_mixed_precision_auto_is_bf16_on_a_gpu_that_has_it_and_float32_elsewhere(monkeypatch, tmp_path):
    from text2sign.training.loop import autocast_dtype_for

    assert TrainConfig().optim.mixed_precision == "auto"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    assert autocast_dtype_for("auto", torch.device("cuda:0")) is torch.bfloat16
    assert autocast_dtype_for("no", torch.device("cuda:0")) is None  # the flag that turns it off
    assert autocast_dtype_for("auto", torch.device("cpu")) is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)  # e.g. a V100
    assert autocast_dtype_for("auto", torch.device("cuda:0")) is None
    data = make_clips(tmp_path / "data")
    train(tiny_config(data, tmp_path / "run", max_steps=1))
    assert json.loads((tmp_path / "run" / "step_0000001" / "train_config.json").read_text())["optim"]["mixed_precision"] == "no"  # what ran


def test_compiling_pads_every_caption_to_one_text_length(tmp_path, monkeypatch):
    """A compiled UNet recompiles for each new text length: with --compile every text reaching it, in training,
    validation and guided sampling, has text_encoder.max_length tokens. (Compilation itself is stubbed out.)"""
    from text2sign.models.unet3d import UNet3D

    lengths = set()
    original_forward = UNet3D.forward

    def recording_forward(self, sample, timesteps, text_states, text_mask):
        lengths.add(text_states.shape[1])
        return original_forward(self, sample, timesteps, text_states, text_mask)

    monkeypatch.setattr(UNet3D, "compile", lambda self, *args, **kwargs: None)
    monkeypatch.setattr(UNet3D, "forward", recording_forward)
    data = make_clips(tmp_path / "data")  # captions of 1 to 3 words
    train(tiny_config(data, tmp_path / "run", max_steps=2, compile=True, text_max_length=7, validation_prompts=("hello",)))
    assert lengths == {7}
