"""TrainConfig: one training run as a nest of the components' own configs, and the preset registry.

    TrainConfig
      data          DataConfig          which clips, frames x size, split, cache, augmentation
      unet          UNet3DConfig        the denoiser
      scheduler     SchedulerConfig     the noise schedule and what the UNet predicts
      text_encoder  TextEncoderConfig   lstm | clip | t5 | hf
      pipeline      PipelineConfig      caption dropout, loss weighting, default sampler
      optim         OptimizationConfig  batch, learning rate, length, precision, seed
      preset, output_dir, log_every...  the run: where it writes, what it logs, when it saves and samples

A setting has one name, its component's, from the flag (`--unet.dropout`) to the component; settings are named
by dotted path ("optim.learning_rate", "output_dir"). Each config checks itself in __post_init__; TrainConfig
checks what spans sections. A few component fields repeat another setting: the run fills them in
(DERIVED_FIELDS), so they cannot disagree. A preset is a set of overrides by name, applied to the defaults
(`config_from_preset("small", {"optim.batch_size": 8})`). The resolved config is saved with every checkpoint
(train_config.json) and logged to wandb. On resume the checkpoint fixes the architecture (FIXED_ON_RESUME).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from text2sign.data.config import DataConfig
from text2sign.models.pipeline import PipelineConfig, TextToSignPipeline
from text2sign.models.scheduler import SchedulerConfig
from text2sign.models.serialization import config_from_dict
from text2sign.models.text_encoder import TextEncoderConfig
from text2sign.models.unet3d import UNet3DConfig

LR_SCHEDULES = ("cosine", "constant")
MIXED_PRECISIONS = ("auto", "no", "fp16", "bf16")


@dataclass
class OptimizationConfig:
    batch_size: int = 4  # clips per process per micro-batch; the global batch is batch_size x gradient_accumulation_steps x processes
    gradient_accumulation_steps: int = 1  # micro-batches per optimizer step
    learning_rate: float = 1e-4  # peak AdamW learning rate
    weight_decay: float = 0.0  # AdamW weight decay
    warmup_steps: int = 500  # linear warm-up steps before lr_schedule takes over
    lr_schedule: str = "cosine"  # "cosine" decay to 0 at the last step | "constant" after warm-up (runs extended by resuming)
    num_epochs: int = 100  # passes over the data (ignored when max_steps is set)
    max_steps: int | None = None  # optimizer steps; overrides num_epochs when set
    max_minutes: float | None = None  # wall-clock budget: checkpoint and stop once exceeded
    max_grad_norm: float = 1.0  # gradients are clipped to this norm (the logged grad_norm is before clipping)
    ema_max_decay: float = 0.9999  # EMA decay ceiling; the decay warms up as (1 + k) / (10 + k)
    max_nonfinite_steps: int = 5  # consecutive NaN/Inf losses tolerated (each skipped) before stopping
    mixed_precision: str = "auto"  # autocast dtype: "auto" (bf16 on a CUDA GPU that has it, else float32) | "no" | "fp16" (with a GradScaler; CUDA only) | "bf16"
    compile: bool = False  # torch.compile the UNet (slow first step; captions are then padded to text_encoder.max_length, one shape)
    seed: int = 0  # seeds init, data order, noise and caption dropout, and the data's random windows (data.seed)

    def __post_init__(self):
        for name in ("batch_size", "gradient_accumulation_steps", "num_epochs", "max_nonfinite_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if self.weight_decay < 0 or self.warmup_steps < 0 or self.seed < 0:
            raise ValueError("weight_decay, warmup_steps and seed must be >= 0")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValueError(f"max_minutes must be positive, got {self.max_minutes}")
        if self.max_grad_norm <= 0:
            raise ValueError(f"max_grad_norm must be positive, got {self.max_grad_norm}")
        if not 0.0 <= self.ema_max_decay < 1.0:
            raise ValueError(f"ema_max_decay must be in [0, 1), got {self.ema_max_decay}")
        if self.mixed_precision not in MIXED_PRECISIONS:
            raise ValueError(f"mixed_precision must be one of {MIXED_PRECISIONS}, got {self.mixed_precision!r}")


def _default_data() -> DataConfig:
    return DataConfig(data_dir="training_data")


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=_default_data)
    unet: UNet3DConfig = field(default_factory=UNet3DConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    text_encoder: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    optim: OptimizationConfig = field(default_factory=OptimizationConfig)
    preset: str = "standard"  # the preset the settings started from: one of PRESETS (tiny, isl, small, standard, large, boston_cpu); flags override it by name
    output_dir: str = "checkpoints"  # checkpoints, samples, metrics.jsonl and split.json go here
    num_workers: int = 2  # DataLoader worker processes
    # A frozen pretrained text encoder (clip/t5/hf, no fine-tuned layers) encodes each distinct training caption once,
    # into output_dir/text_embeddings/, instead of at every step; the same states, so on by default. The lstm and
    # fine-tuned layers train, so they are never cached.
    cache_text_embeddings: bool = True
    log_every: int = 10  # optimizer steps between metric rows
    save_every: int = 1000  # optimizer steps between checkpoints (+ validation loss)
    keep_last: int = 3  # checkpoints kept besides the best
    sample_every: int = 1000  # optimizer steps between validation sample GIFs (a run also samples at its end)
    validation_prompts: tuple[str, ...] = ("Hello", "How are you?", "Thank you")  # prompts of the validation samples
    sample_steps: int = 50  # sampler steps for validation samples
    guidance_scale: float = 4.0  # classifier-free guidance of validation samples (1 = none)
    resume: str | None = None  # "latest" (in output_dir) or a checkpoint directory; the checkpoint fixes the architecture
    wandb: bool = False  # log to Weights & Biases (WANDB_MODE=offline works)
    wandb_project: str = "text2sign"  # wandb project name
    wandb_run_name: str | None = None  # wandb run name

    def __post_init__(self):
        # A section may come as a dict (train_config.json, a JSON'd config): rebuilt as its dataclass, it checks itself.
        for name, section_class in SECTIONS.items():
            value = getattr(self, name)
            if isinstance(value, dict):
                setattr(self, name, config_from_dict(section_class, value))
            elif not isinstance(value, section_class):
                raise ValueError(f"TrainConfig.{name} must be a {section_class.__name__} (or a dict of its fields), got {type(value).__name__}")
        self.validation_prompts = tuple(self.validation_prompts)
        for name in ("log_every", "save_every", "keep_last", "sample_every", "sample_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")
        if self.guidance_scale < 1.0:
            raise ValueError(f"guidance_scale must be >= 1 (1 = no guidance), got {self.guidance_scale}")
        if self.data.split is not None:
            raise ValueError(f"data.split={self.data.split!r}: train() picks the sides itself (training on 'train', validation on 'val'); leave it None and set data.val_fraction")
        multiple = self.unet.size_multiple
        if self.data.image_size % multiple:
            raise ValueError(f"image_size={self.data.image_size} must be divisible by {multiple} for {len(self.unet.channel_mult)} UNet levels")
        for name, source in DERIVED_FIELDS.items():
            section, field_name = name.split(".")
            setattr(self, section, dataclasses.replace(getattr(self, section), **{field_name: get_setting(self, source)}))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


SECTIONS: dict[str, type] = {
    "data": DataConfig, "unet": UNet3DConfig, "scheduler": SchedulerConfig, "text_encoder": TextEncoderConfig,
    "pipeline": PipelineConfig, "optim": OptimizationConfig,
}
# Component fields that repeat another setting: the run copies it in, so a setting keeps one name and the copies
# cannot disagree. The pipeline samples at the clip shape it trained on; one seed drives the whole run.
DERIVED_FIELDS = {"pipeline.num_frames": "data.num_frames", "pipeline.image_size": "data.image_size", "data.seed": "optim.seed"}
# Component fields train() sets per dataset (the flags cannot reach them; TrainConfig refuses another value).
SET_BY_TRAIN = {"data.split": "train() trains on the 'train' side and validates on the 'val' side (see data.val_fraction)"}
# What a checkpoint fixes: its pipeline was built from these sections, and its UNet trained at this clip shape.
# On resume they come from the checkpoint; a flag that contradicts it is an error (with_architecture_of).
FIXED_ON_RESUME = ("unet", "text_encoder", "scheduler", "pipeline", "data.num_frames", "data.image_size")


def setting_names() -> list[str]:
    """Every setting's dotted name, in field order: "data.data_dir", ..., "optim.seed", "preset", "output_dir", ..."""
    names = []
    for top in dataclasses.fields(TrainConfig):
        if top.name in SECTIONS:
            names += [f"{top.name}.{inner.name}" for inner in dataclasses.fields(SECTIONS[top.name])]
        else:
            names.append(top.name)
    return names


