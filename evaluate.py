#!/usr/bin/env python
"""Measure whether a trained checkpoint's videos follow their text, and write a report.

    python evaluate.py --checkpoint ./checkpoints --data_dir ./training_data --output_dir eval_out
    python evaluate.py --checkpoint ./checkpoints/step_0010000 --data_dir ./data --max_clips 32 \\
        --guidance_scales 1 4 --num_inference_steps 25 --scheduler dpm

By default only the run's held-out clips are scored: the validation side of the split the run recorded in
its output directory (split.json, beside step_NNNNNNN/). `--split train` scores its training clips, which
measures memorisation; `--split all` scores every clip in --data_dir (a separate held-out folder, say), and
the report counts any training clips among them. The report and JSON say which split was scored.

One clip per distinct caption is scored: denoising loss under the right, a wrong and no caption; caption
identification among --num_candidates captions (default: all); and, per guidance scale, samples of every
caption with each seed (same noise for every prompt), scored by retrieval of the prompt's real clip,
prompt sensitivity, PSNR/SSIM and motion. Writes evaluation.json, evaluation.md and comparison.png, and puts
the headline numbers and this command into the Evaluation section of the checkpoint's model card
(pipeline/README.md), replacing an earlier evaluation's.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from text2sign.cli import run_with_one_line_errors

SAMPLERS = ("ddim", "ddpm", "dpm")
SPLITS = ("val", "train", "all")
SPLIT_DESCRIPTIONS = {
    "val": "the run's held-out clips, never trained on",
    "train": "the run's training clips",
    "all": "every clip in --data_dir",
}
MEMORISATION_NOTE = "training clips are scored: these numbers measure memorisation, not generalisation to unseen clips"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="checkpoint dir, training output dir, or DIR/best_model.pt")
    parser.add_argument("--data_dir", required=True, help="folder of NAME.gif + NAME.txt pairs")
    parser.add_argument("--split", choices=SPLITS, default="val",
                        help="val: the run's held-out clips, read from its split.json (default); train: its training clips; "
                             "all: every clip in --data_dir, counting the training clips among them (train measures memorisation)")
    parser.add_argument("--num_frames", type=int, help="frames per clip (default: as trained)")
    parser.add_argument("--image_size", type=int, help="frame size (default: as trained)")
    parser.add_argument("--max_clips", type=int, help="score at most this many captions, one clip each (default: all)")
    parser.add_argument("--num_inference_steps", type=int, default=50, help="denoising steps per sample (default 50)")
    parser.add_argument("--scheduler", choices=SAMPLERS, help="sampler (default: the pipeline's)")
    parser.add_argument("--guidance_scales", type=float, nargs="+", default=[1.0, 2.0, 4.0, 7.5], help="classifier-free guidance scales to sample with")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="noise seeds, at least 2 (default 0 1)")
    parser.add_argument("--num_candidates", type=int, help="captions per clip in identification (default: every caption)")
    parser.add_argument("--batch_size", type=int, default=8, help="forward passes per batch in the loss measures (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the loss noise, wrong captions and candidates (default 0)")
    parser.add_argument("--fvd_detector", help="path of i3d_torchscript.pt; FVD is computed only if given (needs >= 512 clips)")
    parser.add_argument("--output_dir", default="evaluation", help="where the report goes (default evaluation)")
    parser.add_argument("--device", default=None, help="torch device (default cuda if available)")
    return parser.parse_args(argv)


def evaluate(args: argparse.Namespace):
    """Score the checkpoint and write the report; returns (ConditioningEvaluation, ReportFiles)."""
    import dataclasses

    import torch

    from text2sign.data.config import DataConfig
    from text2sign.data.dataset import SignVideoDataset
    from text2sign.data.split import NamedClips, find_split_record, read_split_record
    from text2sign.evaluation.conditioning import evaluate_conditioning
    from text2sign.evaluation.fvd import FrechetVideoDistance
    from text2sign.evaluation.report import write_report
    from text2sign.evaluation.results import ScoredSplit
    from text2sign.model_card import evaluation_section, write_evaluation
    from text2sign.models.pipeline import TextToSignPipeline
    from text2sign.training.checkpoint import pipeline_directory, resolve_checkpoint

    if args.num_inference_steps < 1 or args.batch_size < 1:
        raise ValueError("--num_inference_steps and --batch_size must be positive")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    checkpoint = resolve_checkpoint(args.checkpoint)
    record_path = find_split_record(checkpoint)
    record = read_split_record(record_path) if record_path is not None else None
    if args.split != "all" and record is None:
        raise ValueError(
            f"no split.json beside checkpoint {checkpoint} (a bare pipeline directory, or a run from before runs recorded "
            f"their split), so its held-out clips are unknown and --split {args.split} cannot be scored; pass --split all to "
            "score every clip in --data_dir, knowing that clips the model trained on measure memorisation"
        )
    if args.split == "val" and not record.val:
        raise ValueError(
            f"the run held out no clips ({record_path}: val_fraction {record.val_fraction}), so there is nothing unseen to score; "
            "pass --split train (or --split all) to score its training clips, which measures memorisation"
        )
    pipeline = TextToSignPipeline.from_pretrained(pipeline_directory(checkpoint), device=device)
    dataset = SignVideoDataset(DataConfig(
        data_dir=args.data_dir, num_frames=args.num_frames or pipeline.config.num_frames,
        image_size=args.image_size or pipeline.config.image_size, frame_sampling="uniform", verbose=False,
    ))
    missing_from_data_dir, training_clips_in_data_dir, note = None, None, None
    if args.split != "all":
        dataset = NamedClips(dataset, record.names(args.split))
        if not len(dataset):
            raise ValueError(f"none of the {len(record.names(args.split))} {args.split} clips in {record_path} is in {args.data_dir}; "
                             "pass the --data_dir the run trained on, or --split all if this folder is a separate held-out set")
        if dataset.missing:
            print(f"warning: {len(dataset.missing)} {args.split} clips of {record_path} are not in {args.data_dir} "
                  f"(e.g. {', '.join(dataset.missing[:3])}); scoring the other {len(dataset)}", file=sys.stderr)
        missing_from_data_dir = dataset.missing
    if args.split == "train":
        note = MEMORISATION_NOTE
    elif args.split == "all" and record is None:
        note = "no split record, so which of these clips the model trained on is unknown; any it did measure memorisation"
    elif args.split == "all":
        training_clips_in_data_dir = len(set(dataset.names) & set(record.train))
        if training_clips_in_data_dir:  # a separate held-out folder shares no names with the training split
            note = f"{training_clips_in_data_dir} of the {len(dataset)} clips in --data_dir are training clips: their scores measure memorisation"
    split = ScoredSplit(
        scored=args.split, description=SPLIT_DESCRIPTIONS[args.split], record=str(record_path) if record_path else None,
        val_fraction=record.val_fraction if record else None, group_pattern=record.group_pattern if record else None,
        train_clips=len(record.train) if record else None, val_clips=len(record.val) if record else None,
        missing_from_data_dir=missing_from_data_dir, training_clips_in_data_dir=training_clips_in_data_dir, note=note,
    )
    fvd_metric = FrechetVideoDistance(args.fvd_detector, device=device) if args.fvd_detector else None
    result = evaluate_conditioning(
        pipeline, dataset, seeds=args.seeds, num_inference_steps=args.num_inference_steps, guidance_scales=args.guidance_scales,
        scheduler=args.scheduler, num_candidates=args.num_candidates, max_clips=args.max_clips, batch_size=args.batch_size,
        seed=args.seed, fvd_metric=fvd_metric,
    )
    result = dataclasses.replace(result, checkpoint=str(checkpoint), split=split, data_dir=str(args.data_dir))
    files = write_report(result, args.output_dir)
    # The checkpoint's model card gets the headline numbers; a later evaluation replaces them.
    write_evaluation(pipeline_directory(checkpoint), pipeline, evaluation_section(result, reproduce_command(args, checkpoint), args.output_dir))
    return result, files


def reproduce_command(args: argparse.Namespace, checkpoint) -> str:
    """The evaluate.py command that scored this checkpoint, every setting spelled out (a later change of a default
    cannot change what it runs) and --checkpoint the checkpoint actually scored (an output directory's best moves on)."""
    words = ["python", "evaluate.py"]
    for name, value in vars(args).items():
        value = checkpoint if name == "checkpoint" else value
        if value is not None:
            words += [f"--{name}", *map(str, value if isinstance(value, list) else [value])]
    return shlex.join(words)


def summary_lines(result) -> list[str]:
    """The printed summary of a ConditioningEvaluation that has its split set."""
    gap, identification, split = result.loss_gap, result.caption_identification, result.split
    lines = [
        f"clips: {result.num_clips} (one per caption) of split {split.scored}: {split.description} "
        "(names in evaluation.json under clip_names)",
        f"loss gap (deranged - right): {gap.gap:.3g} ± {gap.gap_standard_error:.2g}, relative {gap.relative_gap:.3g} (chance 0)",
        f"caption identification ({identification.num_candidates}-way): {identification.accuracy:.3f} (chance {identification.chance:.3f})",
    ]
    if split.note is not None:
        lines.append(f"note: {split.note}")
    for label, scores in result.guidance.items():
        retrieval = scores.retrieval["pixel"]
        sensitivity = scores.prompt_sensitivity["pixel"]
        lines.append(f"guidance {label}: retrieval top-1 {retrieval.top[1]:.3f} (chance {retrieval.chance_top[1]:.3f}), "
                     f"prompt sensitivity same seed {sensitivity.ratio_same_seed:.3g} (chance 0), PSNR {scores.psnr:.2f} dB")
    return lines


def main(argv=None) -> int:
    args = parse_args(argv)

    def body() -> int:
        result, files = evaluate(args)
        for line in summary_lines(result):
            print(line)
        print(f"report: {files.markdown}")
        return 0

    return run_with_one_line_errors("evaluate.py", body)


if __name__ == "__main__":
    sys.exit(main())
