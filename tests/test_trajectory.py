"""Trajectory metrics and baselines on constructed cases whose answers are worked out by hand."""

import numpy as np
import pytest

from text2sign.evaluation.trajectory import (
    DEFAULT_MISSING_HEAD_POSITION,
    Prediction,
    TrajectoryScores,
    as_prediction,
    band_window,
    dtw_mje,
    dtw_mje_many,
    dtw_mje_of_costs,
    fill_missing,
    hand_path_length,
    hands_relative_to_head,
    longest_common_subsequence,
    medoid_index,
    mean_training_trajectory,
    motion_ratio,
    nearest_caption_retrieval,
    nearest_training_dtw_mje,
    random_training_recording,
    retrieval_ranks,
    score_split,
)

HEAD = (0.5, 0.3)


def trajectory_from_hands(left_x, left_y=None, right_x=None, right_y=None, head=HEAD) -> np.ndarray:
    """(f, 3, 2) with the head fixed at `head` and each hand given relative to it (missing coordinates 0)."""
    left_x = np.asarray(left_x, dtype=np.float64)
    zeros = np.zeros_like(left_x)
    hands = [(left_x, zeros if left_y is None else np.asarray(left_y, dtype=np.float64)),
             (zeros if right_x is None else np.asarray(right_x, dtype=np.float64), zeros if right_y is None else np.asarray(right_y, dtype=np.float64))]
    trajectory = np.zeros((len(left_x), 3, 2))
    trajectory[:, 2] = head
    for index, (x, y) in enumerate(hands):
        trajectory[:, index, 0] = head[0] + x
        trajectory[:, index, 1] = head[1] + y
    return trajectory


def wavy_trajectory(num_frames=12, seed=0) -> np.ndarray:
    generator = np.random.default_rng(seed)
    return trajectory_from_hands(*(np.cumsum(generator.normal(0, 0.05, size=(4, num_frames)), axis=1)))


# ---------------------------------------------------------------------------------------------------------------
# Hands relative to the head, DTW-MJE
# ---------------------------------------------------------------------------------------------------------------


def test_hands_relative_to_head_subtracts_the_head_per_frame():
    trajectory = np.array([[[0.2, 0.6], [0.8, 0.7], [0.5, 0.3]], [[0.1, 0.1], [0.9, 0.9], [0.4, 0.2]]])  # (2, 3, 2)
    expected = np.array([[[-0.3, 0.3], [0.3, 0.4]], [[-0.3, -0.1], [0.5, 0.7]]])
    np.testing.assert_allclose(hands_relative_to_head(trajectory), expected)


def test_dtw_mje_of_identical_trajectories_is_zero():
    trajectory = wavy_trajectory()
    assert dtw_mje(trajectory, trajectory) == 0.0


def test_dtw_mje_of_a_constant_offset_is_the_offset():
    # Hands move along x only; the copy is moved by d along y, so every frame pair costs >= d and the diagonal
    # costs exactly d: the optimal path's average is d.
    real = trajectory_from_hands(left_x=[0.0, 0.1, 0.3, 0.2, 0.0], right_x=[0.0, -0.1, -0.2, -0.1, 0.0])
    offset = 0.07
    generated = real.copy()
    generated[:, :2, 1] += offset
    assert dtw_mje(generated, real) == pytest.approx(offset)


def test_dtw_mje_ignores_the_whole_figure_moving():
    real = wavy_trajectory()
    assert dtw_mje(real + np.array([0.1, -0.05]), real) == pytest.approx(0.0, abs=1e-12)


def test_dtw_mje_warps_away_a_time_shift():
    # The same sign one frame early, with rest poses at both ends as in real recordings: warping matches it
    # exactly, while a frame-by-frame comparison would not.
    real = trajectory_from_hands(left_x=[0.0, 0.0, 0.1, 0.2, 0.3, 0.3])
    early = trajectory_from_hands(left_x=[0.0, 0.1, 0.2, 0.3, 0.3, 0.3])
    assert dtw_mje(early, real) == pytest.approx(0.0, abs=1e-12)
    frame_by_frame = np.abs(hands_relative_to_head(early) - hands_relative_to_head(real))[:, 0, 0].mean() / 2
    assert frame_by_frame > 0.01


