"""The stick figure: render -> extract round trips (clean, blurred, occluded), styles, the folder writer, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from test_tracks import REAL_TRACKS, needs_real_tracks, still, write_tracks
from text2sign.data import DataConfig, SignVideoDataset
from text2sign.data.clip import load_clip
from text2sign.data.gif import parse_gif_layout
from text2sign.data.render_tracks import (
    SIGNER_PALETTE,
    FigureStyle,
    main,
    render_folder,
    render_trajectory,
)
from text2sign.data.tracks import load_recordings, normalised_trajectory
from text2sign.evaluation.extraction import extract_trajectory

# Measured on the 181 real recordings (module docstring): joints clear of the others come back within 0.18 px
# at 32 and 64 px. 0.4 leaves room, yet fails a half-pixel slip of the pixel-centre convention (0.7 px).
CLEAN_BOUND_PIXELS = 0.4
BLURRED_BOUND_PIXELS = 0.8  # these blurred test videos measure 0.25 px (32) and 0.34 px (64) at worst


def separated_trajectory(num_frames: int, seed: int = 0) -> np.ndarray:
    """(f, 3, 2) random poses in frame widths with the hands clear of each other and of the head."""
    rng = np.random.default_rng(seed)
    poses = []
    while len(poses) < num_frames:
        pose = np.array([rng.uniform([0.55, 0.35], [0.85, 0.85]), rng.uniform([0.15, 0.35], [0.45, 0.85]), rng.uniform([0.4, 0.2], [0.6, 0.3])])
        if min(np.linalg.norm(pose[a] - pose[b]) for a, b in ((0, 1), (0, 2), (1, 2))) > 0.2:
            poses.append(pose)
    return np.stack(poses)  # (f, 3, 2)


def blur_and_noise(video: np.ndarray, sigma_pixels: float, noise: float, seed: int = 0) -> np.ndarray:
    """A generated-looking video: Gaussian blur, a colour cast and per-pixel colour noise."""
    size = video.shape[1]
    offsets = np.arange(size)
    kernel = np.exp(-0.5 * ((offsets[:, None] - offsets[None]) / sigma_pixels) ** 2)  # (h, h)
    kernel /= kernel.sum(axis=1, keepdims=True)
    blurred = np.einsum("ij,fjkc,lk->filc", kernel, video.astype(np.float64), kernel)  # rows, then columns
    rng = np.random.default_rng(seed)
    degraded = blurred + np.array([15.0, -10.0, 10.0]) + rng.normal(0.0, noise, blurred.shape)
    return np.clip(np.round(degraded), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("image_size", [32, 64])
def test_render_then_extract_returns_known_positions(image_size):
    trajectory = separated_trajectory(12)
    positions, found = extract_trajectory(render_trajectory(trajectory, image_size))
    assert found.all()
    assert positions.dtype == np.float32 and positions.shape == trajectory.shape
    assert np.linalg.norm(positions - trajectory, axis=-1).max() * image_size < CLEAN_BOUND_PIXELS


def test_hand_hidden_under_the_other_is_not_found_rather_than_invented():
    trajectory = separated_trajectory(2)
    # The left hand under the right one (drawn after it), a third of a pixel aside: a sliver of red shows.
    trajectory[1, 0] = trajectory[1, 1] + [0.01, 0.0]
    positions, found = extract_trajectory(render_trajectory(trajectory, 32))
    assert found[0].all() and not found[1, 0] and found[1, 1:].all()
    assert np.isnan(positions[1, 0]).all()
    assert np.linalg.norm(positions[1, 1] - trajectory[1, 1]) * 32 < CLEAN_BOUND_PIXELS


@pytest.mark.parametrize("image_size", [32, 64])
def test_blurred_noisy_render_still_extracts(image_size):
    trajectory = separated_trajectory(12, seed=1)
    # A blur of 0.03 frame widths (1 px at 32) and noise of 10 grey levels: softer and dirtier than the renders.
    video = blur_and_noise(render_trajectory(trajectory, image_size), sigma_pixels=0.03 * image_size, noise=10.0)
    positions, found = extract_trajectory(video)
    assert found.all()
    assert np.linalg.norm(positions - trajectory, axis=-1).max() * image_size < BLURRED_BOUND_PIXELS


def test_stray_matching_pixels_far_away_do_not_drag_the_centroid():
    trajectory = separated_trajectory(1)
    video = render_trajectory(trajectory, 64)
    video[0, 60:63, 0:3] = FigureStyle().left_hand  # a 3x3 red smudge in the bottom-left corner
    positions, found = extract_trajectory(video)
    assert found.all()
    assert np.linalg.norm(positions[0, 0] - trajectory[0, 0]) * 64 < CLEAN_BOUND_PIXELS


def test_frame_without_a_figure_finds_nothing():
    blank = np.full((2, 32, 32, 3), 255, dtype=np.uint8)
    positions, found = extract_trajectory(blank)
    assert not found.any() and np.isnan(positions).all()


# ---------------------------------------------------------------- styles


def test_signer_colours_change_the_body_but_not_the_extracted_joints():
    trajectory = separated_trajectory(4)
    videos = [render_trajectory(trajectory, 32, FigureStyle().for_signer(index)) for index in range(len(SIGNER_PALETTE))]
    assert len({video.tobytes() for video in videos}) == len(SIGNER_PALETTE)  # each signer looks different
    for video in videos:
        positions, found = extract_trajectory(video)  # the default style: joint colours are shared
        assert found.all()
        assert np.linalg.norm(positions - trajectory, axis=-1).max() * 32 < CLEAN_BOUND_PIXELS


def test_style_refuses_a_body_colour_that_reads_as_a_joint():
    with pytest.raises(ValueError, match="torso colour .* reads as .* left_hand"):
        FigureStyle(torso=(200, 120, 120))  # pinkish: a share of the red hand
    with pytest.raises(ValueError, match="too grey"):
        FigureStyle(head=(120, 120, 130))
    with pytest.raises(ValueError, match="0-255"):
        FigureStyle(background=(0, 0, 300))


def test_bad_trajectory_and_video_shapes_are_value_errors():
    with pytest.raises(ValueError, match=r"\(frames, 3, 2\)"):
        render_trajectory(np.zeros((4, 2, 2)), 32)
    with pytest.raises(ValueError, match="uint8"):
        extract_trajectory(np.zeros((1, 32, 32, 3), dtype=np.float32))


# ---------------------------------------------------------------- GIFs, folders, CLI


def toy_tracks(folder: Path) -> Path:
    moving = [(190 + step, 200 - 10 * step, 130 - step, 150, 160, 60) for step in range(20)]
    return write_tracks(
        folder,
        {1: moving, 2: still((190, 200, 130, 200, 160, 60), 30)},  # recording 2 never moves: identical frames
        [(1, "woman-1", "WRITE", 8, 15), (1, "woman-1", "JOHN", 1, 5), (2, "man-1", "GO", 3, 9)],
    )


def test_render_folder_is_read_by_the_dataset_with_captions_and_every_frame(tmp_path):
    out_dir = tmp_path / "rendered"
    written = render_folder(toy_tracks(tmp_path / "toy_tracks"), out_dir, image_size=32, num_frames=6, signer_colours=True)
    assert written == ["toy_0001", "toy_0002"]

    dataset = SignVideoDataset(DataConfig(str(out_dir), num_frames=6, image_size=32, verbose=False))
    items = [dataset[index] for index in range(len(dataset))]
    assert [item["caption"] for item in items] == ["JOHN WRITE", "GO"]
    assert all(item["video"].shape == (3, 6, 32, 32) for item in items)
    assert (out_dir / "toy_0001.txt").read_text() == "JOHN WRITE\n"
    # signer_colours: speakers in sorted order (man-1, woman-1) take the palette's torso colours in turn
    torso_pixels = [item["video"][:, 0, int(0.85 * 32), 16] for item in items]  # (c,) below the resting nose
    expected = [SIGNER_PALETTE[1][0], SIGNER_PALETTE[0][0]]  # toy_0001 by woman-1, toy_0002 by man-1
    for pixel, colour in zip(torso_pixels, expected):
        np.testing.assert_allclose((pixel.numpy() + 1) * 127.5, colour, atol=1)
    for name in written:
        frames, info = load_clip(out_dir / f"{name}.gif", DataConfig(str(out_dir), num_frames=6, image_size=32))
        assert info.num_source_frames == 6  # no frame merged away, not even in the still recording

    trajectories = np.load(out_dir / "trajectories.npz")
    recording = load_recordings(tmp_path / "toy_tracks")[0]
    np.testing.assert_array_equal(trajectories["toy_0001"], normalised_trajectory(recording, 6))
    positions, found = extract_trajectory(load_clip(out_dir / "toy_0001.gif", DataConfig(str(out_dir), num_frames=6, image_size=32))[0])
    assert found.all() and np.abs(positions - trajectories["toy_0001"]).max() * 32 < CLEAN_BOUND_PIXELS

    listing = json.loads((out_dir / "recordings.json").read_text())
    assert listing["recordings"][1] == {"name": "toy_0002", "video": 2, "speaker": "man-1", "sentence": "GO"}
    assert (listing["image_size"], listing["num_frames"]) == (32, 6)


def test_render_folder_refuses_unknown_names_and_leftover_gifs(tmp_path):
    folder = toy_tracks(tmp_path / "toy_tracks")
    with pytest.raises(ValueError, match=r"not recordings of .*\['toy_0009'\]"):
        render_folder(folder, tmp_path / "out", names=["toy_0001", "toy_0009"])
    render_folder(folder, tmp_path / "out", image_size=16, num_frames=2)
    render_folder(folder, tmp_path / "out", image_size=16, num_frames=2)  # the same recordings again: overwritten
    with pytest.raises(ValueError, match=r"already holds 1 other GIFs \(toy_0002\)"):
        render_folder(folder, tmp_path / "out", names=["toy_0001"])


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    folder = toy_tracks(tmp_path / "toy_tracks")
    (folder / "tracks.csv").write_text("video,frame,left-x\n1,0,5\n")
    assert main([str(folder), str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "missing column(s) left-y" in error


@needs_real_tracks
def test_cli_split_renders_only_that_split(tmp_path):
    assert main([str(REAL_TRACKS), str(tmp_path), "--split", "new_sentence", "--image_size", "16", "--num_frames", "2"]) == 0
    assert len(list(tmp_path.glob("*.gif"))) == len(list(tmp_path.glob("*.txt"))) == 25


@needs_real_tracks
def test_real_trajectories_keep_the_whole_figure_inside_the_frame():
    style = FigureStyle()
    margin = style.hand_radius
    for recording in load_recordings(REAL_TRACKS):
        trajectory = normalised_trajectory(recording, len(recording.positions))  # every original frame
        assert (trajectory[:, :2] >= margin).all() and (trajectory[:, :2] <= 1 - margin).all(), recording.name
        assert (trajectory[:, 2] >= style.head_radius).all(), recording.name


@pytest.mark.parametrize("image_size", [32, 64])
def test_colour_noise_is_not_found_as_hands_or_head(image_size):
    # Uniform noise holds pixels of every colour; counting them as a hand would give a noise video a
    # detection rate near 1 and a trajectory where there is no figure.
    noise = np.random.default_rng(0).integers(0, 256, (32, image_size, image_size, 3), dtype=np.uint8)
    _, found = extract_trajectory(noise)
    assert found.mean() < 0.02
