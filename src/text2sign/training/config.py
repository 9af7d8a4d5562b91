"""TrainConfig: every knob of a training run in one dataclass, and the preset registry.

A preset is a named TrainConfig; command-line flags override its fields by name
(`config_from_preset("small", batch_size=8)`). The resolved config is saved with every checkpoint
and logged to wandb, so a run can always be traced back to exactly what it was.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from text2sign.models.pipeline import PipelineConfig
from text2sign.models.scheduler import SchedulerConfig
from text2sign.models.text_encoder import TextEncoderConfig
from text2sign.models.unet3d import UNet3DConfig


@dataclass
class TrainConfig:
    # data
    data_dir: str = "training_data"
    data_cache: str | None = None  # a cache written by `python -m text2sign.data.prepare`
    output_dir: str = "checkpoints"
    num_frames: int = 16
    image_size: int = 64
    val_fraction: float = 0.05  # held out by a hash of the clip name; 0 disables validation loss
    group_pattern: str | None = None  # regex on clip names: one group never straddles train/val
    num_workers: int = 2
    # "uniform": frames spread over the whole clip, as validation and evaluation take them (and all 16 frames of a
    # 16-frame How2Sign clip); "random": consecutive windows, an augmentation that trains on other frames than
    # those the model is evaluated on, so it is opt-in.
    train_frame_sampling: str = "uniform"
    # model
    preset: str = "standard"
    model_channels: int = 128
    channel_mult: tuple[int, ...] = (1, 2, 2, 2)
    num_res_blocks: int = 2
    attention_levels: tuple[int, ...] = (2, 3)
    attention_head_dim: int = 32
    dropout: float = 0.0
    gradient_checkpointing: bool = False
    # text
    text_encoder: str = "lstm"  # lstm | clip | t5 | hf
    text_encoder_path: str | None = None  # hub name or local directory for clip/t5/hf
    text_max_length: int = 32
    text_train_last_n_layers: int = 0
    # diffusion
    num_train_timesteps: int = 1000
    beta_schedule: str = "linear"
    prediction_type: str = "v_prediction"
    caption_dropout_prob: float = 0.1
    loss_weighting: str = "min_snr"
    min_snr_gamma: float = 5.0
    rescale_betas_zero_snr: bool = False  # Lin et al. 2024: the last training step is pure noise; needs v or sample prediction
    # optimisation
    batch_size: int = 4
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    warmup_steps: int = 500
    lr_schedule: str = "cosine"  # "cosine" decay to 0 at the last step | "constant" after warm-up (runs extended by resuming)
    num_epochs: int = 100
    max_steps: int | None = None  # optimizer steps; overrides num_epochs when set
    max_minutes: float | None = None  # wall-clock budget: checkpoint and stop once exceeded
    max_grad_norm: float = 1.0
    ema_max_decay: float = 0.9999
    max_nonfinite_steps: int = 5  # consecutive NaN/Inf losses tolerated (each skipped) before stopping
    mixed_precision: str = "no"  # no | fp16 | bf16
    compile: bool = False
    seed: int = 0
    # logging, sampling, checkpoints
    log_every: int = 10
    save_every: int = 1000  # optimizer steps between checkpoints (+ validation loss)
    keep_last: int = 3
    sample_every: int = 1000
    validation_prompts: tuple[str, ...] = ("Hello", "How are you?", "Thank you")
    sample_steps: int = 50
    guidance_scale: float = 4.0
    resume: str | None = None  # "latest" or a checkpoint directory
    wandb: bool = False
    wandb_project: str = "text2sign"
    wandb_run_name: str | None = None

    def __post_init__(self):
        self.channel_mult = tuple(self.channel_mult)
        self.attention_levels = tuple(self.attention_levels)
        self.validation_prompts = tuple(self.validation_prompts)
        positive = ("num_frames", "image_size", "batch_size", "gradient_accumulation_steps", "num_epochs", "log_every", "save_every", "keep_last", "sample_every", "sample_steps")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ValueError(f"mixed_precision must be no, fp16 or bf16, got {self.mixed_precision!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.lr_schedule not in ("cosine", "constant"):
            raise ValueError(f"lr_schedule must be cosine or constant, got {self.lr_schedule!r}")
        if self.train_frame_sampling not in ("random", "uniform"):
            raise ValueError(f"train_frame_sampling must be random or uniform, got {self.train_frame_sampling!r}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValueError(f"max_minutes must be positive, got {self.max_minutes}")
        if self.num_workers < 0 or self.warmup_steps < 0:
            raise ValueError("num_workers and warmup_steps must be >= 0")
        # Building the component configs runs their own checks (divisibility, unknown names) now,
        # before any data is read.
        multiple = self.unet_config(text_dim=32).size_multiple
        if self.image_size % multiple:
            raise ValueError(f"image_size={self.image_size} must be divisible by {multiple} for {len(self.channel_mult)} UNet levels")
        self.scheduler_config()
        self.text_encoder_config()
        self.pipeline_config()

    def unet_config(self, text_dim: int) -> UNet3DConfig:
        return UNet3DConfig(
            model_channels=self.model_channels, channel_mult=self.channel_mult, num_res_blocks=self.num_res_blocks,
            attention_levels=self.attention_levels, attention_head_dim=self.attention_head_dim, text_dim=text_dim,
            dropout=self.dropout, gradient_checkpointing=self.gradient_checkpointing,
        )

    def scheduler_config(self) -> SchedulerConfig:
        return SchedulerConfig(
            num_train_timesteps=self.num_train_timesteps, beta_schedule=self.beta_schedule, prediction_type=self.prediction_type,
            rescale_betas_zero_snr=self.rescale_betas_zero_snr,
        )

    def text_encoder_config(self) -> TextEncoderConfig:
        return TextEncoderConfig(
            kind=self.text_encoder, pretrained_path=self.text_encoder_path, max_length=self.text_max_length,
            train_last_n_layers=self.text_train_last_n_layers,
        )

    def pipeline_config(self) -> PipelineConfig:
        return PipelineConfig(
            num_frames=self.num_frames, image_size=self.image_size, caption_dropout_prob=self.caption_dropout_prob,
            loss_weighting=self.loss_weighting, min_snr_gamma=self.min_snr_gamma,
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# The presets named in the README. Every one takes frames and pixels the How2Sign clips have (16 frames of 64x64):
# asking for more only repeats the last frame and upsamples (the data warns when it must). Channel widths follow
# the brief; channel_mult (1, 2, 2, 2) keeps the standard UNet at ~63M parameters (the (1, 2, 4, 4) of image UNets
# gave 190M and 7 GB of CPU activations per clip for 64x64x16 video).
PRESETS: dict[str, TrainConfig] = {
    # tiny is the first run: the four bundled clips memorised in under 5 minutes on a 2-core CPU (the README's
    # main command; measured by benchmarks/first_run.py). A 3M-parameter UNet at 32x32x8, attention at 8x8 and
    # 4x4 only (at 16x16 it cost 1.6x the step time), the 4e-4 constant rate that memorised 69 ISL phrases
    # (docs/conditioning.md), and an EMA horizon (~1/(1-0.99) = 100 steps) short enough for a run of ~1000 steps.
    "tiny": TrainConfig(preset="tiny", model_channels=32, channel_mult=(1, 2, 2, 2), num_res_blocks=1, attention_levels=(2, 3),
                        image_size=32, num_frames=8, batch_size=4, num_workers=0, val_fraction=0.0,
                        learning_rate=4e-4, lr_schedule="constant", warmup_steps=50, ema_max_decay=0.99,
                        max_steps=1000, save_every=500, sample_every=1000, sample_steps=20, log_every=50, keep_last=1),
    # small is the smoke-test size: a short warm-up and frequent saves/samples suit its minutes-long runs.
    "small": TrainConfig(preset="small", model_channels=64, channel_mult=(1, 2, 2), attention_levels=(1, 2), image_size=32, num_frames=8, batch_size=2,
                         warmup_steps=50, save_every=250, sample_every=250, sample_steps=20),
    "standard": TrainConfig(preset="standard", model_channels=128, channel_mult=(1, 2, 2, 2), attention_levels=(2, 3), image_size=64, num_frames=16, batch_size=4),
    # large widens the network, not the clips: 32 frames at 128x128 of 16-frame 64x64 data would be repeated
    # frames and upsampled pixels. Attention moves up to 32x32 and 16x16, where a wider model can afford it.
    "large": TrainConfig(preset="large", model_channels=256, channel_mult=(1, 2, 2, 2), attention_levels=(1, 2), image_size=64, num_frames=16, batch_size=2),
}


def config_from_preset(preset: str, **overrides) -> TrainConfig:
    """A preset with fields overridden by name; an unknown preset or field is a ValueError."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}: choose one of {sorted(PRESETS)}")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"TrainConfig has no fields {unknown}")
    return dataclasses.replace(PRESETS[preset], **overrides)