def test_dtw_mje_two_by_three_worked_by_hand():
    # Left hand (relative to the head) at x = 0, 1 generated and x = 0, 0.5, 1 real; the right hand stays put
    # in both, so each frame cost is half the left hand's distance:
    #   cost = [[0, 0.25, 0.5], [0.5, 0.25, 0]]
    #   D(0,0) = 0, D(0,1) = 0.25, D(0,2) = 0.75, D(1,0) = 0.5
    #   D(1,1) = 0.25 + min(D(0,0)=0, D(0,1), D(1,0)) = 0.25        (path (0,0),(1,1): 2 cells)
    #   D(1,2) = 0 + min(D(0,1)=0.25, D(0,2)=0.75, D(1,1)=0.25) = 0.25 (3 cells either way)
    #   DTW-MJE = 0.25 / 3 = 1 / 12
    generated = trajectory_from_hands(left_x=[0.0, 1.0], right_x=[0.2, 0.2])
    real = trajectory_from_hands(left_x=[0.0, 0.5, 1.0], right_x=[0.2, 0.2, 0.2])
    assert dtw_mje(generated, real) == pytest.approx(1 / 12)


def test_dtw_mje_divides_by_the_length_of_a_path_that_leaves_the_diagonal():
    # Left hand at x = 0, 1, 1 generated and 0, 0, 0.8 real (right hand still), left distances:
    #   [[0, 0, 0.8], [1, 1, 0.2], [1, 1, 0.2]]
    #   D(1,1) = 1, D(1,2) = 0.2 + D(0,1)=0 = 0.2, D(2,1) = 1 + 1 = 2, D(2,2) = 0.2 + min(1, 0.2, 2) = 0.4
    #   path (0,0),(0,1),(1,2),(2,2): 4 cells, so 0.4 / 4 = 0.1 for the left hand, 0.05 for the mean of both
    #   (the diagonal alone would give 1.2 / 3 / 2 = 0.2; dividing by the frame count, 0.4 / 3 / 2).
    generated = trajectory_from_hands(left_x=[0.0, 1.0, 1.0])
    real = trajectory_from_hands(left_x=[0.0, 0.0, 0.8])
    assert dtw_mje(generated, real) == pytest.approx(0.05)


def test_banded_dtw_worked_by_hand_on_a_cost_matrix():
    # Free along row 0 and down the last column, 9 elsewhere. Unbanded, the path (0,0)..(0,2),(1,3)..(3,3) costs
    # 0. With a band of 1 frame (|i - j| <= 1), the cells (0,2), (0,3), (1,3) are out of reach:
    #   D(0,0)=0 D(0,1)=0 | D(1,0)=9 D(1,1)=9 D(1,2)=9+D(0,1)=9 (3 cells) | D(2,1)=18 D(2,2)=18 D(2,3)=0+D(1,2)=9 (4 cells)
    #   D(3,2)=27 D(3,3)=0+min(D(2,2)=18, D(2,3)=9, D(3,2)=27)=9 over 5 cells: 9 / 5 = 1.8
    costs = np.array([[0, 0, 0, 0], [9, 9, 9, 0], [9, 9, 9, 0], [9, 9, 9, 0]], dtype=float)[None]
    assert dtw_mje_of_costs(costs)[0] == pytest.approx(0.0)
    assert band_window(4, 4, 0.25) == 1
    assert dtw_mje_of_costs(costs, band_fraction=0.25)[0] == pytest.approx(1.8)


