"""GIF bytes -> composited RGB frames, with the file's structure checked before any pixel is decoded.

Three steps, cheapest first, so a bad file costs as little as possible:
  1. `check_gif_header`: the 13-byte header (signature, logical screen size): catches empty files,
     non-GIF data named .gif and decompression bombs. Pairing runs only this step.
  2. `parse_gif_layout`: walks the block structure without LZW decoding: frame count, per-frame
     durations and rectangles (a frame may be larger than the logical screen), and truncation.
  3. `decode_gif_frames`: Pillow composites the frames in order (per-frame palettes, transparency,
     disposal methods) and only the requested frames are converted to RGB.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from text2sign.data.skips import UnreadableFileError

GIF_SIGNATURES = (b"GIF87a", b"GIF89a")
HEADER_BYTES = 13  # signature (6) + logical screen descriptor (7)
# GIF89a leaves a zero (or missing) frame delay undefined; browsers show such frames for 100 ms.
DEFAULT_FRAME_DURATION_MS = 100

EXTENSION_INTRODUCER = 0x21
IMAGE_SEPARATOR = 0x2C
TRAILER = 0x3B
GRAPHIC_CONTROL_LABEL = 0xF9


@dataclass(frozen=True)
class GifLayout:
    width: int  # logical screen; Pillow grows the canvas when a frame reaches past it
    height: int
    frame_durations_ms: tuple[int, ...]
    canvas_pixels: int  # width * height of the final canvas, frames reaching past the screen included
    has_trailer: bool  # False when the file stops cleanly after a complete frame (common, harmless)

    @property
    def num_frames(self) -> int:
        return len(self.frame_durations_ms)

    @property
    def duration_ms(self) -> int:
        return sum(self.frame_durations_ms)


def check_gif_header(header: bytes, path: str, max_frame_pixels: int) -> tuple[int, int]:
    """(width, height) of the logical screen, or UnreadableFileError for empty, non-GIF or bomb headers."""
    if len(header) == 0:
        raise UnreadableFileError(path, "zero_bytes", "0 bytes")
    if header[:6] not in GIF_SIGNATURES:
        if len(header) < 6 and any(signature.startswith(header) for signature in GIF_SIGNATURES):
            raise UnreadableFileError(path, "truncated", f"only {len(header)} bytes of GIF signature")
        raise UnreadableFileError(path, "not_a_gif", f"starts with {header[:8]!r}, not GIF87a/GIF89a")
    if len(header) < HEADER_BYTES:
        raise UnreadableFileError(path, "truncated", f"header is {len(header)} of {HEADER_BYTES} bytes")
    width, height = struct.unpack_from("<HH", header, 6)
    if width == 0 or height == 0:
        raise UnreadableFileError(path, "invalid_dimensions", f"logical screen {width}x{height}")
    _check_pixels(width, height, path, max_frame_pixels)
    return width, height


def _check_pixels(width: int, height: int, path: str, max_frame_pixels: int) -> None:
    if width * height > max_frame_pixels:
        raise UnreadableFileError(
            path, "frame_too_large", f"{width}x{height} = {width * height:,} pixels per frame > max_frame_pixels={max_frame_pixels:,}"
        )


def _skip_sub_blocks(data: bytes, position: int, path: str, frame_index: int) -> int:
    """Position after a chain of length-prefixed sub-blocks ending with a zero-length block."""
    end = len(data)
    while True:
        if position >= end:
            raise UnreadableFileError(path, "truncated", f"file ends inside frame {frame_index} after {end:,} bytes")
        block_size = data[position]
        position += 1 + block_size
        if block_size == 0:
            return position


def parse_gif_layout(data: bytes, path: str, max_frame_pixels: int) -> GifLayout:
    """Walk the GIF block structure (no pixel decoding); raise UnreadableFileError for broken files."""
    width, height = check_gif_header(data[:HEADER_BYTES], path, max_frame_pixels)
    end = len(data)
    packed = data[10]
    position = HEADER_BYTES
    if packed & 0x80:  # global colour table of 2^(n+1) RGB entries
        position += 3 << ((packed & 0x07) + 1)
    canvas_width, canvas_height = width, height
    durations: list[int] = []
    pending_delay_ms = 0
    has_trailer = False
    while position < end:
        introducer = data[position]
        position += 1
        if introducer == TRAILER:
            has_trailer = True
            break
        if introducer == EXTENSION_INTRODUCER:
            if position >= end:
                raise UnreadableFileError(path, "truncated", f"file ends inside an extension after frame {len(durations)}")
            label = data[position]
            position += 1
            if label == GRAPHIC_CONTROL_LABEL and position + 4 < end and data[position] >= 4:
                pending_delay_ms = 10 * struct.unpack_from("<H", data, position + 2)[0]  # stored in 1/100 s
            position = _skip_sub_blocks(data, position, path, len(durations))
        elif introducer == IMAGE_SEPARATOR:
            if position + 10 > end:  # 9-byte image descriptor + 1-byte LZW minimum code size
                raise UnreadableFileError(path, "truncated", f"file ends inside the descriptor of frame {len(durations)}")
            left, top, frame_width, frame_height = struct.unpack_from("<HHHH", data, position)
            frame_packed = data[position + 8]
            position += 9
            if frame_packed & 0x80:  # local colour table: this frame's own palette
                position += 3 << ((frame_packed & 0x07) + 1)
            position += 1
            position = _skip_sub_blocks(data, position, path, len(durations))
            # Pillow grows the canvas to hold a frame that reaches past the logical screen: guard that too.
            canvas_width, canvas_height = max(canvas_width, left + frame_width), max(canvas_height, top + frame_height)
            _check_pixels(canvas_width, canvas_height, path, max_frame_pixels)
            durations.append(pending_delay_ms if pending_delay_ms > 0 else DEFAULT_FRAME_DURATION_MS)
            pending_delay_ms = 0
        # Any other byte is stray padding between blocks; Pillow skips it the same way.
    if not durations:
        raise UnreadableFileError(path, "no_frames", "no image block before the end of the file")
    return GifLayout(width, height, tuple(durations), canvas_width * canvas_height, has_trailer)


def composite_to_rgb(frame: Image.Image) -> Image.Image:
    """The composited frame as RGB; pixels no frame has painted yet (still transparent) are black."""
    if frame.mode in ("RGBA", "LA", "PA") or "transparency" in frame.info:
        rgba = frame.convert("RGBA")
        canvas = Image.new("RGB", rgba.size)  # black: a transparent pixel has no colour of its own
        canvas.paste(rgba.convert("RGB"), mask=rgba.getchannel("A"))
        return canvas
    return frame.convert("RGB")


def decode_gif_frames(
    data: bytes,
    path: str,
    frame_indices: Sequence[int],
    process_frame: Callable[[Image.Image], np.ndarray],
) -> dict[int, np.ndarray]:
    """{frame index: process_frame(composited RGB frame)} for the requested frames.

    Every frame up to the last requested one is decoded (GIF frames are deltas on the previous canvas),
    but only the requested ones are converted and processed, and decoding stops after the last of them.
    """
    wanted = set(frame_indices)
    processed: dict[int, np.ndarray] = {}
    try:
        with Image.open(io.BytesIO(data), formats=["GIF"]) as image:
            for frame_index in range(max(wanted) + 1):
                image.seek(frame_index)
                if frame_index in wanted:
                    processed[frame_index] = process_frame(composite_to_rgb(image))
    except Image.DecompressionBombError as error:
        raise UnreadableFileError(path, "frame_too_large", str(error)) from error
    except (OSError, EOFError, SyntaxError) as error:  # Pillow's ways of saying "corrupt image data"
        raise UnreadableFileError(path, "decode_error", f"{type(error).__name__}: {error}") from error
    return processed
