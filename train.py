#!/usr/bin/env python
"""Train a text-to-sign video diffusion model: flags -> TrainConfig -> train().

    python train.py --data_dir ./training_data --preset small --num_epochs 10
    python train.py --preset small --unet.dropout 0.1 --optim.weight_decay 0.01
    torchrun --nproc_per_node=4 train.py --data_dir /data/how2sign --preset standard   # bf16 on GPUs that have it

Every setting is a flag named by its place in the config (--unet.dropout, --optim.learning_rate, --output_dir);
the short flags of earlier versions (--learning_rate, --data_cache, ...) work too. A preset fills every setting;
a flag typed overrides it by name. On --resume the checkpoint fixes the model, text encoder, diffusion and clip
shape: a flag that contradicts it is an error. Bad input exits with one line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from text2sign.cli import run_with_one_line_errors
from text2sign.training.config import TrainConfig
from text2sign.training.flags import build_parser, config_from_flags, typed_flags


def parse_args(argv=None) -> argparse.Namespace:
    return build_parser(__doc__).parse_args(argv)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    config = config_from_flags(args)
    if not Path(config.data.data_dir).is_dir():
        raise ValueError(f"--data_dir {config.data.data_dir} is not a directory")
    return config


def main(argv=None) -> int:
    args = parse_args(argv)

    def body() -> int:
        config = config_from_args(args)
        from text2sign.training.loop import train

        result = train(config, flags=typed_flags(args))
        if result.checkpoint:
            print(f"done: {result.step} steps, checkpoint {result.checkpoint}")
        return 0

    return run_with_one_line_errors("train.py", body)


if __name__ == "__main__":
    sys.exit(main())