def is_fixed_on_resume(name: str) -> bool:
    return any(name == fixed or name.startswith(fixed + ".") for fixed in FIXED_ON_RESUME)


# Everything a resumed run may change: the optimisation, the data other than the clip shape, logging, saving,
# sampling, wandb, the output directory (listed in the README's Resume section).
MAY_CHANGE_ON_RESUME = tuple(name for name in setting_names() if not (is_fixed_on_resume(name) or name in DERIVED_FIELDS or name in SET_BY_TRAIN))


def get_setting(config: TrainConfig, name: str) -> Any:
    value = config
    for part in name.split("."):
        value = getattr(value, part)
    return value


def override(config: TrainConfig, overrides: dict[str, Any]) -> TrainConfig:
    """`config` with settings replaced by dotted name; every config touched checks itself again.

    An unknown name, or one the run fills in itself (DERIVED_FIELDS, SET_BY_TRAIN), is a ValueError saying what to set.
    """
    known = set(setting_names())
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"TrainConfig has no settings {unknown}: settings are named by dotted path, e.g. 'optim.learning_rate', 'unet.dropout', 'output_dir'")
    for name in overrides:
        if name in DERIVED_FIELDS:
            raise ValueError(f"{name} follows {DERIVED_FIELDS[name]}: set that instead")
        if name in SET_BY_TRAIN:
            raise ValueError(f"{name} is not a setting: {SET_BY_TRAIN[name]}")
    sections: dict[str, dict[str, Any]] = {}
    top_level: dict[str, Any] = {}
    for name, value in overrides.items():
        section, _, field_name = name.rpartition(".")
        (sections.setdefault(section, {}) if section else top_level)[field_name] = value
    replaced = {section: dataclasses.replace(getattr(config, section), **values) for section, values in sections.items()}
    return dataclasses.replace(config, **replaced, **top_level)


