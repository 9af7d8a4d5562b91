"""Pairing, captions, broken inputs, GIF compositing, frame selection, resizing and the split."""

from __future__ import annotations

import builtins
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from data_fixtures import GifFrame, bomb_header_gif, encode_gif, full_palette, numbered_gif, source_frame_of, truncated_gif, write_pair
from text2sign.data import DataConfig, SignVideoDataset, UnreadableFileError, skips
from text2sign.data.clip import load_clip
from text2sign.data.frames import select_positions
from text2sign.data.gif import decode_gif_frames, parse_gif_layout
from text2sign.data.pairing import pair_folder
from text2sign.data.split import assign_splits, captions_only_in_validation, hash_fraction

BIG = 10**9  # max_frame_pixels that no test fixture reaches
HELLO_FRACTION = 0.6398514474291433  # blake2b-64 of "isl_raw/isl_hello" / 2^64, computed once
RED, GREEN, BLUE, WHITE, BLACK = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0)
MAGENTA, CYAN = (255, 0, 255), (0, 255, 255)


def dataset(folder, **fields) -> SignVideoDataset:
    fields = {"num_frames": 4, "image_size": 8, "verbose": False, **fields}
    return SignVideoDataset(str(folder), **fields)


def decode_all(gif_bytes: bytes) -> list[np.ndarray]:
    layout = parse_gif_layout(gif_bytes, "test.gif", BIG)
    decoded = decode_gif_frames(gif_bytes, "test.gif", range(layout.num_frames), lambda frame: np.asarray(frame))
    return [decoded[index] for index in range(layout.num_frames)]


def image_of(rows: list[list[tuple]]) -> np.ndarray:
    return np.array(rows, dtype=np.uint8)  # (h, w, 3)


# ---------------------------------------------------------------- pairing


def test_pairing_counts_orphans_both_ways_in_nested_folders(tmp_path):
    write_pair(tmp_path, "a/one", numbered_gif(2))
    write_pair(tmp_path, "a/b/two", numbered_gif(2))
    write_pair(tmp_path, "three", numbered_gif(2))
    (tmp_path / "a" / "lonely.gif").write_bytes(numbered_gif(2))
    (tmp_path / "a" / "b" / "also_lonely.gif").write_bytes(numbered_gif(2))
    (tmp_path / "words_only.txt").write_text("no video\n")
    (tmp_path / "a" / "two.txt").write_text("same stem, other folder: not a pair\n")  # pairs are per folder
    (tmp_path / "notes.md").write_text("ignored: neither .gif nor .txt\n")

    pairing = pair_folder(tmp_path, BIG)
    summary = pairing.summary()

    assert [record.name for record in pairing.records] == ["a/b/two", "a/one", "three"]
    assert summary["pairs_found"] == summary["usable_pairs"] == 3
    assert summary["gifs_without_caption_names"] == ["a/b/also_lonely", "a/lonely"]
    assert summary["captions_without_gif_names"] == ["a/two", "words_only"]
    assert (summary["gifs_without_caption"], summary["captions_without_gif"], summary["skipped"]) == (2, 2, 0)


def test_pairing_order_is_deterministic_whatever_the_creation_order(tmp_path):
    names = ["b", "a", "c/z", "c/a", "A"]
    for name in names:
        write_pair(tmp_path / "first", name, numbered_gif(1))
    for name in reversed(names):
        write_pair(tmp_path / "second", name, numbered_gif(1))
    first = [record.name for record in pair_folder(tmp_path / "first", BIG).records]
    second = [record.name for record in pair_folder(tmp_path / "second", BIG).records]
    assert first == second == sorted(names)


def test_uppercase_extensions_pair_and_a_case_duplicate_is_skipped(tmp_path):
    (tmp_path / "shout.GIF").write_bytes(numbered_gif(1))
    (tmp_path / "shout.TXT").write_text("loud\n")
    write_pair(tmp_path, "twice", numbered_gif(1))
    (tmp_path / "twice.Gif").write_bytes(numbered_gif(1))
    pairing = pair_folder(tmp_path, BIG)
    assert [record.name for record in pairing.records] == ["shout", "twice"]
    assert pairing.records[1].gif_path.endswith("twice.Gif")  # first in sort order ("G" < "g") is kept
    assert pairing.summary()["skipped_by_reason"] == {"duplicate_name": 1}


