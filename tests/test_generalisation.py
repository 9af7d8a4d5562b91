"""The benchmark's scoring: the paired bootstrap, a fold's model outputs on disk, the results' shape."""

from __future__ import annotations

import numpy as np
import pytest

from text2sign.evaluation.generalisation import ModelFold, ablation_effects, budget_differences, paired_bootstrap, read_model_fold, write_model_fold


def test_paired_bootstrap_of_a_constant_difference_is_that_difference_exactly():
    model = np.array([0.1, 0.2, 0.3, 0.4])
    difference, interval = paired_bootstrap(model, model + 0.05, num_resamples=500)
    assert difference == pytest.approx(-0.05) and interval == pytest.approx((-0.05, -0.05))


def test_paired_bootstrap_interval_covers_the_mean_and_narrows_with_more_pairs():
    rng = np.random.default_rng(0)
    widths = []
    for count in (10, 200):
        first = rng.normal(0, 1, count)
        second = first + rng.normal(0.5, 0.2, count)  # paired: the shared part cancels
        difference, (low, high) = paired_bootstrap(first, second, num_resamples=2000)
        assert low < difference < high and high < 0  # first is lower in every pair's expectation
        widths.append(high - low)
    assert widths[1] < widths[0] / 2
    with pytest.raises(ValueError, match="equal-length"):
        paired_bootstrap([1.0, 2.0], [1.0])


def test_model_fold_round_trips_and_is_absent_until_complete(tmp_path):
    assert read_model_fold(tmp_path / "fold_0") is None
    positions = {"a_0001": np.full((4, 3, 2), 0.5, dtype=np.float32)}
    found = {"a_0001": np.ones((4, 3), dtype=bool)}
    videos = {"a_0001": np.zeros((4, 8, 8, 3), dtype=np.uint8)}
    written = ModelFold(0, positions, found, videos, steps=2, training_minutes=0.1, budget_minutes=1.0, max_steps=2, sampling_steps=2,
                        guidance=2.0, seed=0, num_frames=4, text_encoder="lstm", normalisation="signer", checkpoint="x",
                        generation_seconds_per_clip=0.1, wall_minutes=0.2)
    write_model_fold(tmp_path / "fold_0", written)
    read = read_model_fold(tmp_path / "fold_0")
    assert read.settings() == written.settings()
    np.testing.assert_array_equal(read.positions["a_0001"], positions["a_0001"])
    np.testing.assert_array_equal(read.found["a_0001"], found["a_0001"])


def test_a_lever_is_measured_against_the_row_it_names_with_that_lever_off():
    """Gloss tokens need the lstm, so their row is compared with an lstm-words row, not the all-off baseline."""
    def row(name, errors, compared_with=None):
        return {"name": name, "compared_with": compared_with, "new_sentence": {"per_recording": dict(zip("abcd", errors))}}
    rows = [row("baseline", [0.30, 0.30, 0.30, 0.30]), row("lstm_words", [0.20, 0.21, 0.22, 0.23]),
            row("lstm_glosses", [0.10, 0.11, 0.12, 0.13], compared_with="lstm_words"), row("sign_track", [0.40, 0.41, 0.42, 0.43]),
            row("orphan", [0.1, 0.1, 0.1, 0.1], compared_with="not_run")]
    effects = ablation_effects(rows, num_resamples=200)
    assert effects["lstm_glosses"]["compared_with"] == "lstm_words" and effects["lstm_glosses"]["difference"] == pytest.approx(-0.10)
    assert effects["lstm_glosses"]["verdict"] == "helped"
    assert effects["lstm_words"]["compared_with"] == "baseline" and effects["sign_track"]["verdict"] == "hurt"
    assert "orphan" not in effects and "baseline" not in effects  # no row to compare with: no effect is invented


def test_a_lever_row_of_another_budget_gets_no_effect_against_its_lever_off_row():
    def row(name, max_steps, compared_with=None):
        return {"name": name, "compared_with": compared_with, "settings": {"max_steps": max_steps, "image_size": 16},
                "new_sentence": {"per_recording": dict(zip("abcd", [0.1, 0.2, 0.3, 0.4]))}}
    rows = [row("baseline", 400), row("longer", 1200), row("longer_medoid", 1200, compared_with="longer")]
    effects = ablation_effects(rows, num_resamples=200)
    assert "longer" not in effects  # 1200 steps against 400: the difference would be the budget's, not a lever's
    assert effects["longer_medoid"]["compared_with"] == "longer" and effects["longer_medoid"]["difference"] == pytest.approx(0.0)
    assert budget_differences(rows[1], rows[0]) == {"max_steps": (1200, 400)}