def test_band_window_rounds_a_fraction_of_the_longer_clip_and_keeps_one_frame():
    assert band_window(24, 24, 0.125) == 3 and band_window(10, 20, 0.1) == 2 and band_window(4, 4, 0.01) == 1
    assert band_window(4, 4, None) is None
    with pytest.raises(ValueError, match="band_fraction"):
        band_window(4, 4, 1.5)


def test_banded_dtw_equals_unbanded_where_the_best_path_is_the_diagonal():
    real = wavy_trajectory(seed=1)
    generated = real.copy()
    generated[:, :2, 1] += 0.05
    assert dtw_mje(generated, real, band_fraction=0.125) == pytest.approx(dtw_mje(generated, real)) == pytest.approx(0.05)


def test_reversal_scores_worse_than_the_forward_recording_with_the_band():
    # Rest, one sign towards the side, then another lower down, rest: reversed, the signs come in the wrong order.
    left_x = [0.0] * 4 + [0.2, 0.3, 0.3, 0.2] + [0.0] * 2 + [0.0] * 4 + [0.0] * 4
    left_y = [0.0] * 4 + [0.0] * 4 + [0.0] * 2 + [0.2, 0.3, 0.3, 0.2] + [0.0] * 4
    real = trajectory_from_hands(left_x, left_y)
    forward = real.copy()
    forward[:, :2] += 0.01  # a near copy
    reversed_copy = forward[::-1].copy()
    assert dtw_mje(forward, real, band_fraction=0.125) < dtw_mje(reversed_copy, real, band_fraction=0.125)
    # Unbanded DTW warps much of the reversal away; the band keeps it costly.
    assert dtw_mje(reversed_copy, real, band_fraction=0.125) > 1.5 * dtw_mje(reversed_copy, real)


def test_dtw_mje_many_matches_one_pair_at_a_time():
    generated = np.stack([wavy_trajectory(seed=seed) for seed in range(3)])
    real = np.stack([wavy_trajectory(seed=seed + 10) for seed in range(3)])
    for band in (None, 0.2):
        np.testing.assert_allclose(dtw_mje_many(generated, real, band), [dtw_mje(g, r, band) for g, r in zip(generated, real)])


def test_dtw_mje_rejects_bad_shapes_and_gaps():
    with pytest.raises(ValueError, match="frames, 3, 2"):
        dtw_mje(np.zeros((4, 2, 2)), np.zeros((4, 3, 2)))
    with_gap = np.zeros((4, 3, 2))
    with_gap[1, 0, 0] = np.nan
    with pytest.raises(ValueError, match="fill_missing"):
        dtw_mje(with_gap, np.zeros((4, 3, 2)))


# ---------------------------------------------------------------------------------------------------------------
# Motion ratio
# ---------------------------------------------------------------------------------------------------------------


def test_hand_path_length_sums_both_hands_relative_to_the_head():
    # Left hand 0 -> 0.3 -> 0.3 along x (0.3), right hand 0 -> 0 -> 0.4 along y (0.4); the head moving with the
    # whole figure adds nothing.
    trajectory = trajectory_from_hands(left_x=[0.0, 0.3, 0.3], right_y=[0.0, 0.0, 0.4])
    trajectory += np.array([[[0.0, 0.0]], [[0.1, 0.1]], [[0.2, 0.0]]])
    assert hand_path_length(trajectory) == pytest.approx(0.7)


def test_motion_ratio_is_one_for_identical_zero_for_static_two_for_doubled_amplitude():
    real = wavy_trajectory()
    static = trajectory_from_hands(left_x=np.full(12, 0.1), right_x=np.full(12, -0.1))
    doubled = real.copy()
    doubled[:, :2] = real[:, 2:3] + 2 * (real[:, :2] - real[:, 2:3])  # hands twice as far from the head
    assert motion_ratio(real, real) == pytest.approx(1.0)
    assert motion_ratio(static, real) == 0.0
    assert motion_ratio(doubled, real) == pytest.approx(2.0)


def test_motion_ratio_refuses_a_motionless_real_trajectory():
    with pytest.raises(ValueError, match="never move"):
        motion_ratio(wavy_trajectory(), trajectory_from_hands(left_x=np.zeros(12)))


