"""Decode every clip once into a cache: `python -m text2sign.data.prepare --data_dir D --out C`.

    python -m text2sign.data.prepare --data_dir data/how2sign --out cache/h2s_16x64 --num_frames 16 --image_size 64

Clips are decoded in a multiprocessing.Pool (all cores by default) with the same code the dataset uses,
in uniform frame sampling, and written by this process into frames.npy. Progress is checkpointed every
--checkpoint_every clips and when the run stops for any reason (Ctrl-C included); running the same
command again resumes with the clips still pending. A clip that fails to decode is skipped, counted and
listed in failures.json and pairing_summary.json (with --strict, it stops the run).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from text2sign.data.cache import DONE, SUMMARY_NAME, CacheWriter
from text2sign.data.clip import ClipInfo, load_clip
from text2sign.data.config import DEFAULT_MAX_FRAME_PIXELS, DataConfig
from text2sign.data.pairing import format_summary, pair_folder
from text2sign.data.skips import UnreadableFileError
from text2sign.json_io import write_json

DEFAULT_CHECKPOINT_EVERY = 1000  # clips between checkpoints: ~200 MB of frames at 16 x 64 x 64
POOL_CHUNK_SIZE = 8  # clips per task sent to a worker: amortises inter-process overhead, keeps cores busy

# Set in each decoding process by _init_worker.
_worker_config: DataConfig | None = None
_worker_frames: np.ndarray | None = None  # (N, f, h, w, c) uint8 memmap of frames.npy


@dataclass
class PrepareResult:
    total_clips: int
    decoded_now: int
    failed_now: int
    pending: int  # still to do (a --max_clips run stops early)
    seconds: float
    resumed: bool


def _init_worker(config: DataConfig, frames_path: str | None) -> None:
    # Each decoding process writes its clips' rows into its own memmap of frames.npy: frames never
    # travel between processes, and writing them costs the main process nothing.
    global _worker_config, _worker_frames
    _worker_config = config
    _worker_frames = None if frames_path is None else np.load(frames_path, mmap_mode="r+")


def _decode_row(task: tuple[int, str]) -> tuple[int, ClipInfo | None, tuple[str, str, str] | None]:
    """Decode one clip into its row of frames.npy: (row, info, None), or (row, None, (path, reason, detail))."""
    row, gif_path = task
    try:
        frames, info = load_clip(gif_path, _worker_config)
    except UnreadableFileError as error:
        return row, None, (error.path, error.reason, error.detail)  # the error travels back as data
    _worker_frames[row] = frames  # written before the row is reported, so never marked done unwritten
    return row, info, None


def prepare_cache(
    config: DataConfig,
    out_dir: str | os.PathLike,
    workers: int | None = None,
    max_clips: int | None = None,
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
    progress_bar: bool = True,
) -> PrepareResult:
    """Build or resume the cache for config's folder and settings in out_dir; max_clips stops a run early."""
    if config.frame_sampling != "uniform":
        raise ValueError("a cache stores the uniform frame selection: build it with frame_sampling='uniform'")
    start_time = time.perf_counter()
    pairing = pair_folder(config.data_dir, config.max_frame_pixels, config.strict)
    summary = pairing.summary()
    if config.verbose:
        print(format_summary(summary))
    records = pairing.records
    writer = CacheWriter(out_dir, config, records, summary)
    pending_rows = writer.pending_rows.tolist()
    if config.verbose and writer.resumed:
        print(f"resuming {out_dir}: {len(records) - len(pending_rows):,} of {len(records):,} clips already done")
    if max_clips is not None:
        pending_rows = pending_rows[:max_clips]
    tasks = [(row, records[row].gif_path) for row in pending_rows]
    workers = workers or os.cpu_count() or 1
    decoded_now = failed_now = 0
    bar = tqdm(total=len(tasks), unit="clip", desc="prepare", disable=not progress_bar)
    pool = None
    try:
        if workers > 1 and len(tasks) > 1:
            pool = multiprocessing.get_context().Pool(workers, initializer=_init_worker, initargs=(config, str(writer.frames_path)))
            results = pool.imap_unordered(_decode_row, tasks, chunksize=POOL_CHUNK_SIZE)
        else:
            _init_worker(config, str(writer.frames_path))
            results = map(_decode_row, tasks)
        for row, info, failure in results:
            if failure is None:
                writer.mark_done(row, info)
                decoded_now += 1
            else:
                path, reason, detail = failure
                if config.strict:
                    raise UnreadableFileError(path, reason, detail)
                writer.fail(row, records[row].name, reason, detail)
                failed_now += 1
            bar.update(1)
            if (decoded_now + failed_now) % checkpoint_every == 0:
                writer.checkpoint()
    finally:
        # Whatever stopped the loop (the end, Ctrl-C, --strict), keep the work done so far.
        writer.checkpoint()
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()
        _init_worker(config, None)  # this process may have decoded in place: release its memmap

    pending = len(writer.pending_rows)
    if pending == 0:
        summary["decode_failures"] = writer.failures
        write_json(writer.out_dir / SUMMARY_NAME, summary)
    result = PrepareResult(len(records), decoded_now, failed_now, pending, time.perf_counter() - start_time, writer.resumed)
    if config.verbose:
        print(
            f"{out_dir}: {result.decoded_now:,} clips decoded and {result.failed_now:,} failed in {result.seconds:.1f} s; "
            f"{int(np.count_nonzero(writer.status == DONE)):,} of {result.total_clips:,} done, {len(writer.failures):,} failed, {pending:,} pending"
        )
    return result


def main(argv: list[str] | None = None) -> PrepareResult:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True, help="folder of NAME.gif + NAME.txt pairs (searched recursively)")
    parser.add_argument("--out", required=True, help="cache folder to create or resume")
    parser.add_argument("--num_frames", type=int, default=16)
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--resize_mode", choices=["crop", "letterbox"], default="crop")
    parser.add_argument("--target_fps", type=float, default=None, help="resample by frame durations (default: every source frame)")
    parser.add_argument("--max_frame_pixels", type=int, default=DEFAULT_MAX_FRAME_PIXELS, help="decompression-bomb guard")
    parser.add_argument("--workers", type=int, default=None, help="decoding processes (default: all cores)")
    parser.add_argument("--max_clips", type=int, default=None, help="stop after this many clips; rerun to resume")
    parser.add_argument("--checkpoint_every", type=int, default=DEFAULT_CHECKPOINT_EVERY)
    parser.add_argument("--strict", action="store_true", help="stop at the first broken or unreadable file")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar (logs, CI)")
    args = parser.parse_args(argv)
    config = DataConfig(
        data_dir=args.data_dir,
        num_frames=args.num_frames,
        image_size=args.image_size,
        resize_mode=args.resize_mode,
        target_fps=args.target_fps,
        max_frame_pixels=args.max_frame_pixels,
        strict=args.strict,
    )
    try:
        return prepare_cache(config, args.out, args.workers, args.max_clips, args.checkpoint_every, progress_bar=not args.no_progress)
    except ValueError as error:  # bad input or settings: the message says what to do, a traceback adds nothing
        raise SystemExit(f"prepare stopped: {error}") from error


if __name__ == "__main__":
    main()
