"""Gloss stitching: the SLRTP 2025 text-to-pose winner's recipe, with no learning, as a reference for a model.

Replay the training recording when the sentence was trained (nearest-caption retrieval's pick); otherwise
concatenate one recorded segment per gloss, in order, from the training recordings' `words.csv` ranges, with
short linear blends at the joins ("Sign Stitching", Walsh, Saunders and Bowden 2024, smooths the same joins).
Three ways to pick the segments (VARIANTS); which one a benchmark uses is chosen on its validation split only:
  - medoid: per gloss, the instance with the smallest summed DTW-MJE to the gloss's other instances.
  - context: per gloss, the instance whose neighbours in its own sentence match the target's (previous and next
    gloss), ties broken by the smallest jump from the previous segment's last pose, then the medoid's cost.
  - retrieve_edit: the nearest training sentence (retrieval's pick), its motion kept for the glosses it shares
    in order with the target (longest common subsequence) and the medoid spliced in for the others.
Stitching works on a recording's own frames in the benchmark's coordinates (tracks.placed_positions), so segments
of different signers meet in one body; the result is resampled to the benchmark's frame count like any recording.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from text2sign.data.tracks import JOIN_BLEND_FRAMES, Recording, cross_fade, resample_uniformly
from text2sign.evaluation.trajectory import dtw_mje_many, hands_relative_to_head, nearest_caption_retrieval

VARIANTS = ("medoid", "context", "retrieve_edit")
BLEND_FRAMES = JOIN_BLEND_FRAMES  # recorded frames (30 fps, ~0.13 s) cross-faded at each join: a fifth of a median 10-frame gloss
MEDOID_FRAMES = 8  # instances are compared at this many frames when finding the medoid


@dataclass(frozen=True)
class Piece:
    """Rows first..last (inclusive) of one training recording."""

    recording: str
    first: int
    last: int


@dataclass(frozen=True)
class Instance:
    gloss: str
    piece: Piece
    previous: str | None  # the gloss before it in its sentence
    next: str | None


class GlossStitcher:
    """Built from training recordings and their positions (name -> (n, 3, 2) at the recordings' own frames)."""

    def __init__(self, recordings: Sequence[Recording], positions: Mapping[str, np.ndarray]):
        if not recordings:
            raise ValueError("GlossStitcher needs at least one training recording")
        self.recordings = {recording.name: recording for recording in recordings}
        self.positions = {name: np.asarray(positions[name], dtype=np.float64) for name in self.recordings}
        self.captions = {name: recording.sentence for name, recording in self.recordings.items()}
        self.instances: dict[str, list[Instance]] = defaultdict(list)
        for recording in recordings:
            if not recording.segments:
                raise ValueError(f"{recording.name} has no gloss frame ranges; stitching needs words.csv's startframe/endframe")
            glosses = recording.glosses
            for position, (gloss, first, last) in enumerate(recording.segments):
                self.instances[gloss].append(Instance(gloss, Piece(recording.name, first, last),
                                                      glosses[position - 1] if position > 0 else None,
                                                      glosses[position + 1] if position + 1 < len(glosses) else None))
        self.medoid_cost = {gloss: self._medoid_costs(instances) for gloss, instances in self.instances.items()}

    # ---- pieces
    def rows(self, piece: Piece) -> np.ndarray:
        return self.positions[piece.recording][piece.first:piece.last + 1]  # (k, 3, 2)

    def _medoid_costs(self, instances: list[Instance]) -> np.ndarray:
        """(n,) summed DTW-MJE of each instance to the others, all resampled to MEDOID_FRAMES."""
        if len(instances) == 1:
            return np.zeros(1)
        resampled = np.stack([resample_uniformly(self.rows(instance.piece), MEDOID_FRAMES) for instance in instances])  # (n, m, 3, 2)
        first, second = np.triu_indices(len(instances), k=1)
        distances = np.zeros((len(instances), len(instances)))
        distances[first, second] = distances[second, first] = dtw_mje_many(resampled[first], resampled[second])
        return distances.sum(axis=1)

    def medoid(self, gloss: str) -> Instance:
        return self._instances_of(gloss)[int(np.argmin(self.medoid_cost[gloss]))]  # argmin: the first of equal costs

    def _instances_of(self, gloss: str) -> list[Instance]:
        if gloss not in self.instances:
            raise ValueError(f"gloss {gloss!r} has no training segment: stitching composes trained glosses only")
        return self.instances[gloss]

    def _context_choice(self, glosses: Sequence[str], position: int, previous_piece: Piece | None) -> Instance:
        gloss = glosses[position]
        before = glosses[position - 1] if position > 0 else None
        after = glosses[position + 1] if position + 1 < len(glosses) else None
        last_pose = None if previous_piece is None else hands_relative_to_head(self.rows(previous_piece)[-1:])[0]  # (2, 2)

        def key(index: int):
            instance = self._instances_of(gloss)[index]
            context = (instance.previous == before) + (instance.next == after)
            jump = 0.0 if last_pose is None else float(np.linalg.norm(hands_relative_to_head(self.rows(instance.piece)[:1])[0] - last_pose))
            return (-context, jump, self.medoid_cost[gloss][index], index)

        return self._instances_of(gloss)[min(range(len(self._instances_of(gloss))), key=key)]

    def pieces(self, sentence: str, variant: str) -> list[Piece]:
        """The training rows a stitched `sentence` is made of, rest before and after included."""
        if variant not in VARIANTS:
            raise ValueError(f"unknown stitching variant {variant!r}: choose one of {VARIANTS}")
        glosses = sentence.split()
        nearest = nearest_caption_retrieval(self.captions, sentence)
        if self.captions[nearest] == sentence:  # trained: replay it
            return [Piece(nearest, 0, len(self.positions[nearest]) - 1)]
        if variant == "retrieve_edit":
            return self._retrieve_and_edit(glosses, nearest)
        chosen: list[Piece] = []
        for position, gloss in enumerate(glosses):
            instance = self.medoid(gloss) if variant == "medoid" else self._context_choice(glosses, position, chosen[-1] if chosen else None)
            chosen.append(instance.piece)
        return [self._lead_in(chosen[0].recording), *chosen, self._lead_out(chosen[-1].recording)]

    def _lead_in(self, name: str) -> Piece:
        """The rest before the recording's first gloss (at least its first row)."""
        return Piece(name, 0, max(0, self.recordings[name].segments[0][1] - 1))

    def _lead_out(self, name: str) -> Piece:
        """The rest after the recording's last gloss (at least its last row)."""
        count = len(self.positions[name])
        return Piece(name, min(count - 1, self.recordings[name].segments[-1][2] + 1), count - 1)

    def _retrieve_and_edit(self, glosses: Sequence[str], nearest: str) -> list[Piece]:
        recording = self.recordings[nearest]
        matches = common_subsequence_pairs(glosses, recording.glosses)  # target position -> retrieved position
        segments = recording.segments
        pieces = [self._lead_in(nearest)]
        for position, gloss in enumerate(glosses):
            if position not in matches:
                pieces.append(self.medoid(gloss).piece)
                continue
            source = matches[position]
            last = segments[source][2]
            if matches.get(position + 1) == source + 1:  # the next gloss follows in the retrieved recording too: keep the transition
                last = segments[source + 1][1] - 1
            pieces.append(Piece(nearest, segments[source][1], max(segments[source][1], last)))
        pieces.append(self._lead_out(nearest) if matches.get(len(glosses) - 1) == len(segments) - 1 else self._lead_out(pieces[-1].recording))
        return pieces

    # ---- the trajectory
    def stitch(self, pieces: Sequence[Piece]) -> np.ndarray:
        """(n, 3, 2): the pieces in order; consecutive rows of one recording join as they are, other joins
        cross-fade (tracks.cross_fade) over up to BLEND_FRAMES rows."""
        output = self.rows(pieces[0]).copy()
        for previous, piece in zip(pieces, pieces[1:]):
            rows = self.rows(piece)
            if piece.recording == previous.recording and piece.first == previous.last + 1:
                output = np.concatenate([output, rows])
                continue
            output, _ = cross_fade(output, rows, BLEND_FRAMES)
        return output

    def trajectory(self, sentence: str, variant: str, num_frames: int) -> np.ndarray:
        """(num_frames, 3, 2): the stitched sentence resampled over its whole length."""
        return resample_uniformly(self.stitch(self.pieces(sentence, variant)), num_frames)


def common_subsequence_pairs(first: Sequence[str], second: Sequence[str]) -> dict[int, int]:
    """{position in first: position in second} for one longest common subsequence (the earliest in `second`
    where several align equally)."""
    lengths = np.zeros((len(first) + 1, len(second) + 1), dtype=np.int64)
    for i in range(len(first) - 1, -1, -1):
        for j in range(len(second) - 1, -1, -1):
            lengths[i, j] = lengths[i + 1, j + 1] + 1 if first[i] == second[j] else max(lengths[i + 1, j], lengths[i, j + 1])
    pairs, i, j = {}, 0, 0
    while i < len(first) and j < len(second):
        if first[i] == second[j]:
            pairs[i] = j
            i, j = i + 1, j + 1
        elif lengths[i + 1, j] >= lengths[i, j + 1]:
            i += 1
        else:
            j += 1
    return pairs