# The presets named in the README, as overrides of TrainConfig's defaults (which are the standard preset). Every one
# takes frames and pixels the How2Sign clips have (16 frames of 64x64): asking for more only repeats the last frame
# and upsamples (the data warns when it must). Channel widths follow the brief; channel_mult (1, 2, 2, 2) keeps the
# standard UNet at ~63M parameters (the (1, 2, 4, 4) of image UNets gave 190M and 7 GB of CPU activations per clip
# for 64x64x16 video).
PRESETS: dict[str, dict[str, Any]] = {
    # tiny is the first run: the four bundled clips memorised in under 5 minutes on a 2-core CPU (the README's
    # main command; benchmarks/first_run.py measures it). A 3M-parameter UNet at 32x32x8 with attention at 8x8 and
    # 4x4 only (at 16x16 it cost 1.6x the step time). It predicts the clean video (x_0) with a plain MSE: for a
    # caption the target is then the same clip at every noise level, which four clips are learned from in ~300
    # steps (measured: every caption's own clip nearest at 24.6-25.5 dB, "Hello" 20.2 dB), where v-prediction
    # with min-SNR weighting still confused the two clips of one signer after 600. The EMA horizon (~100 steps)
    # suits a 300-step run; guidance 2 (4 over-saturated these short runs' samples).
    "tiny": {
        "unet.model_channels": 32, "unet.channel_mult": (1, 2, 2, 2), "unet.num_res_blocks": 1, "unet.attention_levels": (2, 3),
        "data.image_size": 32, "data.num_frames": 8, "optim.batch_size": 4, "num_workers": 0, "data.val_fraction": 0.0,
        "scheduler.prediction_type": "sample", "pipeline.loss_weighting": "mse",
        "optim.learning_rate": 5e-4, "optim.lr_schedule": "constant", "optim.warmup_steps": 20, "optim.ema_max_decay": 0.99,
        "optim.max_steps": 300, "save_every": 300, "sample_every": 300, "sample_steps": 20, "guidance_scale": 2.0,
        "log_every": 50, "keep_last": 1,
    },
    # isl is the conditioning experiment's recipe (experiments/isl_conditioning.py, docs/conditioning.md) and the
    # release check's (benchmarks/conditioning_regression.py): a dataset of one clip per caption, learned by heart
    # on a CPU. The tiny UNet at 32x32x8 with v-prediction and min-SNR-5 (the defaults), batch 8, a constant 4e-4.
    # Nothing is held out (val_fraction 0): with one clip per caption a held-out clip is a caption the model never
    # trains on, and the best checkpoint by its loss is the one that memorised least. No worker processes: on a
    # 2-core CPU they take the cores the step needs. Samples are rare: one costs ~40 steps' time here.
    "isl": {
        "unet.model_channels": 32, "unet.channel_mult": (1, 2, 2, 2), "unet.num_res_blocks": 1, "unet.attention_levels": (2, 3),
        "unet.attention_head_dim": 32, "data.image_size": 32, "data.num_frames": 8, "data.frame_sampling": "uniform",
        "data.val_fraction": 0.0, "optim.batch_size": 8, "optim.learning_rate": 4e-4, "optim.warmup_steps": 100,
        "optim.lr_schedule": "constant", "optim.ema_max_decay": 0.995, "num_workers": 0, "log_every": 50,
        "save_every": 500, "sample_every": 2000, "keep_last": 2,
    },
    # small is the smoke-test size: a short warm-up and frequent saves/samples suit its minutes-long runs.
    "small": {
        "unet.model_channels": 64, "unet.channel_mult": (1, 2, 2), "unet.attention_levels": (1, 2), "data.image_size": 32,
        "data.num_frames": 8, "optim.batch_size": 2, "optim.warmup_steps": 50, "save_every": 250, "sample_every": 250, "sample_steps": 20,
    },
    "standard": {
        "unet.model_channels": 128, "unet.channel_mult": (1, 2, 2, 2), "unet.attention_levels": (2, 3), "data.image_size": 64,
        "data.num_frames": 16, "optim.batch_size": 4,
    },
    # large widens the network, not the clips: 32 frames at 128x128 of 16-frame 64x64 data would be repeated
    # frames and upsampled pixels. Attention moves up to 32x32 and 16x16, where a wider model can afford it.
    "large": {
        "unet.model_channels": 256, "unet.channel_mult": (1, 2, 2, 2), "unet.attention_levels": (1, 2), "data.image_size": 64,
        "data.num_frames": 16, "optim.batch_size": 2,
    },
    # boston_cpu is experiments/boston_generalisation.py's model: tiny's 3M-parameter UNet (attention_head_dim 32) on
    # 32x32 stick-figure renders of the Boston tracks, x_0 prediction with a plain MSE (a CPU budget of a few hundred
    # to a few thousand steps learns it, v-prediction with min-SNR did not), batch 8, lr 5e-4 with a 100-step warm-up
    # and cosine decay to max_steps, EMA 0.995, bf16 autocast (1.15 s instead of 1.38 s a step on the AMX Xeon at 12
    # frames; slower where the CPU has no bf16 units). The experiment sets the frame count (data/folds.py's gloss
    # coverage rule: 24 on the Boston tracks), the data folder and the per-fold budget (optim.max_steps, optim.max_minutes).
    "boston_cpu": {
        "unet.model_channels": 32, "unet.channel_mult": (1, 2, 2, 2), "unet.num_res_blocks": 1, "unet.attention_levels": (2, 3),
        "unet.attention_head_dim": 32, "data.image_size": 32, "data.frame_sampling": "uniform",
        "data.val_fraction": 0.0, "scheduler.prediction_type": "sample", "pipeline.loss_weighting": "mse",
        "pipeline.caption_dropout_prob": 0.1, "optim.batch_size": 8, "optim.learning_rate": 5e-4, "optim.warmup_steps": 100,
        "optim.ema_max_decay": 0.995, "optim.lr_schedule": "cosine", "optim.max_steps": 3600, "optim.mixed_precision": "bf16",
        "num_workers": 0, "log_every": 50, "save_every": 1000, "keep_last": 2, "sample_every": 10**9,
        "validation_prompts": ("JOHN CAN GO CAN",), "sample_steps": 20, "guidance_scale": 2.0,
    },
}


