"""Composition augmentation: new training sentences spliced from real recordings at sign boundaries, rendered on the fly.

A benchmark's new sentences are new orders of known signs; a model that has only seen each sentence whole learns
sentences, not signs. Here a training item may instead be two training recordings of one signer cut in a rest
between two signs and joined: the first's signs up to the cut, then the second's from its cut on,
  A = JOHN WRITE | HOMEWORK     B = MARY | GO FUTURE1     ->     JOHN WRITE GO FUTURE1,
with the join cross-faded (tracks.cross_fade, as the gloss stitcher joins its pieces) and the timing of every sign
carried over, so the sign track (data/sign_timing.py) knows when each sign happens in the new clip. It needs what
`render_tracks.render_folder` writes beside the clips: `placed_tracks.npz` (each recording's positions at its own
frame rate, in the rendered body), `signs.csv` and `signers.csv`. Only training clips are spliced, so nothing held out
leaks in. The share of augmented items is `DataConfig.composition_share`; the draw is the item's own seeded rng, so
it is the same in every DataLoader worker layout and on resume.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from text2sign.data.frames import frames_to_video
from text2sign.data.render_tracks import PLACED_TRACKS_FILE, FigureStyle, render_trajectory
from text2sign.data.sign_timing import SignSpan, frame_alignment, read_sign_timing, read_signers
from text2sign.data.tracks import cross_fade, resample_uniformly
from text2sign.json_io import read_json

class SignComposer:
    """Splices pairs of the folder's training recordings (same signer) at sign boundaries; `compose(rng)` -> a dataset item."""

    def __init__(self, folder: str | Path, names: Sequence[str], num_frames: int, image_size: int):
        folder = Path(folder)
        if not (folder / PLACED_TRACKS_FILE).is_file():
            raise ValueError(f"composition augmentation splices recorded tracks, and {folder} has no {PLACED_TRACKS_FILE}: render the "
                             "clips with `python -m text2sign.data.render_tracks` (or set --data.composition_share 0)")
        with np.load(folder / PLACED_TRACKS_FILE) as arrays:
            tracks = {name: arrays[name] for name in arrays.files}
        timings, signers = read_sign_timing(folder), read_signers(folder)
        settings = read_json(folder / "recordings.json")
        speakers = sorted({row["speaker"] for row in settings["recordings"]})
        self.styles = {speaker: FigureStyle().for_signer(speakers.index(speaker)) if settings.get("signer_colours") else FigureStyle()
                       for speaker in speakers}
        # Only recordings with two or more timed signs have a boundary to cut at.
        usable = [name for name in names if name in tracks and len(timings.get(name, ())) >= 2]
        if len(usable) < 2:
            raise ValueError(f"composition augmentation needs two training recordings with two or more timed signs; {folder} has {len(usable)}")
        self.tracks = {name: tracks[name] for name in usable}
        self.timings = {name: timings[name] for name in usable}
        self.signers = {name: signers.get(name, "") for name in usable}
        self.by_signer = defaultdict(list)
        for name in usable:
            self.by_signer[self.signers[name]].append(name)
        self.names = usable
        self.num_frames, self.image_size = num_frames, image_size

    def _rows(self, name: str) -> tuple[np.ndarray, list[tuple[str, int, int]]]:
        """The recording's positions and its signs as (sign, first row, last row)."""
        positions = self.tracks[name]
        last = positions.shape[0] - 1
        return positions, [(span.sign, round(span.start * last), round(span.end * last)) for span in self.timings[name]]

    def splice(self, first: str, cut_first: int, second: str, cut_second: int) -> tuple[np.ndarray, tuple[SignSpan, ...]]:
        """first's signs before index cut_first, then second's from cut_second on (each cut a boundary: 1..signs-1), joined in
        the rest between the signs either side. -> positions (n, 3, 2) and the new clip's spans (fractions)."""
        positions_a, signs_a = self._rows(first)
        positions_b, signs_b = self._rows(second)
        row_a = (signs_a[cut_first - 1][2] + signs_a[cut_first][1] + 1) // 2  # mid-gap: A's kept rows end before it
        row_b = (signs_b[cut_second - 1][2] + signs_b[cut_second][1] + 1) // 2
        joined, offset = cross_fade(positions_a[:row_a], positions_b[row_b:])  # B's row r lands at r - row_b + offset
        rows = [*signs_a[:cut_first], *[(sign, start - row_b + offset, end - row_b + offset) for sign, start, end in signs_b[cut_second:]]]
        last = max(joined.shape[0] - 1, 1)
        spans = tuple(SignSpan(sign, min(max(start / last, 0.0), 1.0), min(max(end / last, 0.0), 1.0)) for sign, start, end in rows)
        return joined.astype(np.float32), spans

    def compose(self, rng: np.random.Generator) -> dict:
        """A dataset item (data/dataset.py's format) of a random splice of two recordings by one signer."""
        first = self.names[int(rng.integers(len(self.names)))]
        partners = [name for name in self.by_signer[self.signers[first]] if name != first] or [name for name in self.names if name != first]
        second = partners[int(rng.integers(len(partners)))]
        cut_first = int(rng.integers(1, len(self.timings[first])))
        cut_second = int(rng.integers(1, len(self.timings[second])))
        positions, spans = self.splice(first, cut_first, second, cut_second)
        trajectory = resample_uniformly(positions, self.num_frames)  # (f, 3, 2), spread over the whole clip as rendered clips are
        frames = render_trajectory(trajectory, self.image_size, self.styles.get(self.signers[first], next(iter(self.styles.values()))))
        sign_positions, sign_phases = frame_alignment(spans, self.num_frames)
        return {"video": frames_to_video(frames), "caption": " ".join(span.sign for span in spans), "name": f"composed:{first}+{second}",
                "signer": self.signers[first], "sign_positions": sign_positions, "sign_phases": sign_phases}
