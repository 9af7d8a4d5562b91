"""Scoring generated signing by where the hands went: DTW mean joint error, motion ratio, retrieval, baselines.

A trajectory is float (f, 3, 2): per frame, per joint in JOINTS order, (x, y) in frame widths (x / width,
y / height; (0, 0) top-left). Every metric looks at the two hands relative to the head, so a figure drawn a
little off-centre is not punished for it, while arms that do not move are.

- `dtw_mje`: dynamic-time-warped mean Euclidean error of both hands (Huang et al. 2021 and the SLRTP 2025
  text-to-pose challenge score generated poses this way): a sign made a few frames early or late costs little,
  a wrong movement costs its distance.
- `motion_ratio`: total hand path length generated / real. 1 is right; near 0 is motion collapse (a model that
  draws the resting pose), which DTW-MJE alone can rate mildly because rest is where real signing starts and ends.
- `retrieval_ranks`: does prediction i lie closer (by DTW-MJE) to real recording i than to the split's others?
- `nearest_training_dtw_mje`: how far a prediction lies from the closest training recording. The field's known
  failure is a generator that replays training material; the real test recordings' own distance (the
  ground-truth row) says how far a genuine new performance lies, so a model far below it is replaying.
- Baselines that need no model: the mean training trajectory, a random training recording, and the training
  recording whose gloss sentence is closest to the test caption.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, NamedTuple, Sequence

import numpy as np
import torch

from text2sign.data.tracks import HEAD_INDEX, JOINTS, NOSE_POSITION, check_trajectory
from text2sign.evaluation.metrics import _ranks_of_targets
from text2sign.evaluation.results import EvaluationResult, in_json_when_set, not_in_json

NUM_HANDS = 2  # JOINTS[:2] are the hands
assert JOINTS[:NUM_HANDS] == ("left_hand", "right_hand") and HEAD_INDEX == NUM_HANDS

# Where the head goes when the extractor never found it in a clip: where normalised trajectories put the
# resting nose. Only somewhere to collapse the hands to (see `fill_missing`); scores are relative to the head.
DEFAULT_MISSING_HEAD_POSITION = NOSE_POSITION

# Top-k accuracy is 1 by construction when k >= the number of test recordings; such a k is reported as None.
TOP_K = (1, 5)


class Prediction(NamedTuple):
    """A trajectory read back from a video, and which joints were found in which frames."""

    positions: np.ndarray  # (f, 3, 2) frame widths
    found: np.ndarray  # (f, 3) bool


@dataclass(frozen=True)
class TrajectoryScores(EvaluationResult):
    """One method on one split. top5 is None when the split has 5 or fewer recordings (it would be 1 trivially).
    `to_json()` gives the five numbers of docs/generalisation.json, and nearest_training_dtw_mje where computed."""

    dtw_mje: float  # mean over clips of DTW-MJE(prediction i, real i), frame widths; lower is better
    motion_ratio: float  # summed hand path length of the predictions / of the real recordings; 1 is right
    top1: float  # fraction of predictions whose own real recording is the nearest by DTW-MJE
    top5: float | None
    detection_rate: float  # fraction of (frame, joint) cells the extractor found; 1 for trajectories given directly
    num_clips: int = field(metadata={"json": False})  # reported once per split, not per method
    nearest_training_dtw_mje: float | None = in_json_when_set()  # mean over clips of DTW-MJE to the closest training recording
    clip_errors: dict[str, float] | None = not_in_json()  # name -> that clip's DTW-MJE, what dtw_mje averages


# --------------------------------------------------------------------------------------------------------------
# Checks and the hands-relative-to-head view
# --------------------------------------------------------------------------------------------------------------


def hands_relative_to_head(trajectory) -> np.ndarray:
    """(f, 2, 2): left and right hand minus the head, per frame, in frame widths."""
    trajectory = check_trajectory(trajectory)
    return trajectory[:, :NUM_HANDS] - trajectory[:, HEAD_INDEX:HEAD_INDEX + 1]  # (f, 2, 2)


def frame_costs(generated, real) -> np.ndarray:
    """(f, g): mean over the two hands of the Euclidean distance between generated frame i and real frame j."""
    generated_hands = hands_relative_to_head(check_trajectory(generated, "generated"))  # (f, 2, 2)
    real_hands = hands_relative_to_head(check_trajectory(real, "real"))  # (g, 2, 2)
    differences = generated_hands[:, None] - real_hands[None]  # (f, g, 2, 2)
    return np.linalg.norm(differences, axis=-1).mean(axis=-1)  # (f, g)


# --------------------------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------------------------


# The primary metric's Sakoe-Chiba band, as a fraction of the longer clip: a gloss lasts a median of 10 frames of
# a mean 79-frame recording (12.7%), so a band of 1/8 forgives a sign made up to about one gloss early or late and
# nothing more; playing a recording backwards needs warps up to its whole length, which the band refuses. At the
# benchmark's 24 frames it is 3 frames either side of the diagonal. Unbanded DTW forgives any warp: there the
# reversed real recording scores level with retrieval.
PRIMARY_BAND_FRACTION = 0.125
PRIMARY_METRIC = "banded_dtw_mje"


def band_window(num_generated: int, num_real: int, band_fraction: float | None) -> int | None:
    """Frames either side of the diagonal a banded path may stray: round(fraction x longer length), at least 1;
    None (no band) when band_fraction is None."""
    if band_fraction is None:
        return None
    if not 0 < band_fraction <= 1:
        raise ValueError(f"band_fraction must be in (0, 1] (a fraction of the clip length) or None, got {band_fraction}")
    return max(1, round(band_fraction * max(num_generated, num_real)))


def dtw_mje_of_costs(costs, band_fraction: float | None = None) -> np.ndarray:
    """(b, f, g) frame costs -> (b,) DTW mean joint errors; see `dtw_mje`. Vectorised over the b pairs."""
    costs = np.asarray(costs, dtype=np.float64)
    batch, num_generated, num_real = costs.shape
    window = band_window(num_generated, num_real, band_fraction)
    # The band follows the diagonal from (0, 0) to (f-1, g-1), so clips of different lengths keep both corners.
    slope = (num_real - 1) / (num_generated - 1) if num_generated > 1 else 0.0
    # One row and column of padding: infinite cost outside the grid (and the band), 0 before the start.
    accumulated = np.full((batch, num_generated + 1, num_real + 1), np.inf)
    accumulated[:, 0, 0] = 0.0
    path_length = np.zeros((batch, num_generated + 1, num_real + 1), dtype=np.int64)
    for i in range(1, num_generated + 1):
        centre = (i - 1) * slope
        low, high = (1, num_real) if window is None else (max(1, int(np.ceil(centre - window)) + 1), min(num_real, int(np.floor(centre + window)) + 1))
        for j in range(low, high + 1):
            # Order = tie-break order: diagonal, then (1, 0) (advance the generated clip), then (0, 1).
            predecessors = np.stack([accumulated[:, i - 1, j - 1], accumulated[:, i - 1, j], accumulated[:, i, j - 1]], axis=1)  # (b, 3)
            best = predecessors.argmin(axis=1)  # (b,) argmin takes the first of equal values
            lengths = np.stack([path_length[:, i - 1, j - 1], path_length[:, i - 1, j], path_length[:, i, j - 1]], axis=1)  # (b, 3)
            accumulated[:, i, j] = costs[:, i - 1, j - 1] + predecessors[np.arange(batch), best]
            path_length[:, i, j] = lengths[np.arange(batch), best] + 1
    if not np.isfinite(accumulated[:, -1, -1]).all():
        raise ValueError(f"a band of {band_fraction} leaves no path between clips of {num_generated} and {num_real} frames; "
                         "resample them to closer lengths or widen the band")
    return accumulated[:, -1, -1] / path_length[:, -1, -1]


def dtw_mje_many(generated, real, band_fraction: float | None = None) -> np.ndarray:
    """(b, f, 3, 2) and (b, g, 3, 2) -> (b,): dtw_mje of each pair (generated[k], real[k])."""
    generated, real = np.asarray(generated, dtype=np.float64), np.asarray(real, dtype=np.float64)
    if generated.ndim != 4 or real.ndim != 4 or generated.shape[0] != real.shape[0]:
        raise ValueError(f"pass (b, f, 3, 2) and (b, g, 3, 2) with the same b, got {generated.shape} and {real.shape}")
    if generated.shape[0] == 0:
        return np.zeros(0)
    costs = np.stack([frame_costs(one, other) for one, other in zip(generated, real)])  # (b, f, g)
    return dtw_mje_of_costs(costs, band_fraction)


def dtw_mje_matrix(generated, real, band_fraction: float | None = None) -> np.ndarray:
    """(n, f, 3, 2) and (m, g, 3, 2) -> (n, m): dtw_mje of every pair (generated[i], real[j])."""
    generated, real = np.asarray(generated), np.asarray(real)
    pairs = dtw_mje_many(np.repeat(generated, len(real), axis=0), np.tile(real, (len(generated), 1, 1, 1)), band_fraction)  # (n * m,)
    return pairs.reshape(len(generated), len(real))


def medoid_index(candidates, band_fraction: float | None = None) -> int:
    """(k, f, 3, 2) trajectories generated for one caption -> the index of the one with the least summed dtw_mje to the
    others: minimum-Bayes-risk selection (Kumar & Byrne 2004) with the metric as the loss, each candidate weighing the
    others as equally likely outcomes. It picks the sample most of the model's own samples agree with, using no
    reference; ties go to the lower index."""
    candidates = np.asarray(candidates, dtype=np.float64)
    if candidates.ndim != 4 or len(candidates) == 0:
        raise ValueError(f"pass (k, f, 3, 2) candidate trajectories with k >= 1, got {candidates.shape}")
    return int(np.argmin(dtw_mje_matrix(candidates, candidates, band_fraction).sum(axis=1)))  # (k, k) summed over the others


def dtw_mje(generated, real, band_fraction: float | None = None) -> float:
    """DTW mean joint error between a generated (f, 3, 2) and a real (g, 3, 2) trajectory, in frame widths.

    Classic DTW (Sakoe & Chiba 1978, symmetric steps without weights): a path runs from (0, 0) to (f-1, g-1)
    with steps (1, 1), (1, 0), (0, 1), and minimises the accumulated frame cost
        D(i, j) = cost(i, j) + min(D(i-1, j-1), D(i-1, j), D(i, j-1)).
    The score is D(f-1, g-1) divided by the number of cells on that path, so it reads as an average distance
    per matched frame pair and does not grow with clip length. Among predecessors of equal accumulated cost the
    diagonal is taken first, then (1, 0), then (0, 1), so the result is deterministic. O(f * g) time.
    With band_fraction (Sakoe & Chiba's adjustment window), the path keeps within band_window frames of the
    diagonal, so a warp that reorders the clip (a recording played backwards) cannot be forgiven.
    """
    return float(dtw_mje_of_costs(frame_costs(generated, real)[None], band_fraction)[0])


def hand_path_length(trajectory) -> float:
    """Total distance both hands travel relative to the head, summed over frames, in frame widths."""
    hands = hands_relative_to_head(trajectory)  # (f, 2, 2)
    return float(np.linalg.norm(np.diff(hands, axis=0), axis=-1).sum())


def motion_ratio(generated, real) -> float:
    """hand_path_length(generated) / hand_path_length(real): 1 is right, 0 a motionless prediction."""
    real_length = hand_path_length(real)
    if real_length == 0:
        raise ValueError("the real trajectory's hands never move relative to the head; motion ratio is undefined for it")
    return hand_path_length(generated) / real_length


def retrieval_ranks(distances) -> np.ndarray:
    """1-based rank of real recording i among all real recordings for prediction i, ties counted against it.

    distances: (n, n), distances[i, j] = distance of prediction i to real recording j; the right answer is the
    diagonal. rank_i = #{j : distances[i, j] <= distances[i, i]}, so a method whose predictions are all alike, or
    equally far from everything, gets the worst rank, not the best (as `metrics.retrieval_accuracy`).
    """
    distances = np.asarray(distances, dtype=np.float64)
    if distances.ndim != 2 or distances.shape[0] != distances.shape[1] or distances.shape[0] < 2:
        raise ValueError(f"distances must be a square (n, n) matrix with n >= 2, got shape {distances.shape}")
    # The ranking rule (pessimistic ties) is metrics.py's, shared so the two retrieval scores cannot drift apart.
    return _ranks_of_targets(torch.from_numpy(distances), torch.arange(distances.shape[0])).numpy()  # (n,)


def top_k_accuracy(ranks: np.ndarray, k: int) -> float | None:
    """Fraction of ranks <= k; None when k >= the number of candidates (every rank would count)."""
    ranks = np.asarray(ranks)
    return float((ranks <= k).mean()) if k < len(ranks) else None


# --------------------------------------------------------------------------------------------------------------
# Extracted trajectories with gaps
# --------------------------------------------------------------------------------------------------------------


def fill_missing(positions, found, missing_head_position: tuple[float, float] = DEFAULT_MISSING_HEAD_POSITION) -> np.ndarray:
    """Complete an extracted trajectory (f, 3, 2) where `found` (f, 3) is False.

    - A joint found in some frames: linear interpolation over frame index between found frames; before the first
      and after the last found frame it holds the nearest found position.
    - A hand never found in the clip: placed on the head in every frame. A video that draws no hands then has no
      hand motion at all (motion ratio 0) and its DTW-MJE is the real hands' distance from the head: a model that
      draws nothing scores badly instead of being excused for the frames it left out.
    - A head never found: `missing_head_position` in every frame (and the hands follow the rules above).
    Values in frames where a joint was not found are ignored, NaN included.
    """
    positions = np.asarray(positions, dtype=np.float64)
    found = np.asarray(found, dtype=bool)
    if positions.ndim != 3 or positions.shape[1:] != (len(JOINTS), 2) or found.shape != positions.shape[:2]:
        raise ValueError(f"positions must be (f, 3, 2) and found (f, 3), got {positions.shape} and {found.shape}")
    if not np.isfinite(positions[found]).all():
        raise ValueError("positions has non-finite values in frames marked found")
    frames = np.arange(positions.shape[0])
    filled = np.empty_like(positions)  # (f, 3, 2)
    joint_order = [HEAD_INDEX] + [joint for joint in range(len(JOINTS)) if joint != HEAD_INDEX]  # the head first: hands may need it
    for joint in joint_order:
        found_frames = frames[found[:, joint]]
        if len(found_frames) == 0:
            filled[:, joint] = missing_head_position if joint == HEAD_INDEX else filled[:, HEAD_INDEX]
            continue
        for axis in range(2):
            filled[:, joint, axis] = np.interp(frames, found_frames, positions[found_frames, joint, axis])
    return filled


# --------------------------------------------------------------------------------------------------------------
# Baselines
# --------------------------------------------------------------------------------------------------------------


def mean_training_trajectory(train_trajectories: Sequence[np.ndarray]) -> np.ndarray:
    """(f, 3, 2): the frame-by-frame mean of the training trajectories (all resampled to the same f)."""
    if len(train_trajectories) == 0:
        raise ValueError("mean_training_trajectory needs at least one training trajectory")
    arrays = [check_trajectory(trajectory, "training trajectory") for trajectory in train_trajectories]
    if len({array.shape for array in arrays}) != 1:
        raise ValueError(f"training trajectories differ in shape {sorted({array.shape for array in arrays})}; resample them to one frame count")
    return np.mean(np.stack(arrays), axis=0)  # (f, 3, 2)


def random_training_recording(train_names: Sequence[str], test_names: Sequence[str], seed: int = 0) -> dict[str, str]:
    """Each test name -> a training name drawn uniformly (with replacement) by a seeded generator.

    Both lists are sorted first, so the draw depends only on the names and the seed, not on file order.
    """
    if len(train_names) == 0:
        raise ValueError("random_training_recording needs at least one training recording")
    generator = np.random.default_rng(seed)
    train_sorted = sorted(train_names)
    picks = generator.integers(0, len(train_sorted), size=len(test_names))
    return {test_name: train_sorted[pick] for test_name, pick in zip(sorted(test_names), picks)}


def longest_common_subsequence(first: Sequence[str], second: Sequence[str]) -> int:
    """Length of the longest common subsequence (glosses in the same order, gaps allowed)."""
    lengths = np.zeros((len(first) + 1, len(second) + 1), dtype=np.int64)
    for i, first_item in enumerate(first, start=1):
        for j, second_item in enumerate(second, start=1):
            lengths[i, j] = lengths[i - 1, j - 1] + 1 if first_item == second_item else max(lengths[i - 1, j], lengths[i, j - 1])
    return int(lengths[-1, -1])


def nearest_caption_retrieval(train_captions: Mapping[str, str], test_caption: str) -> str:
    """The training recording (name) whose gloss sentence is closest to `test_caption`.

    Closest = most glosses shared in order (longest common subsequence of the space-separated glosses), ties
    broken by fewer training glosses left unmatched, then by name. The same sentence, where it was trained on,
    is the unique best on the first two keys (all test glosses matched, none extra), so it always wins, and
    among several recordings of it the first by name.
    """
    if not train_captions:
        raise ValueError("nearest_caption_retrieval needs at least one training caption")
    test_glosses = test_caption.split()

    def ranking_key(name: str) -> tuple[int, int, str]:
        train_glosses = train_captions[name].split()
        common = longest_common_subsequence(test_glosses, train_glosses)
        return (-common, len(train_glosses) - common, name)

    return min(train_captions, key=ranking_key)


# --------------------------------------------------------------------------------------------------------------
# One split, one method
# --------------------------------------------------------------------------------------------------------------


def as_prediction(trajectory) -> Prediction:
    """A trajectory given directly (a baseline) as a Prediction with every joint found."""
    trajectory = check_trajectory(trajectory)
    return Prediction(trajectory, np.ones(trajectory.shape[:2], dtype=bool))


def nearest_training_dtw_mje(trajectory, train_trajectories: Sequence[np.ndarray]) -> float:
    """DTW-MJE from one (filled) trajectory to the training recording closest to it: 0 for a replayed recording."""
    if len(train_trajectories) == 0:
        raise ValueError("nearest_training_dtw_mje needs at least one training trajectory")
    return min(dtw_mje(trajectory, reference) for reference in train_trajectories)


def score_split(predicted: Mapping[str, Prediction | tuple], real: Mapping[str, np.ndarray],
                train: Sequence[np.ndarray] | None = None) -> TrajectoryScores:
    """Score one method's predictions against the real recordings of one split (the same names in both).

    Missing joints are filled by `fill_missing`. dtw_mje is the mean over clips; motion_ratio is the ratio of
    summed path lengths (sum of generated / sum of real), so short or nearly still recordings cannot blow it up
    as a mean of per-clip ratios would; retrieval ranks prediction i against every real recording of the split.
    With `train` (the training trajectories), nearest_training_dtw_mje is filled in too.
    """
    if set(predicted) != set(real):
        raise ValueError(f"predictions and real recordings must name the same clips; only predicted: "
                         f"{sorted(set(predicted) - set(real))[:5]}, only real: {sorted(set(real) - set(predicted))[:5]}")
    names = sorted(real)
    if len(names) < 2:
        raise ValueError(f"score_split needs at least 2 recordings (retrieval ranks among them), got {len(names)}")
    filled = [fill_missing(*predicted[name]) for name in names]
    reals = [check_trajectory(real[name], f"real trajectory {name}") for name in names]
    distances = np.array([[dtw_mje(prediction, reference) for reference in reals] for prediction in filled])  # (n, n)
    ranks = retrieval_ranks(distances)
    real_motion = sum(hand_path_length(reference) for reference in reals)
    if real_motion == 0:
        raise ValueError("no real recording in the split moves its hands; motion ratio is undefined")
    found = np.concatenate([np.asarray(predicted[name][1], dtype=bool).reshape(-1) for name in names])
    top1, top5 = (top_k_accuracy(ranks, k) for k in TOP_K)
    return TrajectoryScores(
        dtw_mje=float(np.mean(np.diagonal(distances))), clip_errors=dict(zip(names, np.diagonal(distances).tolist())),
        motion_ratio=sum(hand_path_length(prediction) for prediction in filled) / real_motion,
        top1=top1, top5=top5, detection_rate=float(found.mean()), num_clips=len(names),
        nearest_training_dtw_mje=None if train is None else float(np.mean([nearest_training_dtw_mje(prediction, train) for prediction in filled])),
    )
