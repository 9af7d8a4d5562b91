"""Reading a stick-figure video back: where the hands and head are, and the floor that sets on any score.

The inverse of data/render_tracks.py, beside the metrics that use it (trajectory.py). The figure's head and hands
have three saturated hues that appear nowhere else, so `extract_trajectory` reads them back from the pixels alone,
from a clean render or from a generated (blurry, off-colour) video: a per-pixel colour weight (see
render_tracks.MIN_COVERAGE), then the weighted centroid near the strongest match.

Extraction floor, measured on the 181 real recordings rendered with 16 frames (`--measure_floor`), over
found joints, with detection the share of (frame, joint) cells found:
  32 px: mean joint error 0.120 px (left hand 0.182, right hand 0.095, head 0.085), max 1.24 px;
         detection 99.55% (left hand 98.65%, right hand and head 100%)
  64 px: mean joint error 0.155 px (left hand 0.248, right hand 0.084, head 0.132), max 2.11 px;
         detection 99.76% (left hand 99.27%, right hand and head 100%)
Joints clear of the others (a gap over 1.5 px) come back within 0.04-0.09 px on average, 0.18 px at worst.
What remains is occlusion: every miss is a left hand under the right one (centres at most 1.1 px apart at
32 px); a hand partly under the other, or over the face, pulls the covered joint's centroid (the 1-2 px
worst frames). GIFs lose nothing (a frame has at most 109 colours, so its palette is exact); with
--signer_colours, read back through the dataset: 0.121 px (32) / 0.155 px (64), detection 99.6% / 99.8%.
Degraded like a generated video (Gaussian blur of sigma 0.025 frame widths, a colour cast and noise of 8
grey levels): 0.16 px (32) / 0.24 px (64), detection 98.6%; blur 0.04 and noise 12: 0.25 / 0.38 px,
detection 96.8% / 96.6%.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from text2sign.data.render_tracks import (
    MIN_COVERAGE, OFF_HUE_FAR, OFF_HUE_NEAR, FigureStyle, coverage_and_off_hue, render_trajectory,
)
from text2sign.data.tracks import JOINTS, load_recordings, normalised_trajectory

# A joint is found when its matching pixels add up to this fraction of its disc's area: less is a hand
# almost wholly behind the other one (or the model drew nothing), and its centroid would be invented.
MIN_FOUND_FRACTION = 0.3
# The centroid is taken within this many disc radii (plus one pixel) of the strongest match, so stray
# matching pixels elsewhere in a generated frame do not drag it; wide enough for a blur of a pixel or two.
WINDOW_RADII = 2.5
# A joint is also an isolated blob: the density of matching colour in the disc-sized box at the peak must be
# this many times the density in the ring around it (the box three times as wide, minus the inner box). On a
# rendered figure the ring is grey (ratio > 190 for 99% of blurred, noisy renders of the real recordings); in
# uniform colour noise matching pixels are everywhere (ratio <= 10 over 64 frames), so noise is never "found".
MIN_CONTRAST = 20.0
RING_WIDTH_FACTOR = 3


def colour_weights(video: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """(f, h, w, 3) -> (f, h, w) in [0, 1]: how much of each pixel `colour` covers (see MIN_COVERAGE)."""
    coverage, off_hue = coverage_and_off_hue(video, colour)  # (f, h, w), (f, h, w)
    share = np.clip((coverage - MIN_COVERAGE) / (1.0 - MIN_COVERAGE), 0.0, 1.0)
    return share * np.clip((OFF_HUE_FAR - off_hue) / (OFF_HUE_FAR - OFF_HUE_NEAR), 0.0, 1.0)


def _box_sums(weights: np.ndarray, half: int) -> np.ndarray:
    """(f, h, w) -> (f, h, w): sum over the (2 half + 1)^2 box centred on each pixel (zeros beyond the edge)."""
    side = 2 * half + 1
    padded = np.pad(weights, ((0, 0), (half + 1, half), (half + 1, half)))  # leading zero row/column for the integral
    integral = padded.cumsum(axis=1).cumsum(axis=2)  # (f, h + side, w + side)
    return integral[:, side:, side:] - integral[:, :-side, side:] - integral[:, side:, :-side] + integral[:, :-side, :-side]


def extract_trajectory(video: np.ndarray, style: FigureStyle = FigureStyle()) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (f, h, w, 3) -> (positions (f, 3, 2) float32 frame widths, found (f, 3) bool).

    Per joint and frame: colour weights, the strongest disc-sized patch of them, and the weighted centroid of
    the pixels near it (pixel centres at (column + 0.5) / width). A joint whose weights add up to less than
    MIN_FOUND_FRACTION of its disc, or that is not an isolated blob (MIN_CONTRAST: colour noise is not a hand),
    is not found and its position is NaN: it is never guessed.
    """
    video = np.asarray(video)
    if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
        raise ValueError(f"video must be uint8 (frames, height, width, 3), got {video.dtype} {video.shape}")
    num_frames, height, width, _ = video.shape
    if height != width:
        raise ValueError(f"video frames must be square (the figure is drawn in frame widths), got {height}x{width}")
    rows, columns = np.mgrid[0:height, 0:width] + 0.5  # (h, w) pixel centres
    positions = np.full((num_frames, len(JOINTS), 2), np.nan, dtype=np.float32)
    found = np.zeros((num_frames, len(JOINTS)), dtype=bool)
    for joint, (colour, radius) in enumerate(zip(style.joint_colours, style.joint_radii)):
        radius_pixels = radius * width
        weights = colour_weights(video, colour)  # (f, h, w)
        half = max(1, round(radius_pixels))
        inner_sums = _box_sums(weights, half).reshape(num_frames, -1)  # (f, h * w)
        peaks = inner_sums.argmax(axis=1)  # (f,)
        peak_rows, peak_columns = np.unravel_index(peaks, (height, width))  # (f,), (f,)
        inner = inner_sums[np.arange(num_frames), peaks]  # (f,)
        outer = _box_sums(weights, RING_WIDTH_FACTOR * half).reshape(num_frames, -1)[np.arange(num_frames), peaks]  # (f,)
        inner_area, outer_area = (2 * half + 1) ** 2, (2 * RING_WIDTH_FACTOR * half + 1) ** 2
        ring_density = (outer - inner) / (outer_area - inner_area)  # (f,) beyond the frame edge counts as empty
        isolated = inner / inner_area >= MIN_CONTRAST * ring_density  # (f,)
        window_radius = WINDOW_RADII * radius_pixels + 1.0
        near = (rows - (peak_rows[:, None, None] + 0.5)) ** 2 + (columns - (peak_columns[:, None, None] + 0.5)) ** 2
        windowed = weights * (near <= window_radius**2)  # (f, h, w)
        mass = windowed.sum(axis=(1, 2))  # (f,) in pixels
        found[:, joint] = (mass >= MIN_FOUND_FRACTION * np.pi * radius_pixels**2) & isolated
        safe_mass = np.where(found[:, joint], mass, 1.0)  # (f,) no division by zero where nothing was found
        centroid_x = (windowed * columns).sum(axis=(1, 2)) / safe_mass / width  # (f,)
        centroid_y = (windowed * rows).sum(axis=(1, 2)) / safe_mass / height  # (f,)
        positions[found[:, joint], joint] = np.stack([centroid_x, centroid_y], axis=-1)[found[:, joint]]
    return positions, found



def measure_floor(tracks_dir: str | Path, image_size: int, num_frames: int = 16, style: FigureStyle = FigureStyle()) -> dict:
    """Render every recording and extract it again: mean joint error in pixels (per joint, over found joints)
    and the detection rate, the best any generated video can score against these trajectories."""
    errors, detections = [], []
    for recording in load_recordings(tracks_dir):
        trajectory = normalised_trajectory(recording, num_frames)  # (f, 3, 2)
        positions, found = extract_trajectory(render_trajectory(trajectory, image_size, style), style)
        errors.append(np.where(found, np.linalg.norm(positions - trajectory, axis=-1), np.nan) * image_size)  # (f, 3) px
        detections.append(found)
    errors, detections = np.concatenate(errors), np.concatenate(detections)  # (N, 3)
    return {
        "image_size": image_size,
        "mean_error_pixels": float(np.nanmean(errors)),
        "max_error_pixels": float(np.nanmax(errors)),
        "per_joint_error_pixels": dict(zip(JOINTS, np.nanmean(errors, axis=0).tolist())),
        "detection_rate": float(detections.mean()),
        "per_joint_detection_rate": dict(zip(JOINTS, detections.mean(axis=0).tolist())),
    }
