#!/usr/bin/env python
"""Train a text-to-sign video diffusion model: flags -> TrainConfig -> train().

    python train.py --data_dir ./training_data --preset small --num_epochs 10
    torchrun --nproc_per_node=4 train.py --data_dir /data/how2sign --preset standard --mixed_precision bf16

A preset fills every field; any flag given overrides it by name. Bad input exits with one line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from text2sign.cli import run_with_one_line_errors

from text2sign.training.config import PRESETS, TrainConfig


def parse_args(argv=None) -> argparse.Namespace:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, argument_default=None)
    data = parser.add_argument_group("data")
    data.add_argument("--data_dir", help=f"folder of NAME.gif + NAME.txt pairs, searched recursively (default {defaults.data_dir})")
    data.add_argument("--data_cache", help="cache folder written by `python -m text2sign.data.prepare` (decodes each clip once)")
    data.add_argument("--output_dir", help=f"checkpoints, samples and metrics.jsonl go here (default {defaults.output_dir})")
    data.add_argument("--num_frames", type=int, help="frames per clip")
    data.add_argument("--image_size", type=int, help="square frame size; must divide by 2^(levels-1)")
    data.add_argument("--val_fraction", type=float, help="share of clips held out by name hash for validation loss")
    data.add_argument("--group_pattern", help=r"regex on clip names; clips of one group stay on one side of the split, e.g. '^(.+?)_\d+'")
    data.add_argument("--num_workers", type=int, help="DataLoader worker processes")
    data.add_argument("--train_frame_sampling", choices=["random", "uniform"], help="random windows (default) or the whole clip uniformly")
    model = parser.add_argument_group("model")
    model.add_argument("--preset", default="standard", help=f"one of {sorted(PRESETS)}: model size, frames, image size, batch (default standard)")
    model.add_argument("--model_channels", type=int, help="UNet channels at full resolution")
    model.add_argument("--channel_mult", type=int, nargs="+", help="per-level channel multipliers, e.g. 1 2 2 2")
    model.add_argument("--num_res_blocks", type=int, help="residual blocks per level")
    model.add_argument("--attention_levels", type=int, nargs="+", help="levels with spatial/cross/temporal attention")
    model.add_argument("--gradient_checkpointing", action="store_true", default=None, help="recompute activations: less memory, more time")
    model.add_argument("--text_encoder", choices=["lstm", "clip", "t5", "hf"], help="text encoder kind (default lstm)")
    model.add_argument("--text_max_length", type=int, help="text tokens kept per caption")
    model.add_argument("--text_encoder_path", help="hub name or local directory for clip/t5/hf, e.g. openai/clip-vit-base-patch32")
    model.add_argument("--text_train_last_n_layers", type=int, help="clip/t5/hf: fine-tune the last N transformer layers; the rest stay frozen (default 0: all frozen)")
    model.add_argument("--prediction_type", choices=["epsilon", "v_prediction", "sample"], help="what the UNet predicts (default v_prediction)")
    model.add_argument("--caption_dropout_prob", type=float, help="share of captions replaced by the null embedding (default 0.1)")
    model.add_argument("--rescale_betas_zero_snr", action="store_true", default=None,
                       help="zero terminal SNR (Lin et al. 2024): the last training step is pure noise; needs v_prediction or sample")
    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--batch_size", type=int, help="clips per process per micro-batch")
    optim.add_argument("--gradient_accumulation_steps", type=int, help="micro-batches per optimizer step")
    optim.add_argument("--learning_rate", type=float, help=f"peak AdamW learning rate (default {defaults.learning_rate})")
    optim.add_argument("--warmup_steps", type=int, help="linear warm-up steps before cosine decay")
    optim.add_argument("--num_epochs", type=int, help="passes over the data (ignored when --max_steps is set)")
    optim.add_argument("--max_steps", type=int, help="stop after this many optimizer steps")
    optim.add_argument("--max_minutes", type=float, help="wall-clock budget: checkpoint and stop once exceeded")
    optim.add_argument("--lr_schedule", choices=["cosine", "constant"], help="after warm-up: cosine decay (default) or constant")
    optim.add_argument("--ema_max_decay", type=float, help="EMA decay ceiling; the decay warms up from ~0.1")
    optim.add_argument("--seed", type=int, help="seed for init, data order, noise")
    optim.add_argument("--mixed_precision", choices=["no", "fp16", "bf16"], help="autocast dtype (fp16 uses a GradScaler; CUDA only)")
    optim.add_argument("--compile", action="store_true", default=None, help="torch.compile the UNet (slow first step)")
    run = parser.add_argument_group("logging and checkpoints")
    run.add_argument("--log_every", type=int, help="steps between metric rows")
    run.add_argument("--save_every", type=int, help="steps between checkpoints (+ validation loss)")
    run.add_argument("--keep_last", type=int, help="checkpoints kept besides the best")
    run.add_argument("--sample_every", type=int, help="steps between validation sample GIFs")
    run.add_argument("--sample_steps", type=int, help="sampler steps for validation samples")
    run.add_argument("--validation_prompts", nargs="+", help="prompts sampled every --sample_every steps")
    run.add_argument("--resume", help="'latest' (in --output_dir) or a checkpoint directory")
    run.add_argument("--wandb", action="store_true", default=None, help="log to Weights & Biases (WANDB_MODE=offline works)")
    run.add_argument("--wandb_project", help="wandb project name")
    run.add_argument("--wandb_run_name", help="wandb run name")
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    from text2sign.training.config import config_from_preset

    overrides = {key: value for key, value in vars(args).items() if key != "preset" and value is not None}
    config = config_from_preset(args.preset, **overrides)
    if not Path(config.data_dir).is_dir():
        raise ValueError(f"--data_dir {config.data_dir} is not a directory")
    return config


def main(argv=None) -> int:
    args = parse_args(argv)

    def body() -> int:
        config = config_from_args(args)
        from text2sign.training.loop import train

        result = train(config)
        if result["checkpoint"]:
            print(f"done: {result['step']} steps, checkpoint {result['checkpoint']}")
        return 0

    return run_with_one_line_errors("train.py", body)


if __name__ == "__main__":
    sys.exit(main())
