"""Real signing motion: RWTH-BOSTON-104 hand and nose tracks -> recordings, normalised trajectories, splits.

A tracks folder holds `tracks.csv` (`video,frame,left-x,left-y,right-x,right-y,nose-x,nose-y`, original
pixels, y down) and `words.csv` (`video,speaker,word,startframe,endframe`); see
/work/shared/data/boston104_tracks/README.md. A recording's sentence is its glosses in startframe order.

Trajectories are float32 (f, 3, 2): per frame, per joint in JOINTS order, (x, y) in frame widths of a square
frame ((0, 0) top-left, (1, 1) bottom-right). `normalised_trajectory` places every recording in one frame:
the resting nose (first frame) goes to NOSE_POSITION and every offset from it is multiplied by the one global
SCALE, so sizes and distances mean the same in every clip and no recording is stretched to fill the frame.

Splits (`split_recordings`), by stable hashes only, so they do not depend on the CSV row order:
  - seen_sentence: for each sentence recorded 2+ times, the recording whose name hashes lowest is held out;
    its sentence stays in training through the other recordings (in 16 of the 37 also by another signer).
  - new_sentence: single-recording sentences taken greedily in the hash order of their sentence, each kept
    only if, once it and the ones already taken leave training, every gloss of every taken sentence still
    occurs in a training recording; NEW_SENTENCE_COUNT of them.
  - train: everything else.
Measured on the 181 real recordings (130 sentences, 37 of them recorded 2+ times, 93 recorded once):
train 119, seen_sentence 37, new_sentence 25; the new_sentence sentences use 48 distinct glosses, all in
train (all 113 glosses keep at least one training recording). Signers (man-1 / woman-1 / woman-2):
train 45 / 35 / 39, seen_sentence 18 / 9 / 10, new_sentence 7 / 12 / 6.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from text2sign.data.csv_rows import read_csv_rows
from text2sign.data.skips import logger
from text2sign.data.split import hash_fraction

JOINTS = ("left_hand", "right_hand", "head")
HEAD_INDEX = JOINTS.index("head")
TRACKS_FILE = "tracks.csv"
WORDS_FILE = "words.csv"
# (x, y) columns of tracks.csv per joint, in JOINTS order; "left"/"right" as the database labels them.
TRACK_COLUMNS = (("left-x", "left-y"), ("right-x", "right-y"), ("nose-x", "nose-y"))
TRACK_HEADER = ("video", "frame") + tuple(column for pair in TRACK_COLUMNS for column in pair)
WORDS_HEADER = ("video", "speaker", "word", "startframe", "endframe")

# Where the resting nose goes, in frame widths: centred, in the top quarter, so the hands have the
# 0.63 frame widths below it that the lowest real hand needs (see SCALE).
NOSE_POSITION = (0.5, 0.25)
# Frame widths per original pixel, the same for every recording. Chosen on the 181 recordings so the most
# extreme hand stays inside the frame with room for its disc (render_tracks draws hands of radius 0.055):
# the hand farthest from the resting nose sideways is 124 px to its left (x 0.5 - 124/300 = 0.087), the lowest
# 189 px below it (y 0.25 + 189/300 = 0.88), the highest 42 px above it (y 0.11); the nose itself moves at most
# 40 px. An original 300-pixel span becomes the frame width.
SCALE = 1.0 / 300.0
NEW_SENTENCE_COUNT = 25  # held-out sentences never seen in training; about a fifth of the 130
SPLITS = ("train", "seen_sentence", "new_sentence")


@dataclass(frozen=True)
class Recording:
    name: str  # "<folder prefix>_<video:04d>", e.g. boston104_0098: stable and file-safe
    video: int
    speaker: str
    glosses: tuple[str, ...]  # in startframe order
    positions: np.ndarray  # (n, 3, 2) original pixels, joints in JOINTS order, one row per frame
    # (gloss, first row, last row) per gloss in startframe order, rows of `positions` (inclusive); empty when unknown
    segments: tuple[tuple[str, int, int], ...] = ()

    @property
    def sentence(self) -> str:
        return " ".join(self.glosses)


# ----------------------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------------------


def _read_rows(path: Path, header: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) pairs of a CSV with the given columns (extra columns are ignored)."""
    if not path.is_file():
        raise ValueError(f"{path} not found: a tracks folder holds {TRACKS_FILE} and {WORDS_FILE}")
    return read_csv_rows(path, header)


