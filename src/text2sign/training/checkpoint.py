"""Training checkpoints: one directory per save, written whole or not at all.

Layout of `output_dir/step_000500/`:
    pipeline/            TextToSignPipeline.save_pretrained (UNet, text encoder, scheduler, EMA weights, README.md model card)
    training_state.pt    optimizer, LR schedule, grad scaler, step, epoch, data position, every rank's RNG states
    train_config.json    the TrainConfig that ran (on resume: with the checkpoint's architecture)
A save is written to `output_dir/.tmp-step_000500/`, fsynced, and renamed when complete: a kill mid-write
leaves only a `.tmp-` directory, which `latest`/`best` never consider and the next save removes. Without the
fsyncs a machine crash could persist the rename before the data, leaving a complete-looking checkpoint of
truncated files; `--resume latest` therefore also tries each checkpoint, newest first, until one loads.
`best.json` names the checkpoint with the lowest validation loss; pruning keeps it and the last N.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors import SafetensorError

from text2sign.json_io import read_json, write_json
from text2sign.model_card import TrainingSummary
from text2sign.models.pipeline import TextToSignPipeline

CHECKPOINT_PATTERN = re.compile(r"^step_(\d+)$")
TRAINING_STATE_NAME = "training_state.pt"
BEST_NAME = "best.json"
TEMP_PREFIX = ".tmp-"
# What a truncated or half-written checkpoint raises on load: bad JSON (a ValueError), a short safetensors file,
# a short torch zip (RuntimeError), a short pickle, a missing file. Anything else is a bug and is not caught.
CHECKPOINT_LOAD_ERRORS = (OSError, ValueError, RuntimeError, EOFError, KeyError, pickle.UnpicklingError, SafetensorError)


def checkpoint_name(step: int) -> str:
    return f"step_{step:07d}"


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints, oldest first (a directory only gets its final name once fully written)."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = [(int(match.group(1)), entry) for entry in output_dir.iterdir() if entry.is_dir() and (match := CHECKPOINT_PATTERN.match(entry.name))]
    return [path for _, path in sorted(found) if (path / TRAINING_STATE_NAME).is_file() and (path / "pipeline").is_dir()]


def rng_states(device: torch.device | str = "cpu") -> dict:
    """Every RNG a run draws from, in tensors and plain types only (so `weights_only=True` can load it).

    "cuda" holds `device`'s own generator only (empty off CUDA): each rank saves its own, so a resume on a machine
    with fewer visible GPUs restores one state per rank instead of running past its device list."""
    device = torch.device(device)
    numpy_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.empty(0, dtype=torch.uint8),
        "numpy": {"keys": torch.from_numpy(numpy_state[1].astype(np.int64)), "position": int(numpy_state[2]), "has_gauss": int(numpy_state[3]), "cached_gaussian": float(numpy_state[4])},
        "python": random.getstate(),
    }


def restore_rng_states(states: dict, device: torch.device | str = "cpu") -> None:
    """Restore what rng_states saved; the CUDA state goes to `device` alone. Checkpoints written before that saved
    every visible GPU's state (a list): `device`'s entry is taken, or the first when that machine had fewer GPUs."""
    device = torch.device(device)
    torch.set_rng_state(states["torch"])
    cuda_state = states["cuda"]
    if isinstance(cuda_state, (list, tuple)):
        index = device.index or 0
        cuda_state = cuda_state[index] if index < len(cuda_state) else (cuda_state[0] if cuda_state else torch.empty(0, dtype=torch.uint8))
    if device.type == "cuda" and cuda_state.numel():
        torch.cuda.set_rng_state(cuda_state, device)
    numpy_state = states["numpy"]
    np.random.set_state(("MT19937", numpy_state["keys"].numpy().astype(np.uint32), numpy_state["position"], numpy_state["has_gauss"], numpy_state["cached_gaussian"]))
    python_state = states["python"]
    random.setstate((python_state[0], tuple(python_state[1]), python_state[2]))


@dataclass
class TrainingState:
    """What a resumed run needs besides the pipeline to continue as the uninterrupted run would; saved as
    training_state.pt in tensors and plain types only, so it loads with `weights_only=True`."""

    optimizer: dict  # optimizer.state_dict()
    lr_schedule: dict  # the LambdaLR's state_dict()
    scaler: dict  # the GradScaler's; empty when it is disabled (not fp16)
    step: int  # optimizer steps done
    epoch: int  # the data position: the epoch in progress ...
    batches_done_in_epoch: int  # ... and the micro-batches of it already trained on
    rng: list[dict]  # rng_states() of every rank, by rank (one dict in checkpoints written before that)
    noise_generators: list[torch.Tensor]  # every rank's noise generator state, by rank

    def save(self, path: str | Path) -> None:
        # Field by field, not dataclasses.asdict, which would deep-copy every optimizer tensor first.
        torch.save({field.name: getattr(self, field.name) for field in dataclasses.fields(self)}, path)

    @classmethod
    def load(cls, path: str | Path) -> "TrainingState":
        """Read a training_state.pt; `weights_only=True`, so a checkpoint cannot run code on load. A missing entry
        is a KeyError naming it (one of CHECKPOINT_LOAD_ERRORS: `--resume latest` then tries the checkpoint before)."""
        saved = torch.load(path, map_location="cpu", weights_only=True)
        names = [field.name for field in dataclasses.fields(cls)]
        missing = [name for name in names if name not in saved]
        if missing:
            raise KeyError(f"{path} has no {missing}: not a training state written by train()")
        return cls(**{name: saved[name] for name in names})

    def rng_of_rank(self, rank: int) -> dict:
        """This rank's RNG states. A checkpoint written before states were kept per rank holds a single dict; a run
        resumed on more ranks than saved gives the extra ranks rank 0's states, as with the noise generators."""
        if isinstance(self.rng, dict):
            return self.rng
        return self.rng[rank] if rank < len(self.rng) else self.rng[0]

    def noise_generator_of_rank(self, rank: int) -> torch.Tensor:
        return self.noise_generators[rank] if rank < len(self.noise_generators) else self.noise_generators[0]


