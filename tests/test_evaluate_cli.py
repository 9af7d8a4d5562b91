"""evaluate.py end to end on a saved tiny pipeline and a folder of tiny GIFs, which clips it scores, and its one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from text2sign.data.config import DataConfig
from text2sign.data.split import SPLIT_RECORD_NAME, assign_splits
from text2sign.models.unet3d import UNet3DConfig
from text2sign.training.config import OptimizationConfig, TrainConfig
from text2sign.training.loop import train
from text2sign.video_io import write_gif
from evaluation_json_keys import REFERENCE_KEYS, key_paths
from tiny_models import CAPTIONS, tiny_pipeline
from top_level_scripts import load_script

REPO = Path(__file__).resolve().parents[1]


def run_evaluate(*args) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key != "TEXT2SIGN_DEBUG"}
    return subprocess.run([sys.executable, str(REPO / "evaluate.py"), *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env=environment)


@pytest.fixture(scope="module")
def saved_pipeline_and_data(tmp_path_factory):
    """A saved tiny pipeline (4 frames, 8x8) and 3 captioned 4-frame 8x8 GIFs of its vocabulary."""
    root = tmp_path_factory.mktemp("evaluate_cli")
    tiny_pipeline().save_pretrained(root / "pipeline")
    data_dir = root / "data"
    data_dir.mkdir()
    generator = np.random.default_rng(0)
    for index, caption in enumerate(CAPTIONS[:3]):
        write_gif(data_dir / f"clip_{index}.gif", generator.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8))
        (data_dir / f"clip_{index}.txt").write_text(caption + "\n", encoding="utf-8")
    return root / "pipeline", data_dir


def test_evaluate_writes_the_report_and_prints_a_summary(saved_pipeline_and_data, tmp_path):
    pipeline_dir, data_dir = saved_pipeline_and_data
    completed = run_evaluate("--checkpoint", pipeline_dir, "--data_dir", data_dir, "--split", "all", "--num_inference_steps", 2, "--guidance_scales", 1, 3,
                             "--seeds", 0, 1, "--output_dir", tmp_path / "report", "--device", "cpu")
    assert completed.returncode == 0, completed.stderr
    for name in ("evaluation.json", "evaluation.md", "comparison.png"):
        assert (tmp_path / "report" / name).is_file()
    saved = json.loads((tmp_path / "report" / "evaluation.json").read_text())
    assert saved["num_clips"] == 3 and saved["caption_identification"]["num_candidates"] == 3
    assert set(saved["guidance"]) == {"1", "3"} and saved["guidance"]["3"]["ssim"] is None  # 8x8 frames: too small for SSIM
    assert "caption identification (3-way)" in completed.stdout and "chance 0.333" in completed.stdout
    assert f"report: {tmp_path / 'report' / 'evaluation.md'}" in completed.stdout
    assert saved["split"]["scored"] == "all" and "memorisation" in saved["split"]["note"]
    assert "memorisation" in (tmp_path / "report" / "evaluation.md").read_text()
    assert key_paths(saved) == REFERENCE_KEYS["evaluate_cli_split_all_without_record_8x8"]


def test_missing_checkpoint_exits_2_with_one_line(saved_pipeline_and_data, tmp_path):
    _, data_dir = saved_pipeline_and_data
    completed = run_evaluate("--checkpoint", tmp_path / "no_such_checkpoint", "--data_dir", data_dir, "--device", "cpu")
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("evaluate.py: error:") and "no_such_checkpoint" in lines[0]


class FakeDetector(nn.Module):
    def forward(self, videos: torch.Tensor, rescale: bool = False, resize: bool = True, return_features: bool = True) -> torch.Tensor:
        return videos.mean(dim=(2, 3, 4))  # (n, 3)


@pytest.mark.parametrize("bad_flags, message", [
    (["--fvd_detector", "DETECTOR"], "at least 512"),  # FVD from 3 clips is refused before any sampling
    (["--seeds", "0"], "at least 2 distinct seeds"),
    (["--max_clips", "1"], "max_clips"),
    (["--num_candidates", "7"], "num_candidates"),
])
def test_bad_input_exits_2_with_one_line_saying_what_to_fix(saved_pipeline_and_data, tmp_path, capsys, monkeypatch, bad_flags, message):
    monkeypatch.delenv("TEXT2SIGN_DEBUG", raising=False)
    pipeline_dir, data_dir = saved_pipeline_and_data
    detector_path = tmp_path / "detector.pt"
    with warnings.catch_warnings():  # torch 2.13 deprecates torch.jit, which the I3D TorchScript file needs
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(FakeDetector()), str(detector_path))
        flags = [str(detector_path) if flag == "DETECTOR" else flag for flag in bad_flags]
        exit_code = load_script("evaluate.py").main(["--checkpoint", str(pipeline_dir), "--data_dir", str(data_dir), "--split", "all", "--num_inference_steps", "1",
                                                 "--guidance_scales", "1", "--device", "cpu", "--output_dir", str(tmp_path / "out"), *flags])
    assert exit_code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("evaluate.py: error:") and message in lines[0]


# ---------------------------------------------------------------------------------------------------------------
# Which clips are scored: the run's own split, read from its output directory
# ---------------------------------------------------------------------------------------------------------------

# Two clips per source video; the pattern keeps a video's clips on one side. At val_fraction 0.5 the groups
# alpha and bravo hash to val, charlie and foxtrot to train; split by name alone (or with the default
# val_fraction 0.05) the sides would be different clips, so a recomputed split would score the wrong ones.
GROUPED_NAMES = ["alpha_1", "alpha_2", "bravo_1", "bravo_2", "charlie_1", "charlie_2", "foxtrot_1", "foxtrot_2"]
GROUP_PATTERN = r"^([a-z]+)_\d"
GROUPED_CAPTIONS = ["hello", "thank you", "how are you", "good morning", "see you later", "my name is", "nice to meet you", "goodbye"]
QUICK_EVALUATION = ["--num_inference_steps", "1", "--guidance_scales", "1", "--seeds", "0", "1", "--device", "cpu"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A 2-step tiny training run on 8 grouped clips with val_fraction 0.5: (output_dir, data_dir)."""
    root = tmp_path_factory.mktemp("evaluate_split")
    data_dir = root / "data"
    data_dir.mkdir()
    generator = np.random.default_rng(0)
    for name, caption in zip(GROUPED_NAMES, GROUPED_CAPTIONS):
        write_gif(data_dir / f"{name}.gif", generator.integers(0, 256, (6, 12, 12, 3), dtype=np.uint8))
        (data_dir / f"{name}.txt").write_text(caption + "\n", encoding="utf-8")
    config = TrainConfig(
        data=DataConfig(data_dir=str(data_dir), num_frames=4, image_size=8, val_fraction=0.5, group_pattern=GROUP_PATTERN),
        unet=UNet3DConfig(model_channels=32, channel_mult=(1, 1), num_res_blocks=1, attention_levels=(1,)),
        optim=OptimizationConfig(batch_size=2, warmup_steps=1, max_steps=2, seed=0),
        output_dir=str(root / "run"), num_workers=0, log_every=1, save_every=1000, sample_every=1000, sample_steps=1,
    )
    train(config)
    return root / "run", data_dir


