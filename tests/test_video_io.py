"""Video writers: GIF, MP4 (imageio-ffmpeg), PNG frames and the frame grid, read back for frame count and size."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from PIL import Image

from text2sign.video_io import FORMATS, frames_grid, read_gif, slugify, write_frames, write_gif, write_grid, write_mp4, write_video


def colour_frames(num_frames: int, height: int, width: int) -> np.ndarray:
    """uint8 (f, h, w, 3) frames, each one flat colour: GIF palettes and H.264 keep flat colours nearly exact."""
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255], [255, 0, 255], [128, 128, 128]], dtype=np.uint8)
    return np.stack([np.broadcast_to(colours[index % len(colours)], (height, width, 3)) for index in range(num_frames)])  # (f, h, w, 3)


def test_gif_round_trip_keeps_every_frame_its_size_and_colour(tmp_path):
    frames = colour_frames(5, 12, 20)
    path = write_gif(tmp_path / "clip.gif", frames, fps=10)
    read = read_gif(path)
    assert read.shape == (5, 12, 20, 3)
    np.testing.assert_array_equal(read, frames)  # flat colours survive the per-frame palette exactly
    with Image.open(path) as image:
        assert image.info["duration"] == 100 and image.info["loop"] == 0  # 10 fps, looping


def test_mp4_round_trip_keeps_every_frame_and_pads_odd_sizes_to_even(tmp_path):
    frames = colour_frames(6, 16, 24)
    path = write_mp4(tmp_path / "clip.mp4", frames, fps=8)
    read = iio.imread(path, plugin="FFMPEG")  # (f, h, w, 3)
    assert read.shape == (6, 16, 24, 3)
    assert np.abs(read.astype(int) - frames.astype(int)).mean() < 10  # lossy, but the colours are the same
    assert iio.immeta(path, plugin="FFMPEG")["fps"] == pytest.approx(8)
    odd = write_mp4(tmp_path / "odd.mp4", colour_frames(3, 7, 9))
    assert iio.imread(odd, plugin="FFMPEG").shape == (3, 8, 10, 3)  # H.264 needs even sizes: one edge row and column added


def test_frames_folder_has_one_png_per_frame_in_order(tmp_path):
    frames = colour_frames(4, 6, 10)
    directory = write_frames(tmp_path / "frames", torch.from_numpy(frames))  # a tensor works as well as an array
    pngs = sorted(directory.glob("*.png"))
    assert [path.name for path in pngs] == [f"frame_{index:03d}.png" for index in range(4)]
    for path, frame in zip(pngs, frames):
        np.testing.assert_array_equal(np.array(Image.open(path)), frame)


def test_grid_tiles_frames_row_by_row_and_leaves_the_rest_black(tmp_path):
    frames = colour_frames(10, 6, 8)
    grid = frames_grid(frames, columns=4)
    assert grid.shape == (3 * 6, 4 * 8, 3)  # 10 frames in 4 columns: 3 rows
    np.testing.assert_array_equal(grid[6:12, 8:16], frames[5])  # row 1, column 1
    assert grid[12:, 16:].max() == 0  # the two unused cells of the last row
    assert frames_grid(frames).shape == (2 * 6, 8 * 8, 3)  # default: up to 8 columns
    path = write_grid(tmp_path / "grid.png", frames, columns=4)
    np.testing.assert_array_equal(np.array(Image.open(path)), grid)


@pytest.mark.parametrize("video_format, name", [("gif", "clip.gif"), ("mp4", "clip.mp4"), ("frames", "clip"), ("grid", "clip.png")])
def test_write_video_dispatches_on_format_and_returns_what_it_wrote(tmp_path, video_format, name):
    assert video_format in FORMATS
    written = write_video(tmp_path / "clip", colour_frames(3, 8, 8), video_format)
    assert written == tmp_path / name and written.exists()


def test_bad_frames_and_unknown_format_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_gif(tmp_path / "float.gif", np.zeros((2, 4, 4, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(f, h, w, 3\)"):
        write_gif(tmp_path / "gray.gif", np.zeros((2, 4, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="unknown format 'avi'"):
        write_video(tmp_path / "clip", colour_frames(2, 4, 4), "avi")


def test_slugify_makes_prompts_file_names():
    assert slugify("How are you?") == "how_are_you"
    assert slugify("???") == "prompt"
    assert len(slugify("a" * 100)) == 60


def test_gif_keeps_identical_consecutive_frames(tmp_path):
    # Pillow's multi-frame writer merges equal neighbours into one longer frame: a signer holding still
    # would come back with fewer frames than were generated.
    frames = np.zeros((5, 8, 8, 3), dtype=np.uint8)
    frames[:, 2:5, 3:6] = (200, 30, 40)  # five identical frames
    frames[4, 0, 0] = (0, 0, 255)  # the last one differs
    path = write_gif(tmp_path / "still.gif", frames)
    decoded = np.stack(list(iio.imiter(path, mode="RGB")))
    assert decoded.shape == (5, 8, 8, 3)
    np.testing.assert_array_equal(decoded, frames)
