#!/usr/bin/env python
"""Generate sign-language videos for prompts from a trained checkpoint.

    python inference.py --checkpoint ./checkpoints --prompts "Hello" "How are you?" --format gif
    python inference.py --checkpoint ./checkpoints/step_0010000 --prompts_file prompts.txt --scheduler dpm --num_inference_steps 20
    python inference.py --checkpoint ./checkpoints --prompts "JOHN CAN GO CAN" --signer woman-1   # a model trained with signers
    python inference.py --checkpoint ./checkpoints --prompts "JOHN CAN GO CAN" --init_video recorded.gif --strength 0.5   # edit a clip

--checkpoint takes a checkpoint directory, a training output directory (its best checkpoint, else the
latest) or the old `DIR/best_model.pt` spelling. Writes one file per prompt plus generation.json with
every setting used. --init_video starts every prompt from that clip (e.g. the recording of the nearest trained
sentence) noised --strength of the way, so the text redraws it instead of drawing from pure noise (SDEdit).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from text2sign.cli import run_with_one_line_errors

VIDEO_FORMATS = ("gif", "mp4", "frames", "grid")
SAMPLERS = ("ddim", "ddpm", "dpm")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="checkpoint dir, training output dir, or DIR/best_model.pt")
    prompts = parser.add_mutually_exclusive_group(required=True)
    prompts.add_argument("--prompts", nargs="+", help="one or more prompts")
    prompts.add_argument("--prompts_file", help="text file, one prompt per line (blank lines ignored)")
    parser.add_argument("--num_inference_steps", type=int, default=50, help="denoising steps (default 50; dpm needs ~20)")
    parser.add_argument("--scheduler", choices=SAMPLERS, default="ddim", help="sampler (default ddim)")
    parser.add_argument("--guidance_scale", type=float, default=4.0, help="classifier-free guidance; 1 = none (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the initial noise")
    parser.add_argument("--signer", help="who signs (a model trained with --pipeline.signer_conditioning true; its model card lists them); default: any signer")
    parser.add_argument("--init_video", help="a GIF to start every prompt from, noised --strength of the way (SDEdit); its frames are "
                                             "sampled and resized to the generated size (default: pure noise)")
    parser.add_argument("--strength", type=float, default=0.5, help="with --init_video: how far it is noised, in (0, 1]; 1 ignores it (default 0.5)")
    parser.add_argument("--batch_size", type=int, default=4, help="prompts generated together")
    parser.add_argument("--use_ema", action=argparse.BooleanOptionalAction, default=True, help="sample with the EMA weights (default on)")
    parser.add_argument("--num_frames", type=int, help="frames to generate (default: as trained)")
    parser.add_argument("--image_size", type=int, help="frame size to generate (default: as trained)")
    parser.add_argument("--output_dir", default="outputs", help="where videos and generation.json go (default outputs)")
    parser.add_argument("--format", choices=VIDEO_FORMATS, default="gif", help="gif, mp4, frames (PNG folder) or grid (one PNG)")
    parser.add_argument("--fps", type=float, default=8.0, help="frames per second of written videos")
    parser.add_argument("--device", default="cuda" if _cuda_available() else "cpu", help="torch device (default cuda if available)")
    return parser.parse_args(argv)


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def read_prompts(args: argparse.Namespace) -> list[str]:
    if args.prompts is not None:
        prompts = [prompt.strip() for prompt in args.prompts]
    else:
        path = Path(args.prompts_file)
        if not path.is_file():
            raise FileNotFoundError(f"--prompts_file {path} does not exist")
        prompts = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines()]
    prompts = [prompt for prompt in prompts if prompt]
    if not prompts:
        raise ValueError("no non-empty prompts given")
    return prompts


def read_init_video(path: str, num_frames: int, image_size: int):
    """The --init_video GIF as float (1, c, f, h, w) in [-1, 1]: frames at the centres of equal segments, centre-cropped."""
    import numpy as np
    from PIL import Image

    from text2sign.data.frames import frames_to_video, resize_frame, select_positions
    from text2sign.video_io import read_gif

    if not Path(path).is_file():
        raise FileNotFoundError(f"--init_video {path} does not exist")
    frames = read_gif(path)  # (f', h', w', 3) uint8
    frames = np.stack([resize_frame(Image.fromarray(frames[index]), image_size, "crop")
                       for index in select_positions(len(frames), num_frames, "uniform", None)])  # (f, h, w, 3)
    return frames_to_video(frames)[None]  # (1, c, f, h, w)


def generate(args: argparse.Namespace) -> list[Path]:
    import torch

    from text2sign.json_io import write_json
    from text2sign.models.pipeline import TextToSignPipeline
    from text2sign.training.checkpoint import pipeline_directory, resolve_checkpoint
    from text2sign.video_io import slugify, write_video

    if args.num_inference_steps < 1 or args.batch_size < 1 or args.fps <= 0:
        raise ValueError("--num_inference_steps, --batch_size and --fps must be positive")
    if not 0.0 < args.strength <= 1.0:
        raise ValueError(f"--strength must be in (0, 1] (1 = from pure noise), got {args.strength}")
    prompts = read_prompts(args)
    checkpoint = resolve_checkpoint(args.checkpoint)
    latest = resolve_checkpoint(args.checkpoint, prefer="latest")  # the same path unless --checkpoint is an output directory
    if latest != checkpoint:  # an output directory: its best checkpoint, which is not its last
        print(f"note: {args.checkpoint} resolves to its best checkpoint {checkpoint.name} (lowest validation loss); the latest is "
              f"{latest.name}: pass {latest} to sample from it", file=sys.stderr)
    pipeline = TextToSignPipeline.from_pretrained(pipeline_directory(checkpoint), device=args.device)
    if args.use_ema and pipeline.ema is None:
        print("note: this checkpoint has no EMA weights; sampling with the raw weights", file=sys.stderr)
    num_frames, image_size = args.num_frames or pipeline.config.num_frames, args.image_size or pipeline.config.image_size
    init_video = None if args.init_video is None else read_init_video(args.init_video, num_frames, image_size)  # (1, c, f, h, w)
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(args.seed)
    started = time.time()
    written: list[Path] = []
    for start in range(0, len(prompts), args.batch_size):
        batch = prompts[start:start + args.batch_size]
        videos = pipeline(
            batch, num_frames=args.num_frames, height=args.image_size, width=args.image_size,
            num_inference_steps=args.num_inference_steps, guidance_scale=args.guidance_scale,
            scheduler=args.scheduler, generator=generator, use_ema=args.use_ema, signer=args.signer,
            init_videos=None if init_video is None else init_video.expand(len(batch), -1, -1, -1, -1), strength=args.strength,
        )  # (b, f, h, w, 3) uint8
        for offset, (prompt, video) in enumerate(zip(batch, videos)):
            written.append(write_video(output_dir / f"{start + offset:03d}_{slugify(prompt)}", video, args.format, args.fps))
    settings = {
        **{key: value for key, value in vars(args).items() if key not in ("prompts", "prompts_file")},
        "prompts": prompts, "checkpoint_resolved": str(checkpoint), "files": [str(path) for path in written],
        "num_frames": num_frames, "image_size": image_size,
        "seconds": round(time.time() - started, 2),
    }
    write_json(output_dir / "generation.json", settings)
    return written


def main(argv=None) -> int:
    args = parse_args(argv)

    def body() -> int:
        for path in generate(args):
            print(path)
        return 0

    return run_with_one_line_errors("inference.py", body)


if __name__ == "__main__":
    sys.exit(main())
