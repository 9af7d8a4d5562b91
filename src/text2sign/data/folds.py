"""The generalisation benchmark's protocol over tracks recordings: the frame count, k folds over sentences, and a
validation split carved from each fold's training recordings.

Frame count (`gloss_coverage`, `choose_num_frames`): a recording resampled to f frames samples each gloss at the
resampled times that fall inside its [startframe, endframe]; a gloss with fewer than 2 samples is at most one
hand position, not a movement. The benchmark takes the smallest count tried at which at least
MIN_COVERED_FRACTION of the glosses get 2 or more samples.

Folds (`sentence_folds`), by stable hashes only, so they do not depend on the CSV row order:
  - seen_sentence: for each sentence recorded 2+ times, the recording whose name hashes lowest; these are dealt to
    the folds in hash order, round robin. The sentence stays in that fold's training through its other recordings.
  - new_sentence: single-recording sentences in the hash order of their sentence, each put in the fold with the
    fewest so far (ties: the lower index) where, once it and the fold's other held-out recordings leave training,
    every one of its glosses still occurs in a training recording; a sentence that fits no fold is not held out
    (`Folds.ineligible`) and always trains. Every eligible sentence is held out exactly once.
  - validation: carved from each fold's training recordings (never a test recording): recordings whose sentence
    occurs once in that fold's training, in name-hash order, kept while their glosses stay covered by the rest,
    up to VALIDATION_COUNT. Settings (the stitching variant, any retuning) are chosen on it and nothing else.
  - train: everything the fold does not hold out (validation included: a setting chosen on validation is then
    applied with the whole training set). `Fold.as_validation` is the fold a setting is chosen on: `fit` trains,
    the validation recordings are its new sentences.
`folds_against` makes the one fold of separate train and test folders.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from text2sign.data.split import hash_fraction
from text2sign.data.tracks import Recording, check_unique_names

MIN_COVERED_FRACTION = 0.85  # the rule: at least 85% of glosses sampled twice or more
FRAME_COUNTS_TRIED = (12, 16, 20, 24, 28, 32)
NUM_FOLDS = 5  # folds of ~15 new sentences: about 73 of the 93 single-recording sentences are eligible
VALIDATION_COUNT = 12  # per fold; new-sentence-like recordings, where the stitching variants differ


# ----------------------------------------------------------------------------------------------------------
# Frames
# ----------------------------------------------------------------------------------------------------------


def gloss_samples(recording: Recording, num_frames: int) -> list[int]:
    """Per gloss of the recording, how many of num_frames uniformly resampled times fall in its rows."""
    if not recording.segments:
        raise ValueError(f"{recording.name} has no gloss frame ranges; load it with load_recordings")
    times = np.linspace(0.0, len(recording.positions) - 1, num_frames)  # (num_frames,) in source rows
    return [int(((times >= start) & (times <= end)).sum()) for _, start, end in recording.segments]


@dataclass(frozen=True)
class Coverage:
    num_frames: int
    num_glosses: int
    none: float  # fraction of glosses with no sample
    one: float  # exactly one
    two_or_more: float  # what the rule asks of MIN_COVERED_FRACTION


def gloss_coverage(recordings: Sequence[Recording], num_frames: int) -> Coverage:
    counts = np.array([count for recording in recordings for count in gloss_samples(recording, num_frames)])
    return Coverage(num_frames, len(counts), float((counts == 0).mean()), float((counts == 1).mean()), float((counts >= 2).mean()))


def choose_num_frames(recordings: Sequence[Recording], candidates: Sequence[int] = FRAME_COUNTS_TRIED) -> tuple[int, list[Coverage]]:
    """(the smallest candidate covering MIN_COVERED_FRACTION of glosses twice, the coverage of every candidate)."""
    table = [gloss_coverage(recordings, count) for count in sorted(candidates)]
    passing = [row.num_frames for row in table if row.two_or_more >= MIN_COVERED_FRACTION]
    if not passing:
        raise ValueError(f"no frame count in {sorted(candidates)} samples {MIN_COVERED_FRACTION:.0%} of glosses twice "
                         f"(best {table[-1].two_or_more:.0%} at {table[-1].num_frames}); try larger counts")
    return passing[0], table


# ----------------------------------------------------------------------------------------------------------
# Folds
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fold:
    index: int
    train: list[str]  # sorted; everything not held out, validation included
    validation: list[str]  # sorted; a subset of train, for choosing settings
    seen_sentence: list[str]
    new_sentence: list[str]

    @property
    def fit(self) -> list[str]:
        """train without validation: what a setting is fitted on before it is scored on validation."""
        held = set(self.validation)
        return [name for name in self.train if name not in held]

    @property
    def test(self) -> list[str]:
        return sorted(self.seen_sentence + self.new_sentence)

    def as_validation(self) -> "Fold":
        """The fold a model's settings are chosen on: trained on `fit`, its validation recordings held out as new
        sentences (their sentences occur once in training, so none is trained), nothing carved from it again."""
        return Fold(self.index, self.fit, [], [], list(self.validation))


@dataclass(frozen=True)
class Folds:
    folds: list[Fold]
    ineligible: list[str]  # single-recording sentences no fold could hold out with their glosses covered


def _covered_after(counts: Counter, glosses: Sequence[str]) -> Counter | None:
    """counts minus glosses when every one of them still occurs, else None."""
    remaining = counts - Counter(glosses)  # Counter subtraction drops counts that reach 0
    return remaining if all(remaining[gloss] > 0 for gloss in glosses) else None


def carve_validation(train: Sequence[Recording], count: int = VALIDATION_COUNT) -> list[str]:
    """Up to `count` training recordings whose sentence occurs once among them, in name-hash order, each kept
    only while every gloss of every one taken still occurs in the rest."""
    sentences = Counter(recording.sentence for recording in train)
    counts = Counter(gloss for recording in train for gloss in recording.glosses)
    taken = []
    for recording in sorted(train, key=lambda item: (hash_fraction("validation:" + item.name), item.name)):
        if len(taken) == count:
            break
        if sentences[recording.sentence] == 1 and (remaining := _covered_after(counts, recording.glosses)) is not None:
            taken.append(recording.name)
            counts = remaining
    return sorted(taken)


def sentence_folds(recordings: Sequence[Recording], num_folds: int = NUM_FOLDS, validation_count: int = VALIDATION_COUNT) -> Folds:
    """k folds over sentences; see the module docstring."""
    if num_folds < 2:
        raise ValueError(f"num_folds must be at least 2, got {num_folds}")
    check_unique_names(recordings)
    by_sentence: dict[str, list[Recording]] = defaultdict(list)
    for recording in recordings:
        by_sentence[recording.sentence].append(recording)
    seen = sorted((min(group, key=lambda item: (hash_fraction(item.name), item.name)) for group in by_sentence.values() if len(group) >= 2),
                  key=lambda item: (hash_fraction(item.name), item.name))
    seen_by_fold = [[recording for position, recording in enumerate(seen) if position % num_folds == fold] for fold in range(num_folds)]
    all_glosses = Counter(gloss for recording in recordings for gloss in recording.glosses)
    counts = [all_glosses - Counter(gloss for recording in group for gloss in recording.glosses) for group in seen_by_fold]
    new_by_fold: list[list[Recording]] = [[] for _ in range(num_folds)]
    ineligible = []
    candidates = sorted((group[0] for group in by_sentence.values() if len(group) == 1),
                        key=lambda item: (hash_fraction(item.sentence), item.sentence))
    for candidate in candidates:
        for fold in sorted(range(num_folds), key=lambda index: (len(new_by_fold[index]), index)):
            remaining = _covered_after(counts[fold], candidate.glosses)
            if remaining is not None:
                new_by_fold[fold].append(candidate)
                counts[fold] = remaining
                break
        else:
            ineligible.append(candidate.name)
    folds = []
    for fold in range(num_folds):
        held = {recording.name for recording in seen_by_fold[fold] + new_by_fold[fold]}
        train = [recording for recording in recordings if recording.name not in held]
        folds.append(Fold(fold, sorted(recording.name for recording in train), carve_validation(train, validation_count),
                          sorted(recording.name for recording in seen_by_fold[fold]), sorted(recording.name for recording in new_by_fold[fold])))
    return Folds(folds, sorted(ineligible))


def folds_against(train_recordings: Sequence[Recording], test_recordings: Sequence[Recording],
                  validation_count: int = VALIDATION_COUNT) -> Folds:
    """One fold for separate folders: every training recording trains (validation carved from them); a test
    recording is seen_sentence if its sentence occurs among the training sentences, else new_sentence."""
    check_unique_names([*train_recordings, *test_recordings])
    sentences = {recording.sentence for recording in train_recordings}
    fold = Fold(0, sorted(recording.name for recording in train_recordings), carve_validation(train_recordings, validation_count),
                sorted(recording.name for recording in test_recordings if recording.sentence in sentences),
                sorted(recording.name for recording in test_recordings if recording.sentence not in sentences))
    return Folds([fold], [])
