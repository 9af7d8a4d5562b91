"""The one CSV reader of the data side files (tracks.csv, words.csv, signs.csv, signers.csv): rows with their line
numbers, so a bad value can name where it is, and a missing column named before any row is read."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path


def read_csv_rows(path: str | Path, columns: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) pairs of a CSV whose header names `columns` (extra columns are ignored)."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [column for column in columns if column not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; the header must name {','.join(columns)}")
        return [(reader.line_num, row) for row in reader]
