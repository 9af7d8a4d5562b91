"""Tracks -> a plain stick figure video (its inverse, a video -> where the hands and head are, is evaluation/extraction.py).

The figure, on a plain background, drawn in this order (later parts cover earlier ones):
  torso and neck, fixed below the current nose -> arms, straight lines from the shoulders to the hands ->
  head disc centred on the nose -> left hand disc (red) -> right hand disc (blue, the dominant hand, on top).
The head and the two hands are the joints of tracks.JOINTS: green head, red left hand, blue right hand, three
hues about 120 degrees apart that appear nowhere else (background, torso and arms are greys or faint tints,
which FigureStyle checks), so `evaluation.extraction.extract_trajectory` reads them back from the pixels alone, from a clean render
or from a generated (blurry, off-colour) video: a per-pixel colour weight (see MIN_COVERAGE), then the
weighted centroid near the strongest match. Frames are drawn with Pillow at SUPERSAMPLING times the size,
then box-filtered down, so each output pixel holds the area fraction each part covers.

The extraction floor (render, read back) is measured there (`measure_floor`, `--measure_floor` here).

`python -m text2sign.data.render_tracks TRACKS_DIR OUT_DIR --image_size 64 --num_frames 16 [--signer_colours]
[--split train|seen_sentence|new_sentence]` writes NAME.gif + NAME.txt (the gloss sentence) pairs that
SignVideoDataset reads, plus `trajectories.npz` (the rendered (num_frames, 3, 2) trajectories keyed by name),
`recordings.json` (the settings, and name, video, speaker, sentence per recording), and `signers.csv` and
`signs.csv` (who signs, and when each gloss is signed: data/sign_timing.py), and `placed_tracks.npz` (each
recording at its own frames, what data/composition.py splices).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from text2sign.cli import run_with_one_line_errors
from text2sign.data.tracks import (
    JOINTS, NOSE_POSITION, SCALE, SPLITS, Recording, SignerBody, check_trajectory, load_recordings, placed_positions,
    split_recordings, trajectory_of,
)
from text2sign.data.sign_timing import SIGN_TIMING_FILE, SIGNERS_FILE
from text2sign.json_io import write_json
from text2sign.video_io import write_gif

Colour = tuple[int, int, int]

SUPERSAMPLING = 4  # Pillow rounds shapes to whole pixels: at 4x a lone disc's centroid is off by 0.05 px on average
# Figure geometry in frame widths, measured from the current nose (y grows downward). The shoulders sit where
# the real signers' shoulders are relative to their noses, roughly 45 original pixels out and 55 down.
SHOULDER_HALF_WIDTH = 0.15
SHOULDER_DROP = 0.17
HIP_HALF_WIDTH = 0.11
HIP_DROP = 0.8  # below the frame for most poses: the torso reaches the bottom edge
NECK_HALF_WIDTH = 0.03

# Colour scoring by chroma (a colour minus its grey level): the background, torso and arms are greys or faint
# tints, so a pixel's chroma along a joint's chroma, as a fraction of the joint's own, is the share of the
# pixel that joint covers, whatever grey it is mixed with. Antialiasing and blur mix colours linearly, so
# this share keeps a blurred disc's mass and centroid (the RGB-distance threshold tried first lost them: under
# a blur of 0.04 frame widths it found 49-57% of the joints, this finds 97%). Shares below MIN_COVERAGE count nothing
# (faint tints, noise); chroma across the joint's hue (another joint, a blend with it) fades the weight out
# between OFF_HUE_NEAR and OFF_HUE_FAR, both as fractions of the joint's chroma.
MIN_COVERAGE = 0.15
OFF_HUE_NEAR = 0.35
OFF_HUE_FAR = 0.7
MIN_JOINT_CHROMA = 80.0  # a joint colour needs this much chroma (0-255 units) to stand out from noise
MIN_IMAGE_SIZE = 8  # pixels: a hand disc is already under one pixel across at 8; smaller draws nothing useful
PLACED_TRACKS_FILE = "placed_tracks.npz"  # name -> (n, 3, 2) float32 frame widths at the recording's own frames
GIF_FPS = 8.0  # nominal: every clip is num_frames frames spanning its whole recording, whatever its length

# Torso and arm colours per signer with --signer_colours; joint colours stay, so extraction is unchanged.
SIGNER_PALETTE: tuple[tuple[Colour, Colour], ...] = (
    ((170, 170, 170), (80, 80, 80)),  # grey
    ((205, 198, 188), (110, 103, 95)),  # warm light
    ((140, 145, 155), (55, 60, 70)),  # cool dark
    ((190, 180, 195), (95, 85, 100)),  # lilac grey
)


def _chroma(colours: np.ndarray) -> np.ndarray:
    """(..., 3) -> (..., 3): each colour minus its grey level (the mean of its channels)."""
    colours = np.asarray(colours, dtype=np.float32)
    return colours - colours.mean(axis=-1, keepdims=True)


def coverage_and_off_hue(pixels: np.ndarray, colour: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., 3) pixels -> (coverage, off_hue), each (...): the pixel's chroma along and across the joint
    colour's chroma, as fractions of the joint's chroma (see MIN_COVERAGE)."""
    pixel_chroma = _chroma(pixels)  # (..., 3)
    joint_chroma = _chroma(colour)  # (3,)
    strength = float(joint_chroma @ joint_chroma)
    coverage = pixel_chroma @ joint_chroma / strength  # (...)
    off_hue = np.linalg.norm(pixel_chroma - coverage[..., None] * joint_chroma, axis=-1) / np.sqrt(strength)  # (...)
    return coverage, off_hue


