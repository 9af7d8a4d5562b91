"""Import a top-level script (train.py, evaluate.py) as a module, to test its argument handling in-process."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]


def load_script(filename: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(Path(filename).stem + "_script", REPO / filename)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there (the Boston experiment defines some)
    spec.loader.exec_module(module)
    return module


def two_process_train_arguments(data_dir, output_dir, master_port: int, max_steps: int, *extra: str) -> list[str]:
    """`python` arguments for a 2-process gloo torchrun of train.py on a 4-frame 8x8 toy UNet, saving at the end."""
    return [
        "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={master_port}", "train.py", "--data_dir", str(data_dir),
        "--output_dir", str(output_dir), "--preset", "small", "--num_frames", "4", "--image_size", "8", "--model_channels", "32",
        "--channel_mult", "1", "1", "--attention_levels", "1", "--num_res_blocks", "1", "--batch_size", "2", "--max_steps", str(max_steps),
        "--save_every", str(max_steps), "--num_workers", "0", "--log_every", "1", "--val_fraction", "0", *extra,
    ]
