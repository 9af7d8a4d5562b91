#!/usr/bin/env python
"""Does the README's main command produce signing, not noise? Time it and score what it wrote.

    python benchmarks/first_run.py                          # run the main command (tiny preset) in a temp dir, then score
    python benchmarks/first_run.py --score outputs          # only score GIFs an earlier run wrote (reads generation.json)

Scoring: every generated GIF is compared with every bundled clip (decoded by the project's dataset at the
generated frame count and size, so like is compared with like). For each prompt it prints the nearest clip
and its PSNR. The bar (issue "Results a user can trust"): a prompt equal to a bundled caption has its own
clip as nearest at >= 20 dB; any other prompt is a green-screen signer, >= 18 dB against its nearest clip.
For scale it also prints two references that carry no text at all: a flat grey video, and the per-pixel
mean of the bundled clips. Exits 1 when the bar is missed, so it can gate a release.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from text2sign.data.config import DataConfig
from text2sign.data.dataset import SignVideoDataset
from text2sign.evaluation.metrics import normalise_videos, psnr
from text2sign.json_io import read_json
from text2sign.video_io import read_gif

REPO = Path(__file__).resolve().parents[1]
OWN_CAPTION_MIN_PSNR = 20.0  # dB: the bar for a bundled caption against its own clip
UNSEEN_PROMPT_MIN_PSNR = 18.0  # dB: an unseen prompt must still look like a green-screen signer
PROMPTS_FILE = REPO / "docs" / "first_run_prompts.txt"  # the README's: the four bundled captions and "Hello"


def score(output_dir: Path, data_dir: Path) -> bool:
    settings = read_json(output_dir / "generation.json")
    generated = normalise_videos(torch.stack([torch.from_numpy(read_gif(path)) for path in settings["files"]]))  # (p, c, f, h, w)
    _, _, num_frames, image_size, _ = generated.shape
    clips = SignVideoDataset(DataConfig(data_dir=str(data_dir), num_frames=num_frames, image_size=image_size, frame_sampling="uniform", verbose=False))
    real = torch.stack([clips[index]["video"] for index in range(len(clips))])  # (k, c, f, h, w)
    captions = list(clips.captions)

    passed = True
    print(f"{'prompt':<50} {'nearest clip':<14} {'PSNR dB':>8}  bar")
    for prompt, video in zip(settings["prompts"], generated):
        scores = psnr(video[None].expand_as(real), real)  # (k,) against every bundled clip
        nearest = int(scores.argmax())
        if prompt in captions:
            ok = nearest == captions.index(prompt) and scores[nearest] >= OWN_CAPTION_MIN_PSNR
            bar = f"own clip, >= {OWN_CAPTION_MIN_PSNR:g} dB"
        else:
            ok = bool(scores[nearest] >= UNSEEN_PROMPT_MIN_PSNR)
            bar = f"unseen, >= {UNSEEN_PROMPT_MIN_PSNR:g} dB"
        passed &= ok
        print(f"{prompt[:50]:<50} {clips.names[nearest]:<14} {float(scores[nearest]):>8.2f}  {'PASS' if ok else 'FAIL'} ({bar})")

    grey = torch.zeros_like(real)  # mid-grey in [-1, 1]
    mean_clip = real.mean(dim=0, keepdim=True).expand_as(real)
    print(f"references without text: flat grey {psnr(grey, real).mean():.2f} dB, mean of the bundled clips {psnr(mean_clip, real).mean():.2f} dB (each against every clip, averaged)")
    return passed


def run_main_command(work_dir: Path, data_dir: Path) -> Path:
    """The README's main command, timed in two parts."""
    checkpoints, outputs = work_dir / "checkpoints", work_dir / "outputs"
    started = time.time()
    subprocess.run([str(REPO / "train.sh"), "--tiny", "--data_dir", str(data_dir), "--output_dir", str(checkpoints)], check=True)
    trained = time.time()
    subprocess.run([str(REPO / "generate.sh"), "--tiny", "--checkpoint", str(checkpoints), "--output_dir", str(outputs), "--prompts_file", str(PROMPTS_FILE)], check=True)
    print(f"train.sh --tiny: {trained - started:.0f} s; generate.sh --tiny: {time.time() - trained:.0f} s")
    return outputs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--score", type=Path, help="score this generation output directory instead of running the main command")
    parser.add_argument("--data_dir", type=Path, default=REPO / "training_data", help="the bundled clips (default training_data/)")
    parser.add_argument("--work_dir", type=Path, help="where the run writes (default: a temporary directory)")
    args = parser.parse_args()
    if args.score is not None:
        return 0 if score(args.score, args.data_dir) else 1
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="text2sign_first_run_"))
    outputs = run_main_command(work_dir, args.data_dir)
    return 0 if score(outputs, args.data_dir) else 1


if __name__ == "__main__":
    sys.exit(main())