def test_summary_is_printed_and_written_as_json(tmp_path, capsys):
    write_pair(tmp_path / "data", "good", numbered_gif(2))
    write_pair(tmp_path / "data", "empty", b"")
    summary_path = tmp_path / "out" / "summary.json"
    data = dataset(tmp_path / "data", verbose=True, summary_path=str(summary_path))
    printed = capsys.readouterr().out
    assert "1 usable pairs of 2 found" in printed and "zero_bytes" in printed
    written = json.loads(summary_path.read_text())
    assert written == data.summary
    assert written["skipped_files"][0]["name"] == "empty" and written["skipped_files"][0]["reason"] == "zero_bytes"


def test_missing_data_dir_raises_value_error(tmp_path):
    with pytest.raises(ValueError, match="not a folder"):
        dataset(tmp_path / "nowhere")


# ---------------------------------------------------------------- captions


def test_caption_bom_and_surrounding_whitespace_are_stripped(tmp_path):
    write_pair(tmp_path, "bom", numbered_gif(1), "\ufeff  are you hungry?  \r\n\n".encode("utf-8"))
    write_pair(tmp_path, "accents", numbered_gif(1), "  Ahmedābād ".encode("utf-8"))
    assert dataset(tmp_path).captions == ["Ahmedābād", "are you hungry?"]


@pytest.mark.parametrize(
    "caption_bytes, reason",
    [(b"", "empty_caption"), (b" \n\t\r\n", "empty_caption"), (b"\xef\xbb\xbf\n", "empty_caption"), (b"caf\xe9 latin-1", "caption_not_utf8")],
)
def test_empty_or_undecodable_caption_is_skipped_and_named(tmp_path, caption_bytes, reason):
    write_pair(tmp_path, "good", numbered_gif(1))
    write_pair(tmp_path, "bad", numbered_gif(1), caption_bytes)
    data = dataset(tmp_path)
    assert data.names == ["good"]
    assert data.summary["skipped_files"] == [
        {"name": "bad", "path": str(tmp_path / "bad.txt"), "reason": reason, "detail": data.summary["skipped_files"][0]["detail"]}
    ]


# ---------------------------------------------------------------- broken inputs found while indexing


BROKEN_AT_INDEXING = {
    "zero_bytes": lambda: b"",
    "not_a_gif": lambda: b"\x89PNG\r\n\x1a\n" + bytes(100),
    "frame_too_large": bomb_header_gif,
    "truncated": lambda: numbered_gif(1)[:9],  # ends inside the header
    "invalid_dimensions": lambda: bomb_header_gif(0, 10),
}


@pytest.mark.parametrize("reason", sorted(BROKEN_AT_INDEXING))
def test_broken_gif_is_skipped_counted_and_logged(tmp_path, caplog, reason):
    write_pair(tmp_path, "good", numbered_gif(2))
    write_pair(tmp_path, "broken", BROKEN_AT_INDEXING[reason]())
    data = dataset(tmp_path)
    assert data.names == ["good"]
    assert data.summary["skipped_by_reason"] == {reason: 1}
    assert data.summary["skipped_files"][0]["path"] == str(tmp_path / "broken.gif")
    assert f"broken.gif: {reason}" in caplog.text


@pytest.mark.parametrize("reason", sorted(BROKEN_AT_INDEXING))
def test_strict_mode_raises_on_the_broken_gif(tmp_path, reason):
    write_pair(tmp_path, "good", numbered_gif(2))
    write_pair(tmp_path, "broken", BROKEN_AT_INDEXING[reason]())
    with pytest.raises(ValueError, match=f"broken.gif: {reason}"):
        dataset(tmp_path, strict=True)


def test_strict_mode_raises_on_the_first_broken_file_in_name_order(tmp_path):
    write_pair(tmp_path, "b_empty", b"")
    write_pair(tmp_path, "a_not_gif", b"hello")
    with pytest.raises(UnreadableFileError, match="a_not_gif.gif: not_a_gif"):
        dataset(tmp_path, strict=True)


