"""Data: NAME.gif + NAME.txt folders -> (c, f, h, w) videos in [-1, 1] with captions; see docs/data.md.

Modules, one idea each:
  config.py    DataConfig
  pairing.py   recursive NAME.gif + NAME.txt pairing, captions, the pairing summary
  skips.py     reason codes for skipped files, the skip log, strict mode
  gif.py       header check, block-structure walk, Pillow compositing
  frames.py    timeline (target_fps), frame selection and padding, crop / letterbox
  clip.py      one GIF -> num_frames uint8 frames (shared by dataset and cache)
  split.py     train/val by a hash of the name or its group key
  cache.py     memory-mapped frame cache: write, resume, read, refuse mismatched settings
  dataset.py   SignVideoDataset
  prepare.py   `python -m text2sign.data.prepare`: build the cache with all cores
  inspect.py   `python -m text2sign.data.inspect`: summary and distributions of a folder
"""

from text2sign.data.config import DataConfig
from text2sign.data.dataset import SignVideoDataset, collate_batch
from text2sign.data.skips import UnreadableFileError

__all__ = ["DataConfig", "SignVideoDataset", "UnreadableFileError", "collate_batch"]
