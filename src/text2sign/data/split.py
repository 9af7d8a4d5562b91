"""Train/validation split by a hash of each clip's group key.

A clip's side depends on its own key only, so adding or removing other files never moves it (a split by
shuffled position would reshuffle everything). With group_pattern, clips cut from one source video share
a key and so a side. How2Sign sentence clips are named `<11-character YouTube id>_<sentence>-<n>-rgb_front`
(`--7E2sU6zP4_10-5-rgb_front`); the pattern `(?:^|/)(.{11})_\\d+-` keeps every sentence of one video on one
side, so validation never shows a signer and scene that training has seen.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

from text2sign.data.skips import logger

HASH_BYTES = 8  # 64 bits: fractions finer than any val_fraction anyone will ask for


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