def _number(path: Path, line: int, row: dict[str, str], column: str, kind: type):
    value = row[column]
    try:
        return kind(value)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: line {line}: column {column} is {value!r}, expected {'an integer' if kind is int else 'a number'}") from error


def _folder_prefix(tracks_dir: Path) -> str:
    """boston104_tracks -> boston104: recording names say which folder they came from."""
    stem = tracks_dir.resolve().name
    stem = stem[: -len("_tracks")] if stem.endswith("_tracks") and len(stem) > len("_tracks") else stem
    return re.sub(r"[^A-Za-z0-9_-]+", "_", stem) or "tracks"


def _read_tracks(path: Path) -> tuple[dict[int, np.ndarray], dict[int, int]]:
    """({video: (n, 3, 2) positions}, {video: its first frame number}), rows sorted by frame; frames must run 0..
    or k.. without gaps or repeats (words.csv counts frames as tracks.csv does, from wherever it starts)."""
    frames: dict[int, dict[int, list[float]]] = defaultdict(dict)
    for line, row in _read_rows(path, TRACK_HEADER):
        video = _number(path, line, row, "video", int)
        frame = _number(path, line, row, "frame", int)
        if frame in frames[video]:
            raise ValueError(f"{path}: line {line}: video {video} frame {frame} appears twice; keep one row per frame")
        frames[video][frame] = [_number(path, line, row, column, float) for pair in TRACK_COLUMNS for column in pair]
    positions, first_frames = {}, {}
    for video, by_frame in frames.items():
        numbers = sorted(by_frame)
        if numbers[-1] - numbers[0] + 1 != len(numbers):
            missing = sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))
            raise ValueError(f"{path}: video {video} has no rows for frames {missing[:5]}; its frames must be consecutive")
        rows = np.array([by_frame[number] for number in numbers], dtype=np.float64)  # (n, 6)
        positions[video] = rows.reshape(len(numbers), len(JOINTS), 2)  # (n, 3, 2)
        first_frames[video] = numbers[0]
    return positions, first_frames


def _read_words(path: Path) -> tuple[dict[int, str], dict[int, tuple[tuple[str, int, int], ...]]]:
    """({video: speaker}, {video: (gloss, startframe, endframe) in startframe order})."""
    speakers: dict[int, str] = {}
    words: dict[int, list[tuple[int, int, str]]] = defaultdict(list)
    for line, row in _read_rows(path, WORDS_HEADER):
        video = _number(path, line, row, "video", int)
        speaker, word = row["speaker"].strip(), row["word"].strip()
        if not speaker or not word:
            raise ValueError(f"{path}: line {line}: empty {'speaker' if not speaker else 'word'}; every gloss row names both")
        if speakers.setdefault(video, speaker) != speaker:
            raise ValueError(f"{path}: line {line}: video {video} is signed by {speakers[video]!r} in an earlier row, {speaker!r} here")
        start, end = _number(path, line, row, "startframe", int), _number(path, line, row, "endframe", int)
        words[video].append((start, end, word))
    # Ties in startframe (none in the real data) fall back to endframe and the gloss, never to row order.
    return speakers, {video: tuple((word, start, end) for start, end, word in sorted(entries)) for video, entries in words.items()}