def test_unreadable_file_is_skipped_as_permission_denied(tmp_path, monkeypatch):
    # Tests may run as root, which reads a mode-000 file anyway: the refusal is simulated instead, by an
    # open() that raises PermissionError for one path, seen only by the module that opens data files.
    write_pair(tmp_path, "good", numbered_gif(2))
    locked = write_pair(tmp_path, "locked", numbered_gif(2))

    def refusing_open(path, *args, **kwargs):
        if os.fspath(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(path))
        return builtins.open(path, *args, **kwargs)

    monkeypatch.setattr(skips, "open", refusing_open, raising=False)
    data = dataset(tmp_path)
    assert data.names == ["good"]
    assert data.summary["skipped_by_reason"] == {"permission_denied": 1}
    with pytest.raises(UnreadableFileError, match="permission_denied"):
        dataset(tmp_path, strict=True)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads mode-000 files; covered by the simulated refusal above")
def test_mode_000_file_is_skipped_as_permission_denied(tmp_path):
    write_pair(tmp_path, "good", numbered_gif(2))
    locked = write_pair(tmp_path, "locked", numbered_gif(2))
    locked.chmod(0)
    try:
        assert dataset(tmp_path).summary["skipped_by_reason"] == {"permission_denied": 1}
    finally:
        locked.chmod(0o644)


# ---------------------------------------------------------------- broken inputs found only when decoding


def frame_past_the_screen_gif() -> bytes:
    """A 2x2 screen whose frame descriptor claims 40000x40000: Pillow would grow the canvas to that."""
    gif = bytearray(encode_gif(2, 2, [GifFrame(np.zeros((2, 2)))], full_palette([WHITE])))
    descriptor = gif.index(b",\x00\x00\x00\x00\x02\x00\x02\x00")
    gif[descriptor + 5 : descriptor + 9] = (40000).to_bytes(2, "little") * 2
    return bytes(gif)


def corrupt_image_data_gif() -> bytes:
    gif = bytearray(numbered_gif(2, 16, 16))
    lzw_start = gif.index(b",\x00\x00\x00\x00\x10\x00\x10\x00") + 10
    gif[lzw_start + 2 : lzw_start + 40] = b"\xff" * 38  # codes far past the table: an LZW decoder must fail
    return bytes(gif)


@pytest.mark.parametrize(
    "make_gif, reason",
    [(truncated_gif, "truncated"), (frame_past_the_screen_gif, "frame_too_large"), (corrupt_image_data_gif, "decode_error")],
)
def test_clip_failing_at_decode_time_yields_the_next_clip_and_is_counted(tmp_path, caplog, make_gif, reason):
    write_pair(tmp_path, "a_good", numbered_gif(2), "first")
    write_pair(tmp_path, "b_broken", make_gif(), "broken")
    write_pair(tmp_path, "c_good", numbered_gif(3), "third")
    data = dataset(tmp_path)
    assert data.names == ["a_good", "b_broken", "c_good"]  # the header looked fine
    item = data[1]
    assert (item["name"], item["caption"]) == ("c_good", "third")  # a real clip, never noise
    assert data.decode_failures["b_broken"]["reason"] == reason
    assert f"b_broken failed to decode, using the next clip instead: {reason}" in caplog.text
    assert data[1]["name"] == "c_good"  # the same substitute every time
    with pytest.raises(UnreadableFileError, match=reason):
        dataset(tmp_path, strict=True)[1]


def test_last_clip_failing_wraps_around_to_the_first(tmp_path):
    write_pair(tmp_path, "a_good", numbered_gif(2))
    write_pair(tmp_path, "z_broken", truncated_gif())
    assert dataset(tmp_path)[1]["name"] == "a_good"


def test_pillow_decompression_bomb_error_becomes_a_counted_skip(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)  # Pillow refuses above 2 x this: a 16x16 frame
    with pytest.raises(UnreadableFileError, match="frame_too_large"):
        load_clip(write_pair(tmp_path, "clip", numbered_gif(2, 16, 16)), DataConfig(str(tmp_path), num_frames=2, image_size=8))


# ---------------------------------------------------------------- GIF decoding


