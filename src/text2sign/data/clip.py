"""One GIF file -> num_frames uint8 frames at image_size, the path shared by the dataset and the cache."""

from __future__ import annotations

import os
from dataclasses import astuple, dataclass

import numpy as np

from text2sign.data.config import DataConfig
from text2sign.data.frames import frame_timeline, resize_frame, select_positions
from text2sign.data.gif import decode_gif_frames, parse_gif_layout
from text2sign.data.skips import read_file


@dataclass(frozen=True)
class ClipInfo:
    num_source_frames: int
    width: int  # logical screen size of the GIF
    height: int
    duration_ms: int
    timeline_length: int  # frames to choose from: source frames, or ticks at target_fps

    def as_row(self) -> tuple[int, ...]:
        return astuple(self)


CLIP_INFO_FIELDS = ("num_source_frames", "width", "height", "duration_ms", "timeline_length")


def load_clip(path: str | os.PathLike, config: DataConfig, rng: np.random.Generator | None = None) -> tuple[np.ndarray, ClipInfo]:
    """(frames (num_frames, image_size, image_size, 3) uint8, info); UnreadableFileError for a broken file.

    rng is used only when config.frame_sampling == "random".
    """
    path = str(path)
    data = read_file(path)
    layout = parse_gif_layout(data, path, config.max_frame_pixels)
    timeline = frame_timeline(layout.frame_durations_ms, config.target_fps)  # (L,) source frame per step
    positions = select_positions(len(timeline), config.num_frames, config.frame_sampling, rng)  # (f,)
    source_indices = timeline[positions]  # (f,) may repeat: held last frame, or fps above the source's
    decoded = decode_gif_frames(
        data, path, sorted(set(source_indices.tolist())), lambda frame: resize_frame(frame, config.image_size, config.resize_mode)
    )
    frames = np.stack([decoded[index] for index in source_indices.tolist()])  # (f, h, w, c)
    info = ClipInfo(layout.num_frames, layout.width, layout.height, layout.duration_ms, len(timeline))
    return frames, info


def fitted_side(width, height, resize_mode: str):
    """The side that resizing maps onto image_size: the short one for "crop", the long one for "letterbox".
    Works on ints and on numpy arrays of sizes alike."""
    return np.minimum(width, height) if resize_mode == "crop" else np.maximum(width, height)


def shortfall_messages(timeline_length: int, width: int, height: int, config: DataConfig) -> list[str]:
    """What a clip cannot supply: fewer frames than num_frames (the last is held to fill) or fewer pixels than
    image_size (it is upsampled). Said with the counts, so a preset that asks 32 frames of 16-frame clips is
    never a silent repeat. The messages name no clip: warnings.warn then shows each distinct shortfall once."""
    messages = []
    if timeline_length < config.num_frames:
        messages.append(
            f"a clip has {timeline_length} frames but num_frames={config.num_frames}: its last frame is held for the other "
            f"{config.num_frames - timeline_length}; set num_frames <= {timeline_length} to train on real frames only"
        )
    side = int(fitted_side(width, height, config.resize_mode))
    if side < config.image_size:
        messages.append(
            f"a clip is {width}x{height} but image_size={config.image_size}: it is upsampled {config.image_size / side:.2g}x; "
            f"set image_size <= {side} to train on its own pixels"
        )
    return messages