def load_recordings(tracks_dir: str | Path) -> list[Recording]:
    """Every recording with both frames and glosses, sorted by video id.

    A video with frames but no glosses (or glosses but no frames) is skipped and logged, never invented.
    """
    tracks_dir = Path(tracks_dir)
    if not tracks_dir.is_dir():
        raise ValueError(f"tracks folder {str(tracks_dir)!r} not found: pass the folder holding {TRACKS_FILE} and {WORDS_FILE}")
    positions, first_frames = _read_tracks(tracks_dir / TRACKS_FILE)
    speakers, glosses = _read_words(tracks_dir / WORDS_FILE)
    without_glosses = sorted(positions.keys() - glosses.keys())
    without_frames = sorted(glosses.keys() - positions.keys())
    if without_glosses or without_frames:
        logger.warning(
            "%s: skipped %d videos with frames but no glosses %s and %d with glosses but no frames %s",
            tracks_dir, len(without_glosses), without_glosses[:5], len(without_frames), without_frames[:5],
        )
    prefix = _folder_prefix(tracks_dir)
    recordings = []
    for video in sorted(positions.keys() & glosses.keys()):
        first, count = first_frames[video], len(positions[video])
        # Frame numbers -> rows of positions, clipped to the recording (a gloss past the last tracked frame keeps what was tracked).
        segments = tuple((word, min(max(start - first, 0), count - 1), min(max(end - first, 0), count - 1)) for word, start, end in glosses[video])
        recordings.append(Recording(f"{prefix}_{video:04d}", video, speakers[video], tuple(word for word, _, _ in segments), positions[video], segments))
    return recordings


# ----------------------------------------------------------------------------------------------------------
# Normalisation
# ----------------------------------------------------------------------------------------------------------


def check_trajectory(trajectory, name: str = "trajectory") -> np.ndarray:
    """float64 (f, 3, 2) with f >= 1 and finite values, or a ValueError saying what is wrong."""
    array = np.asarray(trajectory, dtype=np.float64)
    if array.ndim != 3 or array.shape[1:] != (len(JOINTS), 2) or array.shape[0] < 1:
        raise ValueError(f"{name} must be (frames, 3, 2) with joints {JOINTS} and (x, y) per joint, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} has non-finite positions; NaN marks a joint the extractor did not find: run fill_missing on extracted trajectories first")
    return array


def resample_uniformly(positions: np.ndarray, num_frames: int) -> np.ndarray:
    """(n, ...) -> (num_frames, ...): linear interpolation at num_frames evenly spaced times from the first
    frame to the last, so both endpoints are kept and the whole recording is covered."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    count = positions.shape[0]
    times = np.linspace(0.0, count - 1, num_frames)  # (num_frames,) in source frames
    before = np.floor(times).astype(np.int64)  # (num_frames,)
    after = np.minimum(before + 1, count - 1)  # (num_frames,)
    fraction = (times - before).reshape(-1, *([1] * (positions.ndim - 1)))  # (num_frames, 1, ...)
    return (1.0 - fraction) * positions[before] + fraction * positions[after]  # (num_frames, ...)


JOIN_BLEND_FRAMES = 4  # recorded frames (30 fps, ~0.13 s) cross-faded where two recordings' pieces meet


def cross_fade(first: np.ndarray, second: np.ndarray, blend_frames: int = JOIN_BLEND_FRAMES) -> tuple[np.ndarray, int]:
    """(first then second, joined, where second starts in it): second's first rows fade in over first's last rows, at most
    blend_frames and at most half of either side, so a short rest or sign is blended into, never blended away."""
    overlap = min(blend_frames, len(first) // 2, len(second) // 2)
    if overlap == 0:
        return np.concatenate([first, second]), len(first)
    weights = np.linspace(1, overlap, overlap).reshape(-1, *([1] * (first.ndim - 1))) / (overlap + 1)  # (overlap, 1, ...) towards second
    blended = (1 - weights) * first[len(first) - overlap:] + weights * second[:overlap]
    return np.concatenate([first[:len(first) - overlap], blended, second[overlap:]]), len(first) - overlap


def normalised_trajectory(recording: Recording, num_frames: int) -> np.ndarray:
    """(num_frames, 3, 2) float32 frame widths, the raw mode: resting nose at NOSE_POSITION, offsets times SCALE."""
    return trajectory_of(recording, num_frames, bodies=None)  # (num_frames, 3, 2) the recordings start at rest


# Signer normalisation. The captions never name the signer, yet the global SCALE keeps each body: man-1's
# resting hands sit 0.59 frame widths below his nose, woman-1's 0.40, and two recordings of one sentence by
# different signers lay further apart than a random pair. Each signer's resting hand offsets from the nose
# (mean over the frames before the first gloss of that signer's TRAINING recordings) are mapped onto one
# canonical body: hands relative to the head lose the signer's resting offset, are scaled by canonical size /
# signer size (size = mean length of the two resting offsets), and gain the canonical resting offset.
# CANONICAL_REST_OFFSETS: the three Boston signers' mean resting offsets (left hand (9, 146) px, right (-7, 128)
# px from the nose, all 181 recordings) times SCALE, rounded: the average body, which fits the frame as SCALE does.
CANONICAL_REST_OFFSETS = ((0.03, 0.49), (-0.02, 0.43))  # (left hand, right hand) (x, y) from the nose, frame widths
NORMALISATIONS = ("signer", "raw")  # raw: the one global SCALE, kept for comparison


@dataclass(frozen=True)
class SignerBody:
    """One signer's resting pose, measured on their training recordings."""

    speaker: str
    rest_offsets: np.ndarray  # (2, 2): mean (hand - nose) per hand at rest, original pixels
    num_recordings: int

    @property
    def size(self) -> float:
        """Mean length of the two resting offsets, original pixels."""
        return float(np.linalg.norm(self.rest_offsets, axis=-1).mean())


