"""SignVideoDataset: NAME.gif + NAME.txt pairs (or their prepared cache) -> video tensors and captions.

An item is {"video": (c, f, h, w) float32 in [-1, 1], "caption": str, "name": str, "signer": str ("" when not known),
"sign_positions": (f,) int64, "sign_phases": (f,) float32}: which of the caption's signs each frame shows (REST = -1)
and how far through it, from the folder's optional signs.csv, else the uniform prior (data/sign_timing.py). Only a
model with a sign conditioner reads the last three. With `composition_share`, that share of items are instead two
training recordings spliced into a new sentence (data/composition.py), named "composed:A+B".

Two sources, one item format:
  - the raw folder (cache_dir=None): pairing checks captions and GIF headers when the dataset is built;
    each __getitem__ decodes its GIF. Fine for thousands of clips, or to try settings.
  - a cache from `python -m text2sign.data.prepare` (cache_dir=...): frames were decoded once with the
    same code, so items equal the raw folder's uniform items exactly; __getitem__ is a memmap slice.

A clip that passes the header check but fails to decode (truncated, corrupt image data) does not stop
training and is never replaced by invented data: in strict mode it raises; otherwise it is logged,
counted in `decode_failures` (per process: each DataLoader worker keeps its own) and the item is the
next clip, in index order, that does decode. The substitution is deterministic: the same index always
yields the same clip, whatever the worker or the order of requests.

Randomness (random windows, opt-in flips) comes from numpy.random.default_rng([seed, epoch, index]):
the same in every DDP rank and DataLoader worker layout. Call `set_epoch(epoch)` at each epoch start, or index
with (epoch, index) keys, as training does (persistent workers' copies of the dataset never see set_epoch).
"""

from __future__ import annotations

import dataclasses
import os
import warnings

import numpy as np
import torch
from torch.utils.data import Dataset

from text2sign.data.cache import DONE, FrameCache
from text2sign.data.clip import CLIP_INFO_FIELDS, load_clip, shortfall_messages
from text2sign.data.config import DataConfig
from text2sign.data.frames import frames_to_video
from text2sign.data.frames import select_positions
from text2sign.data.pairing import format_summary, pair_folder
from text2sign.data.sign_timing import SIGN_TIMING_FILE, check_spans_match, frame_alignment, read_sign_timing, read_signers, uniform_spans
from text2sign.data.skips import UnreadableFileError, logger
from text2sign.data.split import assign_splits
from text2sign.json_io import write_json


def build_config(root_or_config: DataConfig | str | os.PathLike, num_frames: int | None, image_size: int | None, fields: dict) -> DataConfig:
    """DataConfig from either a config (fields override it) or a folder plus DataConfig fields."""
    valid_fields = {config_field.name for config_field in dataclasses.fields(DataConfig)}
    unknown = sorted(set(fields) - valid_fields)
    if unknown:
        raise ValueError(f"unknown DataConfig fields {unknown}; valid fields are {sorted(valid_fields)}")
    if num_frames is not None:
        fields["num_frames"] = num_frames
    if image_size is not None:
        fields["image_size"] = image_size
    if isinstance(root_or_config, DataConfig):
        return dataclasses.replace(root_or_config, **fields)
    if isinstance(root_or_config, (str, os.PathLike)):
        return DataConfig(data_dir=str(root_or_config), **fields)
    raise ValueError(f"pass a DataConfig or a data folder path, got {type(root_or_config).__name__}")


