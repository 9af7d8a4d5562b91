"""experiments/boston_generalisation.py end to end on toy tracks: train, generate, score, write the docs, re-score."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from test_tracks import write_tracks
from top_level_scripts import load_script

METHODS = {"model", "mean", "random", "retrieval", "ground_truth", "reversed_ground_truth"}
SCORE_KEYS = {"dtw_mje", "motion_ratio", "top1", "top5", "detection_rate", "nearest_training_dtw_mje"}


def signing(seed: int, frames: int = 12) -> list[tuple]:
    """Boston-like pixel positions (left hand, right hand, nose): hands swing around the chest, nose still."""
    rng = np.random.default_rng(seed)
    phase, amplitude = rng.uniform(0, np.pi), rng.uniform(15, 40)
    rows = []
    for step in range(frames):
        swing = amplitude * np.sin(phase + step / 3)
        rows.append((190 + swing, 180 - swing, 130 - swing, 170 + swing / 2, 160, 60))
    return rows


def toy_folders(tmp_path):
    train = write_tracks(tmp_path / "train_tracks", {video: signing(video) for video in (1, 2, 3, 4)}, [
        (1, "woman-1", "JOHN", 0, 5), (1, "woman-1", "GO", 6, 11), (2, "man-1", "JOHN", 0, 5), (2, "man-1", "GO", 6, 11),
        (3, "woman-1", "MARY", 0, 5), (3, "woman-1", "GO", 6, 11), (4, "man-1", "JOHN", 0, 5), (4, "man-1", "WRITE", 6, 11)])
    test = write_tracks(tmp_path / "test_tracks", {video: signing(video) for video in (11, 12, 13, 14)}, [
        (11, "woman-1", "JOHN", 0, 5), (11, "woman-1", "GO", 6, 11), (12, "man-1", "MARY", 0, 5), (12, "man-1", "GO", 6, 11),
        (13, "woman-1", "MARY", 0, 5), (13, "woman-1", "WRITE", 6, 11), (14, "man-1", "GO", 0, 5), (14, "man-1", "JOHN", 6, 11)])
    return train, test


def run_experiment(monkeypatch, *arguments: str) -> int:
    experiment = load_script("experiments/boston_generalisation.py")
    monkeypatch.setattr(sys, "argv", ["boston_generalisation.py", *arguments])
    return experiment.main()


def test_experiment_trains_scores_and_writes_the_issue_json_then_rescores_the_same(tmp_path, monkeypatch):
    train_tracks, test_tracks = toy_folders(tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "generalisation_history.md").write_text("# earlier runs, by hand\n")
    common = ["--train_tracks", str(train_tracks), "--test_tracks", str(test_tracks), "--image_size", "16", "--num_frames", "4",
              "--text_encoder", "lstm", "--sampling_steps", "2", "--mixed_precision", "no", "--batch_size", "2"]
    assert run_experiment(monkeypatch, *common, "--minutes", "5", "--max_steps", "2", "--output_dir", str(tmp_path / "run"),
                          "--docs_dir", str(tmp_path / "docs")) == 0

    results = json.loads((tmp_path / "docs" / "generalisation.json").read_text())
    assert set(results) == {"seen_sentence", "new_sentence", "setup"}
    for split in ("seen_sentence", "new_sentence"):
        assert set(results[split]) == METHODS
        assert all(set(scores) == SCORE_KEYS for scores in results[split].values())
        # the floor: the test recordings themselves, rendered and read back, land near zero; reversed they do not
        assert results[split]["ground_truth"]["dtw_mje"] < 0.02 < results[split]["reversed_ground_truth"]["dtw_mje"]
        assert results[split]["retrieval"]["nearest_training_dtw_mje"] == 0.0  # it replays a training recording
    setup = results["setup"]
    assert (setup["steps"], setup["seen_sentence_recordings"], setup["new_sentence_recordings"]) == (2, 2, 2)
    assert (setup["lr_schedule"], setup["mixed_precision"], setup["batch_size"]) == ("cosine to 0 at step 2", "no", 2)
    page = (tmp_path / "docs" / "generalisation.md").read_text()
    assert "## seen_sentence (2 test recordings)" in page and "within 25% of nearest-caption retrieval" in page
    assert page.count("recording by recording, the model's DTW-MJE is lower than mean on ") == 2  # one per split
    assert (tmp_path / "docs" / "generalisation.png").stat().st_size > 0
    assert "[generalisation_history.md](generalisation_history.md)" in page  # the hand-written record is linked, not overwritten
    assert (tmp_path / "docs" / "generalisation_history.md").read_text() == "# earlier runs, by hand\n"

    # --skip_training scores the saved run again: the same seed gives the same videos, so the same model row
    assert run_experiment(monkeypatch, *common, "--skip_training", str(tmp_path / "run"), "--docs_dir", str(tmp_path / "rescored")) == 0
    rescored = json.loads((tmp_path / "rescored" / "generalisation.json").read_text())
    for split in ("seen_sentence", "new_sentence"):
        assert rescored[split]["model"] == pytest.approx(results[split]["model"])
        assert rescored[split]["retrieval"] == results[split]["retrieval"]
    rescored_page = (tmp_path / "rescored" / "generalisation.md").read_text()
    assert rescored["setup"]["training_minutes"] is None and "without retraining" in rescored_page
    assert rescored["setup"]["lr_schedule"] == "cosine to 0 at step 2"  # the checkpoint's own training, not this call's flags
    assert rescored["setup"]["logged_training_minutes"] > 0 and "min of training by its own run's log" in rescored_page
    assert "generalisation_history.md" not in rescored_page
