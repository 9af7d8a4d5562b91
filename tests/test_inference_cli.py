"""inference.py end to end on a saved tiny pipeline: every --format, generation.json, and one-line errors."""

from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from tiny_models import CAPTIONS, tiny_pipeline, tiny_signer_pipeline
from text2sign.video_io import read_gif
from top_level_scripts import load_script

NUM_FRAMES, IMAGE_SIZE = 4, 8  # tiny_pipeline's PipelineConfig
PROMPTS = [CAPTIONS[0], CAPTIONS[2]]  # "hello there", "how are you?"
SLUGS = ["000_hello_there", "001_how_are_you"]


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("inference_cli") / "pipeline"
    tiny_pipeline().save_pretrained(directory)
    return directory


def run_inference(pipeline_dir, output_dir, *flags) -> int:
    return load_script("inference.py").main(["--checkpoint", str(pipeline_dir), "--output_dir", str(output_dir), "--num_inference_steps", "2",
                                             "--device", "cpu", *flags])


@pytest.mark.parametrize("video_format", ["gif", "mp4", "frames", "grid"])
def test_each_format_writes_one_video_per_prompt_with_every_frame(pipeline_dir, tmp_path, capsys, video_format):
    output_dir = tmp_path / "out"
    assert run_inference(pipeline_dir, output_dir, "--prompts", *PROMPTS, "--format", video_format, "--batch_size", "1") == 0
    suffix = {"gif": ".gif", "mp4": ".mp4", "frames": "", "grid": ".png"}[video_format]
    expected = [output_dir / f"{slug}{suffix}" for slug in SLUGS]
    assert capsys.readouterr().out.split() == [str(path) for path in expected]  # the written paths, one a line
    for path in expected:
        if video_format == "gif":
            assert read_gif(path).shape == (NUM_FRAMES, IMAGE_SIZE, IMAGE_SIZE, 3)
        elif video_format == "mp4":
            assert iio.imread(path, plugin="FFMPEG").shape == (NUM_FRAMES, IMAGE_SIZE, IMAGE_SIZE, 3)
        elif video_format == "frames":
            pngs = sorted(path.glob("*.png"))
            assert len(pngs) == NUM_FRAMES and all(Image.open(png).size == (IMAGE_SIZE, IMAGE_SIZE) for png in pngs)
        else:
            assert Image.open(path).size == (NUM_FRAMES * IMAGE_SIZE, IMAGE_SIZE)  # all frames side by side (up to 8 columns)
    settings = json.loads((output_dir / "generation.json").read_text())
    assert settings["prompts"] == PROMPTS and settings["files"] == [str(path) for path in expected]
    assert settings["format"] == video_format and settings["num_frames"] == NUM_FRAMES and settings["image_size"] == IMAGE_SIZE
    assert settings["checkpoint_resolved"] == str(pipeline_dir) and settings["seed"] == 0 and settings["num_inference_steps"] == 2


def test_same_seed_gives_the_same_videos_and_another_seed_other_videos(pipeline_dir, tmp_path):
    runs = {}
    for name, seed in (("first", "0"), ("again", "0"), ("other", "1")):
        assert run_inference(pipeline_dir, tmp_path / name, "--prompts", *PROMPTS, "--format", "grid", "--seed", seed) == 0
        runs[name] = [np.array(Image.open(tmp_path / name / f"{slug}.png")) for slug in SLUGS]
    assert all(np.array_equal(first, again) for first, again in zip(runs["first"], runs["again"]))
    assert not np.array_equal(runs["first"][0], runs["other"][0])


def test_prompts_file_and_frame_count_and_size_flags(pipeline_dir, tmp_path):
    prompts_file = tmp_path / "prompts.txt"
    prompts_file.write_text("\ufeffhello there\n\n  good morning  \n", encoding="utf-8")  # BOM, blank line, padding
    output_dir = tmp_path / "out"
    assert run_inference(pipeline_dir, output_dir, "--prompts_file", str(prompts_file), "--num_frames", "6", "--image_size", "16") == 0
    settings = json.loads((output_dir / "generation.json").read_text())
    assert settings["prompts"] == ["hello there", "good morning"] and settings["num_frames"] == 6 and settings["image_size"] == 16
    assert read_gif(output_dir / "001_good_morning.gif").shape == (6, 16, 16, 3)


