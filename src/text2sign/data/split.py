"""Train/validation split by a hash of each clip's group key.

A clip's side depends on its own key only, so adding or removing other files never moves it (a split by
shuffled position would reshuffle everything). With group_pattern, clips cut from one source video share
a key and so a side. How2Sign sentence clips are named `<11-character YouTube id>_<sentence>-<n>-rgb_front`
(`--7E2sU6zP4_10-5-rgb_front`); the pattern `(?:^|/)(.{11})_\\d+-` keeps every sentence of one video on one
side, so validation never shows a signer and scene that training has seen.

A training run records its split in `output_dir/split.json` (`write_split_record`): the clip names on each
side and the settings that made them. evaluate.py reads that record (`find_split_record`) rather than
recomputing the split, since recomputing with other settings silently scores training clips as held out.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from text2sign.data.skips import logger
from text2sign.json_io import read_json, write_json

HASH_BYTES = 8  # 64 bits: fractions finer than any val_fraction anyone will ask for
SPLIT_RECORD_NAME = "split.json"


def group_key(name: str, pattern: re.Pattern | None) -> str | None:
    """The split key of a name: group(1) of the pattern (group(0) without groups); None if no match."""
    if pattern is None:
        return name
    match = pattern.search(name)
    if match is None:
        return None
    return match.group(1) if pattern.groups else match.group(0)


def hash_fraction(key: str) -> float:
    """A number in [0, 1) fixed by the key alone, the same on every machine and Python version."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=HASH_BYTES).digest()
    return int.from_bytes(digest, "big") / 2 ** (8 * HASH_BYTES)


def assign_splits(names: Sequence[str], val_fraction: float, group_pattern: str | None) -> list[str]:
    """"train" or "val" per name. A name the group pattern does not match is its own group (and logged):
    it cannot leak a group it is not known to belong to."""
    pattern = re.compile(group_pattern) if group_pattern is not None else None
    sides = []
    unmatched = []
    for name in names:
        key = group_key(name, pattern)
        if key is None:
            unmatched.append(name)
            key = name
        sides.append("val" if hash_fraction(key) < val_fraction else "train")
    if unmatched:
        logger.warning(
            "group_pattern %r matches no group in %d names (e.g. %s); each is split as its own group",
            group_pattern, len(unmatched), ", ".join(unmatched[:3]),
        )
    return sides


def captions_only_in_validation(train_captions: Sequence[str], val_captions: Sequence[str]) -> list[str]:
    """The distinct validation captions that no training clip has, in first-seen order.

    On How2Sign every sentence is new, and validation measures generalisation. On a dataset of one clip per
    caption (ISL phrases, a memorisation check) each such caption is one the model never trains on, and the
    checkpoint with the lowest validation loss is the one that memorised least: train.py warns with these.
    """
    seen = set(train_captions)
    return [caption for caption in dict.fromkeys(val_captions) if caption not in seen]


# --------------------------------------------------------------------------------------------------------------
# The split a training run used, recorded beside its checkpoints
# --------------------------------------------------------------------------------------------------------------


@dataclass
class SplitRecord:
    """The clips on each side of a run's split. `val` is empty when the run held nothing out."""

    val_fraction: float
    group_pattern: str | None
    train: list[str]
    val: list[str]
    data_dir: str | None = None  # where the clips were read from, for the reader's information

    def names(self, side: str) -> list[str]:
        if side not in ("train", "val"):
            raise ValueError(f"a split record has sides 'train' and 'val', got {side!r}")
        return self.train if side == "train" else self.val


def write_split_record(output_dir: str | Path, record: SplitRecord) -> Path:
    """Write `output_dir/split.json` atomically; returns its path."""
    path = Path(output_dir) / SPLIT_RECORD_NAME
    write_json(path, asdict(record))
    return path


def read_split_record(path: str | Path) -> SplitRecord:
    payload = read_json(path)
    return SplitRecord(val_fraction=payload["val_fraction"], group_pattern=payload["group_pattern"], train=list(payload["train"]),
                       val=list(payload["val"]), data_dir=payload.get("data_dir"))


def find_split_record(checkpoint: str | Path) -> Path | None:
    """The split.json of the run a checkpoint came from, or None (e.g. a bare pipeline directory).

    A checkpoint is `output_dir/step_NNNNNNN/`, so the record is in its parent; a checkpoint's own
    `pipeline/` directory passed directly looks two levels up.
    """
    checkpoint = Path(checkpoint)
    candidates = [checkpoint.parent]
    if checkpoint.name == "pipeline":
        candidates.append(checkpoint.parent.parent)
    for directory in candidates:
        if (directory / SPLIT_RECORD_NAME).is_file():
            return directory / SPLIT_RECORD_NAME
    return None


class NamedClips:
    """The clips of `dataset` (a SignVideoDataset) with the given names, in the dataset's order.

    An item is always the named clip: a clip that fails to decode raises rather than being replaced by a
    neighbour, which could be a clip of the other side of the split.
    """

    def __init__(self, dataset, names: Sequence[str]):
        wanted = set(names)
        self.dataset = dataset
        self.positions = [position for position, name in enumerate(dataset.names) if name in wanted]
        self.missing = sorted(wanted - {dataset.names[position] for position in self.positions})

    @property
    def names(self) -> list[str]:
        return [self.dataset.names[position] for position in self.positions]

    @property
    def captions(self) -> list[str]:
        return [self.dataset.captions[position] for position in self.positions]

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, index: int) -> dict:
        position = self.positions[index]
        item = self.dataset[position]
        if item["name"] != self.dataset.names[position]:
            raise ValueError(f"clip {self.dataset.names[position]} failed to decode (see the logged reason); fix or remove it and evaluate again")
        return item