def test_the_split_and_the_test_data_disagree_unless_the_runs_settings_are_used():
    """Guards the test data below: recomputing the split with defaults or without the pattern gives other clips."""
    sides = dict(zip(GROUPED_NAMES, assign_splits(GROUPED_NAMES, 0.5, GROUP_PATTERN)))
    assert [name for name in GROUPED_NAMES if sides[name] == "val"] == ["alpha_1", "alpha_2", "bravo_1", "bravo_2"]
    assert assign_splits(GROUPED_NAMES, 0.5, None) != list(sides.values())
    assert "val" not in assign_splits(GROUPED_NAMES, 0.05, None)


def test_training_records_its_split_in_the_output_directory(trained_run):
    output_dir, data_dir = trained_run
    record = json.loads((output_dir / SPLIT_RECORD_NAME).read_text())
    assert record["val_fraction"] == 0.5 and record["group_pattern"] == GROUP_PATTERN and record["data_dir"] == str(data_dir)
    assert sorted(record["val"]) == ["alpha_1", "alpha_2", "bravo_1", "bravo_2"]
    assert sorted(record["train"]) == ["charlie_1", "charlie_2", "foxtrot_1", "foxtrot_2"]


def test_plain_evaluate_scores_only_the_runs_held_out_clips(trained_run, tmp_path, capsys):
    output_dir, data_dir = trained_run
    exit_code = load_script("evaluate.py").main(["--checkpoint", str(output_dir), "--data_dir", str(data_dir), *QUICK_EVALUATION,
                                                 "--output_dir", str(tmp_path / "report")])
    assert exit_code == 0, capsys.readouterr().err
    saved = json.loads((tmp_path / "report" / "evaluation.json").read_text())
    assert sorted(saved["clip_names"]) == ["alpha_1", "alpha_2", "bravo_1", "bravo_2"] and saved["num_clips"] == 4
    assert saved["split"]["scored"] == "val" and saved["split"]["record"] == str(output_dir / SPLIT_RECORD_NAME)
    assert saved["split"]["group_pattern"] == GROUP_PATTERN and "note" not in saved["split"]
    assert list(saved) == REFERENCE_KEYS["evaluate_cli_top_level_keys"]
    assert list(saved["split"]) == REFERENCE_KEYS["evaluate_cli_split_keys_of_a_run"]["val"]
    assert "of split val: the run's held-out clips" in capsys.readouterr().out
    markdown = (tmp_path / "report" / "evaluation.md").read_text()
    assert "Split scored: **val**" in markdown and "alpha_1" in markdown and "charlie_1" not in markdown


