"""config.json + model.safetensors: the one way a trained module is written and rebuilt.

Every model class here saves its dataclass config as JSON beside its weights and rebuilds itself
from that config before loading the weights strictly, so config and weights can never disagree
silently (the prior attempt rebuilt models from defaults and loaded mismatched weights).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from text2sign.json_io import write_json

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def config_from_dict(config_cls: type, payload: dict[str, Any]):
    """Build a dataclass config from JSON, refusing keys the class does not know."""
    known = {field.name for field in dataclasses.fields(config_cls)}
    unknown = sorted(set(payload) - known - {"_class_name"})
    if unknown:
        raise ValueError(f"{config_cls.__name__} does not know the keys {unknown}; was this config written by another version?")
    values = {key: value for key, value in payload.items() if key in known}
    return config_cls(**values)


def save_state_dict(state_dict: dict[str, torch.Tensor], path: str | os.PathLike) -> None:
    """safetensors write via a temp file; tensors are made contiguous and detached (shared storage is not allowed)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tensors = {key: value.detach().contiguous().cpu() for key, value in state_dict.items()}
    save_file(tensors, str(tmp))
    os.replace(tmp, path)


def load_state_dict_strict(module: torch.nn.Module, path: str | os.PathLike) -> None:
    """Load safetensors weights; any missing, unexpected or mis-shaped key is a ValueError naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: expected weights written by save_pretrained()")
    state_dict = load_file(str(path))
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = sorted(
        f"{key}: file {tuple(state_dict[key].shape)} vs model {tuple(expected[key].shape)}"
        for key in set(expected) & set(state_dict)
        if state_dict[key].shape != expected[key].shape
    )
    if missing or unexpected or mismatched:
        raise ValueError(
            f"weights in {path} do not match the model built from its config: "
            f"missing keys {missing[:10]}{'...' if len(missing) > 10 else ''}, "
            f"unexpected keys {unexpected[:10]}{'...' if len(unexpected) > 10 else ''}, "
            f"mismatched shapes {mismatched[:10]}"
        )
    module.load_state_dict(state_dict, strict=True)


def save_module(module: torch.nn.Module, config, directory: str | os.PathLike) -> None:
    """Write `config.json` (the dataclass plus the class name) and `model.safetensors`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    write_json(directory / CONFIG_NAME, {"_class_name": type(module).__name__, **dataclasses.asdict(config)})
    save_state_dict(module.state_dict(), directory / WEIGHTS_NAME)