@dataclass(frozen=True)
class FigureStyle:
    background: Colour = (255, 255, 255)
    torso: Colour = SIGNER_PALETTE[0][0]
    arms: Colour = SIGNER_PALETTE[0][1]
    head: Colour = (0, 170, 50)  # green: the three joint hues lie about 120 degrees apart
    left_hand: Colour = (220, 20, 20)  # red
    right_hand: Colour = (20, 40, 220)  # blue
    head_radius: float = 0.08  # frame widths
    hand_radius: float = 0.055  # smaller than the head, so a hand over the face leaves a ring of head around it
    arm_width: float = 0.035

    def __post_init__(self):
        for field in ("background", "torso", "arms", "head", "left_hand", "right_hand"):
            colour = getattr(self, field)
            if len(colour) != 3 or not all(0 <= channel <= 255 for channel in colour):
                raise ValueError(f"FigureStyle.{field} must be an (r, g, b) triple of 0-255 values, got {colour}")
            object.__setattr__(self, field, tuple(int(channel) for channel in colour))  # Pillow wants a tuple, not a list
        for field in ("head_radius", "hand_radius", "arm_width"):
            if not 0 < getattr(self, field) < 0.5:
                raise ValueError(f"FigureStyle.{field} is in frame widths and must be in (0, 0.5), got {getattr(self, field)}")
        joints = dict(zip(JOINTS, self.joint_colours))
        others = {**joints, "background": self.background, "torso": self.torso, "arms": self.arms}
        for joint, colour in joints.items():
            if np.linalg.norm(_chroma(colour)) < MIN_JOINT_CHROMA:
                raise ValueError(f"FigureStyle: the {joint} colour {tuple(colour)} is too grey; give it a saturated hue")
            for other, other_colour in others.items():
                coverage, off_hue = coverage_and_off_hue(np.asarray(other_colour, dtype=np.float32), colour)
                # Half of MIN_COVERAGE: a margin for the noise and drift of generated pixels.
                if other != joint and coverage > MIN_COVERAGE / 2 and off_hue < OFF_HUE_FAR:
                    raise ValueError(
                        f"FigureStyle: the {other} colour {tuple(other_colour)} reads as {coverage:.0%} {joint}; "
                        f"keep the background, torso and arms near grey and the joint hues apart"
                    )

    @property
    def joint_colours(self) -> np.ndarray:
        return np.array([self.left_hand, self.right_hand, self.head], dtype=np.float32)  # (3, 3) in JOINTS order

    @property
    def joint_radii(self) -> np.ndarray:
        return np.array([self.hand_radius, self.hand_radius, self.head_radius])  # (3,) in JOINTS order

    def for_signer(self, index: int) -> FigureStyle:
        """The style with signer `index`'s torso and arm colours from SIGNER_PALETTE."""
        torso, arms = SIGNER_PALETTE[index % len(SIGNER_PALETTE)]
        return dataclasses.replace(self, torso=torso, arms=arms)


# ----------------------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------------------


