"""When each sign happens, and who signs: the optional side files of a clip folder, and the frame alignment they give.

A clip's signs are its caption's whitespace-separated units in order (a gloss sentence's glosses; an English
caption's words). Two optional files beside the NAME.gif + NAME.txt pairs:

  signs.csv    name,sign,start,end   one row per sign, in order; start/end are fractions (0-1) of the clip's
                                     duration, so the timing holds at any frame count
  signers.csv  name,signer           who signs each clip (How2Sign's participant, Boston's speaker)

From a clip's spans, `frame_alignment` says for each of f uniformly spaced frames which sign it shows (its
position in the caption, or REST) and how far through that sign it is. Without timing labels (How2Sign captions)
`uniform_spans` is the monotonic prior: the signs share the clip equally, in order. At sampling time nothing is
labelled: `SignDurations`, fitted on the training spans, predicts each sign's share from its mean duration (the
training statistics; a sign never timed gets the mean of all signs).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from text2sign.data.csv_rows import read_csv_rows

SIGN_TIMING_FILE = "signs.csv"
SIGNERS_FILE = "signers.csv"
REST = -1  # the frame's position when it shows no sign (before the first, between two, after the last)


@dataclass(frozen=True)
class SignSpan:
    sign: str
    start: float  # fraction of the clip's duration
    end: float


def caption_signs(caption: str) -> list[str]:
    """The caption's signs: its whitespace-separated units."""
    return caption.split()


def read_sign_timing(folder: str | Path) -> dict[str, tuple[SignSpan, ...]]:
    """name -> its spans in order, from folder/signs.csv; {} when the folder has none. A malformed row is an
    error naming its line: timing labels are few and hand-made, and a wrong one would train silently."""
    path = Path(folder) / SIGN_TIMING_FILE
    if not path.is_file():
        return {}
    spans: dict[str, list[SignSpan]] = defaultdict(list)
    for line, row in read_csv_rows(path, ("name", "sign", "start", "end")):
        try:
            start, end = float(row["start"]), float(row["end"])
        except ValueError:
            raise ValueError(f"{path}:{line}: start and end must be numbers (fractions of the clip), got {row['start']!r}, {row['end']!r}") from None
        if not 0.0 <= start <= end <= 1.0:
            raise ValueError(f"{path}:{line}: need 0 <= start <= end <= 1 (fractions of the clip's duration), got {start}, {end}")
        previous = spans[row["name"]][-1:]
        if previous and start < previous[0].start:
            raise ValueError(f"{path}:{line}: {row['name']}'s signs must be listed in order; {row['sign']!r} starts before {previous[0].sign!r}")
        spans[row["name"]].append(SignSpan(row["sign"], start, end))
    return {name: tuple(rows) for name, rows in spans.items()}


def check_spans_match(name: str, caption: str, spans: Sequence[SignSpan]) -> None:
    """The spans must be the caption's signs, in order (case aside): a clip's timing belongs to its own caption."""
    signs = [sign.casefold() for sign in caption_signs(caption)]
    timed = [span.sign.casefold() for span in spans]
    if signs != timed:
        raise ValueError(f"{SIGN_TIMING_FILE}: the signs timed for {name} ({' '.join(timed)!r}) are not its caption's ({' '.join(signs)!r})")


def read_signers(folder: str | Path) -> dict[str, str]:
    """name -> signer, from folder/signers.csv; {} when the folder has none."""
    path = Path(folder) / SIGNERS_FILE
    if not path.is_file():
        return {}
    signers = {}
    for line, row in read_csv_rows(path, ("name", "signer")):
        if not row["signer"].strip():
            raise ValueError(f"{path}:{line}: {row['name']} has an empty signer")
        signers[row["name"]] = row["signer"].strip()
    return signers


def uniform_spans(caption: str) -> tuple[SignSpan, ...]:
    """The monotonic prior without labels: the caption's n signs share the clip equally, in order."""
    signs = caption_signs(caption)
    if not signs:
        return ()
    return tuple(SignSpan(sign, index / len(signs), (index + 1) / len(signs)) for index, sign in enumerate(signs))


