"""GIF files built byte by byte, so tests know every pixel, palette, delay and disposal they contain.

`encode_gif` writes GIF89a with an uncompressed LZW stream: every pixel is emitted as a literal 9-bit
code and a clear code restarts the table every LITERALS_PER_CLEAR pixels, before the decoder would
widen its codes. Any GIF decoder reads it; no encoder (Pillow's optimiser included) rewrites frames.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

LZW_MIN_CODE_SIZE = 8  # palettes of up to 256 colours; codes are 9 bits wide
CLEAR_CODE = 1 << LZW_MIN_CODE_SIZE
END_CODE = CLEAR_CODE + 1
LITERALS_PER_CLEAR = 200  # the table grows by one entry per literal; 9-bit codes hold 512 - 258 of them


@dataclass
class GifFrame:
    pixels: np.ndarray  # (h, w) palette indices
    left: int = 0
    top: int = 0
    palette: np.ndarray | None = None  # (256, 3) uint8 local colour table; None uses the global one
    transparent_index: int | None = None
    disposal: int = 1  # 0 unspecified, 1 keep, 2 restore to background, 3 restore to previous
    delay_cs: int = 10  # hundredths of a second


def full_palette(colours: list[tuple[int, int, int]]) -> np.ndarray:
    """(256, 3) uint8: the given colours first, black after."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    palette[: len(colours)] = colours
    return palette


def _sub_blocks(data: bytes) -> bytes:
    chunks = [bytes([len(data[start : start + 255])]) + data[start : start + 255] for start in range(0, len(data), 255)]
    return b"".join(chunks) + b"\x00"


def lzw_literal_stream(indices: np.ndarray) -> bytes:
    """LZW data (code size byte + sub-blocks) for a flat array of palette indices."""
    codes = []
    for start in range(0, len(indices), LITERALS_PER_CLEAR):
        codes.append(CLEAR_CODE)
        codes.extend(indices[start : start + LITERALS_PER_CLEAR].tolist())
    codes.append(END_CODE)
    code_bits = (np.array(codes)[:, None] >> np.arange(LZW_MIN_CODE_SIZE + 1)) & 1  # (n, 9) least significant bit first
    packed = np.packbits(code_bits.astype(np.uint8).ravel(), bitorder="little").tobytes()
    return bytes([LZW_MIN_CODE_SIZE]) + _sub_blocks(packed)


def encode_gif(width: int, height: int, frames: list[GifFrame], global_palette: np.ndarray, background_index: int = 0) -> bytes:
    output = [b"GIF89a", struct.pack("<HHBBB", width, height, 0xF7, background_index, 0), global_palette.astype(np.uint8).tobytes()]
    output.append(b"!\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00")  # loop forever, as real clips do
    for frame in frames:
        flags = (frame.disposal << 2) | (1 if frame.transparent_index is not None else 0)
        output.append(struct.pack("<BBBBHBB", 0x21, 0xF9, 4, flags, frame.delay_cs, frame.transparent_index or 0, 0))
        frame_height, frame_width = frame.pixels.shape
        local_flags = 0x87 if frame.palette is not None else 0
        output.append(struct.pack("<BHHHHB", 0x2C, frame.left, frame.top, frame_width, frame_height, local_flags))
        if frame.palette is not None:
            output.append(frame.palette.astype(np.uint8).tobytes())
        output.append(lzw_literal_stream(frame.pixels.astype(np.uint8).ravel()))
    output.append(b";")
    return b"".join(output)


def frame_colour(frame_index: int) -> tuple[int, int, int]:
    """A colour that names its frame: red = index, green = 255 - index."""
    return (frame_index, 255 - frame_index, 100)


def numbered_gif(num_frames: int, width: int = 8, height: int = 8, delays_cs: list[int] | None = None) -> bytes:
    """Frame k is one solid colour, frame_colour(k), so a decoded frame tells which source frame it is."""
    palette = full_palette([frame_colour(index) for index in range(num_frames)])
    delays_cs = delays_cs or [10] * num_frames
    frames = [GifFrame(np.full((height, width), index), delay_cs=delays_cs[index]) for index in range(num_frames)]
    return encode_gif(width, height, frames, palette)


def source_frame_of(frame: np.ndarray) -> int:
    """Inverse of frame_colour for a decoded (h, w, 3) uint8 frame of a numbered_gif."""
    return int(frame[..., 0].mean().round())


def write_pair(folder: str | os.PathLike, name: str, gif_bytes: bytes, caption: str | bytes = "a caption") -> Path:
    """NAME.gif and NAME.txt under folder (name may contain '/'); returns the GIF path."""
    gif_path = Path(folder) / f"{name}.gif"
    gif_path.parent.mkdir(parents=True, exist_ok=True)
    gif_path.write_bytes(gif_bytes)
    caption_bytes = caption if isinstance(caption, bytes) else (caption + "\n").encode("utf-8")
    gif_path.with_suffix(".txt").write_bytes(caption_bytes)
    return gif_path


def truncated_gif() -> bytes:
    """A valid 4-frame GIF cut in half: the header is fine, the second frame's data ends early."""
    whole = numbered_gif(4, 16, 16)
    return whole[: len(whole) // 2]


def bomb_header_gif(width: int = 60000, height: int = 60000) -> bytes:
    """A tiny file whose header claims an enormous logical screen (and a 1x1 frame)."""
    palette = full_palette([(255, 255, 255)])
    small = encode_gif(1, 1, [GifFrame(np.zeros((1, 1)))], palette)
    return small[:6] + struct.pack("<HH", width, height) + small[10:]


def shared_data_dir() -> Path:
    """../shared/data from the repository root: real clips on developer machines and in CI."""
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"