# ---------------------------------------------------------------------------------------------------------------
# Retrieval
# ---------------------------------------------------------------------------------------------------------------


def test_retrieval_ranks_count_ties_against_the_prediction():
    distances = np.array([
        [0.1, 0.5, 0.9],  # own recording nearest: rank 1
        [0.2, 0.3, 0.1],  # two others nearer: rank 3
        [0.4, 0.4, 0.4],  # all tied: the worst rank, 3
    ])
    np.testing.assert_array_equal(retrieval_ranks(distances), [1, 3, 3])


def test_retrieval_ranks_rejects_non_square_matrices():
    with pytest.raises(ValueError, match="square"):
        retrieval_ranks(np.zeros((2, 3)))


# ---------------------------------------------------------------------------------------------------------------
# Filling undetected joints
# ---------------------------------------------------------------------------------------------------------------


def test_fill_missing_interpolates_between_found_frames_and_holds_at_the_ends():
    positions = np.full((5, 3, 2), np.nan)
    positions[:, 2] = (0.5, 0.3)
    positions[:, 1] = (0.7, 0.6)
    positions[1, 0], positions[3, 0] = (0.2, 0.4), (0.4, 0.8)
    found = np.ones((5, 3), dtype=bool)
    found[[0, 2, 4], 0] = False
    filled = fill_missing(positions, found)
    np.testing.assert_allclose(filled[:, 0], [[0.2, 0.4], [0.2, 0.4], [0.3, 0.6], [0.4, 0.8], [0.4, 0.8]])
    np.testing.assert_allclose(filled[:, 1:], positions[:, 1:])


def test_fill_missing_puts_a_never_found_hand_on_the_head():
    positions = np.zeros((4, 3, 2))
    positions[:, 2] = [[0.5, 0.3], [0.5, 0.3], [0.6, 0.3], [0.6, 0.3]]
    positions[:, 0] = 0.9  # garbage where the hand was not found: must be ignored
    found = np.ones((4, 3), dtype=bool)
    found[:, 0] = False
    filled = fill_missing(positions, found)
    np.testing.assert_allclose(filled[:, 0], filled[:, 2])
    # So a video that shows no left hand has no left-hand motion, and is scored against the real hand's reach.
    assert np.linalg.norm(np.diff(hands_relative_to_head(filled)[:, 0], axis=0)).sum() == 0.0


def test_fill_missing_places_a_never_found_head_at_the_default_and_nothing_found_collapses_there():
    filled = fill_missing(np.full((3, 3, 2), np.nan), np.zeros((3, 3), dtype=bool))
    np.testing.assert_allclose(filled, np.broadcast_to(DEFAULT_MISSING_HEAD_POSITION, (3, 3, 2)))


def test_fill_missing_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="found"):
        fill_missing(np.zeros((4, 3, 2)), np.ones((4, 2), dtype=bool))


# ---------------------------------------------------------------------------------------------------------------
# Baselines
# ---------------------------------------------------------------------------------------------------------------


def test_mean_training_trajectory_averages_frame_by_frame():
    first = trajectory_from_hands(left_x=[0.0, 0.3])
    second = trajectory_from_hands(left_x=[0.2, 0.1])
    third = trajectory_from_hands(left_x=[0.1, 0.2])
    mean = mean_training_trajectory([first, second, third])
    np.testing.assert_allclose(mean[:, 0, 0] - HEAD[0], [0.1, 0.2])
    np.testing.assert_allclose(mean[:, 2], [HEAD, HEAD])


def test_mean_training_trajectory_refuses_mixed_frame_counts():
    with pytest.raises(ValueError, match="resample"):
        mean_training_trajectory([wavy_trajectory(12), wavy_trajectory(10)])


