"""Real clips from ../shared/data, odd sizes, and a 70,000-pair folder."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from data_fixtures import numbered_gif, shared_data_dir
from text2sign.data import DataConfig, SignVideoDataset
from text2sign.data.clip import load_clip
from text2sign.data.pairing import pair_folder

SHARED_DATA = shared_data_dir()
needs_shared_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"real clips not found at {SHARED_DATA} (../shared/data from the repository root)")
LINKS_PER_SOURCE = 60_000  # ext4 allows 65,000 hard links to one file


@needs_shared_data
@pytest.mark.parametrize(
    "fields",
    [
        {"num_frames": 16, "image_size": 64},
        {"num_frames": 8, "image_size": 32, "resize_mode": "letterbox", "target_fps": 10.0, "frame_sampling": "random"},
    ],
    ids=["training_format", "letterbox_10fps_random"],
)
def test_every_shared_clip_loads_to_the_requested_shape(fields):
    data = SignVideoDataset(str(SHARED_DATA), verbose=False, strict=True, **fields)
    assert len(data) >= 74  # 4 How2Sign + 69 ISL phrases + the raw files present
    for index in range(len(data)):
        video = data[index]["video"]
        assert video.shape == (3, fields["num_frames"], fields["image_size"], fields["image_size"]), data.names[index]
        assert -1 <= video.min() and video.max() <= 1 and video.std() > 0.05, data.names[index]
    assert not data.decode_failures


@needs_shared_data
def test_how2sign_clips_are_already_in_training_format_and_pass_through_unchanged():
    folder = SHARED_DATA / "how2sign_mini"
    data = SignVideoDataset(str(folder), 16, 64, verbose=False)
    with Image.open(folder / "h2s_0000.gif") as image:
        image.seek(5)
        frame_5 = np.asarray(image.convert("RGB"), dtype=np.float32)
    np.testing.assert_array_equal(data[0]["video"][:, 5].permute(1, 2, 0).numpy(), frame_5 / 127.5 - 1)


@needs_shared_data
def test_the_201_frame_portrait_clip_keeps_its_frames_and_timing():
    path = SHARED_DATA / "isl_raw" / "isl_any_question.gif"
    if not path.exists():
        pytest.skip(f"{path} not in this copy of the shared data")
    frames, info = load_clip(path, DataConfig(str(SHARED_DATA), num_frames=16, image_size=64, target_fps=25.0))
    assert frames.shape == (16, 64, 64, 3)
    assert (info.num_source_frames, info.width, info.height) == (201, 368, 656)
    assert info.timeline_length == int(np.ceil(info.duration_ms / 40))  # one tick per 40 ms


def test_a_2000_by_1340_single_frame_becomes_a_still_video(tmp_path):
    # The shape of isl_raw/isl_hello.gif (one 2000x1340 frame), built here so the test runs everywhere.
    gradient = np.linspace(0, 255, 2000, dtype=np.float32)[None].repeat(1340, axis=0).astype(np.uint8)
    Image.fromarray(gradient).convert("P").save(tmp_path / "hello.gif")
    (tmp_path / "hello.txt").write_text("hello\n")
    video = SignVideoDataset(str(tmp_path), 16, 64, verbose=False, strict=True)[0]["video"]  # (c, f, h, w)
    assert video.shape == (3, 16, 64, 64)
    assert (video == video[:, :1]).all()  # a still: every frame is the first
    left_to_right = video[0, 0].mean(dim=0)  # (w,) the centre crop keeps part of the gradient
    assert left_to_right[0] < left_to_right[-1]


@pytest.mark.slow
def test_70000_pairs_are_paired_with_exact_orphan_counts(tmp_path):
    # Hard links to a few tiny files: 140,000 names in ~2 s. The time to pair them is in the benchmark.
    sources = tmp_path / "sources"
    sources.mkdir()
    gif_source, caption_source = sources / "clip.gif", sources / "clip.txt"
    gif_source.write_bytes(numbered_gif(1, 2, 2))
    caption_source.write_text("a caption\n")
    folder = tmp_path / "data"
    num_pairs, gifs_only, captions_only = 70_000, 258, 526
    for shard in range(70):
        (folder / f"shard{shard:02d}").mkdir(parents=True)
    for index in range(num_pairs + gifs_only + captions_only):
        stem = folder / f"shard{index % 70:02d}" / f"clip{index:06d}"
        generation = index // LINKS_PER_SOURCE
        if index < num_pairs + gifs_only:
            os.link(_generation(gif_source, generation), f"{stem}.gif")
        if index < num_pairs or index >= num_pairs + gifs_only:
            os.link(_generation(caption_source, generation), f"{stem}.txt")

    pairing = pair_folder(folder, DataConfig("unused").max_frame_pixels)
    summary = pairing.summary()
    assert (summary["usable_pairs"], summary["gifs_without_caption"], summary["captions_without_gif"]) == (num_pairs, gifs_only, captions_only)
    assert pairing.records[0].name == "shard00/clip000000"
    assert [record.name for record in pairing.records] == sorted(record.name for record in pairing.records)
    shutil.rmtree(folder)  # 140,000 directory entries: free them now rather than at pytest's cleanup


def _generation(source, generation: int):
    """A copy of source per LINKS_PER_SOURCE links, so no file exceeds the filesystem's link limit."""
    if generation == 0:
        return source
    copy = source.with_name(f"{source.stem}_{generation}{source.suffix}")
    if not copy.exists():
        shutil.copyfile(source, copy)
    return copy
