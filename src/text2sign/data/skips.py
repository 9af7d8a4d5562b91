"""Skipped files: one error type with a reason code, one log that counts them, one place that opens files.

A broken or unreadable file is never replaced by invented data (the prior loader trained on random noise
in place of unreadable GIFs). It is skipped, counted under a stable reason code and logged; in strict mode
the first one raises instead.
"""

from __future__ import annotations

import logging
import os
from collections import Counter

logger = logging.getLogger("text2sign.data")

# reason code -> how to fix it; the codes are the keys of the summary's "skipped_by_reason".
FIXES = {
    "zero_bytes": "The file is empty: re-export or re-download it.",
    "not_a_gif": "The file is not GIF data despite its name: convert it to GIF or remove it.",
    "truncated": "The file ends early (interrupted copy or download): re-download or re-export it.",
    "invalid_dimensions": "The GIF header gives a zero width or height: re-export the file.",
    "frame_too_large": "Raise max_frame_pixels if the file is trusted, or downscale it first.",
    "no_frames": "The GIF holds no image: re-export it.",
    "decode_error": "The image data is corrupt: re-export the file.",
    "permission_denied": "Make the file readable by this user (chmod a+r).",
    "unreadable": "The operating system refused to read it: check the disk and the path.",
    "empty_caption": "Write the caption (one line of UTF-8 text) into the .txt file.",
    "caption_not_utf8": "Re-save the caption as UTF-8.",
    "duplicate_name": "Two files differ only in the case of their extension: keep one.",
}


class UnreadableFileError(ValueError):
    """A file that cannot become a training clip, with a reason code from FIXES."""

    def __init__(self, path: str | os.PathLike, reason: str, detail: str):
        assert reason in FIXES, reason
        self.path = str(path)
        self.reason = reason
        self.detail = detail
        super().__init__(f"{self.path}: {reason} ({detail}). {FIXES[reason]} Without strict mode such files are skipped and counted.")


def read_file(path: str | os.PathLike, max_bytes: int = -1) -> bytes:
    """The file's bytes (at most max_bytes), with open/read failures turned into reason codes."""
    try:
        with open(path, "rb") as handle:
            return handle.read(max_bytes)
    except PermissionError as error:
        raise UnreadableFileError(path, "permission_denied", error.strerror or str(error)) from error
    except OSError as error:
        raise UnreadableFileError(path, "unreadable", error.strerror or str(error)) from error


class SkipLog:
    """Collects skipped files in the order met; raises on the first one when strict."""

    def __init__(self, strict: bool):
        self.strict = strict
        self.entries: list[dict] = []

    def record(self, name: str, error: UnreadableFileError) -> None:
        if self.strict:
            raise error
        logger.warning("skipping %s: %s (%s)", error.path, error.reason, error.detail)
        self.entries.append({"name": name, "path": error.path, "reason": error.reason, "detail": error.detail})

    def counts_by_reason(self) -> dict[str, int]:
        return dict(sorted(Counter(entry["reason"] for entry in self.entries).items()))

    def __len__(self) -> int:
        return len(self.entries)
