"""The run config: one nest of the components' own configs, flags generated from its fields, presets as overrides."""

import dataclasses
import functools
import re
import typing

import pytest

from text2sign.models.text_encoder import TextEncoderConfig
from text2sign.training.config import (
    DERIVED_FIELDS, FIXED_ON_RESUME, MAY_CHANGE_ON_RESUME, PRESETS, SET_BY_TRAIN, TrainConfig, config_from_preset,
)
from text2sign.training.flags import build_parser, config_from_flags, typed_flags
from top_level_scripts import load_script


def walk(config_class, prefix=""):
    """(dotted name, type) of every leaf field of a nest of dataclasses, found from the classes themselves."""
    hints = typing.get_type_hints(config_class)
    for item in dataclasses.fields(config_class):
        if dataclasses.is_dataclass(hints[item.name]):
            yield from walk(hints[item.name], f"{prefix}{item.name}.")
        else:
            yield f"{prefix}{item.name}", hints[item.name]


ALL_FIELDS = dict(walk(TrainConfig))
NOT_FLAGS = set(DERIVED_FIELDS) | set(SET_BY_TRAIN)  # the run fills these in itself
DEFAULTS = TrainConfig()


def setting(config, name):
    return functools.reduce(getattr, name.split("."), config)


# A valid value other than the default, where the generic one (see sample_value) does not fit.
SAMPLE_VALUES = {
    "data.data_dir": "clips", "data.frame_sampling": "random", "data.resize_mode": "letterbox", "data.image_size": 32,
    "unet.model_channels": 64, "unet.channel_mult": (1, 2), "unet.attention_levels": (1,), "unet.attention_head_dim": 16, "unet.norm_groups": 16,
    "scheduler.beta_schedule": "cosine", "scheduler.prediction_type": "sample", "scheduler.timestep_spacing": "leading",
    "text_encoder.kind": "hf", "text_encoder.tokenizer": "glosses", "pipeline.loss_weighting": "mse", "pipeline.sampler": "dpm",
    "optim.lr_schedule": "constant", "optim.mixed_precision": "bf16",
    "preset": "small", "validation_prompts": ("one", "two words"),
}
# Settings that are only valid together with others.
COMPANIONS = {
    "unet.channel_mult": {"unet.attention_levels": (1,)},
    "text_encoder.kind": {"text_encoder.pretrained_path": "org/model"},
    "text_encoder.pretrained_path": {"text_encoder.kind": "hf"},
    "text_encoder.train_last_n_layers": {"text_encoder.kind": "hf", "text_encoder.pretrained_path": "org/model"},
}


def sample_value(name):
    if name in SAMPLE_VALUES:
        return SAMPLE_VALUES[name]
    default = setting(DEFAULTS, name)
    value_type = ALL_FIELDS[name]
    if value_type is bool:
        return not default
    if value_type in (int, int | None):
        return 7 if default is None else default + 1
    if value_type in (float, float | None):
        return 1.5 if default is None else (default / 2 if default else 0.25)
    assert value_type in (str, str | None), f"add a sample value for {name} ({value_type})"
    return "sample-text"


def words(value):
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, tuple):
        return [str(item) for item in value]
    return [str(value)]


def flag_arguments(spelling, name):
    arguments = [spelling, *words(sample_value(name))]
    for companion, value in COMPANIONS.get(name, {}).items():
        arguments += [f"--{companion}", *words(value)]
    return arguments


def test_help_lists_every_field_with_its_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        load_script("train.py").main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for name in ALL_FIELDS:
        if name in NOT_FLAGS:
            assert f"  {name}: " in text, name  # listed as filled in by the run
        else:
            assert re.search(rf"--{re.escape(name)}\b", text), name
    for action in build_parser()._actions:
        if action.dest != "help":  # every flag says what it does, beyond its default
            assert not action.help.startswith("(default"), action.dest


@pytest.mark.parametrize("name", sorted(set(ALL_FIELDS) - NOT_FLAGS))
def test_every_field_is_settable_from_the_command_line(name):
    args = load_script("train.py").parse_args(flag_arguments(f"--{name}", name))
    config = config_from_flags(args)
    assert setting(config, name) == sample_value(name)
    assert typed_flags(args)[name] == f"--{name}"


