#!/usr/bin/env python
"""Milliseconds per optimizer step of the real train() loop, tiny preset on the bundled clips, on this machine.

    python benchmarks/training_step.py                      # 60 steps, timed from step 10 to 60, 3 runs
    python benchmarks/training_step.py --preset small --steps 30 --runs 1

Times come from the run's own metrics.jsonl (`elapsed_s` of the rows at steps 10 and --steps), so setup, the
final checkpoint and the final samples are not counted, while everything a step does is: the data loader, the
forward and backward, clipping, AdamW, the EMA and logging. The median over --runs is printed as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # this checkout's package, without an install

FIRST_TIMED_STEP = 10  # the first steps allocate memory and warm caches


def milliseconds_per_step(preset: str, steps: int, data_dir: Path) -> float:
    from text2sign.training.config import config_from_preset
    from text2sign.training.loop import train

    with tempfile.TemporaryDirectory() as output_dir:
        config = config_from_preset(preset, {
            "data.data_dir": str(data_dir), "output_dir": output_dir, "optim.max_steps": steps, "log_every": FIRST_TIMED_STEP,
            "save_every": 10 * steps, "sample_every": 10 * steps, "sample_steps": 1, "validation_prompts": ("hello",), "data.verbose": False,
        })
        train(config)
        rows = [json.loads(line) for line in (Path(output_dir) / "metrics.jsonl").read_text().splitlines()]
    elapsed = {row["step"]: row["elapsed_s"] for row in rows if "loss" in row}
    return 1000 * (elapsed[steps] - elapsed[FIRST_TIMED_STEP]) / (steps - FIRST_TIMED_STEP)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--steps", type=int, default=60, help=f"optimizer steps per run; timed from step {FIRST_TIMED_STEP}")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--data_dir", type=Path, default=REPO / "training_data")
    args = parser.parse_args()
    if args.steps <= FIRST_TIMED_STEP or args.steps % FIRST_TIMED_STEP:
        parser.error(f"--steps must be a multiple of {FIRST_TIMED_STEP} above it")
    import torch

    times = [milliseconds_per_step(args.preset, args.steps, args.data_dir) for _ in range(args.runs)]
    print(json.dumps({"preset": args.preset, "threads": torch.get_num_threads(), "ms_per_step": round(statistics.median(times), 1),
                      "runs_ms": [round(value, 1) for value in times]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
