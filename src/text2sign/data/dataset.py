"""SignVideoDataset: NAME.gif + NAME.txt pairs (or their prepared cache) -> video tensors and captions.

An item is {"video": (c, f, h, w) float32 in [-1, 1], "caption": str, "name": str}.

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
from text2sign.data.clip import load_clip, shortfall_messages
from text2sign.data.config import DataConfig
from text2sign.data.frames import frames_to_video
from text2sign.data.pairing import format_summary, pair_folder
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

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self._names)

    def _load_frames(self, position: int, rng: np.random.Generator) -> np.ndarray:
        """(f, h, w, c) uint8 frames of the item at position; UnreadableFileError from a raw GIF."""
        if self._cache is not None:
            return np.array(self._cache.frames[self._sources[position]])  # copy out of the read-only memmap
        frames, info = load_clip(self._sources[position], self.config, rng)
        for message in shortfall_messages(info.timeline_length, info.width, info.height, self.config):
            warnings.warn(message, stacklevel=2)
        return frames

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        """The item at `key`: an index, or (epoch, index), which draws that epoch's random window whatever
        set_epoch said (a persistent DataLoader worker's copy of the dataset never sees set_epoch)."""
        epoch, index = key if isinstance(key, tuple) else (self.epoch, key)
        index = range(len(self))[index]  # IndexError past the end, as DataLoader expects
        for offset in range(len(self)):
            position = (index + offset) % len(self)
            name = self._names[position]
            if name in self.decode_failures:
                continue
            rng = np.random.default_rng([self.config.seed, epoch, position])
            try:
                frames = self._load_frames(position, rng)  # (f, h, w, c)
            except UnreadableFileError as error:
                if self.config.strict:
                    raise
                logger.warning("clip %s failed to decode, using the next clip instead: %s (%s)", name, error.reason, error.detail)
                self.decode_failures[name] = {"reason": error.reason, "detail": error.detail}
                continue
            if self.config.horizontal_flip_probability > 0 and rng.random() < self.config.horizontal_flip_probability:
                frames = frames[:, :, ::-1]  # mirror width: the signing hand changes side
            return {"video": frames_to_video(frames), "caption": self._captions[position], "name": name}
        raise ValueError(f"none of the {len(self):,} clips could be decoded: see decode_failures and the logged reasons")


def collate_batch(items: list[dict]) -> dict:
    """{"video": (b, c, f, h, w), "caption": [str], "name": [str]}, stacked in numpy for the same reason
    as frames_to_video: torch.stack on a busy machine waited 32 ms for its threads, np.stack took 0.06 ms."""
    return {
        "video": torch.from_numpy(np.stack([item["video"].numpy() for item in items])),  # (b, c, f, h, w)
        "caption": [item["caption"] for item in items],
        "name": [item["name"] for item in items],
    }