def test_random_training_recording_is_seeded_and_independent_of_order():
    train = ["rec_a", "rec_b", "rec_c", "rec_d"]
    test = ["test_1", "test_2", "test_3"]
    picks = random_training_recording(train, test, seed=3)
    assert set(picks) == set(test) and set(picks.values()) <= set(train)
    assert random_training_recording(train[::-1], test[::-1], seed=3) == picks
    seeds_give_different_picks = any(random_training_recording(train, test, seed=seed) != picks for seed in range(4, 10))
    assert seeds_give_different_picks


def test_longest_common_subsequence_counts_glosses_in_order():
    assert longest_common_subsequence("JOHN WRITE HOMEWORK".split(), "JOHN HOMEWORK WRITE".split()) == 2
    assert longest_common_subsequence("JOHN WRITE".split(), "MARY BUY".split()) == 0


TRAIN_CAPTIONS = {
    "rec_03": "JOHN CAN GO CAN",
    "rec_01": "JOHN CAN GO CAN",
    "rec_02": "MARY WRITE HOMEWORK",
    "rec_04": "JOHN WRITE BOOK YESTERDAY",
    "rec_05": "JOHN WRITE HOMEWORK",
}


def test_nearest_caption_retrieval_takes_the_same_sentence_first_by_name():
    assert nearest_caption_retrieval(TRAIN_CAPTIONS, "JOHN CAN GO CAN") == "rec_01"
    # rec_05 is the same sentence; rec_04 shares JOHN WRITE and rec_02 WRITE HOMEWORK with it.
    assert nearest_caption_retrieval(TRAIN_CAPTIONS, "JOHN WRITE HOMEWORK") == "rec_05"


def test_nearest_caption_retrieval_takes_the_longest_common_gloss_subsequence():
    # "JOHN WRITE BOOK": rec_04 shares 3 glosses in order, rec_05 two.
    assert nearest_caption_retrieval(TRAIN_CAPTIONS, "JOHN WRITE BOOK") == "rec_04"


def test_nearest_caption_retrieval_breaks_ties_by_fewer_extra_glosses_then_name():
    # "MARY WRITE BOOK": rec_02 (MARY WRITE, 1 extra) and rec_04 (WRITE BOOK, 2 extra) share 2: rec_02.
    assert nearest_caption_retrieval(TRAIN_CAPTIONS, "MARY WRITE BOOK") == "rec_02"
    # "WRITE HOMEWORK": rec_02 and rec_05 share 2 with 1 extra each: the first name, rec_02.
    assert nearest_caption_retrieval(TRAIN_CAPTIONS, "WRITE HOMEWORK") == "rec_02"
    # "JOHN WRITE": rec_04 (2 extra) comes first by name, rec_05 (1 extra) first by extra glosses: rec_05.
    assert nearest_caption_retrieval(TRAIN_CAPTIONS, "JOHN WRITE") == "rec_05"


# ---------------------------------------------------------------------------------------------------------------
# Scoring a split
# ---------------------------------------------------------------------------------------------------------------


def toy_split() -> dict[str, np.ndarray]:
    return {f"rec_{index}": wavy_trajectory(seed=index) for index in range(3)}


def test_score_split_of_perfect_predictions():
    real = toy_split()
    scores = score_split({name: as_prediction(trajectory) for name, trajectory in real.items()}, real)
    assert scores == TrajectoryScores(dtw_mje=0.0, motion_ratio=pytest.approx(1.0), top1=1.0, top5=None, detection_rate=1.0, num_clips=3)


def test_score_split_of_swapped_predictions_retrieves_nothing():
    real = toy_split()
    names = sorted(real)
    rotated = {name: as_prediction(real[names[(index + 1) % 3]]) for index, name in enumerate(names)}
    scores = score_split(rotated, real)
    assert scores.top1 == 0.0
    expected_dtw = np.mean([dtw_mje(real[names[(index + 1) % 3]], real[name]) for index, name in enumerate(names)])
    assert scores.dtw_mje == pytest.approx(expected_dtw)


