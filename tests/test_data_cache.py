"""The prepared cache: equality with raw decoding, resume, refusals, and the two command-line tools."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from data_fixtures import numbered_gif, truncated_gif, write_pair
from text2sign.data import DataConfig, SignVideoDataset, UnreadableFileError, collate_batch, prepare
from text2sign.data.cache import DONE, FAILED, FRAMES_NAME, PROGRESS_NAME
from text2sign.data.prepare import prepare_cache

NUM_CLIPS = 12


@pytest.fixture
def clip_folder(tmp_path):
    folder = tmp_path / "data"
    for index in range(NUM_CLIPS):
        # different lengths and sizes: some clips are longer than num_frames, some shorter
        write_pair(folder, f"group{index % 3}/clip{index:02d}", numbered_gif(2 + 3 * index, 10 + index, 12), f"caption {index}")
    return folder


def config_for(folder, **fields) -> DataConfig:
    return DataConfig(str(folder), **{"num_frames": 6, "image_size": 8, "verbose": False, **fields})


def build(folder, out, **kwargs):
    fields = kwargs.pop("fields", {})
    return prepare_cache(config_for(folder, **fields), out, progress_bar=False, **kwargs)


def test_dataset_from_cache_equals_dataset_from_raw(clip_folder, tmp_path):
    result = build(clip_folder, tmp_path / "cache", workers=2)
    assert (result.decoded_now, result.failed_now, result.pending) == (NUM_CLIPS, 0, 0)
    raw = SignVideoDataset(config_for(clip_folder))
    cached = SignVideoDataset(config_for(clip_folder, cache_dir=str(tmp_path / "cache")))
    assert cached.names == raw.names and cached.captions == raw.captions
    for index in range(len(raw)):
        assert torch.equal(cached[index]["video"], raw[index]["video"]), raw.names[index]  # same code, exact
    assert cached.summary["cache_dir"] == str(tmp_path / "cache")


def test_interrupted_prepare_resumes_to_the_one_shot_result(clip_folder, tmp_path):
    build(clip_folder, tmp_path / "one_shot", workers=1)
    first = build(clip_folder, tmp_path / "resumed", workers=2, max_clips=5)
    assert (first.decoded_now, first.pending, first.resumed) == (5, NUM_CLIPS - 5, False)
    with pytest.raises(ValueError, match="incomplete"):
        SignVideoDataset(config_for(clip_folder, cache_dir=str(tmp_path / "resumed")))
    second = build(clip_folder, tmp_path / "resumed", workers=2)
    assert (second.decoded_now, second.pending, second.resumed) == (NUM_CLIPS - 5, 0, True)
    for name in (FRAMES_NAME, PROGRESS_NAME):
        one_shot, resumed = np.load(tmp_path / "one_shot" / name), np.load(tmp_path / "resumed" / name)
        if name == FRAMES_NAME:
            np.testing.assert_array_equal(one_shot, resumed)
        else:
            np.testing.assert_array_equal(one_shot["clip_info"], resumed["clip_info"])


def test_a_kill_mid_run_keeps_every_clip_finished_before_it(clip_folder, tmp_path, monkeypatch):
    real_load_clip = prepare.load_clip
    calls = []

    def load_then_interrupt(path, config, rng=None):
        calls.append(path)
        if len(calls) == 8:
            raise KeyboardInterrupt  # Ctrl-C while the 8th clip decodes
        return real_load_clip(path, config, rng)

    monkeypatch.setattr(prepare, "load_clip", load_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        build(clip_folder, tmp_path / "cache", workers=1, checkpoint_every=1000)
    status = np.load(tmp_path / "cache" / PROGRESS_NAME)["status"]
    assert status.tolist() == [DONE] * 7 + [0] * (NUM_CLIPS - 7)  # checkpointed on the way out
    monkeypatch.setattr(prepare, "load_clip", real_load_clip)
    assert build(clip_folder, tmp_path / "cache", workers=1).decoded_now == NUM_CLIPS - 7


@pytest.mark.parametrize("field, value", [("image_size", 16), ("num_frames", 4), ("resize_mode", "letterbox"), ("target_fps", 12.5)])
def test_cache_built_with_other_settings_is_refused(clip_folder, tmp_path, field, value):
    build(clip_folder, tmp_path / "cache", workers=1)
    with pytest.raises(ValueError, match=f"other settings.*{field}"):
        SignVideoDataset(config_for(clip_folder, cache_dir=str(tmp_path / "cache"), **{field: value}))
    with pytest.raises(ValueError, match=f"other settings.*{field}"):
        build(clip_folder, tmp_path / "cache", workers=1, fields={field: value})  # resuming into it too


def test_resume_refuses_a_folder_that_changed(clip_folder, tmp_path):
    build(clip_folder, tmp_path / "cache", workers=1, max_clips=3)
    write_pair(clip_folder, "group0/new_clip", numbered_gif(3))
    with pytest.raises(ValueError, match="data folder changed"):
        build(clip_folder, tmp_path / "cache", workers=1)


def test_random_sampling_is_refused_when_the_cache_lacks_the_frames(clip_folder, tmp_path):
    build(clip_folder, tmp_path / "cache", workers=1)
    with pytest.raises(ValueError, match="frame_sampling='random' cannot be served"):
        SignVideoDataset(config_for(clip_folder, cache_dir=str(tmp_path / "cache"), frame_sampling="random"))
    # With clips no longer than num_frames (the 16-frame training set), random and uniform agree: allowed.
    build(clip_folder, tmp_path / "cache_long", workers=1, fields={"num_frames": 40})
    SignVideoDataset(config_for(clip_folder, cache_dir=str(tmp_path / "cache_long"), num_frames=40, frame_sampling="random"))


def test_prepare_counts_decode_failures_and_strict_stops(clip_folder, tmp_path):
    write_pair(clip_folder, "broken", truncated_gif())
    result = build(clip_folder, tmp_path / "cache", workers=2)
    assert (result.decoded_now, result.failed_now) == (NUM_CLIPS, 1)
    summary = json.loads((tmp_path / "cache" / "pairing_summary.json").read_text())
    assert summary["decode_failures"]["broken"]["reason"] == "truncated"
    cached = SignVideoDataset(config_for(clip_folder, cache_dir=str(tmp_path / "cache")))
    assert "broken" not in cached.names and len(cached) == NUM_CLIPS
    assert cached.summary["decode_failures"]["broken"]["reason"] == "truncated"
    assert np.load(tmp_path / "cache" / PROGRESS_NAME)["status"].tolist().count(FAILED) == 1
    with pytest.raises(UnreadableFileError, match="broken.gif: truncated"):
        build(clip_folder, tmp_path / "strict_cache", workers=2, fields={"strict": True})


def test_cached_dataset_pickles_small_and_feeds_dataloader_workers(clip_folder, tmp_path):
    build(clip_folder, tmp_path / "cache", workers=1)
    cached = SignVideoDataset(config_for(clip_folder, cache_dir=str(tmp_path / "cache")))
    cached[0]  # opens the memmap in this process
    assert len(pickle.dumps(cached)) < 20_000  # the memmap is reopened by each worker, not copied
    loader = DataLoader(cached, batch_size=4, num_workers=2, collate_fn=collate_batch)
    batches = list(loader)
    assert [batch["video"].shape for batch in batches] == [(4, 3, 6, 8, 8)] * 3
    assert sum((batch["name"] for batch in batches), []) == cached.names


def test_cache_split_matches_raw_split(clip_folder, tmp_path):
    build(clip_folder, tmp_path / "cache", workers=1)
    for split in ("train", "val"):
        raw = SignVideoDataset(config_for(clip_folder, split=split, val_fraction=0.3, group_pattern=r"^(group\d)/"))
        cached = SignVideoDataset(config_for(clip_folder, split=split, val_fraction=0.3, group_pattern=r"^(group\d)/", cache_dir=str(tmp_path / "cache")))
        assert raw.names == cached.names


def run_module(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.slow
def test_command_line_prepare_and_inspect(clip_folder, tmp_path):
    (clip_folder / "orphan.gif").write_bytes(numbered_gif(2))
    write_pair(clip_folder, "empty", b"")
    inspected = run_module("text2sign.data.inspect", str(clip_folder), "--no_progress", "--summary_json", str(tmp_path / "inspect.json"))
    assert inspected.returncode == 0, inspected.stderr
    assert f"{NUM_CLIPS} usable pairs of {NUM_CLIPS + 1} found, 1 files skipped (zero_bytes: 1)" in inspected.stdout
    assert "frames per clip: min 2" in inspected.stdout and "1 GIFs without caption" in inspected.stdout
    report = json.loads((tmp_path / "inspect.json").read_text())
    assert report["statistics"]["frames"]["max"] == 2 + 3 * (NUM_CLIPS - 1)

    arguments = ["text2sign.data.prepare", "--data_dir", str(clip_folder), "--out", str(tmp_path / "cache"), "--num_frames", "6", "--image_size", "8", "--workers", "2"]
    stopped = run_module(*arguments, "--max_clips", "4", "--no_progress")
    assert stopped.returncode == 0, stopped.stderr
    assert f"4 of {NUM_CLIPS} done" in stopped.stdout
    finished = run_module(*arguments)
    assert finished.returncode == 0, finished.stderr
    assert f"resuming {tmp_path / 'cache'}: 4 of {NUM_CLIPS} clips already done" in finished.stdout
    assert "prepare: 100%" in finished.stderr  # the progress bar
    assert len(SignVideoDataset(config_for(clip_folder, cache_dir=str(tmp_path / "cache")))) == NUM_CLIPS
    strict = run_module(*arguments[:3], "--out", str(tmp_path / "strict"), "--strict")
    assert strict.returncode != 0 and "empty.gif: zero_bytes" in strict.stderr


def test_a_cache_of_short_or_small_clips_says_so_with_the_counts(clip_folder, tmp_path):
    # clip lengths are 2, 5, 8, ... frames: 2 of the 12 are shorter than num_frames=6; widths 10-21 at height 12
    build(clip_folder, tmp_path / "cache")
    with pytest.warns(UserWarning, match=r"2 of 12 cached clips have fewer than num_frames=6 frames \(fewest 2\)"):
        SignVideoDataset(config_for(clip_folder, cache_dir=str(tmp_path / "cache")))
