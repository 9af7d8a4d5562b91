#!/usr/bin/env python
"""Parameter count, forward+backward time and peak memory of each preset's UNet on this machine.

    python benchmarks/unet_presets.py                      # all presets, batch 1, CPU
    python benchmarks/unet_presets.py --presets small --batch_size 2 --gradient_checkpointing
    python benchmarks/unet_presets.py --presets tiny --batch_size 8 --num_frames 12 --mixed_precision bf16   # autocast, as training does
    python benchmarks/unet_presets.py --presets boston_cpu --batch_size 8 --num_frames 24 --image_size 16 --mixed_precision bf16

Each preset runs in its own process so its peak resident memory (ru_maxrss) is its own. Times are the
median of --repeats forward+backward passes after one warm-up pass. Text states are random (b, 16, 512)
tensors: the text encoder is not part of the UNet's cost.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time


def measure(preset: str, batch_size: int, repeats: int, gradient_checkpointing: bool, warmup: int, mixed_precision: str = "no",
            num_frames: int | None = None, image_size: int | None = None) -> dict:
    import dataclasses

    import torch

    from text2sign.models.unet3d import UNet3D
    from text2sign.training.config import config_from_preset

    config = config_from_preset(preset)
    num_frames = num_frames or config.data.num_frames
    size = image_size or config.data.image_size
    unet_config = dataclasses.replace(config.unet, text_dim=512, gradient_checkpointing=gradient_checkpointing)  # the UNet alone: random text states
    model = UNet3D(unet_config).train()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    sample = torch.randn(batch_size, 3, num_frames, size, size, device=device)  # (b, c, f, h, w)
    text_states = torch.randn(batch_size, 16, 512, device=device)  # (b, n, d)
    text_mask = torch.ones(batch_size, 16, dtype=torch.bool, device=device)  # (b, n)
    timesteps = torch.randint(0, 1000, (batch_size,), device=device)
    times = []
    for index in range(warmup + repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        with torch.autocast(device, dtype=torch.bfloat16, enabled=mixed_precision == "bf16"):  # as training/loop.py runs it
            loss = model(sample, timesteps, text_states, text_mask).float().pow(2).mean()
        loss.backward()
        model.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        if index >= warmup:  # warm-up passes allocate and pick kernels
            times.append(time.perf_counter() - started)
    return {
        "preset": preset, "device": device, "threads": torch.get_num_threads(), "parameters": model.num_parameters(),
        "video": [batch_size, 3, num_frames, size, size], "gradient_checkpointing": gradient_checkpointing,
        "mixed_precision": mixed_precision, "forward_backward_seconds": statistics.median(times), "warmup_passes": warmup, "timed_passes": repeats, "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["small", "standard", "large"])
    parser.add_argument("--batch_size", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gradient_checkpointing", action="store_true")
    parser.add_argument("--mixed_precision", choices=["no", "bf16"], default="no")
    parser.add_argument("--num_frames", type=int, help="frames per clip (default: each preset's)")
    parser.add_argument("--image_size", type=int, help="frame height and width (default: each preset's)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed passes first (0 for presets too slow to repeat)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one preset in this process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.batch_size, args.repeats, args.gradient_checkpointing, args.warmup, args.mixed_precision, args.num_frames,
                                 args.image_size)))
        return 0
    rows = []
    for preset in args.presets:
        command = [sys.executable, __file__, "--one", preset, "--batch_size", str(args.batch_size), "--repeats", str(args.repeats), "--warmup", str(args.warmup),
                   "--mixed_precision", args.mixed_precision, *(["--num_frames", str(args.num_frames)] if args.num_frames else []),
                   *(["--image_size", str(args.image_size)] if args.image_size else [])]
        if args.gradient_checkpointing:
            command.append("--gradient_checkpointing")
        finished = subprocess.run(command, capture_output=True, text=True)
        if finished.returncode != 0:
            print(f"{preset}: failed ({finished.stderr.strip().splitlines()[-1] if finished.stderr.strip() else finished.returncode})")
            continue
        rows.append(json.loads(finished.stdout.strip().splitlines()[-1]))
    print("| preset | video (b, c, f, h, w) | UNet parameters | precision | forward+backward | peak memory | device |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['preset']} | {tuple(row['video'])} | {row['parameters'] / 1e6:.1f}M | {row['mixed_precision']} | {row['forward_backward_seconds']:.2f} s | "
              f"{row['peak_rss_gib']:.1f} GiB | {row['device']} ({row['threads']} threads){' +ckpt' if row['gradient_checkpointing'] else ''} |")
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
