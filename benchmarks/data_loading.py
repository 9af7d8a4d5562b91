"""Data-loading throughput: pairing at 70,000 pairs, raw decoding, preparing the cache, reading it.

    python benchmarks/data_loading.py                      # ../shared/data, 2,000 synthetic clips
    python benchmarks/data_loading.py --synthetic_clips 8000 --workers 16

Measures, on this machine:
  1. pairing + header checks of a synthetic folder of 70,000 pairs (hard links to the real How2Sign
     clips, so every GIF is a real 64x64x16 training clip), with the peak Python memory it allocates,
     and the time to open a cache index of that size (what a training run does at start);
  2. raw decoding (SignVideoDataset without cache) over every clip of ../shared/data, in clips/s,
     for the How2Sign training format and for the ISL clips (larger, longer, resized);
  3. `prepare` on the synthetic folder with all cores, extrapolated to 70,000 clips;
  4. the cache: clips/s read in random order and the latency of one batch of 4 through a DataLoader
     (num_workers=0), to compare with the model's training step.
The linked files share a few inodes, so every read comes from the page cache: the numbers are decode
cost, not disk. Results go to stdout and benchmarks/results/data_loading.json.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import shutil
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from text2sign.data import DataConfig, SignVideoDataset, collate_batch
from text2sign.data.cache import FrameCache
from text2sign.data.pairing import pair_folder
from text2sign.data.prepare import prepare_cache
from text2sign.json_io import write_json

REPOSITORY = Path(__file__).resolve().parents[1]
SHARDS = 70  # sub-folders of the synthetic set, like a sharded real dataset
LINKS_PER_SOURCE = 60_000  # below ext4's 65,000 hard links per file
BATCH_SIZE = 4  # the standard preset's per-step batch on CPU


def build_linked_folder(folder: Path, sources: list[Path], num_pairs: int) -> None:
    """num_pairs NAME.gif + NAME.txt hard-linked to the source clips and their captions, in SHARDS folders."""
    copies: dict[tuple[Path, int], Path] = {}

    def link_target(source: Path, index: int) -> Path:
        generation = index // (LINKS_PER_SOURCE * len(sources))
        if generation == 0:
            return source
        if (source, generation) not in copies:
            sources_folder = folder.parent / f"{folder.name}_link_sources"  # outside folder: not clips
            sources_folder.mkdir(exist_ok=True)
            copies[(source, generation)] = sources_folder / f"{source.stem}_copy{generation}{source.suffix}"
            shutil.copyfile(source, copies[(source, generation)])
        return copies[(source, generation)]

    for shard in range(SHARDS):
        (folder / f"shard{shard:02d}").mkdir(parents=True, exist_ok=True)
    for index in range(num_pairs):
        source = sources[index % len(sources)]
        stem = folder / f"shard{index % SHARDS:02d}" / f"clip{index:06d}"
        os.link(link_target(source, index), f"{stem}.gif")
        os.link(link_target(source.with_suffix(".txt"), index), f"{stem}.txt")


def time_pairing(folder: Path) -> dict:
    start = time.perf_counter()
    pairing = pair_folder(folder, DataConfig("unused").max_frame_pixels)
    seconds = time.perf_counter() - start
    tracemalloc.start()  # a second pass for memory: tracemalloc slows allocation-heavy code down
    pair_folder(folder, DataConfig("unused").max_frame_pixels)
    _, peak_bytes = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"pairs": len(pairing.records), "seconds": round(seconds, 2), "peak_python_memory_mb": round(peak_bytes / 2**20, 1)}


def time_raw_decoding(folder: Path, repeats: int) -> dict:
    data = SignVideoDataset(str(folder), 16, 64, verbose=False)
    data[0]  # imports and first-call overheads out of the timing
    start = time.perf_counter()
    for _ in range(repeats):
        for index in range(len(data)):
            data[index]
    seconds = time.perf_counter() - start
    return {"clips": len(data) * repeats, "seconds": round(seconds, 2), "clips_per_second": round(len(data) * repeats / seconds, 1)}


def evict_from_page_cache(path: Path) -> None:
    """Drop one file's pages from the page cache (this file only, nothing system-wide)."""
    descriptor = os.open(path, os.O_RDONLY)
    os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(descriptor)


def batch_latencies_ms(data: SignVideoDataset, num_batches: int) -> dict:
    loader = DataLoader(data, batch_size=BATCH_SIZE, shuffle=True, num_workers=0, collate_fn=collate_batch, generator=torch.Generator().manual_seed(0))
    latencies_ms = []
    batches = iter(loader)
    for _ in range(min(num_batches, len(loader))):
        start = time.perf_counter()
        batch = next(batches)
        latencies_ms.append(1000 * (time.perf_counter() - start))
    assert batch["video"].shape[1:] == (3, 16, 64, 64)
    latencies = np.array(latencies_ms)
    return {key: round(float(value), 2) for key, value in (("mean", latencies.mean()), ("p50", np.median(latencies)), ("p95", np.percentile(latencies, 95)), ("max", latencies.max()))}


