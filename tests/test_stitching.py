"""Gloss stitching on a toy set whose segments are known: replay, the three variants, the joins."""

from __future__ import annotations

import numpy as np
import pytest

from text2sign.data.tracks import Recording
from text2sign.evaluation.stitching import BLEND_FRAMES, GlossStitcher, Piece, common_subsequence_pairs

# Each gloss is a constant left-hand x (relative to the head) so a stitched frame says which segment it came from.
GLOSS_X = {"REST": 0.0, "JOHN": 0.1, "GO": 0.2, "MARY": 0.3, "WRITE": 0.4}


def toy_recording(name: str, glosses: str, gloss_frames: int = 6, rest_frames: int = 2, offset: float = 0.0) -> Recording:
    """rest, then each gloss held for gloss_frames frames at GLOSS_X (+ offset), then rest."""
    words = glosses.split()
    xs = [0.0] * rest_frames + [GLOSS_X[word] + offset for word in words for _ in range(gloss_frames)] + [0.0] * rest_frames
    positions = np.zeros((len(xs), 3, 2))
    positions[:, 2] = (0.5, 0.25)
    positions[:, 0, 0] = 0.5 + np.array(xs)
    positions[:, 1] = (0.4, 0.6)
    segments = tuple((word, rest_frames + index * gloss_frames, rest_frames + (index + 1) * gloss_frames - 1) for index, word in enumerate(words))
    return Recording(name, int(name.rsplit("_", 1)[1]), "woman-1", tuple(words), positions, segments)


def stitcher_of(recordings) -> GlossStitcher:
    return GlossStitcher(recordings, {recording.name: recording.positions for recording in recordings})


def left_x(trajectory) -> np.ndarray:
    return np.round(trajectory[:, 0, 0] - trajectory[:, 2, 0], 6)


def test_a_trained_sentence_is_replayed_by_every_variant():
    recordings = [toy_recording("toy_0001", "JOHN GO"), toy_recording("toy_0002", "MARY WRITE")]
    stitcher = stitcher_of(recordings)
    for variant in ("medoid", "context", "retrieve_edit"):
        assert stitcher.pieces("JOHN GO", variant) == [Piece("toy_0001", 0, 15)]
        np.testing.assert_array_equal(stitcher.stitch(stitcher.pieces("JOHN GO", variant)), recordings[0].positions)


def test_medoid_stitching_concatenates_one_segment_per_gloss_in_order_with_blends():
    recordings = [toy_recording("toy_0001", "JOHN GO"), toy_recording("toy_0002", "MARY WRITE")]
    stitched = stitcher_of(recordings).stitch(stitcher_of(recordings).pieces("WRITE JOHN", "medoid"))
    xs = left_x(stitched)
    # lead-in rest (2) + WRITE (6) + JOHN (6) + rest (2); each join overlaps min(BLEND_FRAMES, half of either side):
    # 1 + BLEND_FRAMES - 1 + 1 frames (the 2-frame rests give half a side of 1, the 6-frame glosses of 3)
    assert len(xs) == 2 + 6 + 6 + 2 - (1 + min(BLEND_FRAMES, 3) + 1)
    assert xs[0] == 0.0 and xs[-1] == 0.0 and 0.4 in xs and 0.1 in xs  # rests kept at both ends
    assert list(xs).index(0.4) < len(xs) - 1 - list(xs[::-1]).index(0.1)  # WRITE before JOHN
    assert np.all(np.abs(np.diff(xs)) < 0.4)  # joins are blended, never a jump from rest straight to WRITE


def test_the_medoid_is_the_instance_nearest_the_others():
    recordings = [toy_recording("toy_0001", "JOHN GO"), toy_recording("toy_0002", "JOHN MARY", offset=0.01),
                  toy_recording("toy_0003", "JOHN WRITE", offset=0.2)]
    assert stitcher_of(recordings).medoid("JOHN").piece.recording == "toy_0002"  # between the other two


def test_context_stitching_prefers_the_instance_with_the_same_neighbours():
    recordings = [toy_recording("toy_0001", "JOHN GO"), toy_recording("toy_0002", "MARY GO", offset=0.05),
                  toy_recording("toy_0003", "GO WRITE")]
    stitcher = stitcher_of(recordings)
    pieces = stitcher.pieces("MARY GO WRITE", "context")
    assert pieces[2].recording == "toy_0002"  # GO after MARY, as in toy_0002
    assert stitcher.pieces("MARY GO WRITE", "medoid")[2].recording != "toy_0002"


def test_retrieve_and_edit_keeps_the_nearest_sentence_and_splices_the_differing_gloss():
    recordings = [toy_recording("toy_0001", "JOHN GO WRITE"), toy_recording("toy_0002", "MARY GO")]
    stitcher = stitcher_of(recordings)
    # nearest: MARY GO (2 glosses in order, none extra); its motion is kept, WRITE is spliced in from toy_0001
    pieces = stitcher.pieces("MARY GO WRITE", "retrieve_edit")
    assert [piece.recording for piece in pieces] == ["toy_0002", "toy_0002", "toy_0002", "toy_0001", "toy_0001"]
    assert pieces[1:4] == [Piece("toy_0002", 2, 7), Piece("toy_0002", 8, 13), Piece("toy_0001", 14, 19)]
    xs = left_x(stitcher.stitch(pieces))
    assert 0.3 in xs and 0.2 in xs and 0.4 in xs


def test_an_untrained_gloss_is_an_error():
    with pytest.raises(ValueError, match="NEVER"):
        stitcher_of([toy_recording("toy_0001", "JOHN GO")]).pieces("JOHN NEVER", "medoid")


def test_common_subsequence_pairs_align_glosses_in_order():
    assert common_subsequence_pairs(["A", "B", "C"], ["X", "B", "C"]) == {1: 1, 2: 2}
    assert common_subsequence_pairs(["A", "B"], ["B", "A"]) in ({0: 1}, {1: 0})
