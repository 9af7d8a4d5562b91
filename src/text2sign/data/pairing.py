"""NAME.gif + NAME.txt pairing under a folder, recursively, with a summary of everything left out.

Indexing reads every caption (the dataset's `.captions` feed the vocabulary) and the 13-byte header of
every GIF, nothing more: on 70,000 pairs that is ~140,000 small reads, about 2 s on one core with a warm
page cache (see docs/data.md), so it stays in one process. Whole-file checks (truncation, corrupt image
data) cost a full read and happen once in `prepare` or when a clip is first decoded.

A name is the path relative to the data folder, without extension, '/'-separated (`isl_raw/isl_hello`):
the same on every machine, the key for pairing, sorting, splitting and the cache.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from text2sign.data.gif import HEADER_BYTES, check_gif_header
from text2sign.data.skips import SkipLog, UnreadableFileError, read_file

VIDEO_EXTENSION = ".gif"
CAPTION_EXTENSION = ".txt"
SUMMARY_EXAMPLES = 5  # orphan and skipped names shown in the printed summary; the JSON has them all


@dataclass(frozen=True)
class ClipRecord:
    name: str
    gif_path: str
    caption: str


@dataclass
class Pairing:
    data_dir: str
    records: list[ClipRecord]  # usable pairs, sorted by name
    pairs_found: int = 0  # names with both a GIF and a caption, usable or skipped
    gifs_without_caption: list[str] = field(default_factory=list)
    captions_without_gif: list[str] = field(default_factory=list)
    skip_log: SkipLog = field(default_factory=lambda: SkipLog(strict=False))

    def summary(self) -> dict:
        return {
            "data_dir": self.data_dir,
            "pairs_found": self.pairs_found,
            "usable_pairs": len(self.records),
            "gifs_without_caption": len(self.gifs_without_caption),
            "captions_without_gif": len(self.captions_without_gif),
            "skipped": len(self.skip_log),
            "skipped_by_reason": self.skip_log.counts_by_reason(),
            "skipped_files": list(self.skip_log.entries),
            "gifs_without_caption_names": list(self.gifs_without_caption),
            "captions_without_gif_names": list(self.captions_without_gif),
        }


def _scan(data_dir: Path, skip_log: SkipLog) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """{name: [paths]} for GIFs and captions. os.scandir reads file types from the directory entries,
    so no file is stat'ed; only directories are, to break symlink loops."""
    gifs: dict[str, list[str]] = {}
    captions: dict[str, list[str]] = {}
    visited_directories: set[tuple[int, int]] = set()
    pending = [(str(data_dir), "")]
    while pending:
        directory, relative = pending.pop()
        identity = os.stat(directory)
        if (identity.st_dev, identity.st_ino) in visited_directories:
            continue
        visited_directories.add((identity.st_dev, identity.st_ino))
        try:
            entries = list(os.scandir(directory))
        except PermissionError as error:
            skip_log.record(relative or ".", UnreadableFileError(directory, "permission_denied", f"cannot list folder: {error.strerror}"))
            continue
        for entry in entries:
            if entry.is_dir():
                pending.append((entry.path, relative + entry.name + "/"))
                continue
            stem, extension = os.path.splitext(entry.name)
            extension = extension.lower()  # NAME.GIF from a camera export pairs like NAME.gif
            if extension == VIDEO_EXTENSION:
                gifs.setdefault(relative + stem, []).append(entry.path)
            elif extension == CAPTION_EXTENSION:
                captions.setdefault(relative + stem, []).append(entry.path)
    return gifs, captions


def read_caption(path: str) -> str:
    """UTF-8 caption with a byte-order mark and surrounding whitespace stripped."""
    data = read_file(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise UnreadableFileError(path, "caption_not_utf8", f"byte {error.start}: {error.reason}") from error
    caption = text.strip()
    if not caption:
        raise UnreadableFileError(path, "empty_caption", f"{len(data)} bytes, no text")
    return caption


def _unique_path(name: str, paths: list[str], skip_log: SkipLog) -> str:
    """The path for a name; extras such as a.GIF beside a.gif are skipped, the first in sort order kept."""
    paths = sorted(paths)
    for duplicate in paths[1:]:
        skip_log.record(name, UnreadableFileError(duplicate, "duplicate_name", f"same name as {paths[0]}"))
    return paths[0]


def pair_folder(data_dir: str | os.PathLike, max_frame_pixels: int, strict: bool = False) -> Pairing:
    """Pair NAME.gif with NAME.txt under data_dir; check captions and GIF headers; sorted by name."""
    root = Path(data_dir)
    if not root.is_dir():
        raise ValueError(f"data_dir {str(root)!r} is not a folder: point it at the folder holding NAME.gif + NAME.txt pairs")
    skip_log = SkipLog(strict)
    gifs, captions = _scan(root, skip_log)
    paired_names = sorted(gifs.keys() & captions.keys())
    records = []
    for name in paired_names:
        gif_path = _unique_path(name, gifs[name], skip_log)
        caption_path = _unique_path(name, captions[name], skip_log)
        try:
            caption = read_caption(caption_path)
            check_gif_header(read_file(gif_path, HEADER_BYTES), gif_path, max_frame_pixels)
        except UnreadableFileError as error:
            skip_log.record(name, error)  # counted and logged; raises again in strict mode
            continue
        records.append(ClipRecord(name, gif_path, caption))
    return Pairing(
        data_dir=str(root.resolve()),
        records=records,
        pairs_found=len(paired_names),
        gifs_without_caption=sorted(gifs.keys() - captions.keys()),
        captions_without_gif=sorted(captions.keys() - gifs.keys()),
        skip_log=skip_log,
    )


def format_summary(summary: dict) -> str:
    """A few printable lines; the JSON summary lists every name."""
    reasons = ", ".join(f"{reason}: {count}" for reason, count in summary["skipped_by_reason"].items())
    lines = [
        f"{summary['data_dir']}: {summary['usable_pairs']:,} usable pairs of {summary['pairs_found']:,} found, "
        f"{summary['skipped']:,} files skipped" + (f" ({reasons})" if reasons else ""),
        f"  {summary['gifs_without_caption']:,} GIFs without caption, {summary['captions_without_gif']:,} captions without GIF",
    ]
    for title, names in (
        ("GIFs without caption", summary["gifs_without_caption_names"]),
        ("captions without GIF", summary["captions_without_gif_names"]),
    ):
        if names:
            more = f" and {len(names) - SUMMARY_EXAMPLES:,} more" if len(names) > SUMMARY_EXAMPLES else ""
            lines.append(f"  {title}: {', '.join(names[:SUMMARY_EXAMPLES])}{more}")
    for entry in summary["skipped_files"][:SUMMARY_EXAMPLES]:
        lines.append(f"  skipped {entry['path']}: {entry['reason']} ({entry['detail']})")
    if len(summary["skipped_files"]) > SUMMARY_EXAMPLES:
        lines.append(f"  ... and {len(summary['skipped_files']) - SUMMARY_EXAMPLES:,} more skipped files in the JSON summary")
    return "\n".join(lines)

