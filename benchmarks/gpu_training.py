#!/usr/bin/env python
"""The one prepared GPU check: the real train() loop and guided sampling on this machine, one JSON line per row.

    python benchmarks/gpu_training.py --out gpu.jsonl            # ~8 minutes on one H100/H200 from a bare machine
    python benchmarks/gpu_training.py --quick --out gpu.jsonl    # ~2 minutes: no compile rows, batch 4 and 16
    python benchmarks/gpu_training.py --quick --device cpu       # the tiny preset: checks the script end to end, not speed

Rows, each printed (and appended to --out) as soon as it finishes, so a timeout loses only the row in progress:
  environment   torch, CUDA, GPU, bf16 support
  train         train() itself (data loader, EMA, logging, checkpoint) on the bundled clips repeated to 64, for the
                standard preset at batch 4, 16 and 32, without and with --compile: ms/step and clips/s between the first
                and last logged steps, MFU (training FLOPs per step from torch.utils.flop_counter over the bf16 dense
                peak of the GPU), peak GPU memory, the SDPA kernels the attention ran, and, compiled, the compile time
                (the first logged steps' time beyond their share of the steady rate)
  resume        the batch-4 run resumed from its midway checkpoint: the resumed run's ms/step and the largest weight
                difference from the uninterrupted run (0 on the CPU; on a GPU non-deterministic kernels may add some)
  sample        DPM-Solver++ 20 steps with guidance 4 per 16x64x64 clip, at batch 1 and 16
Settings are train()'s defaults for the device (bf16 autocast on a GPU that has it). Rows past --budget_minutes are
written as skipped, so the check ends inside its window.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # this checkout's package, with only the image's torch installed

CLIPS = 64  # the bundled clips repeated: enough for one batch of 32 with clips to shuffle
# bf16 dense tensor-core peaks (FLOP/s) by device-name fragment, for MFU; others report none.
PEAK_BF16_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 70e12, "L4": 121e12}
SDPA_OPS = ("scaled_dot_product", "flash_attention", "efficient_attention", "cudnn_attention")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a ~2-minute run: no compile rows, batch 4 and 16, sampling at batch 1; "
                        "with --device cpu the tiny preset at batch 4")
    parser.add_argument("--out", type=Path, help="also append each JSON row to this file, flushed per row")
    parser.add_argument("--device", choices=["cuda", "cpu"], help="default: cuda when available")
    parser.add_argument("--budget_minutes", type=float, default=7.5, help="rows starting after this are written as skipped")
    return parser.parse_args()


def make_clips(directory: Path) -> Path:
    """The bundled 16x64x64 clips and captions, linked CLIPS times over under new names."""
    directory.mkdir(parents=True, exist_ok=True)
    bundled = sorted((REPO / "training_data").glob("*.gif"))
    for index in range(CLIPS):
        source = bundled[index % len(bundled)]
        (directory / f"clip_{index:03d}.gif").symlink_to(source)
        (directory / f"clip_{index:03d}.txt").write_text(source.with_suffix(".txt").read_text())
    return directory


class Rows:
    def __init__(self, out: Path | None, budget_seconds: float):
        self.out, self.started, self.budget_seconds, self.written = out, time.time(), budget_seconds, []

    def over_budget(self) -> bool:
        return time.time() - self.started > self.budget_seconds

    def write(self, row: dict) -> None:
        row = {**row, "at_s": round(time.time() - self.started, 1)}
        self.written.append(row)
        print(json.dumps(row), flush=True)
        if self.out is not None:
            with open(self.out, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(row) + "\n")


def step_cost(config, device):
    """(training FLOPs per step, SDPA kernels used) from one forward+backward of the objective at the run's batch."""
    import torch
    from torch.profiler import ProfilerActivity, profile
    from torch.utils.flop_counter import FlopCounterMode

    from text2sign.data.dataset import SignVideoDataset
    from text2sign.models.objective import DenoisingObjective
    from text2sign.models.pipeline import build_pipeline
    from text2sign.training.loop import autocast_dtype_for

    captions = SignVideoDataset(config.data).captions
    pipeline = build_pipeline(captions, config.unet, config.text_encoder, config.scheduler, config.pipeline).to(device).train()
    objective = DenoisingObjective.for_pipeline(pipeline)
    batch = config.optim.batch_size
    videos = torch.rand(batch, 3, config.data.num_frames, config.data.image_size, config.data.image_size, device=device) * 2 - 1  # (b, c, f, h, w)
    dtype = autocast_dtype_for(config.optim.mixed_precision, device)
    counter = FlopCounterMode(display=False)
    with counter, profile(activities=[ProfilerActivity.CPU]) as profiler:
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = objective(videos, [captions[index % len(captions)] for index in range(batch)], generator=torch.Generator(device).manual_seed(0))
        loss.backward()
    kernels = sorted({event.name for event in profiler.events() if any(op in event.name for op in SDPA_OPS)} - {"aten::scaled_dot_product_attention"})
    return counter.get_total_flops(), kernels


