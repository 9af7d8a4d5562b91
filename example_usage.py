#!/usr/bin/env python
"""The Python API in one page: build, train a few steps, sample, save, reload. Under a minute on a CPU.

    python example_usage.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from text2sign.data import DataConfig, SignVideoDataset, collate_batch
from text2sign.models.ema import ExponentialMovingAverage
from text2sign.models.objective import DenoisingObjective
from text2sign.models.pipeline import PipelineConfig, TextToSignPipeline, build_pipeline
from text2sign.models.text_encoder import TextEncoderConfig
from text2sign.models.unet3d import UNet3DConfig
from text2sign.video_io import write_gif

torch.manual_seed(0)
REPO = Path(__file__).resolve().parent

# 1. Data: NAME.gif + NAME.txt pairs -> {"video": (c, f, h, w) in [-1, 1], "caption": str}
dataset = SignVideoDataset(DataConfig(data_dir=str(REPO / "training_data"), num_frames=8, image_size=32))
loader = torch.utils.data.DataLoader(dataset, batch_size=2, shuffle=True, collate_fn=collate_batch)

# 2. Model: a text encoder (the LSTM builds its vocabulary from the captions), a 3D UNet at the encoder's text
#    width, a noise schedule (default SchedulerConfig), assembled by build_pipeline.
pipeline = build_pipeline(
    dataset.captions,
    unet=UNet3DConfig(model_channels=32, channel_mult=(1, 2, 2), attention_levels=(2,), num_res_blocks=1),
    text_encoder=TextEncoderConfig(kind="lstm", embed_dim=64, hidden_dim=64, num_layers=1),
    pipeline=PipelineConfig(num_frames=8, image_size=32),
)
pipeline.ema = ExponentialMovingAverage(pipeline, max_decay=0.999)
print(f"UNet: {pipeline.unet.num_parameters() / 1e6:.2f}M parameters")

# 3. Train a few steps: the objective (over the pipeline's own networks) draws caption dropout, noise and timesteps.
pipeline.train()
objective = DenoisingObjective.for_pipeline(pipeline)  # in train mode, as the pipeline: caption dropout on
optimizer = torch.optim.AdamW([p for p in pipeline.parameters() if p.requires_grad], lr=3e-4)
generator = torch.Generator().manual_seed(0)
for step, batch in zip(range(10), iter(lambda: next(iter(loader)), None)):
    loss = objective(batch["video"], batch["caption"], generator=generator)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    pipeline.ema.update(pipeline)
    print(f"step {step}: loss {loss.item():.4f}")

# 4. Sample with classifier-free guidance (EMA weights), any of the three samplers.
videos = pipeline(["Hello", "Thank you"], num_inference_steps=10, guidance_scale=4.0, scheduler="dpm", generator=torch.Generator().manual_seed(0))
print(f"sampled {tuple(videos.shape)} {videos.dtype}")  # (b, f, h, w, 3) uint8

# 5. Save and reload: config.json + safetensors for every part, loaded strictly.
with tempfile.TemporaryDirectory() as directory:
    pipeline.save_pretrained(directory)
    reloaded = TextToSignPipeline.from_pretrained(directory)
    again = reloaded(["Hello", "Thank you"], num_inference_steps=10, guidance_scale=4.0, scheduler="dpm", generator=torch.Generator().manual_seed(0))
    assert torch.equal(videos, again), "a reloaded pipeline samples exactly what the original did"
    write_gif(Path(directory) / "hello.gif", videos[0])
print("saved, reloaded and re-sampled identically")