def resting_rows(recording: Recording) -> slice:
    """The rows before the first gloss (at least the first row): where the signer is at rest."""
    first_gloss = recording.segments[0][1] if recording.segments else 1
    return slice(0, max(1, first_gloss))


def signer_bodies(train_recordings: Sequence[Recording]) -> dict[str, SignerBody]:
    """{speaker: SignerBody} from the training recordings only: a test recording never shapes its own mapping."""
    offsets: dict[str, list[np.ndarray]] = defaultdict(list)
    for recording in train_recordings:
        rest = np.asarray(recording.positions, dtype=np.float64)[resting_rows(recording)]  # (r, 3, 2)
        offsets[recording.speaker].append((rest[:, :HEAD_INDEX] - rest[:, HEAD_INDEX:]).mean(axis=0))  # (2, 2)
    bodies = {speaker: SignerBody(speaker, np.mean(values, axis=0), len(values)) for speaker, values in sorted(offsets.items())}
    for body in bodies.values():
        if body.size <= 0:
            raise ValueError(f"signer {body.speaker!r} rests with the hands on the nose in every training recording; their size is undefined")
    return bodies


def check_signers_known(recordings: Sequence[Recording], bodies: dict[str, SignerBody]) -> None:
    """A ValueError naming every signer of `recordings` who has no training recording (no body to map from)."""
    unknown = sorted({recording.speaker for recording in recordings} - bodies.keys())
    if unknown:
        examples = {speaker: next(r.name for r in recordings if r.speaker == speaker) for speaker in unknown}
        raise ValueError(f"signers {unknown} have no training recordings (e.g. {examples}): signer normalisation measures each "
                         f"signer's body on their training recordings; add some, or pass --normalisation raw")


def signer_normalised_positions(recording: Recording, body: SignerBody) -> np.ndarray:
    """(n, 3, 2) float64 frame widths at the recording's own frame rate, in the canonical body."""
    positions = np.asarray(recording.positions, dtype=np.float64)  # (n, 3, 2)
    canonical = np.asarray(CANONICAL_REST_OFFSETS)  # (2, 2)
    frame_widths_per_pixel = float(np.linalg.norm(canonical, axis=-1).mean()) / body.size
    nose = positions[:, HEAD_INDEX]  # (n, 2)
    head = np.asarray(NOSE_POSITION) + (nose - nose[0]) * frame_widths_per_pixel  # (n, 2) resting nose at NOSE_POSITION
    hands = (positions[:, :HEAD_INDEX] - nose[:, None] - body.rest_offsets) * frame_widths_per_pixel + canonical  # (n, 2, 2) from the head
    return np.concatenate([hands + head[:, None], head[:, None]], axis=1)  # (n, 3, 2)