def training_row(name: str, config, device, flops_cache: dict) -> dict:
    import torch

    from text2sign.training.loop import train

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    result = train(config)
    wall = time.perf_counter() - started
    logged = [json.loads(line) for line in (Path(config.output_dir) / "metrics.jsonl").read_text().splitlines()]
    elapsed = {row["step"]: row["elapsed_s"] for row in logged if "loss" in row}
    # The steady rate between logged steps, from the first logged step on (before it: warm-up, or compilation),
    # leaving out the intervals that include a checkpoint's validation and save.
    steps = sorted(elapsed)
    first, last = steps[0], steps[-1]
    intervals = [(start, end) for start, end in zip(steps, steps[1:])
                 if not any(start <= saved < end for saved in range(config.save_every, last + 1, config.save_every))] or list(zip(steps, steps[1:]))
    ms_per_step = 1000 * sum(elapsed[end] - elapsed[start] for start, end in intervals) / sum(end - start for start, end in intervals)
    key = (config.preset, config.optim.batch_size)
    if key not in flops_cache:
        flops_cache[key] = step_cost(config, device)
    flops, kernels = flops_cache[key]
    peak = next((value for fragment, value in PEAK_BF16_FLOPS.items() if device.type == "cuda" and fragment in torch.cuda.get_device_name()), None)
    row = {
        "row": name, "preset": config.preset, "batch": config.optim.batch_size, "compile": config.optim.compile, "steps": result.step,
        "ms_per_step": round(ms_per_step, 1), "clips_per_s": round(1000 * config.optim.batch_size / ms_per_step, 1),
        "train_tflops_per_step": round(flops / 1e12, 3), "mfu": round(flops / (ms_per_step / 1000) / peak, 3) if peak else None,
        "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.type == "cuda" else None,
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2), "sdpa_kernels": kernels,
        "wall_s": round(wall, 1), "mixed_precision": json.loads((result.checkpoint / "train_config.json").read_text())["optim"]["mixed_precision"],
    }
    if config.optim.compile:
        row["compile_s"] = round(elapsed[first] - first * ms_per_step / 1000, 1)  # a fresh run: `first` steps so far
    return row


def sampling_row(preset: str, batch: int, device) -> dict:
    import torch

    from text2sign.models.pipeline import build_pipeline
    from text2sign.training.config import config_from_preset
    from text2sign.training.loop import autocast_dtype_for

    config = config_from_preset(preset)
    pipeline = build_pipeline(["hello", "thank you"], config.unet, config.text_encoder, config.scheduler, config.pipeline).to(device).eval()
    prompts = [["hello", "thank you"][index % 2] for index in range(batch)]
    dtype = autocast_dtype_for("auto", device)

    def sample(steps: int) -> None:
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            pipeline(prompts, num_inference_steps=steps, scheduler="dpm", guidance_scale=4.0, progress=False, output_type="tensor")
        if device.type == "cuda":
            torch.cuda.synchronize()

    sample(2)  # warm-up: kernel choice, allocations
    started = time.perf_counter()
    sample(20)
    seconds = time.perf_counter() - started
    return {"row": "sample", "preset": preset, "sampler": "dpm 20 steps, guidance 4", "batch": batch,
            "clip": [config.data.num_frames, config.data.image_size, config.data.image_size], "s_per_clip": round(seconds / batch, 3),
            "s_per_batch": round(seconds, 2)}