@pytest.mark.parametrize("flags, message", [
    (["--prompts_file", "MISSING"], "does not exist"),
    (["--prompts", "  "], "no non-empty prompts"),
    (["--prompts", "hello", "--fps", "0"], "must be positive"),
    (["--prompts", "hello", "--signer", "woman-1"], "trained without signer conditioning"),
    (["--prompts", "hello", "--init_video", "MISSING"], "does not exist"),
    (["--prompts", "hello", "--strength", "0"], "--strength must be in (0, 1]"),
])
def test_bad_input_exits_2_with_one_line(pipeline_dir, tmp_path, capsys, monkeypatch, flags, message):
    monkeypatch.delenv("TEXT2SIGN_DEBUG", raising=False)
    flags = [str(tmp_path / "missing.txt") if flag == "MISSING" else flag for flag in flags]
    assert run_inference(pipeline_dir, tmp_path / "out", *flags) == 2
    lines = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("note:")]  # notes (no EMA) are not errors
    assert len(lines) == 1 and lines[0].startswith("inference.py: error:") and message in lines[0]


def test_signer_picks_who_signs_and_an_unknown_one_is_a_one_line_error_naming_the_known(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TEXT2SIGN_DEBUG", raising=False)
    pipeline = tiny_signer_pipeline()
    pipeline.save_pretrained(tmp_path / "pipeline")
    videos = {}
    for signer in ("woman-1", "man-1"):
        assert run_inference(tmp_path / "pipeline", tmp_path / signer, "--prompts", PROMPTS[0], "--format", "grid", "--signer", signer) == 0
        videos[signer] = np.array(Image.open(tmp_path / signer / f"{SLUGS[0]}.png"))
        assert json.loads((tmp_path / signer / "generation.json").read_text())["signer"] == signer
    assert not np.array_equal(videos["woman-1"], videos["man-1"])
    capsys.readouterr()
    assert run_inference(tmp_path / "pipeline", tmp_path / "out", "--prompts", PROMPTS[0], "--signer", "nobody") == 2
    lines = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("note:")]
    assert len(lines) == 1 and "unknown signer 'nobody': this model knows man-1, woman-1" in lines[0]


def test_init_video_is_resampled_to_the_generated_size_and_a_low_strength_keeps_it(pipeline_dir, tmp_path):
    from text2sign.video_io import write_gif

    red = np.zeros((6, 12, 12, 3), dtype=np.uint8)  # another frame count and size than the model generates
    red[..., 0] = 255
    write_gif(tmp_path / "red.gif", red)
    distance_to_red = {}
    for name, flags in (("edited", ["--init_video", str(tmp_path / "red.gif"), "--strength", "0.05"]), ("from_noise", [])):
        # 20 steps at strength 0.05: one step from the least noisy timestep, so the clip comes back almost unchanged
        # (measured: 11 grey levels from red on average, against 130 from pure noise)
        assert run_inference(pipeline_dir, tmp_path / name, "--prompts", PROMPTS[0], "--num_inference_steps", "20", *flags) == 0
        video = read_gif(tmp_path / name / f"{SLUGS[0]}.gif").astype(float)  # (f, h, w, 3)
        assert video.shape == (NUM_FRAMES, IMAGE_SIZE, IMAGE_SIZE, 3)
        distance_to_red[name] = np.abs(video - np.array([255.0, 0.0, 0.0])).mean()
    assert distance_to_red["edited"] < 40 < distance_to_red["from_noise"], distance_to_red
    assert json.loads((tmp_path / "edited" / "generation.json").read_text())["strength"] == 0.05