def placed_positions(recording: Recording, bodies: dict[str, SignerBody] | None) -> np.ndarray:
    """(n, 3, 2) float64 frame widths at the recording's own frame rate: signer-normalised with `bodies`
    (signer_bodies of the training recordings), else the raw mode (resting nose at NOSE_POSITION, offsets times SCALE)."""
    if bodies is None:
        positions = np.asarray(recording.positions, dtype=np.float64)  # (n, 3, 2)
        return np.asarray(NOSE_POSITION) + (positions - positions[0, HEAD_INDEX]) * SCALE  # (n, 3, 2)
    check_signers_known([recording], bodies)
    return signer_normalised_positions(recording, bodies[recording.speaker])


def trajectory_of(recording: Recording, num_frames: int, bodies: dict[str, SignerBody] | None) -> np.ndarray:
    """(num_frames, 3, 2) float32: placed_positions resampled uniformly over the whole recording."""
    return resample_uniformly(placed_positions(recording, bodies), num_frames).astype(np.float32)


# ----------------------------------------------------------------------------------------------------------
# Splits
# ----------------------------------------------------------------------------------------------------------


def check_unique_names(recordings: Sequence[Recording]) -> None:
    counts = Counter(recording.name for recording in recordings)
    repeated = sorted(name for name, count in counts.items() if count > 1)
    if repeated:
        raise ValueError(f"recording names must be unique, {repeated[:5]} appear more than once: load each folder once")


def split_recordings(recordings: Sequence[Recording]) -> dict[str, list[str]]:
    """{"train", "seen_sentence", "new_sentence"}: disjoint lists of names, sorted; see the module docstring."""
    check_unique_names(recordings)
    by_sentence: dict[str, list[Recording]] = defaultdict(list)
    for recording in recordings:
        by_sentence[recording.sentence].append(recording)

    seen_sentence = [
        min(group, key=lambda recording: (hash_fraction(recording.name), recording.name))
        for group in by_sentence.values() if len(group) >= 2
    ]
    held_out = {recording.name for recording in seen_sentence}

    # Gloss counts over the recordings still in training. Taking a sentence out lowers only its own glosses'
    # counts, so checking those after its removal keeps every gloss of every sentence taken so far in training.
    training_glosses = Counter(gloss for recording in recordings if recording.name not in held_out for gloss in recording.glosses)
    candidates = sorted(
        (group[0] for group in by_sentence.values() if len(group) == 1),
        key=lambda recording: (hash_fraction(recording.sentence), recording.sentence),
    )
    new_sentence: list[Recording] = []
    for candidate in candidates:
        if len(new_sentence) == NEW_SENTENCE_COUNT:
            break
        remaining = training_glosses - Counter(candidate.glosses)  # Counter subtraction drops counts that reach 0
        if all(remaining[gloss] > 0 for gloss in candidate.glosses):
            new_sentence.append(candidate)
            training_glosses = remaining
    if len(new_sentence) < NEW_SENTENCE_COUNT:
        logger.warning("only %d of %d new_sentence recordings keep all their glosses in training", len(new_sentence), NEW_SENTENCE_COUNT)
    held_out |= {recording.name for recording in new_sentence}
    return {
        "train": sorted(recording.name for recording in recordings if recording.name not in held_out),
        "seen_sentence": sorted(recording.name for recording in seen_sentence),
        "new_sentence": sorted(recording.name for recording in new_sentence),
    }


def split_against(train_recordings: Sequence[Recording], test_recordings: Sequence[Recording]) -> dict[str, list[str]]:
    """Splits for separate train and test folders: every training recording trains; a test recording is
    seen_sentence if its sentence occurs among the training sentences, else new_sentence."""
    check_unique_names([*train_recordings, *test_recordings])
    training_sentences = {recording.sentence for recording in train_recordings}
    return {
        "train": sorted(recording.name for recording in train_recordings),
        "seen_sentence": sorted(recording.name for recording in test_recordings if recording.sentence in training_sentences),
        "new_sentence": sorted(recording.name for recording in test_recordings if recording.sentence not in training_sentences),
    }