# The flags of train.py before the config was nested (commit e581e74), and where each setting lives now.
OLD_FLAGS = (
    "data_dir", "data_cache", "output_dir", "num_frames", "image_size", "val_fraction", "group_pattern", "num_workers", "train_frame_sampling",
    "preset", "model_channels", "channel_mult", "num_res_blocks", "attention_levels", "gradient_checkpointing", "text_encoder",
    "text_max_length", "text_encoder_path", "text_train_last_n_layers", "prediction_type", "caption_dropout_prob", "rescale_betas_zero_snr",
    "batch_size", "gradient_accumulation_steps", "learning_rate", "warmup_steps", "num_epochs", "max_steps", "max_minutes", "lr_schedule",
    "ema_max_decay", "seed", "mixed_precision", "compile", "log_every", "save_every", "keep_last", "sample_every", "sample_steps",
    "validation_prompts", "resume", "wandb", "wandb_project", "wandb_run_name",
)
NEW_NAMES = {
    "data_dir": "data.data_dir", "data_cache": "data.cache_dir", "num_frames": "data.num_frames", "image_size": "data.image_size",
    "val_fraction": "data.val_fraction", "group_pattern": "data.group_pattern", "train_frame_sampling": "data.frame_sampling",
    "model_channels": "unet.model_channels", "channel_mult": "unet.channel_mult", "num_res_blocks": "unet.num_res_blocks",
    "attention_levels": "unet.attention_levels", "attention_head_dim": "unet.attention_head_dim", "dropout": "unet.dropout",
    "gradient_checkpointing": "unet.gradient_checkpointing", "text_encoder": "text_encoder.kind", "text_encoder_path": "text_encoder.pretrained_path",
    "text_max_length": "text_encoder.max_length", "text_train_last_n_layers": "text_encoder.train_last_n_layers",
    "num_train_timesteps": "scheduler.num_train_timesteps", "beta_schedule": "scheduler.beta_schedule", "prediction_type": "scheduler.prediction_type",
    "rescale_betas_zero_snr": "scheduler.rescale_betas_zero_snr", "caption_dropout_prob": "pipeline.caption_dropout_prob",
    "loss_weighting": "pipeline.loss_weighting", "min_snr_gamma": "pipeline.min_snr_gamma", "batch_size": "optim.batch_size",
    "gradient_accumulation_steps": "optim.gradient_accumulation_steps", "learning_rate": "optim.learning_rate", "weight_decay": "optim.weight_decay",
    "warmup_steps": "optim.warmup_steps", "lr_schedule": "optim.lr_schedule", "num_epochs": "optim.num_epochs", "max_steps": "optim.max_steps",
    "max_minutes": "optim.max_minutes", "max_grad_norm": "optim.max_grad_norm", "ema_max_decay": "optim.ema_max_decay",
    "max_nonfinite_steps": "optim.max_nonfinite_steps", "mixed_precision": "optim.mixed_precision", "compile": "optim.compile", "seed": "optim.seed",
}


@pytest.mark.parametrize("flag", OLD_FLAGS)
def test_familiar_short_flags_still_work(flag):
    name = NEW_NAMES.get(flag, flag)
    args = load_script("train.py").parse_args(flag_arguments(f"--{flag}", name))
    assert setting(config_from_flags(args), name) == sample_value(name)
    assert typed_flags(args)[name] == f"--{flag}"  # errors name the flag as the user typed it


def test_readme_command_lines_parse(tmp_path):
    script = load_script("train.py")
    config = script.config_from_args(script.parse_args([
        "--data_dir", str(tmp_path), "--data_cache", str(tmp_path / "cache"), "--preset", "standard", "--mixed_precision", "bf16", "--wandb",
        "--batch_size", "4", "--num_epochs", "100", "--model_channels", "128", "--resume", "latest", "--output_dir", str(tmp_path / "run"),
    ]))
    assert config.data.cache_dir == str(tmp_path / "cache") and config.optim.mixed_precision == "bf16" and config.wandb is True
    assert (config.optim.batch_size, config.optim.num_epochs, config.unet.model_channels, config.resume) == (4, 100, 128, "latest")


def test_preset_first_then_flags_by_name():
    args = load_script("train.py").parse_args(["--preset", "tiny", "--learning_rate", "2e-4", "--optim.max_steps", "none"])
    config = config_from_flags(args)
    assert config.preset == "tiny" and config.unet.model_channels == 32  # from the preset
    assert config.optim.learning_rate == 2e-4 and config.optim.max_steps is None  # the flags win; "none" unsets


def test_unknown_or_abbreviated_flags_are_refused():
    script = load_script("train.py")
    for argv in (["--unet.channels", "3"], ["--learn", "1e-3"]):
        with pytest.raises(SystemExit):
            script.parse_args(argv)


