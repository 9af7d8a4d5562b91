#!/usr/bin/env python
"""How much of the model's gap to replay is the pixel round trip? The benchmark scores the references (retrieval,
stitching, mean) as trajectories, while the model's hands are drawn into a video and read back by the extractor. This
draws the real recording and the retrieval reference the same way, at each image size, and scores them like the model.

    python experiments/pixel_round_trip.py                                   # the main page's folds, 16 and 32 px
    python experiments/pixel_round_trip.py --results docs/generalisation_runs/final_3600steps_from2400/generalisation.json

Prints, for the new-sentence recordings of the results' folds: the ground truth and the retrieval reference drawn at each
size and read back (the ground truth at 32 px is the page's `ground_truth` floor), and the model's score minus each
retrieval variant, a paired bootstrap 95% interval. A diagnostic: nothing in the benchmark is chosen on it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from text2sign.data.folds import NUM_FOLDS, sentence_folds
from text2sign.data.render_tracks import render_trajectory
from text2sign.data.tracks import load_recordings, signer_bodies, trajectory_of
from text2sign.evaluation.extraction import extract_trajectory
from text2sign.evaluation.generalisation import paired_bootstrap, retrieved_recordings
from text2sign.evaluation.trajectory import PRIMARY_BAND_FRACTION, dtw_mje_many, fill_missing
from text2sign.json_io import read_json

REPO = Path(__file__).resolve().parents[1]


def read_back(trajectory: np.ndarray, image_size: int) -> np.ndarray:
    """(f, 3, 2) drawn as the training clips are, at image_size, and read back by the extractor (gaps filled)."""
    return fill_missing(*extract_trajectory(render_trajectory(trajectory, image_size)))  # (f, 3, 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracks", type=Path, default=REPO.parent / "shared" / "data" / "boston104_tracks")
    parser.add_argument("--results", type=Path, default=REPO / "docs" / "generalisation.json", help="a benchmark page's JSON: its folds and model scores")
    parser.add_argument("--image_sizes", type=int, nargs="+", default=[16, 32])
    args = parser.parse_args()
    results = read_json(args.results)
    num_frames, model = results["setup"]["num_frames"], results["new_sentence"]["model"]["per_recording"]
    recordings = {recording.name: recording for recording in load_recordings(args.tracks)}
    folds = sentence_folds(list(recordings.values()), NUM_FOLDS).folds
    scores: dict[str, dict[str, float]] = {}  # variant -> name -> primary
    for fold in folds:
        bodies = signer_bodies([recordings[name] for name in fold.train])  # as the benchmark's signer normalisation
        retrieved = retrieved_recordings(fold, recordings)
        for name in (name for name in fold.new_sentence if name in model):
            real = trajectory_of(recordings[name], num_frames, bodies)  # (f, 3, 2)
            replayed = trajectory_of(recordings[retrieved[name]], num_frames, bodies)
            variants = {"retrieval, as a trajectory (the page's row)": replayed}
            for size in args.image_sizes:
                variants[f"ground truth drawn at {size} px, read back"] = read_back(real, size)
                variants[f"retrieval drawn at {size} px, read back"] = read_back(replayed, size)
            for variant, trajectory in variants.items():
                scores.setdefault(variant, {})[name] = float(dtw_mje_many(trajectory[None], real[None], PRIMARY_BAND_FRACTION)[0])
    names = sorted(next(iter(scores.values())))
    print(f"{args.results}: {len(names)} new-sentence recordings, {num_frames} frames; model {np.mean([model[name] for name in names]):.4f}")
    for variant, by_name in scores.items():
        line = f"  {variant}: {np.mean([by_name[name] for name in names]):.4f}"
        if variant.startswith("retrieval"):
            difference, (low, high) = paired_bootstrap([model[name] for name in names], [by_name[name] for name in names])
            wins = sum(model[name] < by_name[name] for name in names)
            line += f"; model - this {difference:+.4f} [{low:+.4f}, {high:+.4f}], model better on {wins} of {len(names)}"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