def test_score_split_motion_ratio_is_a_ratio_of_sums_and_detection_counts_joint_frames():
    # Real path lengths 0.1 and 0.3 (left hand only); generated 0.2 and 0 (second: no hand found, so collapsed
    # on the head). Ratio of sums (0.2 + 0) / (0.1 + 0.3) = 0.5, where a mean of ratios would give 1.0.
    real = {"a": trajectory_from_hands(left_x=[0.0, 0.1]), "b": trajectory_from_hands(left_x=[0.0, 0.3])}
    generated_a = trajectory_from_hands(left_x=[0.0, 0.2])
    found_b = np.array([[False, False, True], [False, False, True]])
    predicted = {"a": Prediction(generated_a, np.ones((2, 3), dtype=bool)), "b": Prediction(np.full((2, 3, 2), 0.5), found_b)}
    scores = score_split(predicted, real)
    assert scores.motion_ratio == pytest.approx(0.5)
    assert scores.detection_rate == pytest.approx(8 / 12)
    assert scores.num_clips == 2


def test_score_split_reports_top5_only_with_more_than_five_recordings():
    real = {f"rec_{index}": wavy_trajectory(seed=index) for index in range(6)}
    scores = score_split({name: as_prediction(trajectory) for name, trajectory in real.items()}, real)
    assert scores.top5 == 1.0
    assert set(scores.to_json()) == {"dtw_mje", "motion_ratio", "top1", "top5", "detection_rate"}


def test_nearest_training_distance_is_zero_for_a_replay_and_the_closest_offset_otherwise():
    # Right hands all on the head; left hands held still at x 0.0 and 0.4 (training) and 0.1 (a prediction):
    # frame cost = mean over the two hands = (|0.1 - 0.0| + 0) / 2 = 0.05 to the first, 0.15 to the second.
    train = [trajectory_from_hands(left_x=[0.0, 0.0, 0.0]), trajectory_from_hands(left_x=[0.4, 0.4, 0.4])]
    offset = trajectory_from_hands(left_x=[0.1, 0.1, 0.1])
    assert nearest_training_dtw_mje(train[1], train) == 0.0
    assert nearest_training_dtw_mje(offset, train) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="at least one"):
        nearest_training_dtw_mje(offset, [])
    real = {"a": trajectory_from_hands(left_x=[0.0, 0.2, 0.0]), "b": trajectory_from_hands(left_x=[0.3, 0.1, 0.3])}
    scores = score_split({"a": as_prediction(train[1]), "b": as_prediction(offset)}, real, train=train)
    assert scores.nearest_training_dtw_mje == pytest.approx((0.0 + 0.05) / 2)
    assert scores.to_json()["nearest_training_dtw_mje"] == pytest.approx(0.025)
    assert score_split({"a": as_prediction(train[1]), "b": as_prediction(offset)}, real).nearest_training_dtw_mje is None


def test_score_split_refuses_mismatched_names():
    real = toy_split()
    with pytest.raises(ValueError, match="same clips"):
        score_split({"rec_0": as_prediction(real["rec_0"]), "other": as_prediction(real["rec_1"])}, real)


def test_medoid_index_keeps_the_candidate_the_others_agree_with():
    rng = np.random.default_rng(0)
    centre = rng.uniform(0.3, 0.7, size=(8, 3, 2))
    near = [centre + rng.normal(0, 0.01, size=centre.shape) for _ in range(3)]
    outlier = centre.copy()
    outlier[:, :2] += 0.3  # hands far from the others' (the metric reads hands relative to the head)
    assert medoid_index(np.stack([outlier, near[0], centre, near[1], near[2]])) == 2  # the centre, not the first or the outlier
    assert medoid_index(np.stack([outlier, centre])) == 0  # two candidates tie: the lower index
    assert medoid_index(centre[None]) == 0
    with pytest.raises(ValueError, match="candidate trajectories"):
        medoid_index(np.zeros((0, 8, 3, 2)))
