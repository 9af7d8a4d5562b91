#!/usr/bin/env python
"""Which activation layout trains the UNet fastest here: NCDHW, channels_last_3d, or the (1, 3, 3) convolutions
as Conv2d over frames folded into the batch?

    python benchmarks/activation_layout.py                       # tiny preset's UNet, batch 4, on this machine
    python benchmarks/activation_layout.py --preset standard --batch_size 1 --repeats 3

Each layout runs the same UNet (same weights; the folded Conv2d uses the Conv3d's weight with its unit frame
axis dropped, so checkpoints are unchanged) for forward+backward; the layouts take turns pass by pass, and the median
of --repeats after one warm-up is printed per layout as one JSON line, with the largest output difference from NCDHW (a check that it is the same
computation).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

LAYOUTS = ("ncdhw", "channels_last_3d", "folded_conv2d")


@contextlib.contextmanager
def spatial_convolutions_as_conv2d():
    """Every (1, 3, 3) Conv3d of the UNet runs as a Conv2d over (b f) frames while the context is open."""
    import torch.nn.functional as F
    from einops import rearrange
    from torch import nn

    original = nn.Conv3d.forward

    def folded(self, video):
        if self.kernel_size[0] != 1 or self.padding[0] != 0 or self.stride[0] != 1:
            return original(self, video)
        frames = video.shape[2]
        images = rearrange(video, "b c f h w -> (b f) c h w")
        images = F.conv2d(images, self.weight[:, :, 0], self.bias, self.stride[1:], self.padding[1:])  # (b*f, c_out, h', w')
        return rearrange(images, "(b f) c h w -> b c f h w", f=frames)

    nn.Conv3d.forward = folded
    try:
        yield
    finally:
        nn.Conv3d.forward = original


def build(preset: str, batch_size: int):
    """The preset's UNet off its zero init (which makes the output 0 whatever a layout computes) and one input."""
    import torch

    from text2sign.models.unet3d import UNet3D
    from text2sign.training.config import config_from_preset

    config = config_from_preset(preset)
    torch.manual_seed(0)
    model = UNet3D(dataclasses.replace(config.unet, text_dim=512)).train()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.02 * torch.randn_like(parameter))
    sample = torch.randn(batch_size, 3, config.data.num_frames, config.data.image_size, config.data.image_size)  # (b, c, f, h, w)
    text = (torch.randint(0, 1000, (batch_size,)), torch.randn(batch_size, 16, 512), torch.ones(batch_size, 16, dtype=torch.bool))
    return model, sample, text


def one_pass(layout: str, model, sample, text) -> tuple[float, "torch.Tensor"]:
    """Seconds of one forward+backward in `layout`, and the output."""
    import torch

    if layout == "channels_last_3d":
        model, sample = model.to(memory_format=torch.channels_last_3d), sample.contiguous(memory_format=torch.channels_last_3d)
    else:
        model, sample = model.to(memory_format=torch.contiguous_format), sample.contiguous()
    context = spatial_convolutions_as_conv2d() if layout == "folded_conv2d" else contextlib.nullcontext()
    with context:
        started = time.perf_counter()
        output = model(sample, *text)
        output.float().pow(2).mean().backward()
        seconds = time.perf_counter() - started
    model.zero_grad(set_to_none=True)
    return seconds, output.detach().contiguous()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import torch

    model, sample, text = build(args.preset, args.batch_size)
    # Layouts take turns, pass by pass: on a machine other jobs share, a slow spell then hits every layout alike.
    times, outputs = {layout: [] for layout in LAYOUTS}, {}
    for repeat in range(1 + args.repeats):
        for layout in LAYOUTS:
            seconds, outputs[layout] = one_pass(layout, model, sample, text)
            if repeat:  # the first pass of each allocates and picks kernels
                times[layout].append(seconds)
    for layout in LAYOUTS:
        print(json.dumps({"layout": layout, "preset": args.preset, "batch": args.batch_size, "threads": torch.get_num_threads(),
                          "forward_backward_ms": round(1000 * statistics.median(times[layout]), 1),
                          "max_output_difference": float((outputs[layout] - outputs["ncdhw"]).abs().max())}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
