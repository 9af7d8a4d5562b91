"""The key paths of evaluation.json as written before evaluation results were typed (tests/fixtures/evaluation_json_keys.json)."""

from __future__ import annotations

import json
from pathlib import Path

REFERENCE_KEYS = json.loads((Path(__file__).parent / "fixtures" / "evaluation_json_keys.json").read_text())


def key_paths(value, prefix: str = "") -> list[str]:
    """Sorted paths to every leaf, e.g. "/guidance/2/retrieval/pixel/top1"; a list index is written []."""
    if isinstance(value, dict):
        return sorted({path for key, item in value.items() for path in key_paths(item, f"{prefix}/{key}")})
    if isinstance(value, list):
        return sorted({path for item in value for path in key_paths(item, f"{prefix}[]")}) if value else [f"{prefix}[]"]
    return [prefix]
