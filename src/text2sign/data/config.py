"""DataConfig: every choice the data pipeline makes, in one checked dataclass."""

from __future__ import annotations

import re
from dataclasses import dataclass

FRAME_SAMPLINGS = ("uniform", "random")
RESIZE_MODES = ("crop", "letterbox")
SPLITS = ("train", "val")

# 4096 x 4096 pixels per composited frame: 16.8 M pixels, 50 MB as RGB. Generous for real clips (the
# largest real file we know, a 2000 x 1340 still, is 2.7 M) yet far below what a crafted header can
# claim (65535 x 65535 = 4.3 G pixels, 12.9 GB per frame).
DEFAULT_MAX_FRAME_PIXELS = 4096 * 4096


@dataclass
class DataConfig:
    data_dir: str  # folder of NAME.gif + NAME.txt pairs, searched recursively
    num_frames: int = 16  # frames per clip
    image_size: int = 64  # square frame size in pixels
    frame_sampling: str = "uniform"  # "uniform" (evaluation) | "random" window (training)
    resize_mode: str = "crop"  # "crop": short side to image_size, centre-crop | "letterbox": long side, black bars
    target_fps: float | None = None  # resample by the GIF's frame durations when set; None keeps every source frame
    split: str | None = None  # None (all clips) | "train" | "val"
    val_fraction: float = 0.05  # share of clips (of groups, with group_pattern) held out by a hash of the name; 0: none
    group_pattern: str | None = None  # regex searched in the name; group(1), else group(0), is the split group key
    cache_dir: str | None = None  # a folder written by `python -m text2sign.data.prepare`
    strict: bool = False  # the first broken or unreadable file raises instead of being skipped
    max_frame_pixels: int = DEFAULT_MAX_FRAME_PIXELS  # decompression-bomb guard, checked before decoding
    seed: int = 0  # random windows and flips draw from a generator seeded by (seed, epoch, index)
    horizontal_flip_probability: float = 0.0  # opt-in: a flip swaps the signing hand, which changes the sign
    # share of training items replaced by two recordings spliced at a sign boundary into a new sentence (data/composition.py;
    # needs a folder written by render_tracks, with placed_tracks.npz and signs.csv); 0: off
    composition_share: float = 0.0
    summary_path: str | None = None  # also write the pairing summary as JSON here
    verbose: bool = True  # print the pairing summary when the dataset is built

    def __post_init__(self):
        if not str(self.data_dir):
            raise ValueError("data_dir is empty: pass the folder that holds NAME.gif + NAME.txt pairs")
        self.data_dir = str(self.data_dir)
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be at least 1, got {self.num_frames}")
        if self.image_size < 1:
            raise ValueError(f"image_size must be at least 1, got {self.image_size}")
        if self.frame_sampling not in FRAME_SAMPLINGS:
            raise ValueError(f"frame_sampling must be one of {FRAME_SAMPLINGS}, got {self.frame_sampling!r}")
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(f"resize_mode must be one of {RESIZE_MODES}, got {self.resize_mode!r}")
        if self.target_fps is not None and not self.target_fps > 0:
            raise ValueError(f"target_fps must be positive or None (keep every source frame), got {self.target_fps}")
        if self.split is not None and self.split not in SPLITS:
            raise ValueError(f"split must be None (all clips) or one of {SPLITS}, got {self.split!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.group_pattern is not None:
            try:
                re.compile(self.group_pattern)
            except re.error as error:
                raise ValueError(f"group_pattern {self.group_pattern!r} is not a valid regex: {error}") from error
        if self.max_frame_pixels < 1:
            raise ValueError(f"max_frame_pixels must be positive, got {self.max_frame_pixels}")
        if self.seed < 0:
            raise ValueError(f"seed must be non-negative (it seeds numpy's SeedSequence), got {self.seed}")
        if not 0.0 <= self.composition_share <= 1.0:
            raise ValueError(f"composition_share must be in [0, 1], got {self.composition_share}")
        if not 0.0 <= self.horizontal_flip_probability <= 1.0:
            raise ValueError(f"horizontal_flip_probability must be in [0, 1], got {self.horizontal_flip_probability}")

    def cache_settings(self) -> dict:
        """The fields that decide the bytes a cache holds; a cache built with other values is refused."""
        return {
            "num_frames": self.num_frames,
            "image_size": self.image_size,
            "resize_mode": self.resize_mode,
            "target_fps": self.target_fps,
            "max_frame_pixels": self.max_frame_pixels,
        }
