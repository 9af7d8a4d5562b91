"""Import a top-level script (train.py, evaluate.py) as a module, to test its argument handling in-process."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]


def load_script(filename: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(Path(filename).stem + "_script", REPO / filename)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