def _check_image_size(image_size: int) -> None:
    if image_size < MIN_IMAGE_SIZE:
        raise ValueError(f"image_size must be at least {MIN_IMAGE_SIZE} pixels for the figure to be drawn, got {image_size}")


def render_frame(positions: np.ndarray, image_size: int, style: FigureStyle = FigureStyle()) -> np.ndarray:
    """(3, 2) joint positions in frame widths -> (image_size, image_size, 3) uint8."""
    size = image_size * SUPERSAMPLING
    image = Image.new("RGB", (size, size), style.background)
    draw = ImageDraw.Draw(image)
    # Pillow's coordinates put pixel i on [i, i + 1), as frame widths * size do: no half-pixel shift.
    left_hand, right_hand, nose = (positions * size).tolist()
    nose_x, nose_y = nose

    def disc(centre, radius: float, colour: Colour) -> None:
        radius *= size
        draw.ellipse((centre[0] - radius, centre[1] - radius, centre[0] + radius, centre[1] + radius), fill=colour)

    # "left" is the database's label: the signer's left hand, on the right of the image, so its shoulder too.
    left_shoulder = (nose_x + SHOULDER_HALF_WIDTH * size, nose_y + SHOULDER_DROP * size)
    right_shoulder = (nose_x - SHOULDER_HALF_WIDTH * size, nose_y + SHOULDER_DROP * size)
    hips = [(nose_x + side * HIP_HALF_WIDTH * size, nose_y + HIP_DROP * size) for side in (1, -1)]
    draw.polygon([left_shoulder, right_shoulder, *hips[::-1]], fill=style.torso)
    draw.rectangle((nose_x - NECK_HALF_WIDTH * size, nose_y, nose_x + NECK_HALF_WIDTH * size, left_shoulder[1]), fill=style.torso)
    arm_width = max(1, round(style.arm_width * size))
    draw.line([left_shoulder, tuple(left_hand)], fill=style.arms, width=arm_width)
    draw.line([right_shoulder, tuple(right_hand)], fill=style.arms, width=arm_width)
    disc(nose, style.head_radius, style.head)
    disc(left_hand, style.hand_radius, style.left_hand)
    disc(right_hand, style.hand_radius, style.right_hand)  # last: the dominant hand covers the other
    # BOX averages each SUPERSAMPLING^2 block: a pixel's colour is the area-weighted mix of what covers it.
    return np.asarray(image.resize((image_size, image_size), Image.Resampling.BOX), dtype=np.uint8)


def render_trajectory(trajectory: np.ndarray, image_size: int, style: FigureStyle = FigureStyle()) -> np.ndarray:
    """(f, 3, 2) frame widths -> (f, image_size, image_size, 3) uint8."""
    trajectory = check_trajectory(trajectory)
    _check_image_size(image_size)
    return np.stack([render_frame(positions, image_size, style) for positions in trajectory])  # (f, h, w, 3)


# ----------------------------------------------------------------------------------------------------------
# Writing a folder
# ----------------------------------------------------------------------------------------------------------