class SignVideoDataset(Dataset):
    def __init__(
        self,
        root_or_config: DataConfig | str | os.PathLike,
        num_frames: int | None = None,
        image_size: int | None = None,
        **fields,
    ):
        self.config = config = build_config(root_or_config, num_frames, image_size, fields)
        self._cache: FrameCache | None = None
        if config.cache_dir is None:
            pairing = pair_folder(config.data_dir, config.max_frame_pixels, config.strict)
            names = [record.name for record in pairing.records]
            captions = [record.caption for record in pairing.records]
            sources: list = [record.gif_path for record in pairing.records]  # GIF path per item
            summary = pairing.summary()
        else:
            self._cache = FrameCache(config.cache_dir)
            self._cache.check_config(config)
            rows = np.flatnonzero(self._cache.status == DONE).tolist()
            names = [self._cache.names[row] for row in rows]
            captions = [self._cache.captions[row] for row in rows]
            sources = rows  # cache row per item
            summary = dict(self._cache.pairing_summary, cache_dir=str(self._cache.cache_dir), decode_failures=self._cache.failures)

        if config.split is not None:
            sides = assign_splits(names, config.val_fraction, config.group_pattern)
            kept = [position for position, side in enumerate(sides) if side == config.split]
            summary["split"] = {"split": config.split, "clips": len(kept), "of": len(names), "val_fraction": config.val_fraction}
            names, captions, sources = [names[i] for i in kept], [captions[i] for i in kept], [sources[i] for i in kept]
        signers, timings = read_signers(config.data_dir), read_sign_timing(config.data_dir)
        for name, caption in zip(names, captions):
            if name in timings:
                check_spans_match(name, caption, timings[name])
        self._signers = [signers.get(name) for name in names]  # None: not known
        self._timings = [timings.get(name) for name in names]  # None: no labels (the uniform prior)
        summary["signers"] = {"known": sum(signer is not None for signer in self._signers), "distinct": len(set(filter(None, self._signers)))}
        summary["timed_clips"] = sum(spans is not None for spans in self._timings)
        if config.verbose:
            print(format_summary(summary))
        if config.summary_path is not None:
            write_json(config.summary_path, summary)
        if not names:
            where = f"cache {config.cache_dir}" if config.cache_dir else config.data_dir
            raise ValueError(
                f"no usable clips in {where}" + (f" for split={config.split!r} (val_fraction={config.val_fraction})" if config.split else "")
                + ": check the pairing summary, or raise val_fraction for a small folder"
            )
        self._names, self._captions, self._sources = names, captions, sources
        self._composer = None
        if config.composition_share > 0:
            # Imported here: composition renders with render_tracks, which imports video_io, which imports this package.
            from text2sign.data.composition import SignComposer

            self._composer = SignComposer(config.data_dir, names, config.num_frames, config.image_size)
        self.summary = summary
        self.decode_failures: dict[str, dict] = {}
        self.epoch = 0

    @property
    def captions(self) -> list[str]:
        """Every item's caption in index order, without decoding anything (the LSTM vocabulary source).
        The dataset's own list, not a copy (`dataset.captions[i]` in a loop stays O(1)): do not modify it."""
        return self._captions

    @property
    def names(self) -> list[str]:
        """Every item's name in index order; the dataset's own list: do not modify it."""
        return self._names

    @property
    def signers(self) -> list[str | None]:
        """Every item's signer (None: signers.csv does not name it), in index order."""
        return self._signers

    @property
    def timings(self) -> list[tuple | None]:
        """Every item's SignSpans from signs.csv (None: not timed), in index order."""
        return self._timings

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self._names)

    def _load_frames(self, position: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        """(f, h, w, c) uint8 frames of the item at position and the length of the timeline they were chosen from;
        UnreadableFileError from a raw GIF."""
        if self._cache is not None:
            row = self._sources[position]
            return np.array(self._cache.frames[row]), int(self._cache.clip_info[row, CLIP_INFO_FIELDS.index("timeline_length")])  # a copy out of the memmap
        frames, info = load_clip(self._sources[position], self.config, rng)
        for message in shortfall_messages(info.timeline_length, info.width, info.height, self.config):
            warnings.warn(message, stacklevel=2)
        return frames, info.timeline_length

    def _alignment(self, position: int, timeline_length: int) -> tuple[np.ndarray, np.ndarray]:
        """(f,) sign positions and phases of the item's frames, which sit at select_positions' places on its timeline
        (uniform sampling; a timed clip longer than a random window is an error, the uniform prior has no labels to miss)."""
        spans = self._timings[position]
        if spans is not None and self.config.frame_sampling == "random" and timeline_length > self.config.num_frames:
            raise ValueError(f"{SIGN_TIMING_FILE} times {self._names[position]}'s signs over the whole clip, which a random window of "
                             f"{self.config.num_frames} of its {timeline_length} frames does not show: train with --data.frame_sampling uniform")
        frames = select_positions(timeline_length, self.config.num_frames, "uniform", None)  # (f,)
        times = frames / max(timeline_length - 1, 1)  # (f,) fraction of the clip
        return frame_alignment(spans or uniform_spans(self._captions[position]), times)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        """The item at `key`: an index, or (epoch, index), which draws that epoch's random window whatever
        set_epoch said (a persistent DataLoader worker's copy of the dataset never sees set_epoch)."""
        epoch, index = key if isinstance(key, tuple) else (self.epoch, key)
        index = range(len(self))[index]  # IndexError past the end, as DataLoader expects
        if self._composer is not None:  # its own stream: the window and flip draws stay those of a run without it
            composition_rng = np.random.default_rng([self.config.seed, epoch, index, 1])
            if composition_rng.random() < self.config.composition_share:
                return self._composer.compose(composition_rng)
        for offset in range(len(self)):
            position = (index + offset) % len(self)
            name = self._names[position]
            if name in self.decode_failures:
                continue
            rng = np.random.default_rng([self.config.seed, epoch, position])
            try:
                frames, timeline_length = self._load_frames(position, rng)  # (f, h, w, c)
            except UnreadableFileError as error:
                if self.config.strict:
                    raise
                logger.warning("clip %s failed to decode, using the next clip instead: %s (%s)", name, error.reason, error.detail)
                self.decode_failures[name] = {"reason": error.reason, "detail": error.detail}
                continue
            if self.config.horizontal_flip_probability > 0 and rng.random() < self.config.horizontal_flip_probability:
                frames = frames[:, :, ::-1]  # mirror width: the signing hand changes side
            sign_positions, sign_phases = self._alignment(position, timeline_length)  # (f,) each
            return {"video": frames_to_video(frames), "caption": self._captions[position], "name": name, "signer": self._signers[position] or "",
                    "sign_positions": sign_positions, "sign_phases": sign_phases}
        raise ValueError(f"none of the {len(self):,} clips could be decoded: see decode_failures and the logged reasons")


def collate_batch(items: list[dict]) -> dict:
    """{"video": (b, c, f, h, w), "caption": [str], "name": [str], "signer": [str], "sign_positions"/"sign_phases": (b, f)}, stacked in numpy for the same reason
    as frames_to_video: torch.stack on a busy machine waited 32 ms for its threads, np.stack took 0.06 ms."""
    return {
        "video": torch.from_numpy(np.stack([item["video"].numpy() for item in items])),  # (b, c, f, h, w)
        "caption": [item["caption"] for item in items],
        "name": [item["name"] for item in items],
        "signer": [item["signer"] for item in items],
        "sign_positions": torch.from_numpy(np.stack([item["sign_positions"] for item in items])),  # (b, f)
        "sign_phases": torch.from_numpy(np.stack([item["sign_phases"] for item in items])),  # (b, f)
    }