# TrainConfig's fields and presets before it was nested (copied from training/config.py at commit e581e74, except the
# tiny preset, retuned after the redesign: x_0 prediction, 300 steps, and mixed_precision, "auto" since a GPU run in
# float32 took twice the time and memory of bf16); NEW_NAMES above maps each old name to the setting's dotted name now.
OLD_DEFAULTS = {
    "data_dir": "training_data", "data_cache": None, "output_dir": "checkpoints", "num_frames": 16, "image_size": 64, "val_fraction": 0.05,
    "group_pattern": None, "num_workers": 2, "train_frame_sampling": "uniform", "preset": "standard", "model_channels": 128,
    "channel_mult": (1, 2, 2, 2), "num_res_blocks": 2, "attention_levels": (2, 3), "attention_head_dim": 32, "dropout": 0.0,
    "gradient_checkpointing": False, "text_encoder": "lstm", "text_encoder_path": None, "text_max_length": 32, "text_train_last_n_layers": 0,
    "num_train_timesteps": 1000, "beta_schedule": "linear", "prediction_type": "v_prediction", "caption_dropout_prob": 0.1,
    "loss_weighting": "min_snr", "min_snr_gamma": 5.0, "rescale_betas_zero_snr": False, "batch_size": 4, "gradient_accumulation_steps": 1,
    "learning_rate": 1e-4, "weight_decay": 0.0, "warmup_steps": 500, "lr_schedule": "cosine", "num_epochs": 100, "max_steps": None,
    "max_minutes": None, "max_grad_norm": 1.0, "ema_max_decay": 0.9999, "max_nonfinite_steps": 5, "mixed_precision": "auto", "compile": False,
    "seed": 0, "log_every": 10, "save_every": 1000, "keep_last": 3, "sample_every": 1000, "validation_prompts": ("Hello", "How are you?", "Thank you"),
    "sample_steps": 50, "guidance_scale": 4.0, "resume": None, "wandb": False, "wandb_project": "text2sign", "wandb_run_name": None,
}
OLD_PRESETS = {
    "tiny": dict(model_channels=32, channel_mult=(1, 2, 2, 2), num_res_blocks=1, attention_levels=(2, 3), image_size=32, num_frames=8,
                 batch_size=4, num_workers=0, val_fraction=0.0, prediction_type="sample", loss_weighting="mse", learning_rate=5e-4,
                 lr_schedule="constant", warmup_steps=20, ema_max_decay=0.99, max_steps=300, save_every=300, sample_every=300,
                 sample_steps=20, guidance_scale=2.0, log_every=50, keep_last=1),
    "small": dict(model_channels=64, channel_mult=(1, 2, 2), attention_levels=(1, 2), image_size=32, num_frames=8, batch_size=2,
                  warmup_steps=50, save_every=250, sample_every=250, sample_steps=20),
    "standard": dict(model_channels=128, channel_mult=(1, 2, 2, 2), attention_levels=(2, 3), image_size=64, num_frames=16, batch_size=4),
    "large": dict(model_channels=256, channel_mult=(1, 2, 2, 2), attention_levels=(1, 2), image_size=64, num_frames=16, batch_size=2),
}
@pytest.mark.parametrize("preset", sorted(OLD_PRESETS))
def test_presets_keep_their_values(preset):
    config = config_from_preset(preset)
    assert set(OLD_PRESETS) <= set(PRESETS)  # later presets (boston_cpu) join; none of these is dropped
    for old_name, value in {**OLD_DEFAULTS, **OLD_PRESETS[preset], "preset": preset}.items():
        assert setting(config, NEW_NAMES.get(old_name, old_name)) == value, old_name


def test_copies_follow_the_setting_they_repeat_and_cannot_be_set():
    config = config_from_preset("tiny", {"optim.seed": 3})
    assert (config.pipeline.num_frames, config.pipeline.image_size, config.data.seed) == (8, 32, 3)
    with pytest.raises(ValueError, match="follows data.num_frames"):
        config_from_preset("tiny", {"pipeline.num_frames": 4})
    with pytest.raises(ValueError, match="data.split"):
        TrainConfig(data={"data_dir": "clips", "split": "train"})


def test_each_config_checks_itself():
    with pytest.raises(ValueError, match="learning_rate"):
        config_from_preset("small", {"optim.learning_rate": 0.0})
    with pytest.raises(ValueError, match="divisible"):
        config_from_preset("small", {"data.image_size": 30})
    with pytest.raises(ValueError, match="pretrained_path"):
        config_from_preset("small", {"text_encoder.kind": "clip"})


def test_config_round_trips_through_its_dict():
    config = config_from_preset("small", {"text_encoder.kind": "hf", "text_encoder.pretrained_path": "org/model"})
    assert TrainConfig(**config.to_dict()) == config
    assert isinstance(TrainConfig(**config.to_dict()).text_encoder, TextEncoderConfig)


def test_every_setting_is_fixed_or_may_change_on_resume():
    fixed = {name for name in ALL_FIELDS if any(name == prefix or name.startswith(prefix + ".") for prefix in FIXED_ON_RESUME)}
    may_change = set(MAY_CHANGE_ON_RESUME)
    assert not fixed & may_change
    assert fixed | may_change | NOT_FLAGS == set(ALL_FIELDS)
    assert {"optim.learning_rate", "optim.max_steps", "log_every", "wandb", "output_dir"} <= may_change
    assert {"unet.model_channels", "text_encoder.kind", "scheduler.prediction_type", "data.num_frames", "data.image_size"} <= fixed
