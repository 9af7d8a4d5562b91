"""The one JSON writer and reader: atomic, readable, and the only way the package writes a JSON file."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import pytest

from text2sign import json_io
from text2sign.json_io import read_json, write_json

REPO = Path(__file__).resolve().parents[1]


def test_round_trip_keeps_key_order_and_unicode_and_creates_the_folder(tmp_path):
    payload = {"zeta": 1, "alpha": [1.5, None, True], "caption": "señal, 手話"}
    path = write_json(tmp_path / "new" / "folder" / "file.json", payload)
    assert read_json(path) == payload
    text = path.read_text(encoding="utf-8")
    assert "señal, 手話" in text and text.index("zeta") < text.index("alpha") and text.endswith("}\n")
    assert list(tmp_path.glob("new/folder/*")) == [path]  # no temp file left behind


def test_the_file_is_fsynced_before_the_rename_makes_it_the_target(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(json_io.os, "fsync", lambda descriptor: (events.append("fsync"), real_fsync(descriptor)))
    monkeypatch.setattr(json_io.os, "replace", lambda source, target: (events.append("replace"), real_replace(source, target)))
    write_json(tmp_path / "file.json", {"a": 1})
    assert events == ["fsync", "replace"]


def test_a_write_that_dies_before_the_rename_leaves_the_old_file(tmp_path, monkeypatch):
    path = write_json(tmp_path / "config.json", {"version": 1})

    def killed(source, target):
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(json_io.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        write_json(path, {"version": 2})
    assert read_json(path) == {"version": 1}


def test_an_unserialisable_payload_leaves_the_old_file_and_no_temp_file(tmp_path):
    path = write_json(tmp_path / "config.json", {"version": 1})
    with pytest.raises(TypeError):
        write_json(path, {"version": object()})
    assert read_json(path) == {"version": 1} and sorted(tmp_path.iterdir()) == [path]


def test_allow_nan_false_refuses_non_standard_json(tmp_path):
    with pytest.raises(ValueError):
        write_json(tmp_path / "report.json", {"gap": math.inf}, allow_nan=False)
    assert math.isnan(read_json(write_json(tmp_path / "log.json", {"loss": math.nan}))["loss"])  # allowed by default


def test_reading_a_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.json"):
        read_json(tmp_path / "absent.json")


def test_no_other_module_writes_or_reads_json_files_itself():
    """A second writer is how the swapped-argument copies appeared; stdout and .jsonl rows are not files of JSON."""
    offenders = []
    for path in [*(REPO / "src").rglob("*.py"), REPO / "evaluate.py", REPO / "inference.py", *(REPO / "experiments").glob("*.py")]:
        if path.name == "json_io.py":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"json\.(dump|load)\(|write_text\(json\.dumps|json\.loads\([^)]*read_text", line):
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert offenders == []
