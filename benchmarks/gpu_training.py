#!/usr/bin/env python
"""The CUDA check the README's presets table waits for: run it when a GPU machine is available.

    python benchmarks/gpu_training.py --steps 200            # ~10 minutes on one H100
    python benchmarks/gpu_training.py --steps 20 --quick      # a 2-minute smoke version

Trains the standard preset on synthetic clips (64x64, 16 frames) in bf16 with and without gradient
checkpointing and once with torch.compile, then samples with DDIM 50 and DPM-Solver++ 20 steps. Prints
it/s, clips/s and peak GPU memory for each, as a Markdown table and JSON. Synthetic clips keep the
numbers about the model: the data loader's own speed is measured by benchmarks/data_loading.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from text2sign.models.objective import DenoisingObjective
from text2sign.models.pipeline import TextToSignPipeline, build_pipeline
from text2sign.training.config import config_from_preset

CAPTIONS = ["hello", "how are you", "thank you", "good morning", "see you later", "my name is", "nice to meet you", "goodbye"]


def build(preset: str, gradient_checkpointing: bool) -> TextToSignPipeline:
    config = config_from_preset(preset, {"unet.gradient_checkpointing": gradient_checkpointing})
    return build_pipeline(CAPTIONS, config.unet, config.text_encoder, config.scheduler, config.pipeline)


def train_speed(preset: str, steps: int, gradient_checkpointing: bool, compile_unet: bool) -> dict:
    config = config_from_preset(preset)
    pipeline = build(preset, gradient_checkpointing).cuda().train()
    objective = DenoisingObjective.for_pipeline(pipeline)
    if compile_unet:
        pipeline.unet.compile()
    optimizer = torch.optim.AdamW([p for p in pipeline.parameters() if p.requires_grad], lr=1e-4, fused=True)
    batch = config.optim.batch_size
    videos = torch.rand(batch, 3, config.data.num_frames, config.data.image_size, config.data.image_size, device="cuda") * 2 - 1  # (b, c, f, h, w)
    captions = [CAPTIONS[index % len(CAPTIONS)] for index in range(batch)]
    generator = torch.Generator().manual_seed(0)
    warmup = 10 if compile_unet else 3  # compile's first calls include compilation
    torch.cuda.reset_peak_memory_stats()
    for step in range(warmup + steps):
        if step == warmup:
            torch.cuda.synchronize()
            started = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = objective(videos, captions, generator=generator)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(pipeline.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return {"run": f"train bf16{' +ckpt' if gradient_checkpointing else ''}{' +compile' if compile_unet else ''}", "batch": batch,
            "it_per_s": steps / seconds, "clips_per_s": steps * batch / seconds, "peak_gib": torch.cuda.max_memory_allocated() / 2**30}


def sample_speed(preset: str, sampler: str, steps: int) -> dict:
    pipeline = build(preset, False).cuda().eval()
    torch.cuda.reset_peak_memory_stats()
    prompts = CAPTIONS[:4]
    with torch.autocast("cuda", dtype=torch.bfloat16):
        pipeline(prompts[:1], num_inference_steps=2, scheduler=sampler, progress=False)  # warm-up
        torch.cuda.synchronize()
        started = time.perf_counter()
        pipeline(prompts, num_inference_steps=steps, scheduler=sampler, guidance_scale=4.0, progress=False)
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return {"run": f"sample {sampler} {steps} steps, guidance 4", "batch": len(prompts), "it_per_s": steps / seconds,
            "clips_per_s": len(prompts) / seconds, "peak_gib": torch.cuda.max_memory_allocated() / 2**30}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="standard")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="skip the compile run")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_training.py: error: no CUDA device; this benchmark is for GPU machines (CPU numbers: benchmarks/unet_presets.py)", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = True
    rows = [train_speed(args.preset, args.steps, False, False), train_speed(args.preset, args.steps, True, False)]
    if not args.quick:
        rows.append(train_speed(args.preset, args.steps, False, True))
    rows += [sample_speed(args.preset, "ddim", 50), sample_speed(args.preset, "dpm", 20)]
    print(f"device: {torch.cuda.get_device_name()}, preset {args.preset}")
    print("| run | batch | it/s | clips/s | peak GPU memory |\n|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['run']} | {row['batch']} | {row['it_per_s']:.2f} | {row['clips_per_s']:.1f} | {row['peak_gib']:.1f} GiB |")
    print(json.dumps({"device": torch.cuda.get_device_name(), "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
