"""Writing generated videos: GIF, MP4, a folder of PNG frames, or one PNG grid of all frames.

Frames are uint8 (f, h, w, 3), as the pipeline returns them. GIFs are what the training data is made of
and what wandb shows (`wandb.Video(path)` takes a written GIF; its numpy path would need moviepy).
"""

from __future__ import annotations

import io
import math
import re
import struct
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
from PIL import Image

from text2sign.data import gif  # the GIF block constants and sub-block walker the reader uses

FORMATS = ("gif", "mp4", "frames", "grid")


def _as_numpy(frames: torch.Tensor | np.ndarray) -> np.ndarray:
    frames = frames.numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (f, h, w, 3), got {frames.dtype} {frames.shape}")
    return frames


def write_gif(path: str | Path, frames, fps: float = 8.0) -> Path:
    """A looping GIF with exactly one image per frame.

    Pillow's multi-frame writer merges identical consecutive frames into one longer frame (a signer holding
    still would lose frames, and a dataset reading num_frames would pad with the last one), so each frame is
    encoded alone by Pillow (exact palette for up to 256 colours) and the image blocks are joined, each with
    its palette as a local colour table.
    """
    frames = _as_numpy(frames)
    if len(frames) == 0:
        raise ValueError("a GIF needs at least one frame")
    height, width = frames.shape[1:3]
    delay_centiseconds = max(1, round(100 / fps))
    output = [b"GIF89a", struct.pack("<HHBBB", width, height, 0, 0, 0), b"!\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"]
    for frame_index, frame in enumerate(frames):
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="GIF")
        data = buffer.getvalue()
        screen_packed = data[10]
        assert screen_packed & 0x80, "Pillow writes a single frame's palette as a global colour table"
        position = gif.HEADER_BYTES + (3 << ((screen_packed & 0x07) + 1))
        palette = data[gif.HEADER_BYTES:position]
        while data[position] == gif.EXTENSION_INTRODUCER:  # extensions before the image (e.g. a comment): skip them
            position = gif._skip_sub_blocks(data, position + 2, str(path), frame_index)
        assert data[position] == gif.IMAGE_SEPARATOR and data[-1] == gif.TRAILER, "expected one image block and the trailer"
        descriptor = bytearray(data[position + 1 : position + 10])
        descriptor[8] = 0x80 | (descriptor[8] & 0x40) | (screen_packed & 0x07)  # local table of the global's size
        graphic_control = bytes([gif.EXTENSION_INTRODUCER, gif.GRAPHIC_CONTROL_LABEL, 4, 4]) + struct.pack("<H", delay_centiseconds) + b"\x00\x00"  # disposal: keep
        output += [graphic_control, bytes([gif.IMAGE_SEPARATOR]), bytes(descriptor), palette, data[position + 10 : -1]]
    output.append(bytes([gif.TRAILER]))
    Path(path).write_bytes(b"".join(output))
    return Path(path)


def read_gif(path: str | Path) -> np.ndarray:
    """Every frame of a GIF as uint8 (f, h, w, 3); converted to RGB so frames with transparency keep three channels."""
    with Image.open(path) as image:
        frames = []
        for index in range(image.n_frames):
            image.seek(index)
            frames.append(np.array(image.convert("RGB")))
    return np.stack(frames)  # (f, h, w, 3)


def write_mp4(path: str | Path, frames, fps: float = 8.0) -> Path:
    """H.264 MP4 through the ffmpeg binary that imageio-ffmpeg ships; sizes are padded to even numbers."""
    frames = _as_numpy(frames)
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    iio.imwrite(path, frames, extension=".mp4", fps=fps, codec="libx264", macro_block_size=1)
    return Path(path)


def write_frames(directory: str | Path, frames) -> Path:
    frames = _as_numpy(frames)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for index, frame in enumerate(frames):
        Image.fromarray(frame).save(directory / f"frame_{index:03d}.png")
    return directory


def frames_grid(frames, columns: int | None = None) -> np.ndarray:
    """All frames tiled row by row into one image, (rows*h, columns*w, 3)."""
    frames = _as_numpy(frames)
    count, height, width, _ = frames.shape
    columns = columns or min(count, 8)
    rows = math.ceil(count / columns)
    grid = np.zeros((rows * height, columns * width, 3), dtype=np.uint8)
    for index, frame in enumerate(frames):
        row, column = divmod(index, columns)
        grid[row * height:(row + 1) * height, column * width:(column + 1) * width] = frame
    return grid


def write_grid(path: str | Path, frames, columns: int | None = None) -> Path:
    Image.fromarray(frames_grid(frames, columns)).save(path)
    return Path(path)


def write_video(path_without_suffix: str | Path, frames, video_format: str = "gif", fps: float = 8.0) -> Path:
    """Write in one of FORMATS; returns the file (or folder) written."""
    base = Path(path_without_suffix)
    if video_format == "gif":
        return write_gif(base.with_suffix(".gif"), frames, fps)
    if video_format == "mp4":
        return write_mp4(base.with_suffix(".mp4"), frames, fps)
    if video_format == "frames":
        return write_frames(base, frames)
    if video_format == "grid":
        return write_grid(base.with_suffix(".png"), frames)
    raise ValueError(f"unknown format {video_format!r}: choose one of {FORMATS}")


def slugify(text: str, max_length: int = 60) -> str:
    """A file-name-safe version of a prompt: 'How are you?' -> 'how_are_you'."""
    slug = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return slug[:max_length] or "prompt"