def test_split_train_scores_the_training_clips_and_says_it_measures_memorisation(trained_run, tmp_path, capsys):
    output_dir, data_dir = trained_run
    exit_code = load_script("evaluate.py").main(["--checkpoint", str(output_dir), "--data_dir", str(data_dir), "--split", "train",
                                                 *QUICK_EVALUATION, "--output_dir", str(tmp_path / "report")])
    assert exit_code == 0, capsys.readouterr().err
    saved = json.loads((tmp_path / "report" / "evaluation.json").read_text())
    assert sorted(saved["clip_names"]) == ["charlie_1", "charlie_2", "foxtrot_1", "foxtrot_2"]
    assert saved["split"]["scored"] == "train" and "memorisation" in saved["split"]["note"]
    assert list(saved["split"]) == REFERENCE_KEYS["evaluate_cli_split_keys_of_a_run"]["train"]
    assert "memorisation" in capsys.readouterr().out
    assert "memorisation" in (tmp_path / "report" / "evaluation.md").read_text()


def test_split_all_scores_every_clip_and_counts_the_training_clips_among_them(trained_run, tmp_path, capsys):
    output_dir, data_dir = trained_run
    exit_code = load_script("evaluate.py").main(["--checkpoint", str(output_dir), "--data_dir", str(data_dir), "--split", "all",
                                                 *QUICK_EVALUATION, "--output_dir", str(tmp_path / "report")])
    assert exit_code == 0, capsys.readouterr().err
    saved = json.loads((tmp_path / "report" / "evaluation.json").read_text())
    assert sorted(saved["clip_names"]) == GROUPED_NAMES and saved["split"]["training_clips_in_data_dir"] == 4
    assert saved["split"]["note"].startswith("4 of the 8 clips in --data_dir are training clips")
    assert list(saved["split"]) == REFERENCE_KEYS["evaluate_cli_split_keys_of_a_run"]["all"]


def test_without_a_split_record_evaluate_refuses_and_names_split_all(saved_pipeline_and_data, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TEXT2SIGN_DEBUG", raising=False)
    pipeline_dir, data_dir = saved_pipeline_and_data
    exit_code = load_script("evaluate.py").main(["--checkpoint", str(pipeline_dir), "--data_dir", str(data_dir), *QUICK_EVALUATION,
                                                 "--output_dir", str(tmp_path / "out")])
    assert exit_code == 2 and not (tmp_path / "out").exists()
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "no split.json" in lines[0] and "--split all" in lines[0] and "memorisation" in lines[0]


def test_a_run_that_held_out_nothing_refuses_val_and_names_split_train(saved_pipeline_and_data, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TEXT2SIGN_DEBUG", raising=False)
    pipeline_dir, data_dir = saved_pipeline_and_data
    run = tmp_path / "run"
    tiny_pipeline().save_pretrained(run / "step_0000001" / "pipeline")
    (run / "step_0000001" / "training_state.pt").write_bytes(b"")  # list_checkpoints only checks that it exists
    (run / SPLIT_RECORD_NAME).write_text(json.dumps({"val_fraction": 0.0, "group_pattern": None, "train": ["clip_0", "clip_1", "clip_2"], "val": []}))
    exit_code = load_script("evaluate.py").main(["--checkpoint", str(run), "--data_dir", str(data_dir), *QUICK_EVALUATION,
                                                 "--output_dir", str(tmp_path / "out")])
    assert exit_code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "held out no clips" in lines[0] and "--split train" in lines[0] and "memorisation" in lines[0]
