"""Hand tracks: CSV loading and its errors, normalisation, resampling, and the generalisation splits."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import pytest

from text2sign.data.tracks import (
    CANONICAL_REST_OFFSETS,
    NEW_SENTENCE_COUNT,
    NOSE_POSITION,
    SCALE,
    TRACK_HEADER,
    WORDS_HEADER,
    Recording,
    check_signers_known,
    load_recordings,
    normalised_trajectory,
    resample_uniformly,
    signer_bodies,
    trajectory_of,
    split_against,
    split_recordings,
)

REAL_TRACKS = Path(__file__).resolve().parents[2] / "shared" / "data" / "boston104_tracks"
needs_real_tracks = pytest.mark.skipif(not (REAL_TRACKS / "tracks.csv").is_file(), reason=f"real tracks not present at {REAL_TRACKS}")


def write_tracks(folder: Path, frames: dict[int, list[tuple]], words: list[tuple], drop_column: str | None = None) -> Path:
    """tracks.csv from {video: [(lx, ly, rx, ry, nx, ny) per frame]} and words.csv from (video, speaker, word, start, end)."""
    folder.mkdir(parents=True, exist_ok=True)
    track_header = [column for column in TRACK_HEADER if column != drop_column]
    lines = [",".join(track_header)]
    for video, rows in frames.items():
        for frame, values in enumerate(rows):
            row = dict(zip(TRACK_HEADER, (video, frame, *values)))
            lines.append(",".join(str(row[column]) for column in track_header))
    (folder / "tracks.csv").write_text("\n".join(lines) + "\n")
    (folder / "words.csv").write_text("\n".join([",".join(WORDS_HEADER)] + [",".join(map(str, row)) for row in words]) + "\n")
    return folder


def still(values: tuple, count: int = 3) -> list[tuple]:
    return [values] * count


def recording(name: str, glosses: str, speaker: str = "woman-1") -> Recording:
    return Recording(name, int(name.rsplit("_", 1)[1]), speaker, tuple(glosses.split()), np.zeros((2, 3, 2)))


# ---------------------------------------------------------------- loading


def test_load_recordings_orders_glosses_by_startframe_and_recordings_by_video(tmp_path):
    folder = write_tracks(
        tmp_path / "toy_tracks",
        {7: still((1, 2, 3, 4, 5, 6)), 3: [(10, 11, 12, 13, 14, 15), (20, 21, 22, 23, 24, 25)]},
        [(7, "man-1", "LATE", 20, 30), (7, "man-1", "EARLY", 1, 5), (3, "woman-2", "ONE", 0, 1)],
    )
    recordings = load_recordings(folder)
    assert [record.name for record in recordings] == ["toy_0003", "toy_0007"]
    assert recordings[1].sentence == "EARLY LATE" and recordings[1].speaker == "man-1"
    # columns land in JOINTS order: left hand, right hand, nose
    np.testing.assert_array_equal(recordings[0].positions[1], [[20, 21], [22, 23], [24, 25]])


def test_videos_without_glosses_or_frames_are_skipped_and_logged(tmp_path, caplog):
    folder = write_tracks(tmp_path / "toy", {1: still((1, 2, 3, 4, 5, 6)), 2: still((1, 2, 3, 4, 5, 6))},
                          [(1, "man-1", "A", 0, 1), (5, "man-1", "B", 0, 1)])
    with caplog.at_level(logging.WARNING, logger="text2sign.data"):
        recordings = load_recordings(folder)
    assert [record.video for record in recordings] == [1]
    assert "1 videos with frames but no glosses [2]" in caplog.text and "1 with glosses but no frames [5]" in caplog.text


def test_missing_column_is_a_value_error_naming_it(tmp_path):
    folder = write_tracks(tmp_path / "toy", {1: still((1, 2, 3, 4, 5, 6))}, [(1, "man-1", "A", 0, 1)], drop_column="nose-y")
    with pytest.raises(ValueError, match=r"tracks.csv: missing column\(s\) nose-y"):
        load_recordings(folder)


def test_non_numeric_value_names_line_and_column(tmp_path):
    folder = write_tracks(tmp_path / "toy", {1: [(1, 2, 3, 4, 5, 6), ("oops", 2, 3, 4, 5, 6)]}, [(1, "man-1", "A", 0, 1)])
    with pytest.raises(ValueError, match=r"line 3: column left-x is 'oops'"):
        load_recordings(folder)


def test_missing_file_or_folder_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        load_recordings(tmp_path / "nowhere")
    folder = write_tracks(tmp_path / "toy", {1: still((1, 2, 3, 4, 5, 6))}, [(1, "man-1", "A", 0, 1)])
    (folder / "words.csv").unlink()
    with pytest.raises(ValueError, match="words.csv not found"):
        load_recordings(folder)


def test_gap_in_frames_is_refused(tmp_path):
    folder = write_tracks(tmp_path / "toy", {1: still((1, 2, 3, 4, 5, 6))}, [(1, "man-1", "A", 0, 1)])
    lines = (folder / "tracks.csv").read_text().splitlines()
    (folder / "tracks.csv").write_text("\n".join(lines[:2] + lines[3:]) + "\n")  # drop frame 1
    with pytest.raises(ValueError, match=r"video 1 has no rows for frames \[1\]"):
        load_recordings(folder)


def test_load_recordings_keeps_each_gloss_frame_range_as_rows_of_the_recording(tmp_path):
    # Frames numbered from 5: words.csv counts frames as tracks.csv does, so rows are frame - 5.
    folder = tmp_path / "toy_tracks"
    write_tracks(folder, {1: still((1, 2, 3, 4, 5, 6), 6)}, [(1, "man-1", "GO", 8, 10), (1, "man-1", "JOHN", 5, 7)])
    lines = (folder / "tracks.csv").read_text().splitlines()
    (folder / "tracks.csv").write_text("\n".join([lines[0]] + [line.replace("1,", "1,", 1).split(",", 2)[0] + f",{5 + index}," + line.split(",", 2)[2]
                                                             for index, line in enumerate(lines[1:])]) + "\n")
    (only,) = load_recordings(folder)
    assert only.segments == (("JOHN", 0, 2), ("GO", 3, 5)) and only.glosses == ("JOHN", "GO")


# ---------------------------------------------------------------- normalisation and resampling


def signing_body(rest_left, rest_right, size: float, frames: int = 10, seed: int = 0) -> Recording:
    """A toy signer: nose at (150, 60) px, hands resting at rest_* px from it for 3 frames, then one motion
    (the same for every seed-0 signer, in units of the signer's size) with a gloss over frames 3-9."""
    motion = np.random.default_rng(seed).normal(0, 0.2, size=(frames - 3, 2, 2)).cumsum(axis=0)  # (f - 3, 2, 2) in sizes
    rest = np.array([rest_left, rest_right], dtype=float)  # (2, 2)
    hands = np.concatenate([np.repeat(rest[None], 3, axis=0), rest + motion * size])  # (f, 2, 2) from the nose
    nose = np.array([150.0, 60.0]) + np.zeros((frames, 1, 2))
    return Recording(f"toy_{int(size):04d}", int(size), f"signer-{size:g}", ("A",), np.concatenate([hands + nose, nose], axis=1), (("A", 3, frames - 1),))


def test_signer_normalisation_scores_the_same_motion_by_bodies_of_different_sizes_zero():
    from text2sign.evaluation.trajectory import dtw_mje

    # Signer B is signer A enlarged 1.5 times: same motion, bigger body.
    small = signing_body((10, 100), (-8, 90), size=100)
    large = signing_body((15, 150), (-12, 135), size=150)
    large_positions = large.positions.copy()
    large_positions[:, :2] = large_positions[:, 2:] + 1.5 * (small.positions[:, :2] - small.positions[:, 2:])
    large = Recording(large.name, large.video, large.speaker, large.glosses, large_positions, large.segments)
    bodies = signer_bodies([small, large])
    assert bodies["signer-150"].size == pytest.approx(1.5 * bodies["signer-100"].size)
    reference = trajectory_of(small, 10, bodies)
    assert dtw_mje(trajectory_of(large, 10, bodies), reference) == pytest.approx(0.0, abs=1e-6)
    assert dtw_mje(trajectory_of(large, 10, None), trajectory_of(small, 10, None)) > 0.02  # the raw mode keeps the bodies
    np.testing.assert_allclose(reference[0, :2] - reference[0, 2], CANONICAL_REST_OFFSETS, atol=1e-6)  # rest is the canonical body


def test_signer_normalisation_refuses_a_signer_without_training_recordings_and_names_them():
    bodies = signer_bodies([signing_body((10, 100), (-8, 90), size=100)])
    stranger = signing_body((10, 100), (-8, 90), size=120)
    with pytest.raises(ValueError, match=r"\['signer-120'\] have no training recordings.*toy_0120"):
        check_signers_known([stranger], bodies)
    with pytest.raises(ValueError, match="signer-120"):
        trajectory_of(stranger, 4, bodies)




def test_normalisation_centres_resting_nose_and_uses_one_global_scale():
    # Two recordings, the second with its nose elsewhere and every offset twice as large: a per-recording
    # fit to the frame would make them look alike; the global scale keeps the factor of two.
    small = np.array([[[130, 110], [80, 120], [100, 50]], [[140, 150], [60, 90], [103, 46]]], dtype=float)  # (2, 3, 2)
    large = 2 * (small - small[0, 2]) + np.array([200, 80])
    trajectories = [
        normalised_trajectory(Recording(f"toy_000{index}", index, "man-1", ("A",), positions), 2)
        for index, positions in enumerate([small, large])
    ]
    for positions, trajectory in zip([small, large], trajectories):
        np.testing.assert_allclose(trajectory[0, 2], NOSE_POSITION, atol=1e-6)
        np.testing.assert_allclose(trajectory, np.asarray(NOSE_POSITION) + (positions - positions[0, 2]) * SCALE, atol=1e-6)
    np.testing.assert_allclose(trajectories[1] - NOSE_POSITION, 2 * (trajectories[0] - np.asarray(NOSE_POSITION)), atol=1e-6)
    assert trajectories[0].dtype == np.float32


def test_resampling_keeps_endpoints_and_interpolates_linearly():
    positions = np.arange(5, dtype=float).reshape(5, 1, 1) * np.array([1.0, 10.0])  # (5, 1, 2) a ramp
    resampled = resample_uniformly(positions, 9)
    np.testing.assert_allclose(resampled[[0, -1]], positions[[0, -1]])
    np.testing.assert_allclose(resampled[:, 0, 0], np.linspace(0, 4, 9))  # half-frame steps, exactly on the ramp
    np.testing.assert_allclose(resample_uniformly(positions, 2), positions[[0, -1]])
    np.testing.assert_allclose(resample_uniformly(positions[:1], 3), np.repeat(positions[:1], 3, axis=0))
    with pytest.raises(ValueError, match="num_frames"):
        resample_uniformly(positions, 0)


# ---------------------------------------------------------------- splits


def test_new_sentence_never_takes_a_gloss_away_from_training():
    recordings = [
        recording("toy_0001", "JOHN GO"), recording("toy_0002", "JOHN GO"),  # seen twice: one held out
        recording("toy_0003", "MARY RARE"),  # RARE occurs nowhere else: must stay in training
        recording("toy_0004", "JOHN ONLY-HERE-TWICE"), recording("toy_0005", "MARY ONLY-HERE-TWICE"),  # one may leave
        recording("toy_0006", "MARY GO"), recording("toy_0007", "JOHN MARY"),
    ]
    splits = split_recordings(recordings)
    by_name = {record.name: record for record in recordings}
    assert splits["seen_sentence"] in (["toy_0001"], ["toy_0002"])
    assert "toy_0003" in splits["train"]
    assert len({"toy_0004", "toy_0005"} & set(splits["new_sentence"])) == 1
    training_glosses = {gloss for name in splits["train"] for gloss in by_name[name].glosses}
    assert all(set(by_name[name].glosses) <= training_glosses for name in splits["new_sentence"])
    assert sorted(sum(splits.values(), [])) == sorted(by_name)


def test_split_is_independent_of_recording_order():
    recordings = [recording(f"toy_{index:04d}", sentence) for index, sentence in enumerate(
        ["A B", "A B", "B C", "C D", "A D", "D E", "E A", "B E", "C C", "A B C"])]
    shuffled = recordings[:]
    random.Random(0).shuffle(shuffled)
    assert split_recordings(shuffled) == split_recordings(recordings)


def test_split_against_classifies_by_sentence_presence():
    train = [recording("a_0001", "JOHN GO"), recording("a_0002", "MARY GO")]
    test = [recording("b_0001", "JOHN GO", speaker="man-1"), recording("b_0002", "GO JOHN")]
    assert split_against(train, test) == {"train": ["a_0001", "a_0002"], "seen_sentence": ["b_0001"], "new_sentence": ["b_0002"]}
    with pytest.raises(ValueError, match="unique"):
        split_against(train, [recording("a_0001", "JOHN GO")])


@needs_real_tracks
def test_real_splits_are_disjoint_stable_and_hold_out_what_they_claim():
    recordings = load_recordings(REAL_TRACKS)
    splits = split_recordings(recordings)
    by_name = {record.name: record for record in recordings}
    assert {name: len(names) for name, names in splits.items()} == {"train": 119, "seen_sentence": 37, "new_sentence": NEW_SENTENCE_COUNT}
    assert sorted(sum(splits.values(), [])) == sorted(by_name)  # disjoint and complete

    shuffled = recordings[:]
    random.Random(1).shuffle(shuffled)
    assert split_recordings(shuffled) == splits

    training_sentences = {by_name[name].sentence for name in splits["train"]}
    training_glosses = {gloss for name in splits["train"] for gloss in by_name[name].glosses}
    assert all(by_name[name].sentence in training_sentences for name in splits["seen_sentence"])
    assert not any(by_name[name].sentence in training_sentences for name in splits["new_sentence"])
    assert all(set(by_name[name].glosses) <= training_glosses for name in splits["new_sentence"])
    assert len({by_name[name].sentence for name in splits["seen_sentence"]}) == 37  # one per repeated sentence
