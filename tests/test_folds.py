"""The benchmark protocol: gloss coverage and the frame count, k folds over sentences, validation carved from training."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

from test_tracks import REAL_TRACKS, needs_real_tracks
from text2sign.data.folds import choose_num_frames, folds_against, gloss_coverage, gloss_samples, sentence_folds
from text2sign.data.tracks import Recording, load_recordings


def toy(name: str, glosses: str, speaker: str = "woman-1", frames: int = 20) -> Recording:
    """A recording whose glosses split its frames evenly."""
    words = glosses.split()
    bounds = np.linspace(0, frames, len(words) + 1).astype(int)
    segments = tuple((word, int(start), int(end) - 1) for word, start, end in zip(words, bounds[:-1], bounds[1:]))
    return Recording(name, int(name.rsplit("_", 1)[1]), speaker, tuple(words), np.zeros((frames, 3, 2)), segments)


def test_gloss_samples_count_resampled_times_inside_each_range():
    # 11 rows, 3 samples at rows 0, 5, 10: the gloss over rows 0-4 gets one, 5-10 gets two.
    recording = Recording("toy_0001", 1, "man-1", ("A", "B"), np.zeros((11, 3, 2)), (("A", 0, 4), ("B", 5, 10)))
    assert gloss_samples(recording, 3) == [1, 2]
    coverage = gloss_coverage([recording], 3)
    assert (coverage.none, coverage.one, coverage.two_or_more) == (0.0, 0.5, 0.5)


def test_choose_num_frames_takes_the_smallest_count_meeting_the_rule():
    recordings = [toy(f"toy_{index:04d}", "A B C D", frames=40) for index in range(3)]
    # 4 glosses of 10 rows in 40: at 8 frames each gets 2 samples, at 4 only 1.
    chosen, table = choose_num_frames(recordings, candidates=(4, 8, 12))
    assert chosen == 8 and [row.num_frames for row in table] == [4, 8, 12]
    with pytest.raises(ValueError, match="no frame count"):
        choose_num_frames(recordings, candidates=(4,))


def toy_corpus() -> list[Recording]:
    sentences = ["A B", "A B", "B C", "C D", "A D", "D E", "E A", "B E", "C A", "A B C", "E D", "D B", "RARE A", "C E", "B D", "E B"]
    return [toy(f"toy_{index:04d}", sentence, speaker=("man-1", "woman-1")[index % 2]) for index, sentence in enumerate(sentences)]


def check_folds(recordings, folds):
    by_name = {recording.name: recording for recording in recordings}
    single = {recording.name for recording in recordings if Counter(r.sentence for r in recordings)[recording.sentence] == 1}
    held_new = [name for fold in folds.folds for name in fold.new_sentence]
    assert len(held_new) == len(set(held_new))  # each held out at most once
    assert set(held_new) | set(folds.ineligible) == single and not set(held_new) & set(folds.ineligible)  # every eligible one once
    for fold in folds.folds:
        assert not set(fold.train) & set(fold.test) and set(fold.validation) <= set(fold.train)
        assert sorted(fold.train + fold.test) == sorted(by_name)
        training_glosses = {gloss for name in fold.train for gloss in by_name[name].glosses}
        training_sentences = {by_name[name].sentence for name in fold.train}
        assert all(set(by_name[name].glosses) <= training_glosses for name in fold.test)
        assert not any(by_name[name].sentence in training_sentences for name in fold.new_sentence)
        assert all(by_name[name].sentence in training_sentences for name in fold.seen_sentence)
        fit_glosses = {gloss for name in fold.fit for gloss in by_name[name].glosses}
        fit_sentences = {by_name[name].sentence for name in fold.fit}
        assert all(set(by_name[name].glosses) <= fit_glosses and by_name[name].sentence not in fit_sentences for name in fold.validation)


def test_folds_are_disjoint_and_hold_out_every_eligible_sentence_once():
    recordings = toy_corpus()
    folds = sentence_folds(recordings, num_folds=3, validation_count=2)
    check_folds(recordings, folds)
    assert "toy_0012" in folds.ineligible  # RARE occurs nowhere else: it always trains
    assert [name for fold in folds.folds for name in fold.seen_sentence] in (["toy_0000"], ["toy_0001"])
    shuffled = recordings[:]
    random.Random(0).shuffle(shuffled)
    assert sentence_folds(shuffled, num_folds=3, validation_count=2) == folds  # hashes, not row order


def test_folds_against_a_separate_folder_classify_by_sentence_presence():
    train = toy_corpus()
    test = [toy("other_0001", "A B"), toy("other_0002", "B A")]
    (fold,) = folds_against(train, test).folds
    assert (fold.seen_sentence, fold.new_sentence, fold.train) == (["other_0001"], ["other_0002"], sorted(r.name for r in train))


@needs_real_tracks
def test_real_folds_hold_out_73_new_and_all_37_seen_sentences_once():
    recordings = load_recordings(REAL_TRACKS)
    folds = sentence_folds(recordings)
    check_folds(recordings, folds)
    assert sum(len(fold.new_sentence) for fold in folds.folds) == 73 and len(folds.ineligible) == 20
    assert sum(len(fold.seen_sentence) for fold in folds.folds) == 37
    assert choose_num_frames(recordings)[0] == 24


def test_a_folds_validation_view_trains_on_fit_and_holds_out_only_its_validation_recordings():
    recordings = toy_corpus()
    for fold in sentence_folds(recordings, num_folds=3, validation_count=2).folds:
        view = fold.as_validation()
        assert view.index == fold.index and view.train == fold.fit and view.new_sentence == fold.validation
        assert view.seen_sentence == [] and view.validation == [] and view.test == sorted(fold.validation)
        assert not set(view.train) & set(view.test) and not set(view.train) & set(fold.test)  # no test recording trains
        assert not set(view.test) & set(fold.test)  # the held-out recordings stay untouched
