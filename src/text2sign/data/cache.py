"""The decoded-clip cache: one memory-mapped uint8 array plus an index, safe to interrupt.

Layout of a cache folder:
  frames.npy            (N, num_frames, image_size, image_size, 3) uint8, a .npy file opened as np.memmap
  index.json            format version, settings, names and captions in row order, pairing summary
  progress.npz          status (N,) uint8 (0 pending, 1 done, 2 failed) and clip info (N, 5) int32
  failures.json         {name: {"reason", "detail"}} for clips that failed to decode
  pairing_summary.json  the pairing summary plus decode failures, written when prepare finishes

A checkpoint flushes frames.npy to disk before rewriting progress.npz (temporary file, then rename), so
a clip is never marked done before its frames are stored; a kill at any point loses at most the clips
decoded since the last checkpoint. index.json is written last when a cache is created: its presence
means the other files exist.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from text2sign.data.clip import CLIP_INFO_FIELDS, ClipInfo, fitted_side
from text2sign.data.config import DataConfig
from text2sign.data.pairing import ClipRecord
from text2sign.json_io import read_json, write_json

CACHE_FORMAT_VERSION = 1
INDEX_NAME = "index.json"
FRAMES_NAME = "frames.npy"
PROGRESS_NAME = "progress.npz"
FAILURES_NAME = "failures.json"
SUMMARY_NAME = "pairing_summary.json"
PENDING, DONE, FAILED = 0, 1, 2


def settings_mismatch(cached: dict, wanted: dict) -> list[str]:
    """Human-readable differences between a cache's settings and a config's, empty when they agree."""
    return [f"{key}: cache has {cached.get(key)!r}, config asks {value!r}" for key, value in wanted.items() if cached.get(key) != value]


class CacheWriter:
    """Creates or resumes a cache folder for one list of records and one set of settings; keeps the
    status of each row. The decoding processes write the frames themselves (see prepare.py)."""

    def __init__(self, out_dir: str | os.PathLike, config: DataConfig, records: list[ClipRecord], pairing_summary: dict):
        self.out_dir = Path(out_dir)
        self.settings = config.cache_settings()
        shape = (len(records), config.num_frames, config.image_size, config.image_size, 3)  # (n, f, h, w, c)
        index_path = self.out_dir / INDEX_NAME
        self.frames_path = self.out_dir / FRAMES_NAME
        if index_path.exists():
            self._check_resumable(read_json(index_path), records)
            assert np.load(self.frames_path, mmap_mode="r").shape == shape
            with np.load(self.out_dir / PROGRESS_NAME) as progress:
                self.status, self.clip_info = progress["status"], progress["clip_info"]
            self.failures = read_json(self.out_dir / FAILURES_NAME)
            self.resumed = True
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        # A sparse file: disk space is used only as rows are written.
        np.lib.format.open_memmap(self.frames_path, mode="w+", dtype=np.uint8, shape=shape).flush()
        self.status = np.zeros(len(records), dtype=np.uint8)
        self.clip_info = np.zeros((len(records), len(CLIP_INFO_FIELDS)), dtype=np.int32)
        self.failures: dict[str, dict] = {}
        self.checkpoint()
        index = {
            "format_version": CACHE_FORMAT_VERSION,
            "settings": self.settings,
            "frame_sampling": "uniform",  # a cache holds the evaluation frames; see FrameCache.check_config
            "clip_info_fields": list(CLIP_INFO_FIELDS),
            "names": [record.name for record in records],
            "captions": [record.caption for record in records],
            "pairing_summary": pairing_summary,
        }
        write_json(index_path, index)
        self.resumed = False

    def _check_resumable(self, index: dict, records: list[ClipRecord]) -> None:
        if index.get("format_version") != CACHE_FORMAT_VERSION:
            raise ValueError(f"{self.out_dir} holds a cache of format {index.get('format_version')}, this code writes {CACHE_FORMAT_VERSION}: use a new --out")
        differences = settings_mismatch(index["settings"], self.settings)
        if differences:
            raise ValueError(f"{self.out_dir} holds a cache built with other settings ({'; '.join(differences)}): use a new --out or delete it")
        if index["names"] != [record.name for record in records] or index["captions"] != [record.caption for record in records]:
            raise ValueError(
                f"the data folder changed since the cache in {self.out_dir} was started "
                f"({len(index['names']):,} clips then, {len(records):,} now, or captions edited): delete it or use a new --out"
            )

    @property
    def pending_rows(self) -> np.ndarray:
        return np.flatnonzero(self.status == PENDING)

    def mark_done(self, row: int, info: ClipInfo) -> None:
        """Record a row whose frames a process has written into frames.npy."""
        self.clip_info[row] = info.as_row()
        self.status[row] = DONE

    def fail(self, row: int, name: str, reason: str, detail: str) -> None:
        self.failures[name] = {"reason": reason, "detail": detail}
        self.status[row] = FAILED

    def checkpoint(self) -> None:
        """Frames to disk first, then the failures, then the status that vouches for both."""
        # fsync writes every dirty page of the file, whichever process's memmap dirtied it.
        descriptor = os.open(self.frames_path, os.O_RDONLY)
        os.fsync(descriptor)
        os.close(descriptor)
        write_json(self.out_dir / FAILURES_NAME, self.failures)
        temporary = self.out_dir / (PROGRESS_NAME + ".tmp")
        with open(temporary, "wb") as handle:
            np.savez(handle, status=self.status, clip_info=self.clip_info)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.out_dir / PROGRESS_NAME)


class FrameCache:
    """Read side: index, progress and a lazily opened read-only memmap of the frames."""

    def __init__(self, cache_dir: str | os.PathLike):
        self.cache_dir = Path(cache_dir)
        index_path = self.cache_dir / INDEX_NAME
        if not index_path.exists():
            raise ValueError(f"{self.cache_dir} is not a cache (no {INDEX_NAME}): build one with `python -m text2sign.data.prepare --out {self.cache_dir} ...`")
        index = read_json(index_path)
        if index.get("format_version") != CACHE_FORMAT_VERSION:
            raise ValueError(f"{self.cache_dir} is a cache of format {index.get('format_version')}, this code reads {CACHE_FORMAT_VERSION}: rebuild it")
        self.settings: dict = index["settings"]
        self.names: list[str] = index["names"]
        self.captions: list[str] = index["captions"]
        self.pairing_summary: dict = index["pairing_summary"]
        with np.load(self.cache_dir / PROGRESS_NAME) as progress:
            self.status, self.clip_info = progress["status"], progress["clip_info"]
        # failures.json is written before progress.npz, so it may name clips still pending: trust the status.
        recorded_failures = read_json(self.cache_dir / FAILURES_NAME)
        self.failures: dict[str, dict] = {
            name: recorded_failures[name] for name, status in zip(self.names, self.status.tolist()) if status == FAILED
        }
        self._frames: np.ndarray | None = None

    def check_config(self, config: DataConfig) -> None:
        """Refuse a cache whose frames are not what this config would decode."""
        differences = settings_mismatch(self.settings, config.cache_settings())
        if differences:
            raise ValueError(
                f"cache {self.cache_dir} was built with other settings ({'; '.join(differences)}): rebuild it with "
                f"`python -m text2sign.data.prepare` and these settings, or point cache_dir elsewhere"
            )
        pending = int(np.count_nonzero(self.status == PENDING))
        if pending:
            raise ValueError(f"cache {self.cache_dir} is incomplete ({pending:,} of {len(self.names):,} clips pending): rerun prepare with the same --out to resume")
        # The cache holds frames already held or upsampled to its settings; say so once, with the counts.
        done = self.status == DONE
        info = {name: self.clip_info[done, CLIP_INFO_FIELDS.index(name)] for name in ("timeline_length", "width", "height")}
        if done.any():
            short_frames = int(np.count_nonzero(info["timeline_length"] < config.num_frames))
            sides = fitted_side(info["width"], info["height"], config.resize_mode)
            small = int(np.count_nonzero(sides < config.image_size))
            if short_frames:
                warnings.warn(f"{short_frames:,} of {int(done.sum()):,} cached clips have fewer than num_frames={config.num_frames} frames "
                              f"(fewest {int(info['timeline_length'].min())}): their last frame is held to fill")
            if small:
                warnings.warn(f"{small:,} of {int(done.sum()):,} cached clips are smaller than image_size={config.image_size} "
                              f"(smallest side {int(sides.min())}): they were upsampled")
        if config.frame_sampling == "random":
            # The cache stores the uniform frames; a random window would need frames it does not hold.
            timeline_lengths = self.clip_info[:, CLIP_INFO_FIELDS.index("timeline_length")]
            too_long = int(np.count_nonzero((self.status == DONE) & (timeline_lengths > config.num_frames)))
            if too_long:
                raise ValueError(
                    f"frame_sampling='random' cannot be served by cache {self.cache_dir}: {too_long:,} clips have more than "
                    f"num_frames={config.num_frames} frames and the cache holds only their uniform selection. Use "
                    "frame_sampling='uniform' with this cache, or train from the raw folder (cache_dir=None)"
                )

    @property
    def frames(self) -> np.ndarray:
        """(N, f, h, w, c) uint8, opened on first use in each process (DataLoader workers included)."""
        if self._frames is None:
            self._frames = np.load(self.cache_dir / FRAMES_NAME, mmap_mode="r")
        return self._frames

    def __getstate__(self) -> dict:
        # Pickling a memmap copies the whole array into the pickle; workers reopen the file instead.
        state = dict(self.__dict__)
        state["_frames"] = None
        return state
