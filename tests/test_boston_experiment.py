"""experiments/boston_generalisation.py end to end on toy tracks: train a fold, score every method, write the docs, skip it on rerun."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from test_tracks import write_tracks
from top_level_scripts import load_script
from text2sign.data.folds import sentence_folds
from text2sign.data.frames import frames_to_video
from text2sign.data.tracks import load_recordings
from text2sign.evaluation.trajectory import nearest_caption_retrieval
from text2sign.video_io import read_gif

METHODS = {"model", "mean", "random", "retrieval", "stitching", "signer_mean", "ground_truth", "reversed_ground_truth"}
SCORE_KEYS = {"primary", "dtw_mje", "motion_ratio", "per_recording", "top1", "detection_rate", "nearest_training_dtw_mje"}


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


# The runs below stop at --max_steps; their --minutes (60) is only a cap a loaded machine cannot reach: at 5 minutes a
# starved test process once stopped after 1 of its 2 steps.


def run_experiment(monkeypatch, *arguments: str) -> int:
    experiment = load_script("experiments/boston_generalisation.py")
    monkeypatch.setattr(sys, "argv", ["boston_generalisation.py", *arguments])
    return experiment.main()


def test_experiment_trains_a_fold_scores_every_method_and_a_rerun_skips_the_complete_fold(tmp_path, monkeypatch):
    train_tracks, test_tracks = toy_folders(tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "generalisation_history.md").write_text("# earlier runs, by hand\n")
    common = ["--train_tracks", str(train_tracks), "--test_tracks", str(test_tracks), "--image_size", "16", "--num_frames", "4",
              "--text_encoder", "lstm", "--sampling_steps", "2", "--mixed_precision", "no", "--batch_size", "2", "--minutes", "60",
              "--max_steps", "2", "--runs_dir", str(tmp_path / "runs"), "--bootstrap_resamples", "200"]
    assert run_experiment(monkeypatch, *common, "--docs_dir", str(tmp_path / "docs")) == 0

    results = json.loads((tmp_path / "docs" / "generalisation.json").read_text())
    assert results["primary_metric"]["name"] == "banded_dtw_mje" and results["primary_metric"]["num_frames"] == 4
    assert results["folds"] == {"0": ["test_0011", "test_0012", "test_0013", "test_0014"]}
    assert results["model_folds"]["complete"] == [0] and results["model_folds"]["runs"]["0"]["steps"] == 2
    for split in ("seen_sentence", "new_sentence"):
        assert set(results[split]) == METHODS | {"model_vs", "num_recordings"}
        for method in METHODS:
            assert SCORE_KEYS <= set(results[split][method])
            assert len(results[split][method]["per_recording"]) == 2
        assert set(results[split]["model_vs"]) == METHODS - {"model"}
        versus = results[split]["model_vs"]["mean"]
        assert {"difference", "ci95", "wins", "n"} <= set(versus) and versus["n"] == 2 and versus["ci95"][0] <= versus["ci95"][1]
        # the floor: the test recordings themselves, rendered and read back, land near zero; reversed they do not
        assert results[split]["ground_truth"]["primary"] < 0.02 < results[split]["reversed_ground_truth"]["primary"]
        assert results[split]["retrieval"]["nearest_training_dtw_mje"] == 0.0  # it replays a training recording
    page = (tmp_path / "docs" / "generalisation.md").read_text()
    assert "## seen_sentence (2 held-out recordings" in page and "| stitching |" in page and "oracle" in page
    model, mean = results["new_sentence"]["model"]["primary"], results["new_sentence"]["mean"]["primary"]
    assert "## Per fold (new_sentence" in page and f"| 0 | 2 | {model:.4f} | {mean:.4f} |" in page  # one fold: its row is the pooled score
    assert (tmp_path / "docs" / "generalisation.png").stat().st_size > 0
    assert "[generalisation_history.md](generalisation_history.md)" in page  # the hand-written record is linked, not overwritten
    assert (tmp_path / "docs" / "generalisation_history.md").read_text() == "# earlier runs, by hand\n"

    # A rerun finds the fold complete: nothing trains, and the model row is the same.
    checkpoints = sorted((tmp_path / "runs" / "fold_0" / "run").glob("step_*"))
    assert run_experiment(monkeypatch, *common, "--docs_dir", str(tmp_path / "rescored")) == 0
    assert sorted((tmp_path / "runs" / "fold_0" / "run").glob("step_*")) == checkpoints
    rescored = json.loads((tmp_path / "rescored" / "generalisation.json").read_text())
    for split in ("seen_sentence", "new_sentence"):
        assert rescored[split]["model"]["primary"] == pytest.approx(results[split]["model"]["primary"])
        assert rescored[split]["model"]["per_recording"] == pytest.approx(results[split]["model"]["per_recording"])


def test_a_test_signer_without_training_recordings_is_an_error_naming_them(tmp_path, monkeypatch):
    train_tracks, _ = toy_folders(tmp_path)
    stranger = write_tracks(tmp_path / "stranger_tracks", {21: signing(21), 22: signing(22)}, [
        (21, "woman-9", "JOHN", 0, 5), (21, "woman-9", "GO", 6, 11), (22, "man-1", "MARY", 0, 5), (22, "man-1", "GO", 6, 11)])
    with pytest.raises(ValueError, match=r"woman-9.*no training recordings"):
        run_experiment(monkeypatch, "--train_tracks", str(train_tracks), "--test_tracks", str(stranger), "--num_frames", "4",
                       "--baselines_only", "--runs_dir", str(tmp_path / "runs"), "--docs_dir", str(tmp_path / "docs"))


def test_lever_ablations_write_their_rows_beside_the_main_table(tmp_path, monkeypatch):
    """The levers of issue 19 through the experiment: gloss tokens, the timed sign track, the signer (given at sampling) and
    composition augmentation."""
    train_tracks, test_tracks = toy_folders(tmp_path)
    docs = tmp_path / "docs"
    common = ["--train_tracks", str(train_tracks), "--test_tracks", str(test_tracks), "--image_size", "16", "--num_frames", "4",
              "--text_encoder", "lstm", "--sampling_steps", "2", "--mixed_precision", "no", "--batch_size", "2", "--minutes", "60",
              "--max_steps", "2", "--bootstrap_resamples", "200", "--docs_dir", str(docs)]
    with pytest.raises(FileNotFoundError, match="run the protocol"):
        run_experiment(monkeypatch, *common, "--ablation", "baseline", "--runs_dir", str(tmp_path / "runs_baseline"))
    assert run_experiment(monkeypatch, *common, "--baselines_only", "--runs_dir", str(tmp_path / "main")) == 0
    assert run_experiment(monkeypatch, *common, "--ablation", "baseline", "--runs_dir", str(tmp_path / "runs_baseline")) == 0
    levers = ["--tokenizer", "glosses", "--sign_track", "--signer_conditioning", "--composition_share", "0.5"]
    assert run_experiment(monkeypatch, *common, *levers, "--ablation", "all_levers", "--runs_dir", str(tmp_path / "runs_levers")) == 0

    rows = {row["name"]: row for row in json.loads((docs / "generalisation.json").read_text())["ablations"]}
    assert set(rows) == {"baseline", "all_levers"}
    assert rows["all_levers"]["settings"]["sign_track"] and rows["all_levers"]["settings"]["tokenizer"] == "glosses"
    assert rows["all_levers"]["folds"] == [0] and set(rows["all_levers"]["new_sentence"]["model_vs"]) >= {"mean", "retrieval", "stitching"}
    assert len(rows["all_levers"]["new_sentence"]["per_recording"]) == 2
    assert rows["all_levers"]["compared_with"] == "baseline" and rows["baseline"]["compared_with"] is None
    assert rows["baseline"]["settings"]["prediction_type"] == "sample" and rows["baseline"]["settings"]["image_size"] == 16
    page = (docs / "generalisation.md").read_text()
    assert "## Levers (ablations)" in page and "| baseline | tokenizer words, signer_conditioning False" in page
    assert "| all_levers | as baseline, tokenizer glosses, signer_conditioning True, sign_track True, signer_given True, composition_share 0.5 |" in page
    pipeline_dir = next((tmp_path / "runs_levers" / "fold_0" / "run").glob("step_*/pipeline"))
    conditioner = json.loads((pipeline_dir / "sign_conditioning" / "config.json").read_text())
    assert conditioner["signers"] == ["man-1", "woman-1"] and conditioner["timed_training"]  # words.csv timing reached training

    # The main protocol rewritten afterwards keeps the levers' rows; a rerun with other levers in a used folder is an error.
    assert run_experiment(monkeypatch, *common, "--baselines_only", "--runs_dir", str(tmp_path / "main")) == 0
    assert {row["name"] for row in json.loads((docs / "generalisation.json").read_text())["ablations"]} == {"baseline", "all_levers"}
    with pytest.raises(ValueError, match="holds a model run with levers"):
        run_experiment(monkeypatch, *common, "--ablation", "baseline", "--runs_dir", str(tmp_path / "runs_levers"))


def test_validation_mode_scores_validation_recordings_and_a_reused_training_only_samples_again(tmp_path, monkeypatch, capsys):
    """--validation trains each fold on fit and scores its validation recordings as new sentences (settings are chosen
    there); --reuse_training samples an already trained fold again with another guidance, training nothing."""
    # "WRITE" (one gloss): fold 0's "WRITE GO" then retrieves it over "MARY GO", which comes first by name, so the check of
    # --init_strength below tells the nearest caption from any fixed pick
    glosses = ["JOHN GO", "JOHN GO", "MARY GO", "WRITE", "MARY WRITE", "GO JOHN", "WRITE GO", "MARY JOHN"]
    tracks = write_tracks(tmp_path / "tracks", {video: signing(video) for video in range(1, 9)}, [
        (video, "woman-1" if video % 2 else "man-1", gloss, 6 * position, 6 * position + 5)
        for video, sentence in enumerate(glosses, start=1) for position, gloss in enumerate(sentence.split())])
    common = ["--train_tracks", str(tracks), "--image_size", "16", "--num_frames", "4", "--text_encoder", "lstm", "--sampling_steps", "2",
              "--mixed_precision", "no", "--batch_size", "2", "--minutes", "60", "--max_steps", "2", "--bootstrap_resamples", "200",
              "--num_folds", "2", "--validation"]
    assert run_experiment(monkeypatch, *common, "--runs_dir", str(tmp_path / "g2"), "--docs_dir", str(tmp_path / "docs_g2")) == 0
    folds = sentence_folds(load_recordings(tracks), 2).folds
    results = json.loads((tmp_path / "docs_g2" / "generalisation.json").read_text())
    assert results["folds"] == {str(fold.index): fold.validation for fold in folds}  # scored: the validation recordings, nothing else
    assert results["new_sentence"]["num_recordings"] == sum(len(fold.validation) for fold in folds) > 0
    assert "seen_sentence" not in results and results["model_folds"]["complete"] == [0, 1]  # no trained sentence is scored
    page = (tmp_path / "docs_g2" / "generalisation.md").read_text()
    assert "**a VALIDATION run**" in page and "carved from each fold" not in page  # its held-out recordings are the validation ones
    assert {(run["learning_rate"], run["batch_size"]) for run in results["model_folds"]["runs"].values()} == {(5e-4, 2)}
    assert "batch 2, peak learning rate 0.0005 cosine" in page
    for fold in folds:  # each fold trained on fit: its validation recordings were not rendered for training
        trained = {path.stem for path in (tmp_path / "g2" / f"fold_{fold.index}" / "train_clips").glob("*.gif")}
        assert trained == set(fold.fit)
    checkpoints = sorted((tmp_path / "g2").glob("fold_*/run/step_*"))
    assert checkpoints

    assert run_experiment(monkeypatch, *common, "--guidance", "4", "--candidates", "2", "--reuse_training", str(tmp_path / "g2"),
                          "--runs_dir", str(tmp_path / "g4"), "--docs_dir", str(tmp_path / "docs_g4")) == 0
    assert not list((tmp_path / "g4").glob("fold_*/run")) and sorted((tmp_path / "g2").glob("fold_*/run/step_*")) == checkpoints
    again = json.loads((tmp_path / "docs_g4" / "generalisation.json").read_text())
    assert {fold: run["guidance"] for fold, run in again["model_folds"]["runs"].items()} == {fold: 4.0 for fold in results["model_folds"]["runs"]}
    assert {fold: run["checkpoint"] for fold, run in again["model_folds"]["runs"].items()} == {
        fold: run["checkpoint"] for fold, run in results["model_folds"]["runs"].items()}
    assert {run["candidates"] for run in again["model_folds"]["runs"].values()} == {2}
    assert "the medoid of the 2 samples kept" in (tmp_path / "docs_g4" / "generalisation.md").read_text()
    # --init_strength: each caption's sampling starts from the training clip the retrieval reference replays for it
    experiment, calls = load_script("experiments/boston_generalisation.py"), []
    generate = experiment.generate_for_prompts

    def recording_generate(pipeline, prompts, **settings):
        calls.append((list(prompts), settings["init_videos"], settings["strength"]))
        return generate(pipeline, prompts, **settings)

    monkeypatch.setattr(experiment, "generate_for_prompts", recording_generate)
    monkeypatch.setattr(sys, "argv", ["boston_generalisation.py", *common, "--init_strength", "0.5", "--reuse_training", str(tmp_path / "g2"),
                                      "--runs_dir", str(tmp_path / "g7"), "--docs_dir", str(tmp_path / "docs_g7")])
    assert experiment.main() == 0
    recordings = {recording.name: recording for recording in load_recordings(tracks)}
    assert len(calls) == len(folds)
    for fold, (prompts, init_videos, strength) in zip(folds, calls):  # one call per fold, its validation captions in order
        clips = tmp_path / "g2" / f"fold_{fold.index}" / "train_clips"  # the clips this fold's model trained on
        captions = {path.stem: path.with_suffix(".txt").read_text(encoding="utf-8").strip() for path in clips.glob("*.gif")}
        assert prompts == [recordings[name].sentence for name in fold.validation] and strength == 0.5
        for prompt, init_video in zip(prompts, init_videos):
            replayed = nearest_caption_retrieval(captions, prompt)
            np.testing.assert_array_equal(init_video.numpy(), frames_to_video(read_gif(clips / f"{replayed}.gif")).numpy())
    edited = json.loads((tmp_path / "docs_g7" / "generalisation.json").read_text())["model_folds"]["runs"]
    assert {run["init_strength"] for run in edited.values()} == {0.5} and {run["init_strength"] for run in again["model_folds"]["runs"].values()} == {1.0}
    assert "**started from retrieval**" in (tmp_path / "docs_g7" / "generalisation.md").read_text()
    assert "started from retrieval" not in (tmp_path / "docs_g4" / "generalisation.md").read_text()
    # the control: the same start, sampled with the started-from recording's own caption instead of the held-out sentence
    calls.clear()
    monkeypatch.setattr(sys, "argv", ["boston_generalisation.py", *common, "--init_strength", "0.5", "--init_caption", "retrieved",
                                      "--reuse_training", str(tmp_path / "g2"), "--runs_dir", str(tmp_path / "g8"), "--docs_dir", str(tmp_path / "docs_g8")])
    assert experiment.main() == 0
    for fold, (prompts, init_videos, _) in zip(folds, calls):
        clips = tmp_path / "g2" / f"fold_{fold.index}" / "train_clips"
        captions = {path.stem: path.with_suffix(".txt").read_text(encoding="utf-8").strip() for path in clips.glob("*.gif")}
        assert prompts == [captions[nearest_caption_retrieval(captions, recordings[name].sentence)] for name in fold.validation]
    assert "**a CONTROL run**" in (tmp_path / "docs_g8" / "generalisation.md").read_text()
    with pytest.raises(SystemExit):  # a control of a start from retrieval needs one
        run_experiment(monkeypatch, *common, "--init_caption", "retrieved", "--runs_dir", str(tmp_path / "g9"))
    with pytest.raises(ValueError, match="trained with other settings"):
        run_experiment(monkeypatch, *common, "--max_steps", "3", "--reuse_training", str(tmp_path / "g2"), "--runs_dir", str(tmp_path / "g3"),
                       "--docs_dir", str(tmp_path / "docs_g3"))
    with pytest.raises(ValueError, match="learning_rate"):  # a training setting the reused folds did not train with
        run_experiment(monkeypatch, *common, "--learning_rate", "1e-3", "--reuse_training", str(tmp_path / "g2"), "--runs_dir", str(tmp_path / "g3"),
                       "--docs_dir", str(tmp_path / "docs_g3"))

    # --continue_from resumes each fold's last checkpoint and trains on to the new --max_steps (the last one given wins)
    # into its own runs dir.
    assert run_experiment(monkeypatch, *common, "--max_steps", "3", "--continue_from", str(tmp_path / "g2"),
                          "--runs_dir", str(tmp_path / "g2to3"), "--docs_dir", str(tmp_path / "docs_g2to3")) == 0
    on = json.loads((tmp_path / "docs_g2to3" / "generalisation.json").read_text())["model_folds"]["runs"]
    printed = capsys.readouterr().out
    assert all(f"resumed from {run['checkpoint']}" in printed for run in results["model_folds"]["runs"].values())  # trained on, not anew
    assert {fold: (run["steps"], run["continued_from"]) for fold, run in on.items()} == {
        fold: (3, run["checkpoint"]) for fold, run in results["model_folds"]["runs"].items()}
    assert all(on[fold]["training_minutes"] >= run["training_minutes"] for fold, run in results["model_folds"]["runs"].items())
    assert sorted(path.name for path in (tmp_path / "g2to3").glob("fold_0/run/step_*")) == ["step_0000003"]  # only the steps it added
    assert "**continued from a shorter run**: 2 of 2 folds" in (tmp_path / "docs_g2to3" / "generalisation.md").read_text()
    with pytest.raises(ValueError, match="adds none"):
        run_experiment(monkeypatch, *common, "--continue_from", str(tmp_path / "g2"), "--runs_dir", str(tmp_path / "g5"), "--docs_dir", str(tmp_path / "docs_g5"))
    with pytest.raises(ValueError, match="learning_rate"):
        run_experiment(monkeypatch, *common, "--max_steps", "3", "--learning_rate", "1e-3", "--continue_from", str(tmp_path / "g2"),
                       "--runs_dir", str(tmp_path / "g5"), "--docs_dir", str(tmp_path / "docs_g5"))
    (tmp_path / "g2" / "fold_0" / "run").rename(tmp_path / "moved_run")  # as in a fresh clone: outputs committed, checkpoints not
    with pytest.raises(ValueError, match="is not on this machine"):
        run_experiment(monkeypatch, *common, "--max_steps", "3", "--continue_from", str(tmp_path / "g2"),
                       "--runs_dir", str(tmp_path / "g6"), "--docs_dir", str(tmp_path / "docs_g6"))