def render_folder(
    tracks_dir: str | Path,
    out_dir: str | Path,
    image_size: int = 64,
    num_frames: int = 16,
    names: Sequence[str] | None = None,
    style: FigureStyle = FigureStyle(),
    signer_colours: bool = False,
    recordings: Sequence[Recording] | None = None,
    bodies: dict[str, SignerBody] | None = None,
) -> list[str]:
    """Render recordings (all, or `names`) to out_dir as NAME.gif + NAME.txt, plus trajectories.npz and
    recordings.json; returns the names written. With signer_colours, signers (in sorted order of all the
    folder's speakers) get SIGNER_PALETTE's torso and arm colours in turn. `recordings`: the folder's, when the
    caller has already loaded them (load_recordings(tracks_dir)), so the CSVs are not parsed twice. `bodies`
    (tracks.signer_bodies of the training recordings): draw every signer in the canonical body; None: raw SCALE."""
    _check_image_size(image_size)
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    recordings = load_recordings(tracks_dir) if recordings is None else list(recordings)
    speakers = sorted({recording.speaker for recording in recordings})
    if names is not None:
        wanted = set(names)
        unknown = sorted(wanted - {recording.name for recording in recordings})
        if unknown:
            raise ValueError(f"{len(unknown)} names are not recordings of {tracks_dir}: {unknown[:5]}")
        recordings = [recording for recording in recordings if recording.name in wanted]
    out_dir = Path(out_dir)
    # The dataset pairs every NAME.gif in the folder: GIFs left by an earlier render (another split) would
    # join these recordings unnoticed, with no trajectory in trajectories.npz.
    rendering = {recording.name for recording in recordings}
    strangers = sorted(path.stem for path in out_dir.glob("*.gif") if path.stem not in rendering)
    if strangers:
        raise ValueError(f"{out_dir} already holds {len(strangers)} other GIFs ({', '.join(strangers[:3])}): render into an empty folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    trajectories = {}
    for recording in recordings:
        trajectory = trajectory_of(recording, num_frames, bodies)  # (f, 3, 2)
        signer_style = style.for_signer(speakers.index(recording.speaker)) if signer_colours else style
        write_gif(out_dir / f"{recording.name}.gif", render_trajectory(trajectory, image_size, signer_style), GIF_FPS)
        (out_dir / f"{recording.name}.txt").write_text(recording.sentence + "\n", encoding="utf-8")
        trajectories[recording.name] = trajectory
    np.savez(out_dir / "trajectories.npz", **trajectories)
    # Every recording at its own frames in the rendered body: what composition augmentation splices (data/composition.py).
    np.savez(out_dir / PLACED_TRACKS_FILE, **{recording.name: placed_positions(recording, bodies).astype(np.float32) for recording in recordings})
    write_signers_and_timing(out_dir, recordings)
    write_json(out_dir / "recordings.json", {
        "tracks_dir": str(Path(tracks_dir).resolve()),
        "image_size": image_size,
        "num_frames": num_frames,
        "signer_colours": signer_colours,
        "nose_position": list(NOSE_POSITION),
        "scale": SCALE,
        "normalisation": "raw" if bodies is None else "signer",
        "joints": list(JOINTS),
        "recordings": [
            {"name": recording.name, "video": recording.video, "speaker": recording.speaker, "sentence": recording.sentence}
            for recording in recordings
        ],
    })
    return [recording.name for recording in recordings]


def write_signers_and_timing(out_dir: Path, recordings: Sequence[Recording]) -> None:
    """signers.csv (the speaker) and signs.csv (each gloss's frames as fractions of the recording) beside the clips,
    the optional conditions of data/sign_timing.py. A rendered clip spans its whole recording, row 0 to row n - 1,
    so a row's fraction of the clip is row / (n - 1) at any frame count."""
    with open(out_dir / SIGNERS_FILE, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", "signer"])
        writer.writerows([recording.name, recording.speaker] for recording in recordings)
    with open(out_dir / SIGN_TIMING_FILE, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", "sign", "start", "end"])
        for recording in recordings:
            last_row = max(recording.positions.shape[0] - 1, 1)
            writer.writerows([recording.name, gloss, f"{first / last_row:.6f}", f"{min(last, last_row) / last_row:.6f}"]
                             for gloss, first, last in recording.segments)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tracks_dir", help="folder holding tracks.csv and words.csv")
    parser.add_argument("out_dir", help="where NAME.gif + NAME.txt, trajectories.npz and recordings.json go")
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--num_frames", type=int, default=16)
    parser.add_argument("--signer_colours", action="store_true", help="a torso and arm colour per signer")
    parser.add_argument("--split", choices=SPLITS, help="render only this split of tracks.split_recordings")
    parser.add_argument("--measure_floor", action="store_true", help="print the extraction floor at image_size instead of writing")
    args = parser.parse_args(argv)

    def body() -> int:
        if args.measure_floor:
            from text2sign.evaluation.extraction import measure_floor  # evaluation imports this module: load it only here

            print(json.dumps(measure_floor(args.tracks_dir, args.image_size, args.num_frames), indent=1))
            return 0
        recordings = load_recordings(args.tracks_dir)
        names = split_recordings(recordings)[args.split] if args.split else None
        written = render_folder(args.tracks_dir, args.out_dir, args.image_size, args.num_frames, names, signer_colours=args.signer_colours,
                                recordings=recordings)
        print(f"wrote {len(written)} recordings to {args.out_dir}")
        return 0

    return run_with_one_line_errors("text2sign.data.render_tracks", body)


if __name__ == "__main__":
    sys.exit(main())