def max_weight_difference(first: Path, second: Path) -> float:
    from safetensors.torch import load_file

    expected, actual = (load_file(str(path / "pipeline" / "unet" / "model.safetensors")) for path in (first, second))
    return max(float((actual[key].float() - expected[key].float()).abs().max()) for key in expected)


def main() -> int:
    args = parse_args()
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before torch loads: train() picks CUDA whenever it sees a GPU
    import torch

    from text2sign.training.config import config_from_preset

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.device == "cuda" and device.type != "cuda":
        print("gpu_training.py: error: no CUDA device; run with --quick --device cpu to check the script on a CPU", file=sys.stderr)
        return 2
    on_cpu = device.type == "cpu"
    preset = "tiny" if on_cpu else "standard"
    batches = [4] if on_cpu else ([4, 16] if args.quick else [4, 16, 32])
    compile_options = [False] if (args.quick or on_cpu) else [False, True]
    steps, log_every = (20, 5) if on_cpu else (30, 10) if args.quick else (40, 10)
    sample_batches = [1] if (args.quick or on_cpu) else [1, 16]
    rows = Rows(args.out, 60 * args.budget_minutes)
    rows.write({"row": "environment", "torch": torch.__version__, "cuda": torch.version.cuda, "device": torch.cuda.get_device_name() if not on_cpu else "cpu",
                "bf16": bool(not on_cpu and torch.cuda.is_bf16_supported()), "cudnn": torch.backends.cudnn.version() if not on_cpu else None,
                "threads": torch.get_num_threads(), "quick": args.quick})

    flops_cache: dict = {}
    with tempfile.TemporaryDirectory(prefix="text2sign_gpu_check_") as work:
        work = Path(work)
        data = make_clips(work / "data")
        for compile_unet in compile_options:
            for batch in batches:
                name = f"train b{batch}{' compiled' if compile_unet else ''}"
                if rows.over_budget():
                    rows.write({"row": name, "skipped": "past --budget_minutes"})
                    continue
                output = work / name.replace(" ", "_")
                settings = {
                    "data.data_dir": str(data), "data.verbose": False, "output_dir": str(output), "optim.batch_size": batch, "optim.max_steps": steps,
                    "optim.compile": compile_unet, "optim.warmup_steps": 5, "log_every": log_every, "save_every": steps // 2, "keep_last": 5,
                    "sample_every": 10 * steps, "sample_steps": 2, "validation_prompts": ("hello",), "num_workers": 0 if on_cpu else 6,
                }
                rows.write(training_row(name, config_from_preset(preset, settings), device, flops_cache))
                if batch == batches[0] and not compile_unet:  # the resume check, from this run's midway checkpoint
                    if rows.over_budget():
                        rows.write({"row": "resume", "skipped": "past --budget_minutes"})
                        continue
                    resumed = work / "resumed"
                    resumed.mkdir()
                    midway = f"step_{steps // 2:07d}"
                    (resumed / midway).symlink_to(output / midway, target_is_directory=True)
                    resume_config = config_from_preset(preset, {**settings, "output_dir": str(resumed), "resume": "latest"})
                    row = training_row("resume", resume_config, device, flops_cache)
                    final = f"step_{steps:07d}"
                    rows.write({**row, "resumed_from": midway, "max_weight_difference_from_straight": max_weight_difference(output / final, resumed / final)})
        for batch in sample_batches:
            if rows.over_budget():
                rows.write({"row": "sample", "batch": batch, "skipped": "past --budget_minutes"})
                continue
            rows.write(sampling_row(preset, batch, device))

    print("| row | batch | ms/step | clips/s | MFU | peak GPU memory | compile s | s/clip |\n|---|---|---|---|---|---|---|---|")
    for row in rows.written[1:]:
        print(f"| {row['row']} | {row.get('batch', '')} | {row.get('ms_per_step', '')} | {row.get('clips_per_s', '')} | {row.get('mfu') or ''} | "
              f"{row.get('peak_gib') or ''} | {row.get('compile_s', '')} | {row.get('s_per_clip', row.get('skipped', ''))} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