def evenly_spaced_times(num_frames: int) -> np.ndarray:
    """(f,) times of f frames spread over a whole clip, first to last, as the track renderer places them."""
    return np.linspace(0.0, 1.0, num_frames) if num_frames > 1 else np.array([0.5])


def frame_alignment(spans: Sequence[SignSpan], times: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
    """positions (f,) int64: the sign each frame shows (its index in spans) or REST; phases (f,) float32: how far
    through that sign the frame is (0 at its start, 1 at its end; 0 for REST). `times` (f,): each frame's time as a
    fraction of the clip; an int f: f evenly spaced frames (evenly_spaced_times)."""
    times = evenly_spaced_times(times) if isinstance(times, (int, np.integer)) else np.asarray(times, dtype=np.float64)  # (f,)
    positions = np.full(len(times), REST, dtype=np.int64)  # (f,)
    phases = np.zeros(len(times), dtype=np.float32)  # (f,)
    for index, span in enumerate(spans):  # a later sign wins a shared boundary frame
        inside = (times >= span.start) & (times <= span.end)  # (f,)
        positions[inside] = index
        phases[inside] = (times[inside] - span.start) / max(span.end - span.start, 1e-6)
    return positions, phases


@dataclass
class SignDurations:
    """Training statistics of sign timing: each sign's mean duration, and the mean rest before, between and after.

    All in seconds-free units: fractions of their clips, scaled by the clip's sign count, so a sign's share does not
    depend on how many other signs shared its clip (`unit` = duration x number of signs in that clip)."""

    sign_units: dict[str, float] = field(default_factory=dict)  # casefolded sign -> mean duration x signs in its clip
    mean_unit: float = 1.0  # over every timed sign: the duration of a sign never timed
    lead_unit: float = 0.0  # mean rest before the first sign, same units
    gap_unit: float = 0.0  # mean rest between two signs
    trail_unit: float = 0.0  # mean rest after the last sign

    @classmethod
    def fit(cls, timings: Iterable[Sequence[SignSpan]]) -> "SignDurations":
        units: dict[str, list[float]] = defaultdict(list)
        leads, gaps, trails = [], [], []
        for spans in timings:
            if not spans:
                continue
            count = len(spans)
            for span in spans:
                units[span.sign.casefold()].append((span.end - span.start) * count)
            leads.append(spans[0].start * count)
            trails.append((1.0 - spans[-1].end) * count)
            gaps.extend(max(after.start - before.end, 0.0) * count for before, after in zip(spans, spans[1:]))
        if not units:
            return cls()
        every = [value for values in units.values() for value in values]
        return cls(sign_units={sign: float(np.mean(values)) for sign, values in sorted(units.items())}, mean_unit=float(np.mean(every)),
                   lead_unit=float(np.mean(leads)), gap_unit=float(np.mean(gaps)) if gaps else 0.0, trail_unit=float(np.mean(trails)))

    def predict(self, caption: str) -> tuple[SignSpan, ...]:
        """The caption's signs laid out on [0, 1]: lead rest, each sign's mean duration with the mean gap between, trail rest."""
        signs = caption_signs(caption)
        lengths = [self.sign_units.get(sign.casefold(), self.mean_unit) for sign in signs]
        if not signs:
            return ()
        total = self.lead_unit + sum(lengths) + self.gap_unit * (len(signs) - 1) + self.trail_unit
        spans, time = [], self.lead_unit
        for sign, length in zip(signs, lengths):
            spans.append(SignSpan(sign, time / total, (time + length) / total))
            time += length + self.gap_unit
        return tuple(spans)

    def to_dict(self) -> dict:
        return {"sign_units": self.sign_units, "mean_unit": self.mean_unit, "lead_unit": self.lead_unit, "gap_unit": self.gap_unit,
                "trail_unit": self.trail_unit}

    @classmethod
    def from_dict(cls, payload: dict) -> "SignDurations":
        return cls(**payload)
