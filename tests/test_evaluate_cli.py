"""evaluate.py end to end on a saved tiny pipeline and a folder of tiny GIFs, and its one-line errors."""

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

from text2sign.video_io import write_gif
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
    completed = run_evaluate("--checkpoint", pipeline_dir, "--data_dir", data_dir, "--num_inference_steps", 2, "--guidance_scales", 1, 3,
                             "--seeds", 0, 1, "--output_dir", tmp_path / "report", "--device", "cpu")
    assert completed.returncode == 0, completed.stderr
    for name in ("evaluation.json", "evaluation.md", "comparison.png"):
        assert (tmp_path / "report" / name).is_file()
    saved = json.loads((tmp_path / "report" / "evaluation.json").read_text())
    assert saved["num_clips"] == 3 and saved["caption_identification"]["num_candidates"] == 3
    assert set(saved["guidance"]) == {"1", "3"} and saved["guidance"]["3"]["ssim"] is None  # 8x8 frames: too small for SSIM
    assert "caption identification (3-way)" in completed.stdout and "chance 0.333" in completed.stdout
    assert f"report: {tmp_path / 'report' / 'evaluation.md'}" in completed.stdout


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
        exit_code = load_script("evaluate.py").main(["--checkpoint", str(pipeline_dir), "--data_dir", str(data_dir), "--num_inference_steps", "1",
                                                 "--guidance_scales", "1", "--device", "cpu", "--output_dir", str(tmp_path / "out"), *flags])
    assert exit_code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("evaluate.py: error:") and message in lines[0]