def test_compositing_follows_disposal_transparency_and_local_palettes():
    global_palette = full_palette([BLACK, RED, GREEN, BLUE, WHITE])
    frames = [
        GifFrame(np.full((2, 4), 1), disposal=1),  # all red, kept
        # 2x1 patch at (1, 0) with its own palette; index 9 is transparent, so red shows through
        GifFrame(np.array([[0, 9]]), left=1, palette=full_palette([MAGENTA, CYAN]), transparent_index=9, disposal=3),
        GifFrame(np.full((1, 1), 2), left=3, top=1, disposal=2),  # green pixel, then restore to background
        GifFrame(np.full((1, 1), 3), left=0, top=1, disposal=1),
    ]
    decoded = decode_all(encode_gif(4, 2, frames, global_palette, background_index=4))
    expected = [
        image_of([[RED, RED, RED, RED], [RED, RED, RED, RED]]),
        image_of([[RED, MAGENTA, RED, RED], [RED, RED, RED, RED]]),  # local palette; transparent pixel keeps red
        image_of([[RED, RED, RED, RED], [RED, RED, RED, GREEN]]),  # disposal 3 restored the red under the patch
        image_of([[RED, RED, RED, RED], [BLUE, RED, RED, WHITE]]),  # disposal 2 restored the background colour
    ]
    for index, (frame, wanted) in enumerate(zip(decoded, expected)):
        np.testing.assert_array_equal(frame, wanted, err_msg=f"frame {index}")


def test_pixels_transparent_in_the_first_frame_are_black_and_frames_stay_rgb():
    frames = [GifFrame(np.array([[1, 7]]), transparent_index=7), GifFrame(np.array([[2, 2]]), left=0)]
    decoded = decode_all(encode_gif(2, 1, frames, full_palette([BLACK, RED, GREEN, BLUE, WHITE, WHITE, WHITE, WHITE])))
    assert all(frame.shape == (1, 2, 3) for frame in decoded)  # RGBA frames would have 4 channels
    np.testing.assert_array_equal(decoded[0], image_of([[RED, BLACK]]))
    np.testing.assert_array_equal(decoded[1], image_of([[GREEN, GREEN]]))


def test_frame_durations_are_read_and_a_zero_delay_means_100_ms():
    layout = parse_gif_layout(numbered_gif(4, delays_cs=[2, 7, 0, 12]), "test.gif", BIG)
    assert layout.frame_durations_ms == (20, 70, 100, 120)
    assert layout.duration_ms == 310


def test_single_frame_gif_becomes_a_still_video(tmp_path):
    write_pair(tmp_path, "still", numbered_gif(1))
    video = dataset(tmp_path, num_frames=5)[0]["video"]  # (c, f, h, w)
    assert video.shape == (3, 5, 8, 8)
    assert all(torch.equal(video[:, 0], video[:, index]) for index in range(5))


# ---------------------------------------------------------------- frame selection


def selected_source_frames(tmp_path, gif_bytes, **fields) -> list[int]:
    config = DataConfig(str(tmp_path), image_size=8, **fields)
    frames, _ = load_clip(write_pair(tmp_path, "clip", gif_bytes), config, np.random.default_rng(fields.get("seed", 0)))
    return [source_frame_of(frame) for frame in frames]


def test_uniform_sampling_takes_the_centre_of_equal_segments(tmp_path):
    assert selected_source_frames(tmp_path, numbered_gif(32), num_frames=4) == [4, 12, 20, 28]
    assert selected_source_frames(tmp_path, numbered_gif(4), num_frames=4) == [0, 1, 2, 3]


@pytest.mark.parametrize("frame_sampling", ["uniform", "random"])
def test_short_clip_is_padded_by_holding_its_last_frame(tmp_path, frame_sampling):
    assert selected_source_frames(tmp_path, numbered_gif(3), num_frames=6, frame_sampling=frame_sampling) == [0, 1, 2, 2, 2, 2]


def test_random_window_is_consecutive_and_covers_every_start():
    starts = set()
    for seed in range(200):
        positions = select_positions(10, 4, "random", np.random.default_rng(seed))
        assert positions.tolist() == list(range(positions[0], positions[0] + 4))
        starts.add(int(positions[0]))
    assert starts == set(range(7))


def first_source_frame(video: torch.Tensor) -> int:
    """Which numbered_gif frame the first frame of a (c, f, h, w) video in [-1, 1] came from."""
    frame = (video[:, 0] + 1) * 127.5  # (c, h, w)
    return source_frame_of(frame.permute(1, 2, 0).numpy())


def test_random_window_depends_only_on_seed_epoch_and_index(tmp_path):
    for index in range(6):
        write_pair(tmp_path, f"clip{index}", numbered_gif(40))
    data = dataset(tmp_path, frame_sampling="random")
    first = [first_source_frame(data[index]["video"]) for index in range(6)]
    backwards = [first_source_frame(data[index]["video"]) for index in reversed(range(6))]
    assert first == backwards[::-1]  # request order does not matter
    assert first == [first_source_frame(dataset(tmp_path, frame_sampling="random")[index]["video"]) for index in range(6)]
    data.set_epoch(1)
    assert [first_source_frame(data[index]["video"]) for index in range(6)] != first
    assert [first_source_frame(dataset(tmp_path, frame_sampling="random", seed=1)[index]["video"]) for index in range(6)] != first