def config_from_preset(preset: str, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """A preset's settings over the defaults, then `overrides` by dotted name; an unknown preset or name is a ValueError."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}: choose one of {sorted(PRESETS)}")
    return override(TrainConfig(preset=preset), {**PRESETS[preset], **(overrides or {})})


def with_architecture_of(config: TrainConfig, pipeline: TextToSignPipeline, flags: dict[str, str] | None = None) -> TrainConfig:
    """`config` with the architecture of `pipeline` (just built, or loaded from a checkpoint to resume): its UNet,
    text encoder, scheduler and pipeline configs, and the clip shape it trains on, so train_config.json records what ran.

    A setting that contradicts the pipeline is a ValueError naming both values. `flags` (dotted name -> the flag
    as typed, from train.py's command line) limits the check to what was typed; the other settings simply follow
    the checkpoint. Without `flags` (the Python API) every architecture setting of `config` must agree.
    `unet.text_dim=None` means "the text encoder's width" and agrees with any.
    """
    data = dataclasses.replace(config.data, num_frames=pipeline.config.num_frames, image_size=pipeline.config.image_size)
    architecture = dataclasses.replace(config, data=data, unet=pipeline.unet.config, text_encoder=pipeline.text_encoder.config,
                                       scheduler=pipeline.scheduler.config, pipeline=pipeline.config)
    # The settings checked are FIXED_ON_RESUME's (the list MAY_CHANGE_ON_RESUME is the complement of), read back
    # from `architecture`: one list says what a checkpoint fixes.
    for name in setting_names():
        if not is_fixed_on_resume(name) or name in DERIVED_FIELDS or (flags is not None and name not in flags):
            continue
        ours, value = get_setting(config, name), get_setting(architecture, name)
        if ours == value or (name == "unet.text_dim" and ours is None):
            continue
        if flags is not None:
            raise ValueError(f"{flags[name]} {_as_flag_value(ours)} contradicts the checkpoint's {name}={value!r}: resume without it or start a new --output_dir")
        raise ValueError(f"{name}={ours!r} contradicts the checkpoint's {name}={value!r}: set it to the checkpoint's value or train into a new output_dir")
    return architecture


def _as_flag_value(value: Any) -> str:
    """A value as it is typed after its flag: `1 2 2`, not `(1, 2, 2)`."""
    return " ".join(str(item) for item in value) if isinstance(value, (tuple, list)) else str(value)
