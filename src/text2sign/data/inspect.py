"""Look at a data folder before training: `python -m text2sign.data.inspect D`.

Prints the pairing summary, then distributions of frame counts, frame sizes, clip and frame durations
and caption lengths. Only the GIF block structure is read (no pixel decoding), in a process pool, so
truncated files are found and counted here too; corrupt image data shows up only when decoding
(`prepare` or training).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
from collections import Counter

import numpy as np
from tqdm import tqdm

from text2sign.data.config import DEFAULT_MAX_FRAME_PIXELS
from text2sign.data.gif import parse_gif_layout
from text2sign.data.pairing import format_summary, pair_folder
from text2sign.data.skips import UnreadableFileError, read_file
from text2sign.json_io import write_json

POOL_CHUNK_SIZE = 32  # layouts are cheap: bigger chunks keep the inter-process overhead small
TOP_SIZES = 8  # frame sizes listed by count; the rest are summed


def _layout_row(task: tuple[str, int]) -> tuple | dict:
    """(num_frames, width, height, duration_ms, mean_frame_ms) or {"path", "reason", "detail"}."""
    gif_path, max_frame_pixels = task
    try:
        layout = parse_gif_layout(read_file(gif_path), gif_path, max_frame_pixels)
    except UnreadableFileError as error:
        return {"path": error.path, "reason": error.reason, "detail": error.detail}  # counted by the caller
    return layout.num_frames, layout.width, layout.height, layout.duration_ms, layout.duration_ms / layout.num_frames


def distribution(values: np.ndarray) -> dict:
    """min / 5% / median / 95% / max and mean of a 1-D array (empty dict for no values)."""
    if len(values) == 0:
        return {}
    low, p5, median, p95, high = np.percentile(values, [0, 5, 50, 95, 100]).tolist()
    return {"min": low, "p5": p5, "median": median, "p95": p95, "max": high, "mean": float(values.mean())}


def format_distribution(statistics: dict, unit: str = "") -> str:
    if not statistics:
        return "no clips"
    labels = {"min": "min", "p5": "5%", "median": "median", "p95": "95%", "max": "max", "mean": "mean"}
    return "  ".join(f"{labels[key]} {value:.4g}{unit}" for key, value in statistics.items())


def inspect_folder(data_dir: str, max_frame_pixels: int = DEFAULT_MAX_FRAME_PIXELS, workers: int | None = None, progress_bar: bool = True) -> dict:
    """The pairing summary plus per-clip statistics; prints both."""
    pairing = pair_folder(data_dir, max_frame_pixels)
    summary = pairing.summary()
    print(format_summary(summary))
    tasks = [(record.gif_path, max_frame_pixels) for record in pairing.records]
    workers = workers or os.cpu_count() or 1
    if workers > 1 and len(tasks) > POOL_CHUNK_SIZE:
        with multiprocessing.get_context().Pool(workers) as pool:
            rows = list(tqdm(pool.imap(_layout_row, tasks, chunksize=POOL_CHUNK_SIZE), total=len(tasks), desc="inspect", disable=not progress_bar))
    else:
        rows = [_layout_row(task) for task in tasks]
    layouts = np.array([row for row in rows if isinstance(row, tuple)], dtype=np.float64).reshape(-1, 5)
    broken = [row for row in rows if isinstance(row, dict)]
    captions = [record.caption for record in pairing.records]
    statistics = {
        "clips_read": len(layouts),
        "broken_clips": broken,
        "frames": distribution(layouts[:, 0]),
        "clip_duration_s": distribution(layouts[:, 3] / 1000),
        "mean_frame_duration_ms": distribution(layouts[:, 4]),
        "caption_characters": distribution(np.array([len(caption) for caption in captions])),
        "caption_words": distribution(np.array([len(caption.split()) for caption in captions])),
        "sizes": Counter(f"{int(width)}x{int(height)}" for width, height in layouts[:, 1:3]).most_common(),
    }
    print(f"read the structure of {len(layouts):,} clips; {len(broken):,} broken (skipped by the dataset when decoded)")
    for row in broken[:5]:
        print(f"  {row['path']}: {row['reason']} ({row['detail']})")
    for key, title, unit in (
        ("frames", "frames per clip", ""),
        ("clip_duration_s", "clip duration", " s"),
        ("mean_frame_duration_ms", "mean frame duration", " ms"),
        ("caption_characters", "caption characters", ""),
        ("caption_words", "caption words", ""),
    ):
        print(f"{title:>20}: {format_distribution(statistics[key], unit)}")
    sizes = statistics["sizes"]
    listed = ", ".join(f"{size} ({count:,})" for size, count in sizes[:TOP_SIZES])
    rest = sum(count for _, count in sizes[TOP_SIZES:])
    print(f"{'frame sizes (w x h)':>20}: {listed}" + (f", {rest:,} clips in {len(sizes) - TOP_SIZES} other sizes" if rest else ""))
    return {"pairing": summary, "statistics": statistics}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", help="folder of NAME.gif + NAME.txt pairs (searched recursively)")
    parser.add_argument("--summary_json", default=None, help="also write the summary and statistics as JSON here")
    parser.add_argument("--max_frame_pixels", type=int, default=DEFAULT_MAX_FRAME_PIXELS)
    parser.add_argument("--workers", type=int, default=None, help="processes reading clips (default: all cores)")
    parser.add_argument("--no_progress", action="store_true")
    args = parser.parse_args(argv)
    report = inspect_folder(args.data_dir, args.max_frame_pixels, args.workers, progress_bar=not args.no_progress)
    if args.summary_json is not None:
        write_json(args.summary_json, report)
    return report


if __name__ == "__main__":
    main()