def test_target_fps_resamples_by_frame_duration(tmp_path):
    # Frames shown for 100, 300 and 100 ms; at 10 fps the ticks 0, 100, 200, 300, 400 ms see 0, 1, 1, 1, 2.
    gif = numbered_gif(3, delays_cs=[10, 30, 10])
    assert selected_source_frames(tmp_path, gif, num_frames=5, target_fps=10) == [0, 1, 1, 1, 2]
    assert selected_source_frames(tmp_path, gif, num_frames=5) == [0, 1, 2, 2, 2]


# ---------------------------------------------------------------- size, range, flips


def left_right_gif(width: int, height: int) -> bytes:
    """Left half red, right half blue, a white column in the middle third's centre for crop checks."""
    pixels = np.where(np.arange(width) < width // 2, 1, 3)[None].repeat(height, axis=0)
    return encode_gif(width, height, [GifFrame(pixels)], full_palette([BLACK, RED, GREEN, BLUE]))


@pytest.mark.parametrize("width, height", [(40, 20), (20, 40)])
def test_crop_fills_the_frame_and_letterbox_adds_black_bars(tmp_path, width, height):
    write_pair(tmp_path, "clip", left_right_gif(width, height))
    cropped = dataset(tmp_path, image_size=16)[0]["video"]
    boxed = dataset(tmp_path, image_size=16, resize_mode="letterbox")[0]["video"]
    for video in (cropped, boxed):
        assert video.shape == (3, 4, 16, 16) and video.dtype == torch.float32
        assert video.min() >= -1 and video.max() <= 1
    assert (cropped.amax(dim=0) > 0.9).all()  # every pixel is red or blue: no bars after a crop
    bars = boxed[:, :, :4] if width > height else boxed[:, :, :, :4]  # (c, f, ., .) top rows or left columns
    assert torch.all(bars == -1)


def test_no_horizontal_flip_by_default_and_flips_when_asked(tmp_path):
    write_pair(tmp_path, "clip", left_right_gif(16, 16))
    for seed in range(5):
        video = dataset(tmp_path, image_size=16, seed=seed)[0]["video"]  # (c, f, h, w)
        assert video[0, :, :, 0].min() == 1 and video[2, :, :, 0].max() == -1  # red stays on the left
    flipped = dataset(tmp_path, image_size=16, horizontal_flip_probability=1.0)[0]["video"]
    assert flipped[2, :, :, 0].min() == 1  # blue on the left


def test_item_format_and_both_constructors_agree(tmp_path):
    write_pair(tmp_path, "clip", numbered_gif(5, 12, 10), "hello")
    from_root = SignVideoDataset(str(tmp_path), 3, 8, verbose=False)
    from_config = SignVideoDataset(DataConfig(str(tmp_path), num_frames=3, image_size=8, verbose=False))
    item = from_root[0]
    assert set(item) == {"video", "caption", "name", "signer", "sign_positions", "sign_phases"} and item["caption"] == "hello" and item["name"] == "clip"
    assert item["signer"] == "" and item["sign_positions"].tolist() == [0, 0, 0]  # no signers.csv, no signs.csv: unknown, the uniform prior
    assert torch.equal(item["video"], from_config[0]["video"])
    assert from_config.config == from_root.config
    with pytest.raises(ValueError, match="unknown DataConfig fields"):
        SignVideoDataset(str(tmp_path), 3, 8, image_sise=9)


def test_captions_need_no_decoding(tmp_path, monkeypatch):
    write_pair(tmp_path, "a", numbered_gif(2), "one")
    write_pair(tmp_path, "b", numbered_gif(2), "two")

    def no_decoding(*args, **kwargs):
        raise AssertionError("captions must not decode clips")

    monkeypatch.setattr("text2sign.data.dataset.load_clip", no_decoding)
    data = dataset(tmp_path)
    assert data.captions == ["one", "two"]
    assert data.captions is data.captions  # not a copy: `data.captions[i]` over 70,000 clips stays linear


@pytest.mark.parametrize(
    "fields, message",
    [({"frame_sampling": "middle"}, "frame_sampling"), ({"val_fraction": 1.0}, "val_fraction"), ({"group_pattern": "("}, "regex"),
     ({"target_fps": 0}, "target_fps"), ({"resize_mode": "stretch"}, "resize_mode"), ({"split": "test"}, "split")],
)
def test_config_rejects_bad_values(fields, message):
    with pytest.raises(ValueError, match=message):
        DataConfig("data", **fields)


# ---------------------------------------------------------------- split


def test_split_is_stable_when_files_are_added():
    names = [f"clip_{index:04d}" for index in range(2000)]
    before = dict(zip(names, assign_splits(names, 0.1, None)))
    grown = names + [f"new_{index:04d}" for index in range(3000)]
    after = dict(zip(grown, assign_splits(grown, 0.1, None)))
    assert all(after[name] == side for name, side in before.items())
    assert 0.07 < list(before.values()).count("val") / len(names) < 0.13


def test_split_hash_is_the_same_in_every_process():
    # Python's hash() of a str changes with PYTHONHASHSEED; the split must not.
    assert hash_fraction("isl_raw/isl_hello") == pytest.approx(HELLO_FRACTION, abs=1e-12)


def test_group_pattern_keeps_each_source_video_on_one_side():
    videos = [f"vid{index:03d}xxxxx" for index in range(300)]  # 11-character ids, as on YouTube
    names = [f"train/{video}_{sentence}-5-rgb_front" for video in videos for sentence in range(4)]
    sides = assign_splits(names, 0.2, r"(?:^|/)(.{11})_\d+-")
    by_video: dict[str, set] = {}
    for name, side in zip(names, sides):
        by_video.setdefault(name.split("/")[1][:11], set()).add(side)
    assert all(len(video_sides) == 1 for video_sides in by_video.values())
    assert {"train", "val"} == set(sides)
    ungrouped = assign_splits(names, 0.2, None)  # without the key, sentences of one video scatter
    assert any(len({ungrouped[i] for i in range(start, start + 4)}) == 2 for start in range(0, len(names), 4))


def test_train_and_val_partition_the_clips(tmp_path):
    for index in range(40):
        write_pair(tmp_path, f"clip{index:02d}", numbered_gif(1))
    train = dataset(tmp_path, split="train", val_fraction=0.25)
    val = dataset(tmp_path, split="val", val_fraction=0.25)
    assert sorted(train.names + val.names) == dataset(tmp_path).names
    assert not set(train.names) & set(val.names) and len(val) > 0
    assert val.summary["split"] == {"split": "val", "clips": len(val), "of": 40, "val_fraction": 0.25}


def test_an_empty_split_raises_with_advice(tmp_path):
    write_pair(tmp_path, "only", numbered_gif(1))
    with pytest.raises(ValueError, match="raise val_fraction"):
        dataset(tmp_path, split="val", val_fraction=0.0)


def test_asking_more_frames_than_a_clip_has_warns_with_the_counts(tmp_path):
    write_pair(tmp_path, "short", numbered_gif(4, 16, 16))
    dataset = SignVideoDataset(DataConfig(str(tmp_path), num_frames=6, image_size=8, verbose=False))
    with pytest.warns(UserWarning, match=r"has 4 frames but num_frames=6: its last frame is held for the other 2"):
        dataset[0]


def test_asking_more_pixels_than_a_clip_has_warns_with_the_sizes(tmp_path):
    write_pair(tmp_path, "small", numbered_gif(4, 16, 12))
    dataset = SignVideoDataset(DataConfig(str(tmp_path), num_frames=4, image_size=24, verbose=False))
    with pytest.warns(UserWarning, match=r"16x12 but image_size=24: it is upsampled 2x"):
        dataset[0]


def test_a_clip_with_enough_frames_and_pixels_loads_without_a_warning(tmp_path, recwarn):
    write_pair(tmp_path, "ample", numbered_gif(8, 16, 16))
    SignVideoDataset(DataConfig(str(tmp_path), num_frames=8, image_size=16, verbose=False))[0]
    assert not [warning for warning in recwarn if "num_frames" in str(warning.message) or "image_size" in str(warning.message)]


def test_captions_only_in_validation_are_the_distinct_ones_no_training_clip_has():
    assert captions_only_in_validation(["a", "b", "a"], ["b", "c", "d", "c"]) == ["c", "d"]
    assert captions_only_in_validation(["a"], []) == []