def save_checkpoint(output_dir: str | Path, step: int, pipeline, training_state: TrainingState, config_dict: dict,
                    training: TrainingSummary | None = None) -> Path:
    """Write a complete checkpoint atomically and return its final path; `training` fills the pipeline's model card."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    final = output_dir / checkpoint_name(step)
    temp = output_dir / f"{TEMP_PREFIX}{final.name}"
    if temp.exists():
        shutil.rmtree(temp)
    temp.mkdir()
    pipeline.save_pretrained(temp / "pipeline", training=training)
    training_state.save(temp / TRAINING_STATE_NAME)
    write_json(temp / "train_config.json", config_dict)
    fsync_tree(temp)  # data and directory entries on disk before the rename makes them a checkpoint
    if final.exists():  # re-saving the same step (e.g. the final save right after a periodic one)
        shutil.rmtree(final)
    os.replace(temp, final)
    fsync_directory(output_dir)  # the rename itself
    return final


def fsync_directory(directory: Path) -> None:
    # POSIX only: Windows cannot open a directory, and NTFS journals its renames anyway.
    if os.name != "posix":
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def fsync_tree(root: Path) -> None:
    """fsync every file under `root`, then every directory (deepest first, `root` last)."""
    for directory, _, files in os.walk(root, topdown=False):
        for name in files:
            with open(Path(directory) / name, "rb") as handle:
                os.fsync(handle.fileno())
        fsync_directory(Path(directory))


def load_checkpoint(checkpoint: str | Path):
    """(pipeline, training state) of a checkpoint: the pipeline built from its saved configs, weights loaded strictly."""
    checkpoint = Path(checkpoint)
    return TextToSignPipeline.from_pretrained(pipeline_directory(checkpoint)), load_training_state(checkpoint)


def load_newest_checkpoint(output_dir: str | Path, warn: Callable[[str], None]):
    """(path, pipeline, training state) of the newest checkpoint in `output_dir` that loads, or None if there are none.

    A checkpoint that does not load (truncated by a crash, half copied) is skipped with a warning naming it and
    why, and the one before it is tried; if none loads, a RuntimeError lists them all.
    """
    failures = []
    for checkpoint in reversed(list_checkpoints(output_dir)):
        try:
            return (checkpoint, *load_checkpoint(checkpoint))
        except CHECKPOINT_LOAD_ERRORS as error:
            failures.append(f"{checkpoint.name}: {type(error).__name__}: {error}")
            warn(f"checkpoint {checkpoint} does not load ({type(error).__name__}: {error}); trying the one before it")
    if failures:
        raise RuntimeError(f"--resume latest: no checkpoint in {output_dir} loads; fix or delete them, or drop --resume to start fresh. " + "; ".join(failures))
    return None


def load_training_state(checkpoint: str | Path) -> TrainingState:
    return TrainingState.load(Path(checkpoint) / TRAINING_STATE_NAME)


def record_best(output_dir: str | Path, checkpoint: Path, validation_loss: float) -> bool:
    """Point best.json at `checkpoint` if its validation loss beats the recorded one; True if it did."""
    best = read_best(output_dir)
    if best is not None and best["validation_loss"] <= validation_loss and (Path(output_dir) / best["checkpoint"]).is_dir():
        return False
    write_json(Path(output_dir) / BEST_NAME, {"checkpoint": checkpoint.name, "validation_loss": float(validation_loss)})
    fsync_directory(Path(output_dir))  # the rename itself (write_json has fsynced the file)
    return True


def read_best(output_dir: str | Path) -> dict | None:
    path = Path(output_dir) / BEST_NAME
    return read_json(path) if path.is_file() else None


def prune_checkpoints(output_dir: str | Path, keep_last: int) -> list[Path]:
    """Delete all but the newest `keep_last` checkpoints and the best one, and stale `.tmp-` directories."""
    output_dir = Path(output_dir)
    checkpoints = list_checkpoints(output_dir)
    best = read_best(output_dir)
    keep = {path.name for path in checkpoints[-keep_last:]} | ({best["checkpoint"]} if best else set())
    removed = [path for path in checkpoints if path.name not in keep]
    for path in removed:
        shutil.rmtree(path)
    for stale in output_dir.glob(f"{TEMP_PREFIX}*"):
        shutil.rmtree(stale)
    return removed


def resolve_checkpoint(path: str | Path, prefer: str = "best") -> Path:
    """Turn what a user passes into a checkpoint directory.

    Accepts a checkpoint directory (`.../step_0001000`), a bare pipeline directory, an output directory
    (its best checkpoint, else its latest; `prefer="latest"` reverses that), and the prior project's
    `DIR/best_model.pt` / `DIR/latest_model.pt` spelling, which means DIR's best / latest checkpoint.
    """
    path = Path(path)
    if path.name in ("best_model.pt", "latest_model.pt", "final_model.pt") and not path.is_file():
        return resolve_checkpoint(path.parent, prefer="best" if path.name == "best_model.pt" else "latest")
    if (path / "pipeline").is_dir() or (path / "pipeline_config.json").is_file():
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint {path} does not exist; pass a checkpoint directory or the training output directory")
    checkpoints = list_checkpoints(path)
    if not checkpoints:
        raise FileNotFoundError(f"no complete checkpoint in {path} (expected step_NNNNNNN/ directories written by train.py)")
    best = read_best(path)
    if prefer == "best" and best is not None and (path / best["checkpoint"]) in checkpoints:
        return path / best["checkpoint"]
    return checkpoints[-1]


def pipeline_directory(checkpoint: Path) -> Path:
    """The pipeline inside a checkpoint, or the checkpoint itself if it is a bare pipeline directory."""
    return checkpoint / "pipeline" if (checkpoint / "pipeline").is_dir() else checkpoint
