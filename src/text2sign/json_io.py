"""The one JSON writer and the one reader for every file the project writes: configs, summaries, reports
(and the atomic text writer under the JSON one, which model cards use too).

The writer goes through a temporary file, fsyncs it and renames it over the target, so a kill (or a full disk)
mid-write leaves the old file or the new one, never half of one. Output is UTF-8 (captions stay readable, not
\\u escapes), indented by 2, keys in the order given, with a final newline.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_json(path: str | os.PathLike, payload: Any, *, allow_nan: bool = True) -> Path:
    """Write `payload` as JSON to `path` atomically (temp file, fsync, rename); creates missing parent folders.

    allow_nan=False refuses inf/nan (which Python writes as the non-standard Infinity/NaN) with a ValueError.
    """
    text = json.dumps(payload, indent=2, ensure_ascii=False, allow_nan=allow_nan) + "\n"  # before opening: a bad payload leaves no temp file
    return write_text_atomically(path, text)


def write_text_atomically(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 `text` to `path` through a temp file, fsync and rename; creates missing parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())  # the bytes are on disk before the rename makes them the file
    os.replace(temporary, path)
    return path


def read_json(path: str | os.PathLike) -> Any:
    """The parsed contents of a JSON file; FileNotFoundError naming the path if there is none."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    return json.loads(path.read_text(encoding="utf-8"))