def time_cache_reads(cache_dir: Path, data_dir: Path, num_batches: int) -> dict:
    data = SignVideoDataset(DataConfig(str(data_dir), cache_dir=str(cache_dir), verbose=False))
    order = np.random.default_rng(0).permutation(len(data))
    start = time.perf_counter()
    for index in order:
        data[int(index)]
    clips_per_second = len(order) / (time.perf_counter() - start)
    warm = batch_latencies_ms(data, num_batches)
    del data  # unmap frames.npy: the kernel keeps pages that are still mapped
    gc.collect()
    evict_from_page_cache(cache_dir / "frames.npy")  # every batch now reads from the disk
    cold = batch_latencies_ms(SignVideoDataset(DataConfig(str(data_dir), cache_dir=str(cache_dir), verbose=False)), num_batches)
    return {"clips_per_second_warm": round(clips_per_second, 1), "batch_of_4_ms_warm": warm, "batch_of_4_ms_cold_disk": cold}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default=str(REPOSITORY.parent / "shared" / "data"), help="real clips (../shared/data)")
    parser.add_argument("--synthetic_clips", type=int, default=2000, help="clips in the measured prepare run")
    parser.add_argument("--pairing_clips", type=int, default=70_000)
    parser.add_argument("--workers", type=int, default=None, help="prepare processes (default: all cores)")
    parser.add_argument("--raw_repeats", type=int, default=3)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--work_dir", default=None, help="scratch folder (default: a temporary one, removed)")
    args = parser.parse_args()
    data_dir = Path(args.data_dir)
    if not (data_dir / "how2sign_mini").is_dir():
        raise SystemExit(f"{data_dir} has no how2sign_mini/: pass --data_dir pointing at the shared data")
    work_dir = Path(args.work_dir or tempfile.mkdtemp(prefix="text2sign_data_benchmark_"))
    workers = args.workers or os.cpu_count()
    results: dict = {
        "machine": {"cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine(), "load_average_before": os.getloadavg()},
        "settings": {"num_frames": 16, "image_size": 64, "prepare_workers": workers},
    }
    how2sign_sources = sorted((data_dir / "how2sign_mini").glob("*.gif"))

    print(f"1. pairing {args.pairing_clips:,} linked pairs")
    build_linked_folder(work_dir / "pairs", how2sign_sources, args.pairing_clips)
    results["pairing_70k"] = time_pairing(work_dir / "pairs")
    # An index for all 70,000 (no clip decoded: frames.npy stays sparse) to time opening a cache that size.
    prepare_cache(DataConfig(str(work_dir / "pairs"), verbose=False), work_dir / "index_70k", max_clips=0, progress_bar=False)
    start = time.perf_counter()
    FrameCache(work_dir / "index_70k")
    results["pairing_70k"]["open_cache_index_seconds"] = round(time.perf_counter() - start, 2)
    print(f"   {results['pairing_70k']}")
    shutil.rmtree(work_dir / "pairs")
    shutil.rmtree(work_dir / "index_70k")

    print("2. raw decoding (no cache), one process")
    results["raw_how2sign_64x64x16"] = time_raw_decoding(data_dir / "how2sign_mini", args.raw_repeats * 10)
    results["raw_isl_phrases"] = time_raw_decoding(data_dir / "isl_phrases", args.raw_repeats)
    results["raw_all_shared_clips"] = time_raw_decoding(data_dir, args.raw_repeats)
    for key in ("raw_how2sign_64x64x16", "raw_isl_phrases", "raw_all_shared_clips"):
        print(f"   {key}: {results[key]}")

    print(f"3. prepare {args.synthetic_clips:,} How2Sign-format clips with {workers} workers")
    build_linked_folder(work_dir / "synthetic", how2sign_sources, args.synthetic_clips)
    config = DataConfig(str(work_dir / "synthetic"), num_frames=16, image_size=64, verbose=False)
    prepared = prepare_cache(config, work_dir / "cache", workers=workers, progress_bar=False)
    rate = prepared.decoded_now / prepared.seconds
    results["prepare"] = {
        "clips": prepared.decoded_now, "seconds": round(prepared.seconds, 2), "clips_per_second": round(rate, 1),
        "extrapolated_70000_clips_minutes": round(70_000 / rate / 60, 1),
        "cache_gb_for_70000": round(70_000 * 16 * 64 * 64 * 3 / 1e9, 1),
    }
    print(f"   {results['prepare']}")

    print("4. reading the cache, one process")
    results["cache"] = time_cache_reads(work_dir / "cache", work_dir / "synthetic", args.batches)
    print(f"   {results['cache']}")
    results["machine"]["load_average_after"] = os.getloadavg()
    if args.work_dir is None:
        shutil.rmtree(work_dir)

    out = REPOSITORY / "benchmarks" / "results" / "data_loading.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, results)
    print(f"load average before {results['machine']['load_average_before']}, after {results['machine']['load_average_after']}; wrote {out}")


if __name__ == "__main__":
    main()
